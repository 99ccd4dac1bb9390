"""Metrics: a model's curves, confusion matrices and per-class scores, comparisons, surest mistakes and Grad-CAM."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pandas as pd
import streamlit as st

from ferlib.classes import EMOTION_ICONS, EMOTIONS
from ferlib.data.datasets import SPLITS
from ferlib.data.sources import dataset_sources, dataset_version
from ferlib.evaluation import catalog, gradcam, reports
from ferlib.evaluation.metrics import TTA_DESCRIPTIONS, TTA_MODES
from ferlib.jobs import folder, runs
from ferlib.nets.modelio import default_model_path, load_model, sidecar_path
from pages.components import charts, common
from pages.components.common import attempt, percent, require_app
from pages.components.photo import NO_FACE_HINT, PHOTO_TYPES, bgr_to_rgb, read_photo

require_app("pages/metrics.py")

PREDICTED, TRUE = "predicted class", "true class"
HELP = {
    "model": "Shipped models (their cards' validation metrics) and finished runs (their metrics.json).",
    "top2": "Share of faces whose true class is among the two most probable: FER-2013's labels are often ambiguous.",
    "json": "Everything on this page for the model (with the latest dataset evaluation, when there is one).",
    "dataset": "The model predicts every face of the split once (then cached); the gallery shows its surest errors.",
    "tta": "Average each face's probabilities over views of it: its mirror image, shifted copies or ten crops.",
    "predicted": "Only faces wrongly predicted as this class: with a true class, one cell of the confusion matrix.",
    "faces": "Grad-CAM colours the regions that pushed the model towards a class: red is strong evidence, blue none.",
    "target": "The predicted class shows why the model said it; the true class, what evidence it saw for the answer.",
    "photo": "Faces are found with OpenCV's Haar cascade and preprocessed as on Home; the photo is not stored.",
}
COMPARISON_LABELS = {"top2_accuracy": "top-2 accuracy", "accuracy_tta": "accuracy (TTA)", "macro_f1": "macro-F1"}
COMPARISON_LABELS |= {"macro_f1_tta": "macro-F1 (TTA)", "final_train_accuracy": "last train accuracy"}
COMPARISON_COLUMNS = {  # summary_row's keys: their labels, fractions as percentages
    key: st.column_config.NumberColumn(label, format="percent" if "accuracy" in key else "%.3f")
    for key, label in {"accuracy": "accuracy", **COMPARISON_LABELS, "final_val_loss": "last val. loss"}.items()
} | {"n": st.column_config.NumberColumn("faces")}


def report_for(entry: catalog.CatalogEntry) -> reports.ModelReport:
    """The recorded report of a catalog model, read again when its card or metrics.json changes."""
    if entry.kind == catalog.SHIPPED:
        return cached_report(entry.kind, str(entry.model_path), common.modified_ns(sidecar_path(entry.model_path)))
    return cached_report(entry.kind, str(entry.run_dir), common.modified_ns(entry.run_dir / runs.METRICS_FILE))


@st.cache_data(show_spinner=False, max_entries=32)
def cached_report(kind: str, path: str, modified: int) -> reports.ModelReport:
    if kind == catalog.SHIPPED:
        return reports.shipped_report(path, common.load_model_card(path))
    return reports.run_report(path)


def explainer(report: reports.ModelReport) -> gradcam.GradCam:
    """The report's Keras model wrapped for Grad-CAM (and plain prediction), shared by every session."""
    return load_gradcam(str(report.model_path), common.modified_ns(report.model_path))


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def load_gradcam(model_path: str, modified: int) -> gradcam.GradCam:
    return gradcam.GradCam(load_model(model_path)[0])


# A resource cache: an evaluation holds the split's faces (66 MB for train), which st.cache_data would unpickle
# afresh on every rerun. Pages only read it.
@st.cache_resource(show_spinner="Evaluating the model on every face of the split…", max_entries=4)
def evaluate(model: str, modified: int, data: str, version: Any, split: str, tta: str) -> reports.SplitEvaluation:
    dataset = common.load_dataset(data, version)
    return reports.evaluate_split(load_gradcam(model, modified).model, dataset, split, tta=tta)


def overview_section(report: reports.ModelReport) -> Any:
    """Headline metrics, curves, confusion matrices and the per-class table; returns the downloads' container."""
    has_tta, help_text = bool(report.metrics_tta.get("per_class")), "Scores averaged over each face and its mirror."
    use_tta = st.toggle("Show scores with flip TTA", key="metrics_use_tta", disabled=not has_tta, help=help_text)
    metrics = report.metrics_tta if use_tta and has_tta else report.metrics
    faces = f"{metrics['n']:,} " if isinstance(metrics.get("n"), int) else ""
    macro_f1 = f"{metrics['macro_f1']:.3f}" if isinstance(metrics.get("macro_f1"), float) else "–"
    common.metric_row(
        [
            ("Accuracy", percent(metrics.get("accuracy")), f"Share of the {faces}validation faces classified right."),
            ("Macro-F1", macro_f1, "F1 averaged over the classes, so rare classes count as much as common ones."),
            ("Top-2 accuracy", percent(metrics.get("top2_accuracy")), HELP["top2"]),
            ("Accuracy with flip TTA", percent(report.metrics_tta.get("accuracy")), help_text),
        ]
    )
    st.markdown("**Training curves**")
    if report.history:
        charts.training_curves(report.history, "metrics", best_epoch=report.details.get("best_epoch"))
    else:
        st.caption("No training curves were recorded for this model.")
    st.markdown("**Confusion matrix** (rows: true class, columns: predicted class)")
    if matrix := metrics.get("confusion_matrix"):
        left, right = st.columns(2)
        counts = charts.confusion_matrix(np.asarray(matrix), "Counts", False)
        left.plotly_chart(counts, width="stretch", key="metrics-confusion-counts")
        title = "Normalised by true class (recall)"
        recall = charts.confusion_matrix(reports.normalized_confusion(matrix), title, True)
        right.plotly_chart(recall, width="stretch", key="metrics-confusion-normalised")
    else:
        st.caption("This model's card records no confusion matrix. Evaluate it under **Most confident mistakes**.")
    st.markdown("**Per-class precision, recall and F1**")
    if rows := reports.per_class_rows(metrics.get("per_class") or {}):
        st.dataframe(pd.DataFrame(rows).set_index("class"), width="stretch", column_config=common.PER_CLASS_COLUMNS)
    else:
        st.caption("This model's card records no per-class metrics.")
    downloads = st.container()
    for note in report.details.get("notes") or []:  # what the card says about how the weights came to be
        st.caption(f":material/info: {note}")
    with st.expander("Model details and training settings"):
        details = {key: value for key, value in report.details.items() if value is not None}
        details = {key: value for key, value in details.items() if key not in ("config", "notes")}
        st.json({"model file": str(report.model_path), **details})
        if report.details.get("config"):
            st.json(report.details["config"], expanded=False)
    return downloads


def downloads_section(report: reports.ModelReport, evaluation: dict[str, Any] | None) -> None:
    """JSON of the whole report (with this page's dataset evaluation, if any) and the per-class CSV."""
    json_column, csv_column, _ = st.columns([1, 1, 2])
    name, per_class = report.name.replace(" ", "_"), report.metrics.get("per_class")
    options = dict(icon=":material/download:", width="stretch", help=HELP["json"])
    data = reports.report_json(report, evaluation)
    json_column.download_button("Metrics (JSON)", data, f"{name}-metrics.json", "application/json", **options)
    data = reports.per_class_csv(per_class, report.metrics_tta.get("per_class")) if per_class else ""
    options |= dict(disabled=not per_class, help="Precision, recall, F1 and support per class (and with flip TTA).")
    csv_column.download_button("Per-class metrics (CSV)", data, f"{name}-per-class.csv", "text/csv", **options)


def compare_section(entries: list[catalog.CatalogEntry]) -> None:
    """Several models' validation curves overlaid, their scores in a table and their F1 per class."""
    st.caption("Overlay the curves of several models and line up their scores.")
    if len(entries) < 2:
        message = "Comparing needs at least two models: finish another run on the **Training** page."
        st.info(message, icon=":material/compare_arrows:")
        return
    labels = {entry.key: entry.label for entry in entries}
    options = dict(key="metrics_compare", format_func=labels.get, placeholder="Choose two or more models…")
    selected = st.multiselect("Models to compare", list(labels), **options)
    if len(selected) < 2:
        st.caption("Pick two or more models above to compare them side by side.")
        return
    by_key = {entry.key: entry for entry in entries}
    failure = "A model's metrics could not be read."
    if (chosen := attempt(failure, lambda: [report_for(by_key[key]) for key in selected])) is None:
        return None
    show_train = st.toggle("Include training curves", key="metrics_compare_train", help="Solid; validation is dashed.")
    panels = [("Validation accuracy", "accuracy", True), ("Validation loss", "loss", False)]
    for column, (title, key, is_percent) in zip(st.columns(2), panels, strict=True):
        series = [
            line
            for index, report in enumerate(chosen)
            for line in charts.history_series(report.history, key, report.name, charts.series_color(index))
            if show_train or line[4] == charts.VALIDATION
        ]
        column.plotly_chart(charts.curves(title, series, is_percent), width="stretch", key=f"metrics-compare-{key}")
    table = pd.DataFrame([reports.summary_row(report) for report in chosen])
    st.dataframe(table, hide_index=True, width="stretch", column_config=COMPARISON_COLUMNS)
    f1 = {report.name: report.metrics.get("per_class") for report in chosen if report.has_per_class}
    if f1 := {name: [scores.get(emotion, {}).get("f1") for emotion in EMOTIONS] for name, scores in f1.items()}:
        st.plotly_chart(charts.per_class_bars("F1 per class", f1), width="stretch", key="metrics-compare-f1")


def mistakes_section(report: reports.ModelReport) -> dict[str, Any] | None:
    """The surest mistakes on a chosen dataset, with Grad-CAM; returns the evaluation's metrics."""
    st.caption("Faces the model got wrong while surest (label noise or blind spots): true → predicted, confidence.")
    if not (sources := dataset_sources()):
        common.show_no_dataset_hint("reload this page (the **Dataset** page can add one)")
        return
    columns = st.columns([3, 1, 1], vertical_alignment="bottom")
    placeholder = "Choose a dataset to evaluate the model on…"
    options = dict(index=None, format_func=common.dataset_label, placeholder=placeholder, help=HELP["dataset"])
    dataset = columns[0].selectbox("Dataset", sources, key="metrics_dataset", **options)
    split = columns[1].selectbox("Split", SPLITS, SPLITS.index("validation"), key="metrics_split")
    options = dict(format_func=TTA_DESCRIPTIONS.get, key="metrics_eval_tta", help=HELP["tta"])
    tta = columns[2].selectbox("Test-time augmentation", TTA_MODES, **options)
    if dataset is None:
        st.caption("Choose a dataset above to evaluate the model on it.")
        return
    model, modified, version = str(report.model_path), common.modified_ns(report.model_path), dataset_version(dataset)
    failure = "The model could not be evaluated on this dataset."
    if (evaluation := attempt(failure, lambda: evaluate(model, modified, str(dataset), version, split, tta))) is None:
        return None
    metrics, wrong = evaluation.metrics, int(np.sum(evaluation.probabilities.argmax(axis=1) != evaluation.labels))
    views = "" if metrics.get("tta", "none") == "none" else f" with TTA over {TTA_DESCRIPTIONS[metrics['tta']]}"
    scores = f"accuracy {metrics['accuracy']:.1%}, macro-F1 {metrics['macro_f1']:.3f}, top-2 accuracy "
    scores += f"{metrics['top2_accuracy']:.1%}, {wrong:,} mistakes"
    st.caption(f"On {metrics['n']:,} {evaluation.split} faces of {dataset.name}{views}: {scores}.")
    classes, label = [None, *range(len(EMOTIONS))], lambda index: "any" if index is None else charts.CLASS_LABELS[index]
    true_column, predicted_column, count_column = st.columns(3)
    true_class = true_column.selectbox("True class", classes, 0, label, "metrics_true_class", "Only faces of it.")
    options = dict(format_func=label, key="metrics_predicted_class", help=HELP["predicted"])
    predicted = predicted_column.selectbox("Predicted class", classes, **options)
    limit = count_column.slider("Faces shown", 6, 60, 18, 6, key="metrics_mistake_count", help="The surest mistakes.")
    filters = dict(true_class=true_class, predicted_class=predicted)
    mistakes = reports.most_confident_mistakes(evaluation.labels, evaluation.probabilities, limit, **filters)
    captions = [f"#{n} {m.true_label} → {m.predicted_label} {m.confidence:.0%}" for n, m in enumerate(mistakes, 1)]
    if not mistakes:
        st.success("No mistakes match these filters.", icon=":material/check_circle:")
    else:
        st.image([evaluation.images[mistake.index] for mistake in mistakes], caption=captions, width=96)
        explain_mistakes(report, evaluation, mistakes, captions)
    return {"dataset": str(dataset), "split": split, **metrics}


def explain_mistakes(report, evaluation: reports.SplitEvaluation, mistakes: list, captions: list[str]) -> None:
    """Grad-CAM heatmaps of the chosen mistakes, for their predicted or their true class."""
    st.markdown("**Why did it say that?** Grad-CAM heatmaps of chosen mistakes")
    numbers, (chosen_column, target_column) = list(range(1, len(mistakes) + 1)), st.columns([3, 1])
    options = dict(format_func=lambda number: captions[number - 1], key="metrics_explain_mistakes", help=HELP["faces"])
    chosen = chosen_column.multiselect("Faces to explain", numbers, numbers[:4], **options)
    options = dict(key="metrics_explain_target", help=HELP["target"])
    target = target_column.radio("Heatmap for the", (PREDICTED, TRUE), **options)
    if not chosen:
        st.caption("Choose faces above to see their heatmaps.")
        return
    selected = [mistakes[number - 1] for number in chosen]
    classes = [mistake.predicted_index if target == PREDICTED else mistake.true_index for mistake in selected]
    faces = np.stack([evaluation.images[mistake.index] for mistake in selected])
    failure = "Grad-CAM could not be computed for this model."
    if (explanation := attempt(failure, lambda: explainer(report).explain(faces, classes))) is None:
        return None
    opacity, overlays = st.session_state.get("metrics_heatmap_opacity", 0.45), []
    for face, heatmap in zip(faces, explanation.heatmaps, strict=True):
        enlarged = cv2.resize(face, (160, 160), interpolation=cv2.INTER_CUBIC)  # so that the heatmap reads on screen
        overlays.append(bgr_to_rgb(gradcam.overlay_heatmap(enlarged, heatmap, alpha=opacity)))
    scores = zip(chosen, classes, explanation.probabilities, strict=True)
    st.image(overlays, caption=[f"#{n} heatmap for {EMOTIONS[c]} ({p[c]:.0%})" for n, c, p in scores], width=160)
    st.caption(f"Feature maps of layer `{explainer(report).layer_name}`, the model's last convolutional stage.")


def photo_section(report: reports.ModelReport) -> None:
    """Each face of an uploaded photo with its prediction and a Grad-CAM heatmap."""
    st.caption("Upload a photo: each face found gets its prediction and a heatmap of what the model looked at.")
    upload_column, settings = st.columns([2, 1])
    options = dict(type=PHOTO_TYPES, key="metrics_photo", help=HELP["photo"])
    upload = upload_column.file_uploader("A photo with one or more faces", **options)
    whole = settings.toggle("The photo is one face crop", key="metrics_photo_whole", help="Skip face detection.")
    explained = settings.selectbox("Explain the class", [PREDICTED, *EMOTIONS], key="metrics_photo_class")
    opacity = settings.slider("Heatmap opacity", 0.1, 0.9, 0.45, 0.05, key="metrics_heatmap_opacity")
    if upload is None:
        st.caption("Try a selfie or a film still: frontal, well-lit faces work best.")
        return
    if (image := read_photo(upload)) is None:
        return None
    index, detector = EMOTIONS.index(explained) if explained in EMOTIONS else None, "none" if whole else "haar"

    def explained_faces() -> list[gradcam.FaceExplanation]:  # loading the model may fail too: explained as well
        return gradcam.explain_photo(explainer(report), image, common.load_detector(detector), class_index=index)

    faces = attempt("The photo could not be explained.", explained_faces)
    if faces == []:
        st.warning(NO_FACE_HINT + " For a photo that is already a face crop, switch on **The photo is one face crop**.")
    for number, face in enumerate(faces or [], start=1):
        predicted = EMOTIONS[int(np.argmax(face.probabilities))]
        heatmap, certainty = gradcam.overlay_heatmap(face.crop, face.heatmap, alpha=opacity), np.max(face.probabilities)
        explained = f"heatmap for **{face.label}** ({face.confidence:.0%})"
        st.markdown(f"**Face {number}**: {EMOTION_ICONS[predicted]} {predicted} ({certainty:.0%}); {explained}")
        crop_column, heat_column, chart_column = st.columns([1, 1, 2])
        crop_column.image(bgr_to_rgb(face.crop), caption="the face", width="stretch")
        heat_column.image(bgr_to_rgb(heatmap), caption="Grad-CAM", width="stretch")
        probabilities = dict(zip(EMOTIONS, map(float, face.probabilities), strict=True))
        chart = charts.probability_bars(probabilities, height=220)
        chart_column.plotly_chart(chart, key=f"metrics-photo-face-{number}")


st.title("Metrics")
st.caption("How good is a model, where does it go wrong, and why? Curves, scores, comparisons, mistakes, Grad-CAM.")
models = catalog.available_models(folder.default_runs_dir(), finished_only=True)
if not models:
    where = f"no shipped model at `{default_model_path()}` and no finished run in `{folder.default_runs_dir()}`"
    st.info(f"There is no model to show yet: {where}. Train one on **Training**.", icon=":material/monitoring:")
    st.stop()
model = common.model_menu(models, "metrics_model", HELP["model"])
if (chosen_report := attempt("This model's metrics could not be read.", lambda: report_for(model))) is None:
    st.stop()
overview, compare, mistakes, photo = st.tabs(
    ["Overview", "Compare models", "Most confident mistakes", "Explain a photo"]
)
with overview:
    downloads = overview_section(chosen_report)
with compare:
    compare_section(models)
with mistakes:
    dataset_evaluation = mistakes_section(chosen_report)
with photo:
    photo_section(chosen_report)
with downloads:
    downloads_section(chosen_report, dataset_evaluation)
