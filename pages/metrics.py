"""Metrics: a model's curves, confusion matrices and per-class scores, comparisons, surest mistakes and Grad-CAM."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pandas as pd
import streamlit as st

from ferlib.classes import class_label
from ferlib.data.datasets import SPLITS
from ferlib.data.preprocess import fit_within
from ferlib.data.sources import dataset_sources
from ferlib.evaluation import catalog, gradcam, reports
from ferlib.evaluation.metrics import TTA_DESCRIPTIONS, TTA_MODES
from ferlib.jobs import folder
from ferlib.nets.modelio import default_model_path
from pages.components import charts, common
from pages.components.common import attempt, percent, require_app
from pages.components.compare import compare_section
from pages.components.evaluation import evaluate, explainer, report_for
from pages.components.photo import NO_FACE_HINT, PHOTO_TYPES, SCREEN_SIDE, bgr_to_rgb, read_photo

require_app("pages/metrics.py")

PREDICTED, TRUE = "predicted class", "true class"
HELP = {
    "model": "Shipped models and finished runs, with the validation metrics recorded when they were saved.",
    "top2": "Share of faces whose true class is among the two most probable: FER-2013's labels are often ambiguous.",
    "json": "Everything on this page for the model (with the latest dataset evaluation, when there is one).",
    "dataset": "The model predicts every face of the split once (then cached); the gallery shows its surest errors.",
    "tta": "Average each face's probabilities over views of it: its mirror image, shifted copies, ten crops or "
    "zoomed and tilted copies (usually the most accurate, at 18 predictions per face).",
    "predicted": "Only faces wrongly predicted as this class: with a true class, one cell of the confusion matrix.",
    "faces": "Grad-CAM colours the regions that pushed the model towards a class: red is strong evidence, blue none.",
    "target": "The predicted class shows why the model said it; the true class, what evidence it saw for the answer.",
    "photo": "Faces are found with OpenCV's Haar cascade and preprocessed as on Home; the photo is not stored.",
}


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
    elif isinstance(report.details.get("config"), dict) and report.details["config"].get("members"):
        st.caption("An ensemble has no training curves of its own: each member's card holds its own.")
    else:
        st.caption("No training curves were recorded for this model.")
    st.markdown("**Confusion matrix** (rows: true class, columns: predicted class)")
    if matrix := metrics.get("confusion_matrix"):
        shares, title = reports.normalized_confusion(matrix), "Normalised by true class (recall)"
        for column, values, heading in zip(st.columns(2), [np.asarray(matrix), shares], ["Counts", title], strict=True):
            figure = charts.confusion_matrix(values, heading, values is shares, report.class_names)
            column.plotly_chart(figure, width="stretch", key=f"metrics-confusion-{heading}")
    else:
        st.caption("This model's card records no confusion matrix. Evaluate it under **Most confident mistakes**.")
    st.markdown("**Per-class precision, recall and F1**")
    if rows := reports.per_class_rows(metrics.get("per_class") or {}):
        st.dataframe(pd.DataFrame(rows).set_index("class"), width="stretch", column_config=common.PER_CLASS_COLUMNS)
    else:
        st.caption("This model's card records no per-class metrics.")
    downloads = st.container()
    with st.expander("Model details and training settings", icon=":material/info:"):
        common.model_facts(report.details)
    return downloads


def mistakes_section(report: reports.ModelReport) -> dict[str, Any] | None:
    """The surest mistakes on a chosen dataset, with Grad-CAM; returns the evaluation's metrics."""
    st.caption("Faces the model got wrong while surest (label noise or blind spots): true → predicted, confidence.")
    if not (sources := dataset_sources()):
        return common.show_no_dataset_hint("reload this page (the **Dataset** page can add one)")
    columns, placeholder = st.columns([3, 1, 1], vertical_alignment="bottom"), "Choose a dataset to evaluate on…"
    options = dict(format_func=common.dataset_label, placeholder=placeholder, help=HELP["dataset"])
    options["index"] = 0 if len(sources) == 1 else None  # a single dataset is chosen for you
    dataset = columns[0].selectbox("Dataset", sources, key="metrics_dataset", **options)
    splits, unreadable = list(SPLITS), "This dataset cannot be read."
    if dataset is not None:  # only the splits that have faces
        if (present := attempt(unreadable, lambda: common.load_dataset(str(dataset)).splits_with_faces())) is None:
            return None
        splits = present or splits
    default = splits.index("validation") if "validation" in splits else 0
    split = columns[1].selectbox("Split", splits, default, key="metrics_split")
    options = dict(format_func=TTA_DESCRIPTIONS.get, key="metrics_eval_tta", help=HELP["tta"])
    tta = columns[2].selectbox("Test-time augmentation", TTA_MODES, **options)
    if dataset is None:
        st.caption("Choose a dataset above to evaluate the model on it.")
        return None
    failure = "The model could not be evaluated on this dataset."
    if (evaluation := attempt(failure, lambda: evaluate(report, str(dataset), split, tta))) is None:
        return None
    metrics, wrong = evaluation.metrics, int(np.sum(evaluation.probabilities.argmax(axis=1) != evaluation.labels))
    views = "" if metrics.get("tta", "none") == "none" else f" with TTA over {TTA_DESCRIPTIONS[metrics['tta']]}"
    scores = f"accuracy {metrics['accuracy']:.1%}, macro-F1 {metrics['macro_f1']:.3f}, top-2 accuracy "
    scores += f"{metrics['top2_accuracy']:.1%}, {wrong:,} mistakes"
    left = f" ({evaluation.left_out:,} faces of other classes left out)" if evaluation.left_out else ""
    st.caption(f"On {metrics['n']:,} {evaluation.split} faces of {dataset.name}{left}{views}: {scores}.")
    names = evaluation.class_names
    classes, label = [None, *range(len(names))], lambda index: "any" if index is None else class_label(names[index])
    true_column, predicted_column, count_column = st.columns(3)
    true_class = true_column.selectbox("True class", classes, 0, label, "metrics_true_class", "Only faces of it.")
    options = dict(format_func=label, key="metrics_predicted_class", help=HELP["predicted"])
    predicted = predicted_column.selectbox("Predicted class", classes, **options)
    limit = count_column.slider("Faces shown", 6, 60, 18, 6, key="metrics_mistake_count", help="The surest mistakes.")
    filters = dict(true_class=true_class, predicted_class=predicted)
    filters["class_names"] = names
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
    for face, heatmap, flat in zip(faces, explanation.heatmaps, explanation.flat, strict=True):
        enlarged = cv2.resize(face, (160, 160), interpolation=cv2.INTER_CUBIC)  # so that the heatmap reads on screen
        overlays.append(bgr_to_rgb(enlarged if flat else gradcam.overlay_heatmap(enlarged, heatmap, alpha=opacity)))
    scores = zip(chosen, classes, explanation.probabilities, explanation.flat, strict=True)
    what = lambda flat: "no evidence (flat map)" if flat else "heatmap"  # noqa: E731
    st.image(
        overlays,
        caption=[f"#{n} {what(f)} for {evaluation.class_names[c]} ({p[c]:.0%})" for n, c, p, f in scores],
        width=160,
    )
    st.caption("Red: the parts of the face that raised the class's score, in the model's last convolutional layer.")


def photo_section(report: reports.ModelReport) -> None:
    """Each face of an uploaded photo with its prediction and a Grad-CAM heatmap."""
    st.caption("Upload a photo: each face found gets its prediction and a heatmap of what the model looked at.")
    upload_column, settings = st.columns([2, 1])
    options = dict(type=PHOTO_TYPES, key="metrics_photo", help=HELP["photo"])
    upload = upload_column.file_uploader("A photo with one or more faces", **options)
    whole = settings.toggle("The photo is one face crop", key="metrics_photo_whole", help="Skip face detection.")
    names = report.class_names
    explained = settings.selectbox("Explain the class", [PREDICTED, *names], key="metrics_photo_class")
    opacity = settings.slider("Heatmap opacity", 0.1, 0.9, 0.45, 0.05, key="metrics_heatmap_opacity")
    if upload is None:
        st.caption("Try a selfie or a film still: frontal, well-lit faces work best.")
        return
    if (image := read_photo(upload.getvalue())) is None:
        return None
    index, detector = names.index(explained) if explained in names else None, "none" if whole else "haar"

    def explained_faces() -> list[gradcam.FaceExplanation]:  # loading the model may fail too: explained as well
        return gradcam.explain_photo(explainer(report), image, common.load_detector(detector), class_index=index)

    if not (faces := attempt("The photo could not be explained.", explained_faces)):
        st.warning(NO_FACE_HINT + " For a photo that is one face crop, switch on **The photo is one face crop**.")
        return None
    picture, details = st.columns([3, 2], gap="medium")
    overlay = fit_within(gradcam.explanation_overlay(image, faces, alpha=opacity), SCREEN_SIDE)
    picture.image(bgr_to_rgb(overlay), caption="Red: where the evidence for the class lies", width="stretch")
    for number, face in enumerate(faces, start=1):
        predicted, certainty = face.class_names[int(np.argmax(face.probabilities))], np.max(face.probabilities)
        label = f"Face {number}: {class_label(predicted)} ({certainty:.0%}) · heatmap for {face.label}"
        with details.expander(label, expanded=len(faces) <= 3):
            if face.flat:  # no position raised the class's score: a uniform tint would suggest otherwise
                st.info(f"Nothing in this face raised the score of {face.label}: there is no heatmap to show.")
            probabilities = dict(zip(face.class_names, map(float, face.probabilities), strict=True))
            st.plotly_chart(charts.probability_bars(probabilities, 230), key=f"metrics-photo-face-{number}")


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
with downloads:  # the whole report as JSON (with the dataset evaluation, if any) and the per-class CSV
    json_column, csv_column, _ = st.columns([1, 1, 2])
    name, per_class = chosen_report.name.replace(" ", "_"), chosen_report.metrics.get("per_class")
    options = dict(icon=":material/download:", width="stretch", help=HELP["json"])
    data = reports.report_json(chosen_report, dataset_evaluation)
    json_column.download_button("Metrics (JSON)", data, f"{name}-metrics.json", "application/json", **options)
    data = reports.per_class_csv(per_class, chosen_report.metrics_tta.get("per_class")) if per_class else ""
    options |= dict(disabled=not per_class, help="Precision, recall, F1 and support per class (and with flip TTA).")
    csv_column.download_button("Per-class metrics (CSV)", data, f"{name}-per-class.csv", "text/csv", **options)
