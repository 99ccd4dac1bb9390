"""Every plotly chart of the studio, in one palette: classes in their colours (ferlib.classes); a model's training
curve solid blue and its validation curve dashed orange (compared models: one hue each, validation dashed); the epoch
in progress dotted; curves smoothed as TensorBoard smooths them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ferlib.classes import EMOTION_COLORS, EMOTIONS, class_color, class_label

CLASS_LABELS = [class_label(name) for name in EMOTIONS]
SERIES_COLORS = qualitative.Plotly  # ten hues: one per model
TRAIN, VALIDATION, IN_PROGRESS = "solid", "dash", "dot"
TRAIN_COLOR, VALIDATION_COLOR = SERIES_COLORS[0], SERIES_COLORS[4]  # blue and orange, on every page
SMOOTHING = "Exponential moving average of each curve, debiased at its start as in TensorBoard (0: raw values)."
SPLIT_PATTERNS = {"train": "", "validation": "/", "test": "x"}
Series = tuple[str, Sequence[float], Sequence[float | None], str, str]  # name, x, y, colour, dash


def _layout(figure: go.Figure, title: str | None = None, height: int = 280, **layout: Any) -> go.Figure:
    heading, margin = (
        dict(text=title, font=dict(size=14)) if title else None,
        dict(l=0, r=10, t=35 if title else 10, b=0),
    )
    return figure.update_layout(
        title=heading, height=height, margin=margin, legend=dict(orientation="h", y=-0.32), **layout
    )


def smooth(values: Sequence[float | None], weight: float) -> list[float | None]:
    """TensorBoard's smoothing: an exponential moving average divided by 1 - weight^n, so early points are not
    pulled towards zero."""
    smoothed, average, count = [], 0.0, 0
    for value in values:
        if value is not None:
            count, average = count + 1, weight * average + (1 - weight) * value
        smoothed.append(None if value is None else average / (1 - weight**count))
    return smoothed


def curves(title: str, series: list[Series], percent: bool, best_epoch=None, resumes=(), smoothing=0.0) -> go.Figure:
    """Per-epoch lines, one per (name, x, y, colour, dash) series, smoothed over a faint copy of the raw values when
    `smoothing` > 0; dotted markers at the best epoch and where the run was resumed."""
    figure = go.Figure()
    for name, x_values, y_values, color, dash in series:
        line, mode = dict(color=color, dash=dash), "lines+markers" if len(x_values) <= 30 else "lines"
        if smoothing and dash != IN_PROGRESS:
            raw = dict(mode="lines", line=line, opacity=0.3, showlegend=False, hoverinfo="skip")
            figure.add_trace(go.Scatter(x=x_values, y=y_values, **raw))
            y_values = smooth(y_values, smoothing)
        figure.add_trace(go.Scatter(x=x_values, y=y_values, name=name, mode=mode, line=line))
    for epoch, text in [(best_epoch, "best"), *((epoch, "resumed") for epoch in sorted(set(resumes)))]:
        if epoch:
            figure.add_vline(x=epoch, line_dash="dot", line_color="gray", annotation_text=text)
    last_epoch = max((max(x_values, default=0) for _, x_values, *_ in series), default=0)
    axis = dict(title="epoch", dtick=1 if last_epoch <= 15 else None)
    return _layout(figure, title, xaxis=axis, yaxis=dict(tickformat=".0%" if percent else None))


def history_series(history: list[dict[str, Any]], key: str, name: str = "", color: str | None = None):
    """A metric's training (solid) and validation (dashed) curves from per-epoch records: blue and orange for one
    model, the model's own hue for both when models are compared."""
    epochs, prefix = [record["epoch"] for record in history], f"{name} " if name else ""
    train = (f"{prefix}train", epochs, [record.get(key) for record in history], color or TRAIN_COLOR, TRAIN)
    validation = [record.get(f"val_{key}") for record in history]
    return [train, (f"{prefix}validation", epochs, validation, color or VALIDATION_COLOR, VALIDATION)]


def training_curves(history: list[dict[str, Any]], key: str, best_epoch=None, batches=(), resumes=()) -> None:
    """A smoothing slider, then loss, accuracy and learning rate per epoch side by side; the epoch in progress
    (batch records) dotted; `resumes`: epochs after which the run was resumed."""
    smoothing = st.columns([1, 3])[0].slider("Smoothing", 0.0, 0.99, 0.0, 0.01, key=f"{key}-smoothing", help=SMOOTHING)
    columns = st.columns(3)
    batch_x = [record["epoch"] - 1 + record["batch"] / max(1, record["steps"]) for record in batches]
    panels = [("Loss", "loss", False), ("Accuracy", "accuracy", True)]
    for column, (title, metric, percent) in zip(columns, panels, strict=False):
        series = history_series(history, metric)
        if batches:
            in_progress = [record.get(metric) for record in batches]
            series.append(("train, this epoch", batch_x, in_progress, TRAIN_COLOR, IN_PROGRESS))
        figure = curves(title, series, percent, best_epoch, resumes, smoothing)
        column.plotly_chart(figure, key=f"{key}-{metric}", width="stretch")
    epochs, rates = [record["epoch"] for record in history], [record.get("learning_rate") for record in history]
    figure = curves("Learning rate", [("learning rate", epochs, rates, TRAIN_COLOR, TRAIN)], False, resumes=resumes)
    columns[2].plotly_chart(figure, key=f"{key}-learning-rate", width="stretch")


def confusion_matrix(matrix: np.ndarray, title: str, normalised: bool, classes: Sequence[str] = EMOTIONS) -> go.Figure:
    """One confusion matrix heatmap (true classes as rows), in the same style for counts and fractions."""
    text = [[f"{value:.0%}" if normalised else f"{int(value):,}" for value in row] for row in matrix]
    labels = [class_label(name) for name in classes]
    cells = dict(z=matrix, x=labels, y=labels, text=text, texttemplate="%{text}", colorscale="Blues")
    scale = dict(zmin=0, zmax=1 if normalised else max(1, float(np.max(matrix))), colorbar=dict(thickness=12))
    scale["colorbar"]["tickformat"] = ".0%" if normalised else None
    heatmap = go.Heatmap(**cells, **scale, hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>")
    axes = dict(xaxis=dict(title="predicted"), yaxis=dict(title="true", autorange="reversed"))
    return _layout(go.Figure(heatmap), title, 160 + 37 * len(classes), **axes)


def per_class_bars(title: str, values: dict[str, list[float | None]], classes: Sequence[str] = EMOTIONS) -> go.Figure:
    """Grouped bars per class, one series per model in its hue (e.g. F1 per class of compared models)."""
    labels = [class_label(name) for name in classes]
    bars = [
        go.Bar(x=labels, y=y, name=name, marker_color=SERIES_COLORS[i % 10])
        for i, (name, y) in enumerate(values.items())
    ]
    return _layout(go.Figure(bars), title, 300, barmode="group", yaxis=dict(range=[0, 1]))


def probability_bars(probabilities: dict[str, float], height: int = 260, title: str | None = None) -> go.Figure:
    """A face's class probabilities (or any share per class), in the model's class order, as horizontal bars in the
    class colours."""
    names, values = list(probabilities), list(probabilities.values())
    colors, text = [class_color(name) for name in names], [f"{value:.0%}" for value in values]
    labels = [class_label(name) for name in names]
    bar = go.Bar(x=values, y=labels, orientation="h", marker_color=colors, text=text, textposition="auto")
    axes = dict(xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(autorange="reversed"))
    return _layout(go.Figure(bar), title, height=height, showlegend=False, **axes)


def timeline(rows: Iterable[tuple[int, float, str, float]], height: int = 260, classes: Sequence[str] = EMOTIONS):
    """Each face's emotion over time from (face id, seconds, label, confidence) rows: markers in class colours, one
    row per class of the model."""
    by_face: dict[int, list[tuple[int, float, str, float]]] = {}
    for row in rows:
        by_face.setdefault(int(row[0]), []).append(row)
    figure, line = go.Figure(), dict(shape="hv", width=1, color="#bbbbbb")
    for face_id, mine in sorted(by_face.items()):
        _, seconds, labels, confidences = zip(*mine, strict=True)
        marker = dict(color=[class_color(label) for label in labels], size=7)
        hover = dict(customdata=confidences, hovertemplate="%{y} %{customdata:.0%} at %{x:.1f} s")
        trace = go.Scatter(x=seconds, y=labels, name=f"face {face_id}", mode="lines+markers", line=line, marker=marker)
        figure.add_trace(trace.update(**hover))
    axis = dict(categoryorder="array", categoryarray=list(classes), type="category", range=[-0.5, len(classes) - 0.5])
    return _layout(figure, height=height, xaxis=dict(title="seconds"), yaxis=axis, showlegend=len(by_face) > 1)


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
        go.Scatter(x=centres, y=y, mode="lines", name=name, line_color=EMOTION_COLORS[name])
        for name, y in densities.items()
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


def hyperparameter_scores(space: dict[str, list], rows: list[tuple[dict, float]], baseline: float | None) -> go.Figure:
    """A panel per searched hyperparameter: each completed trial's score above the value it tried (every value on
    offer on the axis), the baseline dashed across; readable with one trial or a hundred."""
    names, width, scores = list(space), min(4, len(space)) or 1, [score for _, score in rows]
    height, titles = -(-len(names) // width), [name.replace("_", " ").capitalize() for name in space]
    figure = make_subplots(height, width, shared_yaxes=True, subplot_titles=titles, vertical_spacing=0.3 / height)
    trace = dict(mode="markers", marker=dict(color=TRAIN_COLOR, size=9), hovertemplate="%{x}: %{y:.1%}<extra></extra>")
    for index, name in enumerate(names):
        cell = dict(row=index // width + 1, col=index % width + 1)
        figure.add_trace(go.Scatter(x=[f"{values.get(name, '–')}" for values, _ in rows], y=scores, **trace), **cell)
        figure.update_xaxes(type="category", categoryorder="array", categoryarray=[f"{v}" for v in space[name]], **cell)
    if baseline is not None:
        figure.add_hline(y=baseline, line_dash="dash", line_color="gray")
    figure.update_yaxes(tickformat=".0%").update_annotations(font_size=12)
    title = "Validation accuracy by the value tried" + (" (dashed: the baseline)" if baseline is not None else "")
    return _layout(figure, title, 110 + 170 * height, showlegend=False).update_layout(margin_t=75)
