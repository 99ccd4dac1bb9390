"""Every plotly chart of the studio, in one palette: classes in their colours (ferlib.classes), a model's training
curve solid and its validation curve dashed in the same hue, the epoch in progress dotted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative

from ferlib.classes import EMOTION_COLORS, EMOTION_ICONS, EMOTIONS

CLASS_LABELS = [f"{EMOTION_ICONS[name]} {name}" for name in EMOTIONS]
SERIES_COLORS = qualitative.Plotly  # one hue per model (or per series of one model)
TRAIN, VALIDATION, IN_PROGRESS = "solid", "dash", "dot"
SPLIT_PATTERNS = {"train": "", "validation": "/", "test": "x"}
Series = tuple[str, Sequence[float], Sequence[float | None], str, str]  # name, x, y, colour, dash


def series_color(index: int) -> str:
    return SERIES_COLORS[index % len(SERIES_COLORS)]


def _layout(figure: go.Figure, title: str | None = None, height: int = 280, **layout: Any) -> go.Figure:
    heading = dict(text=title, font=dict(size=14)) if title else None
    margin = dict(l=0, r=10, t=35 if title else 10, b=0)
    return figure.update_layout(
        title=heading, height=height, margin=margin, legend=dict(orientation="h", y=-0.2), **layout
    )


def curves(title: str, series: list[Series], percent: bool, best_epoch: int | None = None) -> go.Figure:
    """Per-epoch lines, one per (name, x, y, colour, dash) series; a dotted marker at the best epoch."""
    figure = go.Figure()
    for name, x_values, y_values, color, dash in series:
        line = dict(color=color, dash=dash)
        figure.add_trace(go.Scatter(x=x_values, y=y_values, name=name, mode="lines+markers", line=line))
    if best_epoch:
        figure.add_vline(x=best_epoch, line_dash="dot", line_color="gray", annotation_text="best")
    last_epoch = max((max(x_values, default=0) for _, x_values, *_ in series), default=0)
    axis = dict(title="epoch", dtick=1 if last_epoch <= 15 else None)
    return _layout(figure, title, xaxis=axis, yaxis=dict(tickformat=".0%" if percent else None))


def history_series(history: list[dict[str, Any]], key: str, name: str = "", color: str = SERIES_COLORS[0]):
    """A metric's training (solid) and validation (dashed) curves from per-epoch records."""
    epochs = [record["epoch"] for record in history]
    prefix = f"{name} " if name else ""
    return [
        (f"{prefix}train", epochs, [record.get(key) for record in history], color, TRAIN),
        (f"{prefix}validation", epochs, [record.get(f"val_{key}") for record in history], color, VALIDATION),
    ]


def training_curves(history: list[dict[str, Any]], key: str, best_epoch: int | None = None, batches=()) -> None:
    """Loss, accuracy and learning rate per epoch side by side; the epoch in progress (batch records) dotted."""
    columns = st.columns(3)
    batch_x = [record["epoch"] - 1 + record["batch"] / max(1, record["steps"]) for record in batches]
    panels = [("Loss", "loss", False), ("Accuracy", "accuracy", True)]
    for column, (title, metric, percent) in zip(columns, panels, strict=False):
        series = history_series(history, metric)
        if batches:
            in_progress = [record.get(metric) for record in batches]
            series.append(("train, this epoch", batch_x, in_progress, SERIES_COLORS[0], IN_PROGRESS))
        column.plotly_chart(curves(title, series, percent, best_epoch), key=f"{key}-{metric}", width="stretch")
    epochs, rates = [record["epoch"] for record in history], [record.get("learning_rate") for record in history]
    figure = curves("Learning rate", [("learning rate", epochs, rates, SERIES_COLORS[0], TRAIN)], False)
    columns[2].plotly_chart(figure, key=f"{key}-learning-rate", width="stretch")


def confusion_matrix(matrix: np.ndarray, title: str, normalised: bool) -> go.Figure:
    """One confusion matrix heatmap (true classes as rows), in the same style for counts and fractions."""
    text = [[f"{value:.0%}" if normalised else f"{int(value):,}" for value in row] for row in matrix]
    cells = dict(z=matrix, x=CLASS_LABELS, y=CLASS_LABELS, text=text, texttemplate="%{text}", colorscale="Blues")
    scale = dict(zmin=0, zmax=1 if normalised else max(1, float(np.max(matrix))), colorbar=dict(thickness=12))
    scale["colorbar"]["tickformat"] = ".0%" if normalised else None
    heatmap = go.Heatmap(**cells, **scale, hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>")
    axes = dict(xaxis=dict(title="predicted"), yaxis=dict(title="true", autorange="reversed"))
    return _layout(go.Figure(heatmap), title, 420, **axes)


def per_class_bars(title: str, values: dict[str, list[float | None]]) -> go.Figure:
    """Grouped bars per class, one series per model in its hue (e.g. F1 per class of compared models)."""
    bars = [
        go.Bar(x=CLASS_LABELS, y=series, name=name, marker_color=series_color(index))
        for index, (name, series) in enumerate(values.items())
    ]
    return _layout(go.Figure(bars), title, 300, barmode="group", yaxis=dict(range=[0, 1]))


def probability_bars(probabilities: dict[str, float], height: int = 260) -> go.Figure:
    """A face's class probabilities as horizontal bars in the class colours."""
    values = [probabilities[name] for name in EMOTIONS]
    colors, text = [EMOTION_COLORS[name] for name in EMOTIONS], [f"{value:.0%}" for value in values]
    bar = go.Bar(x=values, y=CLASS_LABELS, orientation="h", marker_color=colors, text=text, textposition="auto")
    axes = dict(xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(autorange="reversed"))
    return _layout(go.Figure(bar), height=height, showlegend=False, **axes)


def timeline(rows: Iterable[tuple[int, float, str, float]], height: int = 260) -> go.Figure:
    """Each face's emotion over time from (face id, seconds, label, confidence) rows: markers in class colours."""
    by_face: dict[int, list[tuple[int, float, str, float]]] = {}
    for row in rows:
        by_face.setdefault(int(row[0]), []).append(row)
    figure, line = go.Figure(), dict(shape="hv", width=1, color="#bbbbbb")
    for face_id, mine in sorted(by_face.items()):
        _, seconds, labels, confidences = zip(*mine, strict=True)
        marker = dict(color=[EMOTION_COLORS[label] for label in labels], size=7)
        hover = dict(customdata=confidences, hovertemplate="%{y} %{customdata:.0%} at %{x:.1f} s")
        trace = go.Scatter(x=seconds, y=labels, name=f"face {face_id}", mode="lines+markers", line=line, marker=marker)
        figure.add_trace(trace.update(**hover))
    axis = dict(categoryorder="array", categoryarray=list(EMOTIONS), type="category", range=[-0.5, 6.5])
    return _layout(figure, height=height, xaxis=dict(title="seconds"), yaxis=axis, showlegend=len(by_face) > 1)


def split_counts(frame) -> go.Figure:
    """Images per split, stacked by class in the class colours (`frame`: classes by splits)."""
    splits = list(SPLIT_PATTERNS)
    bars = [
        go.Bar(name=name, x=splits, y=[frame.loc[name, split] for split in splits], marker_color=EMOTION_COLORS[name])
        for name in EMOTIONS
    ]
    return _layout(go.Figure(bars), "Images per split", 340, barmode="stack")


def class_counts(frame) -> go.Figure:
    """Images per class in the class colours, one bar per split (told apart by hatching)."""
    colors = [EMOTION_COLORS[name] for name in EMOTIONS]
    marker = dict(color=colors, line=dict(color="#333", width=0.5))
    bars = [
        go.Bar(name=split, x=CLASS_LABELS, y=frame[split].tolist(), marker=dict(marker, pattern_shape=pattern))
        for split, pattern in SPLIT_PATTERNS.items()
        if frame[split].sum()
    ]
    return _layout(go.Figure(bars), "Images per class", 340, barmode="group")


def intensity_histogram(centres: np.ndarray, densities: dict[str, np.ndarray]) -> go.Figure:
    """Pixel intensity distributions, one line per class in its colour."""
    lines = [
        go.Scatter(x=centres, y=values, mode="lines", name=name, line=dict(color=EMOTION_COLORS[name]))
        for name, values in densities.items()
    ]
    axes = dict(xaxis_title="pixel value (0: black, 255: white)", yaxis=dict(title="share of pixels", tickformat=".1%"))
    return _layout(go.Figure(lines), "Pixel intensities per class", 340, **axes)


def best_so_far(scores: list[float], curve: list[tuple[int, float]], baseline: float | None) -> go.Figure:
    """Each completed trial's score, the best so far as a step line and the baseline as a dashed reference."""
    figure = go.Figure(go.Scatter(x=list(range(1, len(scores) + 1)), y=scores, mode="markers", name="trial"))
    x_values, best = zip(*curve, strict=True) if curve else ((), ())
    figure.add_trace(go.Scatter(x=x_values, y=best, mode="lines", name="best so far", line_shape="hv"))
    if baseline is not None:
        figure.add_hline(y=baseline, line_dash="dash", annotation_text="baseline", line_color="gray")
    axes = dict(xaxis=dict(title="completed trial", dtick=1), yaxis=dict(title="validation accuracy", tickformat=".0%"))
    return _layout(figure, "Best so far", 320, **axes)


def parallel_coordinates(space: dict[str, list], rows: list[tuple[dict, float]], baseline: float | None, note: str):
    """One line per completed trial (hyperparameters, score) across the searched hyperparameters to its score."""
    dimensions = []
    for name, choices in space.items():
        values = [hyperparameters.get(name) for hyperparameters, _ in rows]
        if any(isinstance(choice, str) for choice in choices):
            ticks = dict(tickvals=list(range(len(choices))), ticktext=list(choices), range=[-0.2, len(choices) - 0.8])
            indices = [choices.index(value) if value in choices else -1 for value in values]
            dimensions.append(dict(label=name, values=indices, **ticks))
        else:
            low, high = min(choices), max(choices)
            span = (high - low) or max(abs(high), 1e-3)
            dimensions.append(dict(label=name, values=values, range=[low - 0.05 * span, high + 0.05 * span]))
    scores = [score for _, score in rows]
    floor = min([*scores, baseline] if baseline is not None else scores)
    dimensions.append(dict(label="val. accuracy", values=scores, range=[floor, max(scores)], tickformat=".0%"))
    line = dict(color=scores, colorscale="Viridis", showscale=True, colorbar=dict(title="accuracy"))
    figure = _layout(go.Figure(go.Parcoords(line=line, dimensions=dimensions)), "Hyperparameters against score", 320)
    figure.update_layout(margin=dict(l=60, r=40, t=60, b=20))
    figure.add_annotation(text=note, showarrow=False, xref="paper", yref="paper", x=0, y=-0.08, font=dict(size=10))
    return figure
