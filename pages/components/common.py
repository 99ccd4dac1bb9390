"""Helpers every page uses: routing through app.py, explained errors, toasts, numbers, empty states, and loaders
behind Streamlit's caches (models and datasets once for every session, keyed by their files' versions)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import streamlit as st

from ferlib.data.sources import data_directories, dataset_version
from ferlib.errors import FerError
from ferlib.evaluation.catalog import CatalogEntry
from ferlib.nets.modelio import read_metadata, sidecar_path

LOGGER = logging.getLogger("fer_studio")
T = TypeVar("T")
INTERNAL_ERROR = "Internal error: this part of the page stopped (a bug; details in the server log)."


def require_app(page_file: str) -> None:
    """Route a page through app.py when Streamlit's legacy pages/ mode ran it directly (a page opened by URL
    before app.py ever ran): app.py gives it the navigation and page config, then switches to it."""
    if "fer_studio_app" not in st.session_state:
        st.session_state["fer_studio_requested_page"] = page_file
        st.switch_page("app.py")


@contextmanager
def internal_errors(where: str) -> Iterator[None]:
    """A user mistake (FerError) as its message; anything else, a bug, as a short error box and a logged traceback.

    Streamlit's st.rerun, st.stop and st.switch_page raise ScriptControlException, a BaseException: they pass.
    """
    try:
        yield
    except FerError as error:  # a user mistake the page did not explain itself
        show_error("This could not be done.", error)
    except Exception:
        LOGGER.exception("Internal error in %s", where)
        st.error(INTERNAL_ERROR, icon=":material/bug_report:")


def attempt(failure: str, action: Callable[[], T], *also: type[Exception]) -> T | bool | None:
    """The action's result (True when it returns nothing), or None after explaining the user mistake it raised
    (FerError, or one of `also`)."""
    try:
        result = action()
    except (FerError, *also) as error:
        show_error(failure, error)
        return None
    return True if result is None else result


def show_error(message: str, error: Exception | None = None) -> None:
    """An explained error, never a traceback."""
    st.error(f"{message} ({error})" if error is not None else message, icon=":material/error:")


def flash(scope: str, message: str, icon: str = ":material/check_circle:") -> None:
    """Keep a toast for the page's next script run (a rerun would otherwise drop it)."""
    st.session_state[f"{scope}_flash"] = (message, icon)


def show_flash(scope: str) -> None:
    """Show the toast kept by `flash`, once."""
    if f"{scope}_flash" in st.session_state:
        message, icon = st.session_state.pop(f"{scope}_flash")
        st.toast(message, icon=icon)


def format_duration(seconds: float | None) -> str:
    """'1 h 05 min', '4 min 07 s' or '12 s': durations people read at a glance."""
    if seconds is None:
        return "–"
    hours, remainder = divmod(max(0, round(seconds)), 3600)
    minutes, seconds = divmod(remainder, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def percent(value: object) -> str:
    """A fraction as '42.0%', or a dash when there is none."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return f"{value:.1%}" if is_number else "–"


def metric_row(figures: list[tuple]) -> None:
    """Metrics side by side, each (label, value, help) or (label, value, help, delta)."""
    for column, (label, value, help_text, *delta) in zip(st.columns(len(figures)), figures, strict=True):
        column.metric(label, value, *delta, help=help_text)


def dataset_label(path: Path | str) -> str:
    return f"{Path(path).name}  ({Path(path).parent})"


def show_no_model_hint() -> None:
    """The empty state of pages that run a model: how to get one."""
    how = "Train one on the **Training** page or with `python -m ferlib train --data PATH`, then ship it into `models/`"
    st.info(f"No trained model is installed yet. {how} with `python -m ferlib ship`.", icon=":material/model_training:")


def show_no_dataset_hint(then: str = "reload this page") -> None:
    """The empty state of pages that need a dataset: where to put one."""
    places = ", ".join(f"`{directory}`" for directory in data_directories())
    where = f"in {places}, or set `FERLIB_DATA_DIR` to the folder that holds it, then {then}"
    st.info(
        f"No dataset found. Put FER-2013 (Kaggle's `.zip` or folder, or `fer2013.csv`) {where}.",
        icon=":material/dataset:",
    )


SCORE_HELP = {
    "precision": "Of the faces predicted as this class, how many are.",
    "recall": "Of the faces of this class, how many were found.",
    "F1": "The harmonic mean of precision and recall.",
}
PER_CLASS_COLUMNS = {  # for per-class tables: a card's per_class or ferlib.evaluation.reports.per_class_rows
    name.lower(): st.column_config.ProgressColumn(name, help=text, format="%.2f", min_value=0, max_value=1)
    for name, text in SCORE_HELP.items()
} | {"support": st.column_config.NumberColumn("faces", help="Faces of this class in the evaluated split.")}


def model_menu(entries: list[CatalogEntry], key: str, help_text: str, label: str = "Model") -> CatalogEntry:
    """A selectbox over models of ferlib's catalog (keyed by their stable catalog keys); the chosen entry."""
    by_key = {entry.key: entry for entry in entries}
    chosen = st.selectbox(label, list(by_key), format_func=lambda key: by_key[key].label, key=key, help=help_text)
    return by_key[chosen]


def modified_ns(path: str | os.PathLike) -> int:
    """A file's modification time in ns (0 when missing): a cache key, so a changed file is read again."""
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:  # missing: the loader names what was expected
        return 0


def model_version(model_path: str | os.PathLike) -> tuple[int, int]:
    """The versions of a model and of the float TFLite export beside it (which backend "auto" runs)."""
    return modified_ns(model_path), modified_ns(Path(model_path).with_suffix(".tflite"))


def load_classifier(model_path: str, backend: str = "auto", num_threads: int | None = None):
    """One thread-safe classifier per model version, backend and thread count, shared by every session."""
    return _load_classifier(model_path, backend, num_threads, model_version(model_path))


@st.cache_resource(show_spinner="Loading the emotion model…", max_entries=6)
def _load_classifier(model_path: str, backend: str, num_threads: int | None, version: tuple[int, int]):
    from ferlib.nets.classifier import make_classifier

    return make_classifier(model_path, backend=backend, num_threads=num_threads)


@st.cache_resource(show_spinner="Loading the face detector…")
def load_detector(name: str):
    from ferlib.live.detection import make_detector

    return make_detector(name)


def load_model_card(model_path: str | os.PathLike) -> dict:
    """The model's card (its sidecar JSON, written by `python -m ferlib ship`); empty when it has none."""
    return _read_model_card(str(model_path), modified_ns(sidecar_path(model_path)))


@st.cache_data(show_spinner=False)
def _read_model_card(model_path: str, modified: int) -> dict:
    return read_metadata(model_path)


def load_dataset(path: str, version: tuple[int, int] | None = None):
    """One shared read-only copy per dataset version (st.cache_data would unpickle ~80 MB on every rerun)."""
    return _load_dataset(path, dataset_version(path) if version is None else version)


@st.cache_resource(show_spinner="Loading the dataset (the first time decodes every image)…", max_entries=2)
def _load_dataset(path: str, version: tuple[int, int]):
    from ferlib.data.datasets import load_dataset as load

    return load(path)
