"""A model's recorded report, its Grad-CAM wrapper and its evaluation on a dataset, cached for every session:
reports per card or metrics.json version, models per file version, evaluations per model, dataset and classes."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from ferlib.classes import ClassSet
from ferlib.evaluation import catalog, gradcam, reports
from ferlib.jobs import runs
from ferlib.nets.modelio import class_set_of, load_model, sidecar_path
from pages.components import common


@st.cache_data(show_spinner=False, max_entries=32)
def cached_report(entry: catalog.CatalogEntry, modified: int) -> reports.ModelReport:
    if entry.kind == catalog.SHIPPED:
        return reports.shipped_report(entry.model_path, common.load_model_card(entry.model_path))
    return reports.run_report(entry.run_dir)


def report_for(entry: catalog.CatalogEntry) -> reports.ModelReport:
    """The recorded report of a catalog model, read again when its card or metrics.json changes."""
    shipped = entry.kind == catalog.SHIPPED
    return cached_report(
        entry, common.modified_ns(sidecar_path(entry.model_path) if shipped else entry.run_dir / runs.METRICS_FILE)
    )


def explainer(report: reports.ModelReport) -> gradcam.GradCam:
    """The report's Keras model wrapped for Grad-CAM (and plain prediction), shared by every session."""
    return load_gradcam(str(report.model_path), common.modified_ns(report.model_path))


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def load_gradcam(model_path: str, modified: int) -> gradcam.GradCam:
    model, card = load_model(model_path)
    return gradcam.GradCam(model, class_set_of(card, model_path).names)


def classes_of(report: reports.ModelReport) -> ClassSet:
    """The classes a model tells apart (merged ones with their emotions), from its card."""
    return class_set_of(common.load_model_card(report.model_path), report.model_path)


def evaluate(
    report: reports.ModelReport, data: str, split: str, tta: str, classes: ClassSet | None = None
) -> reports.SplitEvaluation:
    """The model's predictions and scores on the faces of `classes` (its own by default) in one split of a dataset;
    computed once per model version, dataset version and setting."""
    own = classes_of(report)
    keys = [json.dumps(chosen.to_config()) for chosen in (classes or own, own)]  # plain cache keys
    version = common.dataset_version(data)
    return _evaluate(str(report.model_path), common.modified_ns(report.model_path), data, version, split, tta, *keys)


# A resource cache: an evaluation holds the split's faces (66 MB for train), which st.cache_data would unpickle
# afresh on every rerun. Pages only read it.
@st.cache_resource(show_spinner="Evaluating the model on every face of the split…", max_entries=6)
def _evaluate(model: str, modified: int, data: str, version: Any, split: str, tta: str, classes: str, own: str):
    dataset = common.load_dataset(data, version)
    chosen, model_classes = ClassSet.parse(json.loads(classes)), ClassSet.parse(json.loads(own))
    network = load_gradcam(model, modified).model
    return reports.evaluate_split(network, dataset, split, tta=tta, classes=chosen, model_classes=model_classes)
