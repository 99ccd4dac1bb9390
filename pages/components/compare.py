"""Models side by side: their curves, recorded scores and F1 per class, and all of them scored on one dataset's
faces (before and after a fine-tune on your own faces, say), on the classes they share."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import streamlit as st

from ferlib.classes import ClassSet
from ferlib.data.sources import dataset_sources
from ferlib.evaluation import catalog, reports
from ferlib.evaluation.metrics import TTA_DESCRIPTIONS, TTA_MODES, average_probabilities, score
from ferlib.evaluation.weighting import WEIGHT_LEVELS, search_weights
from pages.components import charts, common
from pages.components.combine import save_section
from pages.components.common import attempt
from pages.components.evaluation import classes_of, evaluate, report_for

COMPARISON = {"top2_accuracy": "Top-2 accuracy", "accuracy_tta": "Accuracy (flip TTA)", "macro_f1": "Macro-F1"}
COMPARISON |= {"macro_f1_tta": "Macro-F1 (flip TTA)", "final_train_accuracy": "Last train accuracy", "n": "Faces"}
DATASET_HELP = "Each model predicts the dataset's validation faces of the classes they all know; a model of more "
DATASET_HELP += "classes answers with the likelier of those. Compare a model before and after a fine-tune this way."
ENSEMBLE_HELP = "An ensemble averages its models' probabilities, each scaled by its weight: its row in the table "
ENSEMBLE_HELP += "above is what one model combining them scores on these faces. Models that err differently gain most."
TTA_HELP = "Average each face's probabilities over views of it (the ensemble's too): its mirror image, shifted "
TTA_HELP += "copies, ten crops or zoomed and tilted copies."
SCORES = {"n": "Faces", "macro_f1": "Macro-F1"}
WEIGHT_RANGE = dict(min_value=0.1, max_value=10.0, step=0.1, help="Relative: 2 counts twice as much as 1.")
SEARCH_KEY = "metrics_weight_search"
SEARCH_HELP = f"Tries the weights {', '.join(map(str, WEIGHT_LEVELS))} for each model on these faces and sets the "
SEARCH_HELP += "combination whose average scores best (the lower log-loss among equals)."
SEARCHED_NOTE = "Its weights ({shares}) were chosen as the ones scoring best on the validation faces it is measured "
SEARCHED_NOTE += "on, so its validation figures flatter it a little."


def compare_section(entries: list[catalog.CatalogEntry]) -> None:
    """Several models' validation curves overlaid, their scores in a table and their F1 per class."""
    st.caption("Overlay the curves of several models and line up their scores.")
    if len(entries) < 2:
        st.info("Comparing needs at least two models: finish another run on the **Training** page.", icon="⚖️")
        return
    labels = {entry.key: common.entry_label(entry) for entry in entries}
    options = dict(key="metrics_compare", format_func=labels.get, placeholder="Choose two or more models…")
    selected = st.multiselect("Models to compare", list(labels), **options)
    if len(selected) < 2:
        st.caption("Pick two or more models above to compare them side by side.")
        return
    by_key = {entry.key: entry for entry in entries}
    failure = "A model's metrics could not be read."
    if (chosen := attempt(failure, lambda: [report_for(by_key[key]) for key in selected])) is None:
        return
    if len({report.class_names for report in chosen}) > 1:  # their recorded accuracies count different faces
        compare_class_sets(chosen)
    else:
        compare_recorded(chosen)
    compare_on_dataset(chosen)


def compare_recorded(chosen: list[reports.ModelReport]) -> None:
    """Curves, recorded scores and F1 per class of models over the same classes."""
    show_train = st.toggle("Include training curves", key="metrics_compare_train", help="Solid; validation is dashed.")
    panels = [("Validation accuracy", "accuracy", True), ("Validation loss", "loss", False)]
    for column, (title, key, is_percent) in zip(st.columns(2), panels, strict=True):
        series = [
            line
            for index, report in enumerate(chosen)
            for line in charts.history_series(report.history, key, report.name, charts.SERIES_COLORS[index % 10])
            if show_train or line[4] == charts.VALIDATION
        ]
        column.plotly_chart(charts.curves(title, series, is_percent), width="stretch", key=f"metrics-compare-{key}")
    table = common.readable_table([reports.summary_row(report) for report in chosen], COMPARISON)
    st.dataframe(table, hide_index=True, width="stretch")
    f1_bars(chosen, list(chosen[0].class_names), "F1 per class")


def compare_class_sets(chosen: list[reports.ModelReport]) -> None:
    """Models of different classes: their recorded accuracies are not comparable, their F1 on shared classes is."""
    sets = "; ".join(f"{report.name}: {', '.join(report.class_names)}" for report in chosen)
    st.warning(
        f"These models tell apart different classes ({sets}), so their recorded accuracies count different faces "
        "and are not compared. Their F1 per class is compared on the classes they share; score them on one dataset "
        "below for a fair comparison.",
        icon="⚖️",
    )
    shared = [name for name in chosen[0].class_names if all(name in report.class_names for report in chosen[1:])]
    if shared:
        f1_bars(chosen, shared, "F1 per shared class")
    else:
        st.caption("They share no class.")


def f1_bars(chosen: list[reports.ModelReport], classes: list[str], title: str) -> None:
    per_class = {report.name: report.metrics.get("per_class") for report in chosen if report.has_per_class}
    if f1 := {name: [scores.get(emotion, {}).get("f1") for emotion in classes] for name, scores in per_class.items()}:
        st.plotly_chart(charts.per_class_bars(title, f1, classes), width="stretch", key="metrics-compare-f1")


def compare_on_dataset(chosen: list[reports.ModelReport]) -> None:
    """Every chosen model scored on the same faces: the validation faces of the classes they all tell apart; and,
    for models over the same classes, their weighted average as one ensemble would score it."""
    sources = dataset_sources()
    shown = lambda path: "(their recorded scores above)" if path is None else common.dataset_label(path)  # noqa: E731
    options = dict(format_func=shown, key="metrics_compare_dataset", help=DATASET_HELP)
    data_column, tta_column = st.columns([3, 1])
    data: Path | None = data_column.selectbox("Score them all on a dataset", [None, *sources], **options)
    options = dict(format_func=TTA_DESCRIPTIONS.get, key="metrics_compare_tta", help=TTA_HELP)
    tta = tta_column.selectbox("Test-time augmentation", TTA_MODES, **options)
    if data is None:
        return
    sets = attempt("A model's classes could not be read.", lambda: [classes_of(report) for report in chosen])
    if not sets:
        return
    target = min(sets, key=lambda classes: len(classes.names))  # the fewest classes: every model can answer them
    evaluations = []
    for report in chosen:
        failure = f"{report.name} cannot be scored on these faces."
        if not (evaluation := attempt(failure, partial(evaluate, report, str(data), "validation", tta, target))):
            return
        evaluations.append(evaluation)
    table = st.empty()  # filled once the ensemble's weights below are read, with its row
    views = "" if tta == "none" else f", each averaged over {TTA_DESCRIPTIONS[tta]}"
    st.caption(f"On the validation faces of {target.describe()} in {data.name}{views}.")
    rows = [score_row(report.name, evaluation.metrics) for report, evaluation in zip(chosen, evaluations, strict=True)]
    if all(classes == target for classes in sets):
        rows += ensemble_rows(chosen, evaluations, target, data, tta)
    else:
        st.caption("Only models over the same classes combine into an ensemble.")
    table.dataframe(common.readable_table(rows, SCORES), hide_index=True, width="stretch")


def score_row(name: str, metrics: dict) -> dict:
    return {"model": name, "n": metrics["n"], "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}


def ensemble_rows(
    chosen: list[reports.ModelReport], evaluations: list, classes: ClassSet, data: Path, tta: str
) -> list[dict]:
    """The weights of the models' average (one each), its score as a table row (none for bad weights), and saving
    it as one model."""
    st.markdown("**Combined into one ensemble model**")
    st.caption(ENSEMBLE_HELP)
    keys = [f"metrics_weight_{report.model_path}" for report in chosen]
    for key in keys:
        st.session_state.setdefault(key, 1.0)
    columns = st.columns(min(len(chosen), 4))
    weights = [
        columns[index % len(columns)].number_input(f"Weight of {report.name}", **WEIGHT_RANGE, key=key)
        for index, (report, key) in enumerate(zip(chosen, keys, strict=True))
    ]
    labels = evaluations[0].labels
    searched = (tuple(keys), str(data), tta)
    st.button(
        "Find the best weights",
        key="metrics_weight_search_button",
        icon=":material/tune:",
        on_click=set_best_weights,
        args=(searched, [evaluation.probabilities for evaluation in evaluations], labels),
        help=SEARCH_HELP,
    )
    shares, notes = ":".join(f"{weight:g}" for weight in weights), []
    found = st.session_state.get(SEARCH_KEY)
    if found and found[0] == searched and found[1] == weights:
        st.caption(found[2])
        notes.append(SEARCHED_NOTE.format(shares=shares))
    averaged = attempt(
        "These weights cannot combine the models.",
        lambda: average_probabilities([evaluation.probabilities for evaluation in evaluations], weights),
    )
    if averaged is None:
        return []
    row = score_row(f"ensemble ({shares})", score(labels, averaged, tta, classes.names))
    save_section([report.model_path for report in chosen], [report.name for report in chosen], weights, data, notes)
    return [row]


def set_best_weights(searched: tuple, probabilities: list, labels) -> None:
    """Button callback: the best whole-number weights into the weight inputs (before they are drawn again), and a
    sentence on how they were chosen, shown while the inputs keep them."""
    found = search_weights(probabilities, labels)
    for key, weight in zip(searched[0], found.weights, strict=True):
        st.session_state[key] = float(weight)
    shares = ":".join(map(str, found.weights))
    sentence = (
        f"Weights {shares} score best of the {found.tried} combinations tried on these faces ("
        f"{found.accuracy:.1%}, against {found.equal_accuracy:.1%} with equal weights). They were chosen on the "
        "faces that score them, so this row flatters the ensemble a little: faces it has not seen tell its true score."
    )
    st.session_state[SEARCH_KEY] = (searched, [float(weight) for weight in found.weights], sentence)
