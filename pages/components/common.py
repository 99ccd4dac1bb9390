"""Helpers every page uses: routing through app.py, explained errors, toasts, numbers, empty states, and loaders
behind Streamlit's caches (models and datasets once for every session, keyed by their files' versions)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pandas as pd
import streamlit as st

from ferlib.data.sources import data_directories, dataset_version
from ferlib.errors import FerError
from ferlib.evaluation.catalog import CatalogEntry
from ferlib.jobs.folder import read_label
from ferlib.nets.modelio import read_metadata, sidecar_path
from ferlib.training.config import TrainConfig, describe_config
from pages.components.access import admin_sidebar

LOGGER = logging.getLogger("fer_studio")
T = TypeVar("T")


def require_app(page_file: str) -> None:
    """Route a page opened by URL before app.py ever ran through app.py (its navigation and page config), then draw a
    public deployment's sign-in for the administrator in the sidebar."""
    if "fer_studio_app" not in st.session_state:
        st.session_state["fer_studio_requested_page"] = page_file
        st.switch_page("app.py")
    admin_sidebar()


@contextmanager
def internal_errors(where: str) -> Iterator[None]:
    """A user mistake (FerError) as its message; anything else, a bug, as a short error box and a logged traceback
    (st.rerun, st.stop and st.switch_page raise BaseExceptions: they pass)."""
    try:
        yield
    except FerError as error:  # a user mistake the page did not explain itself
        show_error("This could not be done.", error)
    except Exception:
        LOGGER.exception("Internal error in %s", where)
        st.error("Internal error: this part stopped (a bug; details in the server log).", icon=":material/bug_report:")


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
    if kept := st.session_state.pop(f"{scope}_flash", None):
        st.toast(kept[0], icon=kept[1])


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


def readable(value: object, key: str = "") -> str:
    """A value as people read it: accuracies as percentages, durations in words, other numbers rounded, '–' for none."""
    if "seconds" in key or "duration" in key:
        return format_duration(value)
    if isinstance(value, float):
        return percent(value) if "accuracy" in key else f"{value:.3g}" if math.isfinite(value) else "–"
    return "–" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def readable_table(rows: list[dict], labels: dict[str, str]) -> pd.DataFrame:
    """Rows of values as text in one format, under the `labels` of their keys (else the keys in words)."""
    return pd.DataFrame(
        [{labels.get(key, human(key)): readable(value, key) for key, value in row.items()} for row in rows]
    )


def metric_row(figures: list[tuple]) -> None:
    """Metrics side by side, each (label, value, help) or (label, value, help, delta)."""
    for column, (label, value, help_text, *delta) in zip(st.columns(len(figures)), figures, strict=True):
        column.metric(label, value, *delta, help=help_text)


def dataset_label(path: Path | str) -> str:
    return f"{Path(path).name}  ({Path(path).parent})"


def human(name: str) -> str:
    """A setting's name as people write it: 'learning_rate' → 'Learning rate'."""
    return name.replace("_", " ").capitalize()


def entry_label(entry: CatalogEntry) -> str:
    """A catalog model's menu label, with the name its run was given (label.json) in place of the run's id."""
    name = read_label(entry.run_dir).name if entry.run_dir else ""
    return entry.label.replace(f"Run {entry.run_dir.name}", name) if name and entry.run_dir else entry.label


FACTS = {"architecture": "Network", "parameters": "Parameters", "epochs_completed": "Epochs trained"}
FACTS |= {"best_epoch": "Best weights after epoch", "train_seconds": "Training time", "split": "Measured on"}
FACTS |= {"accuracy_with_10_view_tta": "Accuracy reading ten views of each face", "train_images": "Training faces"}
FACTS |= {"accuracy_with_zoom_tta": "Accuracy reading 18 zoomed, tilted and mirrored views"}


def model_facts(details: dict) -> None:
    """What a model is, how it was trained and measured, as a short list (from a report's details and card)."""
    facts = [(label, readable(details[key], key)) for key, label in FACTS.items() if details.get(key) is not None]
    config = details.get("config") if isinstance(details.get("config"), dict) else {}
    if isinstance(members := config.get("members"), list):  # an ensemble: what it averages, not a training config
        named = [member for member in members if isinstance(member, dict)]
        facts.append(("Members", " · ".join(f"{item.get('model')} ({percent(item.get('weight'))})" for item in named)))
    else:
        with contextlib.suppress(FerError, KeyError, TypeError, ValueError):  # no config, or one not readable here
            facts.append(("Settings", describe_config(TrainConfig.from_dict(details["config"]))))
    st.markdown("\n".join(f"- **{label}**: {value}" for label, value in facts) or "No details were recorded.")


def card_text(path: Path) -> str:
    """A written model card for people reading it on a page: its own title and internal notes on how the weights
    came to be (a developer's record) left out, headings a size smaller."""
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if not line.startswith(("# ", "- Note", "Generated by"))]
    return "\n".join("##" + line if line.startswith("##") else line for line in kept)


def show_no_model_hint() -> None:
    """The empty state of pages that run a model: how to get one."""
    how = "Train one on the **Training** page or with `python -m ferlib train --data PATH`, then ship it into `models/`"
    st.info(f"No trained model is installed yet. {how} with `python -m ferlib ship`.", icon=":material/model_training:")


def show_no_dataset_hint(then: str = "reload this page") -> None:
    """The empty state of pages that need a dataset: where to put one."""
    places = ", ".join(f"`{directory}`" for directory in data_directories())
    where = f"in {places}, or set `FERLIB_DATA_DIR` to the folder that holds it, then {then}"
    what = "No dataset found. Put FER-2013 (Kaggle's `.zip` or folder, or `fer2013.csv`)"
    st.info(f"{what} {where}.", icon=":material/dataset:")


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
    labels = {entry.key: entry_label(entry) for entry in entries}
    chosen = st.selectbox(label, list(by_key), format_func=labels.get, key=key, help=help_text)
    return by_key[chosen]


def modified_ns(path: str | os.PathLike) -> int:
    """A file's modification time in ns (0 when missing): a cache key, so a changed file is read again."""
    return Path(path).stat().st_mtime_ns if Path(path).exists() else 0  # missing: the loader says what it expected


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
