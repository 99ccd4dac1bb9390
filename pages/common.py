"""Helpers shared by the pages: cached model and pipeline, model cards, friendly errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from ferlib.classes import EMOTION_COLORS, EMOTION_ICONS, EMOTIONS
from ferlib.errors import FerError
from ferlib.jobs import folder
from ferlib.nets.modelio import default_model_path, read_metadata, sidecar_path


def require_app(page_file: str) -> None:
    """Route a page through app.py when Streamlit ran it directly.

    With a pages/ folder beside app.py, Streamlit's legacy multipage mode runs a page opened by URL before app.py
    has ever run (e.g. the first request after a restart) without app.py's navigation and page config. Such a
    run goes to app.py, which then switches to the requested page.
    """
    if "fer_studio_app" not in st.session_state:
        st.session_state["fer_studio_requested_page"] = page_file
        st.switch_page("app.py")


NO_FACE_HINT = (
    "No face was found. Faces should be frontal, well lit and at least 6% as wide as the photo's shorter side "
    "(the detectors skip smaller faces, which are too small to read an expression from)."
)


def model_available(path: str | os.PathLike | None = None) -> bool:
    return Path(path or default_model_path()).exists()


def modified_ns(path: str | os.PathLike) -> int:
    """A file's modification time in ns (0 when missing), a key for caches, so a re-shipped model is reloaded."""
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:  # missing, or gone between a check and the stat: the loader names what was expected
        return 0


def load_pipeline(model_path: str, detector: str = "haar", backend: str = "auto", num_threads: int | None = None):
    """One detector per detector name around the shared classifier (`load_classifier`), shared by every session
    (both are thread-safe)."""
    classifier = load_classifier(model_path, backend, num_threads)
    # Keyed by the classifier's identity: the cached pipeline holds it, so the id cannot pass to a newer one.
    return _load_pipeline(detector, id(classifier), classifier)


@st.cache_resource(show_spinner="Loading the face detector…", max_entries=6)
def _load_pipeline(detector: str, classifier_id: int, _classifier: Any):
    from ferlib.live.detection import make_detector
    from ferlib.live.pipeline import EmotionPipeline

    return EmotionPipeline(make_detector(detector), _classifier)


def analyze_photo(
    image: np.ndarray,
    photo: bytes,
    model_path: str,
    detector: str = "haar",
    backend: str = "auto",
    num_threads: int | None = None,
):
    """The shared pipeline's analysis of an uploaded photo (`image`, decoded from `photo`), cached for an hour per
    photo, model files, detector, backend and thread count: a rerun (a slider moved, another widget used) redraws
    the faces without finding and classifying them again."""
    return _analyze_photo(image, photo, model_path, detector, backend, num_threads, model_version(model_path))


@st.cache_data(show_spinner="Finding and reading the faces…", max_entries=16, ttl=3600)
def _analyze_photo(
    _image: np.ndarray,
    photo: bytes,
    model_path: str,
    detector: str,
    backend: str,
    num_threads: int | None,
    version: tuple[int, int],
):
    return load_pipeline(model_path, detector, backend, num_threads).analyze(_image)


def load_classifier(model_path: str, backend: str = "auto", num_threads: int | None = None):
    """One classifier per model file, backend and thread count, shared by every session (classifiers are
    thread-safe); keyed by the file's modification time, so a model shipped while the app runs replaces it."""
    return _load_classifier(model_path, backend, num_threads, model_version(model_path))


def model_version(model_path: str | os.PathLike) -> tuple[int, int]:
    """The modification times of a model and of the float TFLite export beside it (which backend "auto" runs), so
    a model shipped, or an export added or removed, while the app runs replaces what the caches hold."""
    return modified_ns(model_path), modified_ns(Path(model_path).with_suffix(".tflite"))


@st.cache_resource(show_spinner="Loading the emotion model…", max_entries=6)
def _load_classifier(model_path: str, backend: str, num_threads: int | None, version: tuple[int, int]):
    from ferlib.nets.classifier import make_classifier

    return make_classifier(model_path, backend=backend, num_threads=num_threads)


def load_model_card(model_path: str) -> dict:
    """The model's sidecar JSON (its card, written by `python -m ferlib ship`); empty when the model has none."""
    return _read_model_card(model_path, modified_ns(sidecar_path(model_path)))


@st.cache_data(show_spinner=False)
def _read_model_card(model_path: str, modified_ns: int) -> dict:
    """Cached by the sidecar's modification time, so a re-shipped model shows its new card."""
    return read_metadata(model_path)


def probability_chart(probabilities: dict[str, float], height: int = 260):
    """A horizontal bar chart of class probabilities in the emotion colours."""
    import plotly.graph_objects as go

    figure = go.Figure(
        go.Bar(
            x=[probabilities[name] for name in EMOTIONS],
            y=[f"{EMOTION_ICONS[name]} {name}" for name in EMOTIONS],
            orientation="h",
            marker_color=[EMOTION_COLORS[name] for name in EMOTIONS],
            text=[f"{probabilities[name]:.0%}" for name in EMOTIONS],
            textposition="auto",
        )
    )
    figure.update_layout(
        height=height,
        margin=dict(l=0, r=10, t=10, b=0),
        xaxis=dict(range=[0, 1], tickformat=".0%"),
        yaxis=dict(autorange="reversed"),
    )
    return figure


def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    return image[:, :, ::-1] if image.ndim == 3 and image.shape[2] == 3 else image


def show_error(message: str, error: Exception | None = None) -> None:
    """An explained error, never a traceback."""
    detail = f" ({error})" if error is not None else ""
    st.error(f"{message}{detail}", icon=":material/error:")


REPO_ROOT = Path(__file__).resolve().parent.parent


def data_directories() -> list[Path]:
    """Where the app looks for datasets: $FERLIB_DATA_DIR (os.pathsep-separated), else data/ and ../shared/data."""
    configured = os.environ.get("FERLIB_DATA_DIR")
    if configured:
        return [Path(part).expanduser() for part in configured.split(os.pathsep) if part]
    return [REPO_ROOT / "data", REPO_ROOT.parent / "shared" / "data"]


def upload_directory() -> Path:
    """Where uploaded datasets are stored: the first data directory."""
    return data_directories()[0]


def dataset_sources() -> list[Path]:
    """Datasets found in the data directories: .zip and .csv files and sub-folders."""
    found: list[Path] = []
    for directory in data_directories():
        if not directory.is_dir():
            continue
        for child in sorted(directory.iterdir()):
            if child.name.startswith("."):
                continue
            if child.is_dir() or child.suffix.lower() in (".zip", ".csv"):
                found.append(child)
    return found


def dataset_version(path: str) -> tuple[int, int]:
    """A cheap fingerprint of a dataset on disk (size and newest modification time, in nanoseconds).

    A file replaced at the same path, or images added to a folder's class folders, change it; caches keyed by
    it then load the new data instead of serving the old.
    """
    root = Path(path)
    if not root.exists():
        return (0, 0)
    if root.is_file():
        status = root.stat()
        return (status.st_size, status.st_mtime_ns)
    folders = [root, *_subfolders(root)]  # split or class folders, then class folders: a file added changes one
    folders += [child for folder in folders[1:] for child in _subfolders(folder)]
    return (len(folders), max(folder.stat().st_mtime_ns for folder in folders))


def _subfolders(folder: Path) -> list[Path]:
    """Sub-folders, told apart by the directory listing itself (no stat per image in a class folder)."""
    with os.scandir(folder) as entries:
        return [Path(entry.path) for entry in entries if entry.is_dir()]


def load_dataset_cached(path: str, version: tuple[int, int] | None = None):
    """ferlib's loader behind Streamlit's resource cache, one shared read-only copy per dataset version.

    A resource cache, not a data cache: st.cache_data would unpickle a fresh ~80 MB copy of FER-2013 on every
    rerun. ferlib also keeps its own decoded cache on disk, so a new server process loads in seconds.
    """
    return _load_dataset(path, dataset_version(path) if version is None else version)


@st.cache_resource(show_spinner="Loading the dataset (the first time decodes every image)…", max_entries=2)
def _load_dataset(path: str, version: tuple[int, int]):
    from ferlib.data.datasets import load_dataset

    return load_dataset(path)


def format_duration(seconds: float | None) -> str:
    """'1 h 05 min', '4 min 07 s' or '12 s': durations people read at a glance."""
    if seconds is None:
        return "–"
    seconds = max(0, round(seconds))
    hours, remainder = divmod(seconds, 3600)
    minutes, seconds = divmod(remainder, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"


def flash(scope: str, message: str, icon: str = ":material/check_circle:") -> None:
    """Keep a toast for the page's next script run (a rerun would otherwise drop it)."""
    st.session_state[f"{scope}_flash"] = (message, icon)


def show_flash(scope: str) -> None:
    """Show the toast kept by `flash`, once."""
    if f"{scope}_flash" in st.session_state:
        message, icon = st.session_state.pop(f"{scope}_flash")
        st.toast(message, icon=icon)


def show_monitor_message(scope: str) -> None:
    """Show the error a Stop or Resume click left for this run of the page."""
    if f"{scope}_monitor_message" in st.session_state:
        show_error(*st.session_state.pop(f"{scope}_monitor_message"))


def stop_resume_buttons(
    job_dir: Path,
    state: str,
    *,
    scope: str,
    noun: str,
    resume,
    stop_help: str,
    resume_help: str,
    resume_refusal: str | None = None,
) -> None:
    """Stop (active jobs) or Resume (those `runs.may_resume` accepts) for a training run or a search folder.

    `resume(job_dir)` relaunches the job's process; errors are kept for `show_monitor_message`. With
    `resume_refusal`, Resume is greyed out and its help says why.
    """
    from ferlib.jobs import runs

    def stop_clicked() -> None:
        try:
            folder.request_stop(job_dir)
        except FerError as error:
            st.session_state[f"{scope}_monitor_message"] = (f"The {noun} could not be stopped.", error)

    def resume_clicked() -> None:
        try:
            resume(job_dir)
        except FerError as error:
            st.session_state[f"{scope}_monitor_message"] = (f"The {noun} could not be resumed.", error)
        else:
            flash(scope, f"Resumed {job_dir.name}: it continues in its own process.", ":material/play_circle:")

    if state in folder.ACTIVE_STATES:
        stopping = folder.stop_requested(job_dir)
        st.button(
            "Stopping after the current batch…" if stopping else "Stop",
            icon=":material/stop:",
            disabled=stopping,
            on_click=stop_clicked,
            key=f"{scope}-stop-{job_dir.name}",
            help=stop_help,
        )
    elif runs.may_resume(job_dir, state):
        st.button(
            "Resume",
            icon=":material/play_arrow:",
            type="primary",
            on_click=resume_clicked,
            disabled=resume_refusal is not None,
            key=f"{scope}-resume-{job_dir.name}",
            help=resume_refusal or resume_help,
        )


def show_no_dataset_hint() -> None:
    """The empty state of pages that need a dataset: where to put one."""
    places = ", ".join(f"`{directory}`" for directory in data_directories())
    st.info(
        f"No dataset found. Put FER-2013 (Kaggle's `.zip` or folder, or `fer2013.csv`) in {places}, or set "
        "`FERLIB_DATA_DIR` to the folder that holds it, then reload this page.",
        icon=":material/dataset:",
    )
