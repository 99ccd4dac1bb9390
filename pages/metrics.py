"""Metrics: read how a model does (curves, confusion matrices, per-class scores), compare runs, look at its most
confident mistakes and ask it 'why did you say that' with Grad-CAM, on validation faces or an uploaded photo.

Recorded metrics come from the shipped model's card or a finished run's folder (ferlib.evaluation.reports); the mistakes
gallery evaluates the model on a dataset's split once and caches the probabilities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative

from ferlib.classes import EMOTION_ICONS, EMOTIONS
from ferlib.data.datasets import SPLITS
from ferlib.data.preprocess import decode_image
from ferlib.errors import FerError
from ferlib.evaluation import reports
from ferlib.evaluation.metrics import TTA_DESCRIPTIONS, TTA_MODES
from ferlib.jobs import folder, runs
from ferlib.nets.modelio import default_model_path, sidecar_path
from pages.common import (
    NO_FACE_HINT,
    bgr_to_rgb,
    data_directories,
    dataset_sources,
    dataset_version,
    load_dataset_cached,
    load_model_card,
    probability_chart,
    require_app,
    show_error,
)

require_app("pages/metrics.py")

SHIPPED_KEY = "__shipped__"
CLASS_LABELS = [f"{EMOTION_ICONS[name]} {name}" for name in EMOTIONS]
GALLERY_WIDTH = 96
EXPLAINED_WIDTH = 160
SERIES_COLORS = qualitative.Plotly
PREDICTED = "predicted class"
TRUE = "true class"


# --- cached loading -----------------------------------------------------------------------------------------


def modified_time(path: Path) -> float:
    """A file's modification time (0 when missing), passed to cached functions so changed files are re-read."""
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_data(show_spinner=False, max_entries=32)
def cached_report(kind: str, path: str, modified: float) -> reports.ModelReport:
    """The recorded report of the shipped model (path = model file) or a run (path = run folder)."""
    if kind == reports.SHIPPED:
        return reports.shipped_report(path, load_model_card(path))
    return reports.run_report(path)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def load_gradcam(model_path: str, modified: float):
    """The Keras model wrapped for Grad-CAM (and plain prediction), one per model file, shared by sessions."""
    from ferlib.evaluation.gradcam import GradCam
    from ferlib.nets.modelio import load_model

    model, _ = load_model(model_path)
    return GradCam(model)


@st.cache_resource(show_spinner=False)
def load_detector(name: str):
    from ferlib.live.detection import make_detector

    return make_detector(name)


# A resource cache: the evaluation holds the split's faces (66 MB for train), which st.cache_data would unpickle
# afresh on every rerun. Pages only read it.
@st.cache_resource(show_spinner="Evaluating the model on every face of the split…", max_entries=4)
def cached_evaluation(
    model_path: str, modified: float, dataset_path: str, version: tuple[int, int], split: str, tta: str
) -> reports.SplitEvaluation:
    gradcam = load_gradcam(model_path, modified)
    dataset = load_dataset_cached(dataset_path, version)
    return reports.evaluate_split(gradcam.model, dataset, split, tta=tta)


# --- choosing models ----------------------------------------------------------------------------------------


def model_choices() -> dict[str, tuple[str, Path, str]]:
    """Selectable models by key: (kind, path for the report, label). The shipped model first, then finished runs."""
    choices: dict[str, tuple[str, Path, str]] = {}
    shipped = default_model_path()
    if shipped.exists():
        choices[SHIPPED_KEY] = (reports.SHIPPED, shipped, f"Shipped model ({shipped.name})")
    for run in reports.finished_runs(folder.default_runs_dir()):
        accuracy = f" · {run.best_val_accuracy:.1%}" if isinstance(run.best_val_accuracy, float) else ""
        choices[run.run_id] = (reports.RUN, run.path, f"{run.run_id} · {run.architecture}{accuracy}")
    return choices


def report_for(choice: tuple[str, Path, str]) -> reports.ModelReport:
    kind, path, _ = choice
    recorded = sidecar_path(path) if kind == reports.SHIPPED else path / runs.METRICS_FILE
    return cached_report(kind, str(path), modified_time(recorded))


def model_file(report: reports.ModelReport) -> tuple[str, float]:
    return str(report.model_path), modified_time(report.model_path)


def show_empty_state() -> None:
    st.info(
        "There is no model to show yet: no shipped model at "
        f"`{default_model_path()}` and no finished training run in `{folder.default_runs_dir()}`. "
        "Train one on the **Training** page (or `python -m ferlib train --data PATH`); its metrics appear here "
        "as soon as it finishes.",
        icon=":material/monitoring:",
    )


# --- charts -------------------------------------------------------------------------------------------------


def curve_figure(title: str, traces: list[dict[str, Any]], percent: bool, best_epoch: int | None = None) -> go.Figure:
    """A line chart of per-epoch values, one trace per dict (name, x, y, color, dash)."""
    figure = go.Figure()
    last_epoch = max((max(trace["x"], default=0) for trace in traces), default=0)
    for trace in traces:
        figure.add_trace(
            go.Scatter(
                x=trace["x"],
                y=trace["y"],
                name=trace["name"],
                mode="lines+markers",
                line=dict(color=trace.get("color"), dash=trace.get("dash", "solid")),
                marker=dict(size=4),
            )
        )
    if best_epoch:
        figure.add_vline(x=best_epoch, line_dash="dot", line_color="gray", annotation_text="best")
    figure.update_layout(
        title=dict(text=title, font=dict(size=14)),
        height=280,
        margin=dict(l=0, r=10, t=35, b=0),
        legend=dict(orientation="h", y=-0.25),
        xaxis=dict(title="epoch", dtick=1 if last_epoch <= 15 else None),
        yaxis=dict(tickformat=".0%" if percent else None),
    )
    return figure


def history_values(history: list[dict[str, float | None]], key: str) -> tuple[list[int], list[float | None]]:
    return [int(row["epoch"]) for row in history], [row.get(key) for row in history]


def confusion_figure(matrix: np.ndarray, title: str, normalised: bool) -> go.Figure:
    """One confusion matrix heatmap (true classes as rows), in the same style for counts and fractions."""
    text = [[f"{value:.0%}" if normalised else f"{int(value):,}" for value in row] for row in matrix]
    figure = go.Figure(
        go.Heatmap(
            z=matrix,
            x=CLASS_LABELS,
            y=CLASS_LABELS,
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1 if normalised else max(1, float(np.max(matrix))),
            colorbar=dict(tickformat=".0%" if normalised else None, thickness=12),
            hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>",
        )
    )
    figure.update_layout(
        title=dict(text=title, font=dict(size=14)),
        height=420,
        margin=dict(l=0, r=0, t=35, b=0),
        xaxis=dict(title="predicted", side="bottom"),
        yaxis=dict(title="true", autorange="reversed"),
    )
    return figure


def per_class_frame(per_class: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = reports.per_class_rows(per_class)
    return pd.DataFrame(rows).set_index("class") if rows else pd.DataFrame()


PER_CLASS_COLUMNS = {
    "precision": st.column_config.ProgressColumn(
        "precision", format="%.2f", min_value=0, max_value=1, help="Of the faces predicted as this class, how many are."
    ),
    "recall": st.column_config.ProgressColumn(
        "recall", format="%.2f", min_value=0, max_value=1, help="Of the faces of this class, how many were found."
    ),
    "f1": st.column_config.ProgressColumn(
        "F1", format="%.2f", min_value=0, max_value=1, help="The harmonic mean of precision and recall."
    ),
    "support": st.column_config.NumberColumn("faces", help="Faces of this class in the evaluated split."),
}


# --- one model ----------------------------------------------------------------------------------------------


def percent(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "–"


def render_headline(report: reports.ModelReport, metrics: dict[str, Any]) -> None:
    accuracy, macro_f1, top2, tta = st.columns(4)
    faces = f"{metrics['n']:,} " if isinstance(metrics.get("n"), int) else ""
    accuracy.metric(
        "Accuracy",
        percent(metrics.get("accuracy")),
        help=f"Share of the {faces}validation faces classified correctly.",
    )
    macro_f1.metric(
        "Macro-F1",
        f"{metrics['macro_f1']:.3f}" if isinstance(metrics.get("macro_f1"), float) else "–",
        help="F1 averaged over the classes, so rare classes (disgust) count as much as common ones (happy).",
    )
    top2.metric(
        "Top-2 accuracy",
        percent(metrics.get("top2_accuracy")),
        help="Share of faces whose true class is among the model's two most probable classes: FER-2013's labels "
        "are often ambiguous between two expressions.",
    )
    tta.metric(
        "Accuracy with flip TTA",
        percent(report.metrics_tta.get("accuracy")),
        help="Averaging the predictions of each face and its mirror image (test-time augmentation).",
    )


def render_curves(report: reports.ModelReport) -> None:
    if not report.history:
        st.caption("No training curves were recorded for this model.")
        return
    best_epoch = report.details.get("best_epoch")
    charts = st.columns(3)
    panels = [("Loss", "loss", False), ("Accuracy", "accuracy", True)]
    for container, (title, key, is_percent) in zip(charts, panels, strict=False):
        x_values, train = history_values(report.history, key)
        _, validation = history_values(report.history, f"val_{key}")
        traces = [
            {"name": "train", "x": x_values, "y": train, "color": SERIES_COLORS[0]},
            {"name": "validation", "x": x_values, "y": validation, "color": SERIES_COLORS[1]},
        ]
        figure = curve_figure(title, traces, is_percent, best_epoch)
        container.plotly_chart(figure, width="stretch", key=f"metrics-curve-{key}")
    x_values, rates = history_values(report.history, "learning_rate")
    rate = [{"name": "learning rate", "x": x_values, "y": rates, "color": SERIES_COLORS[2]}]
    charts[2].plotly_chart(curve_figure("Learning rate", rate, False), width="stretch", key="metrics-curve-lr")


def render_confusion(metrics: dict[str, Any]) -> None:
    matrix = metrics.get("confusion_matrix")
    if not matrix:
        st.caption(
            "This model's card records no confusion matrix. Evaluate it on a dataset under **Most confident "
            "mistakes** for a fresh one."
        )
        return
    counts = np.asarray(matrix)
    left, right = st.columns(2)
    left.plotly_chart(confusion_figure(counts, "Counts", False), width="stretch", key="metrics-confusion-counts")
    right.plotly_chart(
        confusion_figure(reports.normalized_confusion(counts), "Normalised by true class (recall)", True),
        width="stretch",
        key="metrics-confusion-normalised",
    )


def render_per_class(metrics: dict[str, Any]) -> None:
    per_class = metrics.get("per_class")
    if not per_class:
        st.caption("This model's card records no per-class metrics.")
        return
    st.dataframe(per_class_frame(per_class), width="stretch", column_config=PER_CLASS_COLUMNS)


def render_downloads(report: reports.ModelReport, evaluation: dict[str, Any] | None) -> None:
    """JSON of the whole report (with the dataset evaluation of this run of the page, if any) and per-class CSV."""
    json_column, csv_column, _ = st.columns([1, 1, 2])
    json_column.download_button(
        "Metrics (JSON)",
        reports.report_json(report, evaluation),
        file_name=f"{report.name.replace(' ', '_')}-metrics.json",
        mime="application/json",
        icon=":material/download:",
        width="stretch",
        help="Everything on this page for the model: metrics with and without flip TTA, per-class scores, "
        "confusion matrices, curves and details (plus the latest dataset evaluation below, when there is one).",
    )
    per_class = report.metrics.get("per_class")
    csv_column.download_button(
        "Per-class metrics (CSV)",
        reports.per_class_csv(per_class, report.metrics_tta.get("per_class")) if per_class else "",
        file_name=f"{report.name.replace(' ', '_')}-per-class.csv",
        mime="text/csv",
        icon=":material/table:",
        width="stretch",
        disabled=not per_class,
        help="Precision, recall, F1 and support per class (and the flip-TTA scores), one class a row.",
    )


def render_details(report: reports.ModelReport) -> None:
    for note in report.details.get("notes") or []:  # what the card says about how the weights came to be
        st.caption(f":material/info: {note}")  # "Note: ..." or "Note (stage k): ..."
    details = {
        key: value for key, value in report.details.items() if key not in ("config", "notes") and value is not None
    }
    with st.expander("Model details and training settings"):
        st.json({"model file": str(report.model_path), **details}, expanded=True)
        if report.details.get("config"):
            st.json(report.details["config"], expanded=False)


def overview_section(report: reports.ModelReport) -> Any:
    """Headline metrics, curves, confusion matrices and the per-class table; returns the downloads' container."""
    use_tta = st.toggle(
        "Show scores with flip TTA",
        key="metrics_use_tta",
        help="Show the metrics measured by averaging each face's prediction with its mirror image's.",
        disabled=not report.metrics_tta.get("per_class"),
    )
    metrics = report.metrics_tta if use_tta and report.metrics_tta.get("per_class") else report.metrics
    render_headline(report, metrics)
    st.markdown("**Training curves**")
    render_curves(report)
    st.markdown("**Confusion matrix** (rows: true class, columns: predicted class)")
    render_confusion(metrics)
    st.markdown("**Per-class precision, recall and F1**")
    render_per_class(metrics)
    downloads = st.container()
    render_details(report)
    return downloads


# --- comparing ----------------------------------------------------------------------------------------------


def compare_section(choices: dict[str, tuple[str, Path, str]]) -> None:
    st.caption("Overlay the curves of several models and line up their scores.")
    if len(choices) < 2:
        st.info(
            "Comparing needs at least two models: finish another run on the **Training** page.",
            icon=":material/compare_arrows:",
        )
        return
    selected = st.multiselect(
        "Models to compare",
        list(choices),
        key="metrics_compare",
        format_func=lambda key: choices[key][2],
        help="Pick two or more: the shipped model and any finished run.",
        placeholder="Choose two or more models…",
    )
    if len(selected) < 2:
        st.caption("Pick two or more models above to compare them side by side.")
        return
    try:
        chosen = [report_for(choices[key]) for key in selected]
    except FerError as error:
        show_error("A model's metrics could not be read.", error)
        return
    render_comparison_curves(chosen)
    render_comparison_table(chosen)


def render_comparison_curves(chosen: list[reports.ModelReport]) -> None:
    show_train = st.toggle(
        "Include training curves",
        key="metrics_compare_train",
        help="Also draw each model's training-set curve (dotted) next to its validation curve (solid).",
    )
    columns = st.columns(2)
    for container, (title, key, is_percent) in zip(
        columns, [("Validation accuracy", "accuracy", True), ("Validation loss", "loss", False)], strict=True
    ):
        traces = []
        for index, report in enumerate(chosen):
            color = SERIES_COLORS[index % len(SERIES_COLORS)]
            x_values, validation = history_values(report.history, f"val_{key}")
            traces.append({"name": report.name, "x": x_values, "y": validation, "color": color})
            if show_train:
                _, train = history_values(report.history, key)
                traces.append(
                    {"name": f"{report.name} (train)", "x": x_values, "y": train, "color": color, "dash": "dot"}
                )
        container.plotly_chart(curve_figure(title, traces, is_percent), width="stretch", key=f"metrics-compare-{key}")


def render_comparison_table(chosen: list[reports.ModelReport]) -> None:
    table = pd.DataFrame([reports.summary_row(report) for report in chosen])
    fraction = st.column_config.NumberColumn(format="percent")
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "accuracy": fraction,
            "top2_accuracy": st.column_config.NumberColumn("top-2 accuracy", format="percent"),
            "accuracy_tta": st.column_config.NumberColumn("accuracy (TTA)", format="percent"),
            "macro_f1": st.column_config.NumberColumn("macro-F1", format="%.3f"),
            "macro_f1_tta": st.column_config.NumberColumn("macro-F1 (TTA)", format="%.3f"),
            "final_train_accuracy": st.column_config.NumberColumn("last train accuracy", format="percent"),
            "final_val_loss": st.column_config.NumberColumn("last val. loss", format="%.3f"),
            "n": st.column_config.NumberColumn("faces"),
        },
    )
    with_classes = [report for report in chosen if report.has_per_class]
    if with_classes:
        figure = go.Figure()
        for index, report in enumerate(with_classes):
            per_class = report.metrics["per_class"]
            figure.add_trace(
                go.Bar(
                    x=CLASS_LABELS,
                    y=[per_class.get(name, {}).get("f1") for name in EMOTIONS],
                    name=report.name,
                    marker_color=SERIES_COLORS[index % len(SERIES_COLORS)],
                )
            )
        figure.update_layout(
            title=dict(text="F1 per class", font=dict(size=14)),
            barmode="group",
            height=300,
            margin=dict(l=0, r=10, t=35, b=0),
            yaxis=dict(range=[0, 1]),
            legend=dict(orientation="h", y=-0.2),
        )
        st.plotly_chart(figure, width="stretch", key="metrics-compare-f1")


# --- mistakes and Grad-CAM ----------------------------------------------------------------------------------


def evaluation_controls() -> tuple[Path | None, str, str]:
    sources = dataset_sources()
    if not sources:
        places = ", ".join(f"`{directory}`" for directory in data_directories())
        st.info(
            f"No dataset found to look for mistakes in. Put FER-2013 (Kaggle's `.zip` or folder, or "
            f"`fer2013.csv`) in {places}, or add one on the **Dataset** page, then reload this page.",
            icon=":material/dataset:",
        )
        return None, "validation", "none"
    dataset_column, split_column, tta_column = st.columns([3, 1, 1], vertical_alignment="bottom")
    dataset = dataset_column.selectbox(
        "Dataset",
        sources,
        index=None,
        format_func=lambda path: f"{path.name}  ({path.parent})",
        key="metrics_dataset",
        placeholder="Choose a dataset to evaluate the model on…",
        help="The model predicts every face of the chosen split once (cached afterwards); the gallery shows the "
        "wrong answers it was surest of.",
    )
    split = split_column.selectbox(
        "Split",
        SPLITS,
        index=SPLITS.index("validation"),
        key="metrics_split",
        help="Validation is FER-2013's PublicTest (the split models are selected on); test is PrivateTest.",
    )
    tta = tta_column.selectbox(
        "Test-time augmentation",
        TTA_MODES,
        format_func=TTA_DESCRIPTIONS.get,
        key="metrics_eval_tta",
        help="Average each face's probabilities over views of it: with its mirror image, or also with both moved "
        "2 pixels up, down, left and right (10 views, ten times the prediction time).",
    )
    return dataset, split, tta


def mistake_filters() -> tuple[int | None, int | None, int]:
    options = [None, *range(len(EMOTIONS))]

    def label(index: int | None) -> str:
        return "any" if index is None else CLASS_LABELS[index]

    true_column, predicted_column, count_column = st.columns(3)
    true_class = true_column.selectbox(
        "True class", options, format_func=label, key="metrics_true_class", help="Only faces of this class."
    )
    predicted_class = predicted_column.selectbox(
        "Predicted class",
        options,
        format_func=label,
        key="metrics_predicted_class",
        help="Only faces wrongly predicted as this class: with a true class, one cell of the confusion matrix.",
    )
    limit = count_column.slider(
        "Faces shown", 6, 60, 18, 6, key="metrics_mistake_count", help="How many of the surest mistakes to show."
    )
    return true_class, predicted_class, limit


def mistake_caption(number: int, mistake: reports.Mistake) -> str:
    return f"#{number} {mistake.true_label} → {mistake.predicted_label} {mistake.confidence:.0%}"


def mistakes_section(report: reports.ModelReport) -> dict[str, Any] | None:
    """The gallery of the surest mistakes on a chosen dataset, with Grad-CAM; returns the evaluation's metrics."""
    st.caption(
        "Faces the model got wrong while being most confident: often label noise, sometimes a real blind spot. "
        "Captions read true class → predicted class, confidence."
    )
    dataset, split, tta = evaluation_controls()
    if dataset is None:
        if dataset_sources():
            st.caption("Choose a dataset above to evaluate the model on it.")
        return None
    model_path, modified = model_file(report)
    try:
        evaluation = cached_evaluation(model_path, modified, str(dataset), dataset_version(str(dataset)), split, tta)
    except FerError as error:
        show_error("The model could not be evaluated on this dataset.", error)
        return None
    render_gallery(report, evaluation, dataset.name)
    return {"dataset": str(dataset), "split": split, **evaluation.metrics}


def render_gallery(report: reports.ModelReport, evaluation: reports.SplitEvaluation, dataset_name: str) -> None:
    render_evaluation_summary(evaluation, dataset_name)
    true_class, predicted_class, limit = mistake_filters()
    mistakes = reports.most_confident_mistakes(
        evaluation.labels, evaluation.probabilities, limit, true_class=true_class, predicted_class=predicted_class
    )
    if not mistakes:
        st.success("No mistakes match these filters.", icon=":material/check_circle:")
        return
    st.image(
        [evaluation.images[mistake.index] for mistake in mistakes],
        caption=[mistake_caption(number, mistake) for number, mistake in enumerate(mistakes, start=1)],
        width=GALLERY_WIDTH,
    )
    render_gallery_gradcam(report, evaluation, mistakes)


def render_evaluation_summary(evaluation: reports.SplitEvaluation, dataset_name: str) -> None:
    metrics = evaluation.metrics
    wrong = int(np.sum(evaluation.probabilities.argmax(axis=1) != evaluation.labels))
    mode = metrics.get("tta", "none")
    views = "" if mode == "none" else f" with TTA over {TTA_DESCRIPTIONS[mode]}"
    st.caption(
        f"On {metrics['n']:,} {evaluation.split} faces of {dataset_name}{views}: accuracy {metrics['accuracy']:.1%}, "
        f"macro-F1 {metrics['macro_f1']:.3f}, top-2 accuracy {metrics['top2_accuracy']:.1%}, {wrong:,} mistakes."
    )


def render_gallery_gradcam(
    report: reports.ModelReport, evaluation: reports.SplitEvaluation, mistakes: list[reports.Mistake]
) -> None:
    st.markdown("**Why did it say that?** Grad-CAM heatmaps of chosen mistakes")
    numbers = list(range(1, len(mistakes) + 1))
    chosen_column, target_column = st.columns([3, 1])
    chosen = chosen_column.multiselect(
        "Faces to explain",
        numbers,
        default=numbers[:4],
        format_func=lambda number: mistake_caption(number, mistakes[number - 1]),
        key="metrics_explain_mistakes",
        help="Grad-CAM colours the regions that pushed the model towards a class: red is strong evidence, blue none.",
    )
    target = target_column.radio(
        "Heatmap for the",
        (PREDICTED, TRUE),
        key="metrics_explain_target",
        help="The predicted class shows why the model said what it said; the true class shows what evidence it saw "
        "for the right answer.",
    )
    if not chosen:
        st.caption("Choose faces above to see their heatmaps.")
        return
    selected = [mistakes[number - 1] for number in chosen]
    classes = [mistake.predicted_index if target == PREDICTED else mistake.true_index for mistake in selected]
    faces = np.stack([evaluation.images[mistake.index] for mistake in selected])
    try:
        gradcam = load_gradcam(*model_file(report))
        explanation = gradcam.explain(faces, classes)
    except FerError as error:
        show_error("Grad-CAM could not be computed for this model.", error)
        return
    overlays = [bgr_to_rgb(overlay(face, heatmap)) for face, heatmap in zip(faces, explanation.heatmaps, strict=True)]
    captions = [
        f"#{number} heatmap for {EMOTIONS[index]} ({probabilities[index]:.0%})"
        for number, index, probabilities in zip(chosen, classes, explanation.probabilities, strict=True)
    ]
    st.image(overlays, caption=captions, width=EXPLAINED_WIDTH)
    st.caption(f"Feature maps of layer `{gradcam.layer_name}`, the model's last convolutional stage.")


def overlay(face: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """The heatmap over the face, enlarged so that it reads on screen."""
    import cv2

    from ferlib.evaluation.gradcam import overlay_heatmap

    enlarged = cv2.resize(face, (EXPLAINED_WIDTH, EXPLAINED_WIDTH), interpolation=cv2.INTER_CUBIC)
    return overlay_heatmap(enlarged, heatmap, alpha=st.session_state.get("metrics_heatmap_opacity", 0.45))


def photo_section(report: reports.ModelReport) -> None:
    st.caption("Upload a photo: each face found gets its prediction and a heatmap of what the model looked at.")
    upload_column, settings_column = st.columns([2, 1])
    upload = upload_column.file_uploader(
        "A photo with one or more faces",
        type=["jpg", "jpeg", "png", "bmp", "webp"],
        key="metrics_photo",
        help="Faces are found with OpenCV's Haar cascade and preprocessed exactly as on the Home page. The photo "
        "stays in this session and is not stored.",
    )
    whole_image = settings_column.toggle(
        "The photo is one face crop",
        key="metrics_photo_whole",
        help="Skip face detection and treat the whole image as the face, e.g. for FER-2013 images.",
    )
    explained = settings_column.selectbox(
        "Explain the class",
        [PREDICTED, *EMOTIONS],
        key="metrics_photo_class",
        help="Show the evidence for the class the model chose, or for any other class.",
    )
    settings_column.slider(
        "Heatmap opacity",
        0.1,
        0.9,
        0.45,
        0.05,
        key="metrics_heatmap_opacity",
        help="How strongly the heatmap covers the face (also used in the mistakes gallery).",
    )
    if upload is None:
        st.caption("Try a selfie or a film still: frontal, well-lit faces work best.")
        return
    try:
        image = decode_image(upload.getvalue())
    except FerError as error:
        show_error("This file could not be read as an image.", error)
        return
    class_index = None if explained == PREDICTED else EMOTIONS.index(explained)
    try:
        from ferlib.evaluation.gradcam import explain_photo

        detector = load_detector("none" if whole_image else "haar")
        faces = explain_photo(load_gradcam(*model_file(report)), image, detector, class_index=class_index)
    except FerError as error:
        show_error("The photo could not be explained.", error)
        return
    if not faces:
        st.warning(NO_FACE_HINT + " For a photo that is already a face crop, switch on **The photo is one face crop**.")
        return
    for number, face in enumerate(faces, start=1):
        render_photo_face(number, face)


def render_photo_face(number: int, face: Any) -> None:
    from ferlib.evaluation.gradcam import overlay_heatmap

    predicted = EMOTIONS[int(np.argmax(face.probabilities))]
    st.markdown(
        f"**Face {number}**: {EMOTION_ICONS[predicted]} {predicted} "
        f"({float(np.max(face.probabilities)):.0%}); heatmap for **{face.label}** ({face.confidence:.0%})"
    )
    crop_column, heat_column, chart_column = st.columns([1, 1, 2])
    crop_column.image(bgr_to_rgb(face.crop), caption="the face", width="stretch")
    opacity = st.session_state.get("metrics_heatmap_opacity", 0.45)
    heat_column.image(
        bgr_to_rgb(overlay_heatmap(face.crop, face.heatmap, alpha=opacity)), caption="Grad-CAM", width="stretch"
    )
    probabilities = {name: float(face.probabilities[index]) for index, name in enumerate(EMOTIONS)}
    chart_column.plotly_chart(probability_chart(probabilities, height=220), key=f"metrics-photo-face-{number}")


# --- the page -----------------------------------------------------------------------------------------------


def choose_model(choices: dict[str, tuple[str, Path, str]]) -> str:
    return st.selectbox(
        "Model",
        list(choices),
        format_func=lambda key: choices[key][2],
        key="metrics_model",
        help="The shipped model (its card's metrics, measured on FER-2013's validation split) or any finished "
        "training run (its metrics.json). Runs still training appear once they finish.",
    )


def main() -> None:
    st.title("Metrics")
    st.caption(
        "How good is a model, where does it go wrong, and why? Curves, confusion matrices, per-class scores, "
        "comparisons between runs, its most confident mistakes and Grad-CAM heatmaps."
    )
    choices = model_choices()
    if not choices:
        show_empty_state()
        return
    key = choose_model(choices)
    try:
        report = report_for(choices[key])
    except FerError as error:
        show_error("This model's metrics could not be read.", error)
        return
    overview, compare, mistakes, photo = st.tabs(
        ["Overview", "Compare models", "Most confident mistakes", "Explain a photo"]
    )
    with overview:
        downloads = overview_section(report)
    with compare:
        compare_section(choices)
    with mistakes:
        evaluation = mistakes_section(report)
    with photo:
        photo_section(report)
    with downloads:
        render_downloads(report, evaluation)


main()
