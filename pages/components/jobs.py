"""The one job monitor of training runs and searches: the job to watch, its name, tags and note, status and phase,
progress and ETA, Stop and Resume, log tail; and a run's portable snapshot, out and back in. Jobs run in their own
processes; the monitor reads their folders and redraws the whole page as soon as a listed job's state differs from
what the page shows, so every label comes from one fresh read."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from ferlib.errors import FerError
from ferlib.jobs import folder, progress, runs, searches
from ferlib.nets.precision import precision_for_this_cpu
from ferlib.training import run_launch, snapshot
from pages.components.common import attempt, dataset_label, flash, format_duration, internal_errors, show_error

REFRESH_SECONDS, ACTIVE = 2.0, folder.ACTIVE_STATES
SNAPSHOT_HELP = "One file with all this run needs to continue elsewhere: resume it under **Resume from a snapshot**."
STATE_BADGES = {
    "created": ("starting", "blue", ":material/hourglass_top:"),
    "running": ("running", "blue", ":material/play_circle:"),
    "finished": ("finished", "green", ":material/check_circle:"),
    "failed": ("failed", "red", ":material/error:"),
    "stopped": ("stopped", "orange", ":material/stop_circle:"),
    "interrupted": ("interrupted", "orange", ":material/warning:"),
}


@dataclass(frozen=True)
class JobKind:
    """What the monitor needs to know about one kind of job (training run or search)."""

    scope: str  # prefix of the page's session-state and widget keys
    noun: str  # "run" or "search", in the texts
    plural: str
    is_job: Callable[[Path], bool]  # whether the folder (still) holds such a job
    resume: Callable[[Path], Any]  # relaunches a stopped job's process
    stop_help: str
    resume_help: str


def state_label(state: str, phase: str | None = None) -> str:
    """What a job is doing: its phase while it runs (starting, training, evaluating), else its state."""
    return phase if state == "running" and phase in folder.PHASES else STATE_BADGES.get(state, (state,))[0]


def busy_message(then: str, all_runs: list | None = None, all_searches: list | None = None) -> str | None:
    """Why no job can start now (one job at a time), or None; from the lists the page read, when it passes them."""
    all_runs = runs.list_runs() if all_runs is None else all_runs
    all_searches = searches.list_searches() if all_searches is None else all_searches
    jobs = [("training run", job, "Training") for job in all_runs]
    jobs += [("hyperparameter search", job, "Tune") for job in all_searches]
    if not (active := [(noun, job, page) for noun, job, page in jobs if job.state in ACTIVE]):
        return None
    noun, job, page = active[0]
    stop = f"stop it on the **{page}** page (it can be resumed later) or wait {then}"
    return f"The {noun} **{job.title}** is {state_label(job.state)}. This machine runs one job at a time: {stop}."


def monitor(kind: JobKind, root: Path, jobs: list, details: Callable, locked: str | None = None) -> None:
    """Choose a job among the page's summaries (newest first), then watch it: `details(job_dir, status)` draws the
    page's part in a fragment that reruns every few seconds while the job is active."""
    st.subheader(f"Watch a {kind.noun}")
    if not jobs:
        start = f"Start one under **New {kind.noun}** below: it runs in its own process, so you may close this tab."
        st.info(f"No {kind.plural} yet. {start}", icon=":material/info:")
        return
    states, titles = {job.path.name: job.state for job in jobs}, {job.path.name: job.title for job in jobs}
    key, next_key = f"{kind.scope}_watched_{kind.noun}", f"{kind.scope}_watch_next"
    if next_key in st.session_state:  # a job just started or resumed
        st.session_state[key] = st.session_state.pop(next_key)
    if st.session_state.get(key) not in states:
        st.session_state[key] = ([job for job, state in states.items() if state in ACTIVE] or list(states))[0]
    help_text = f"Read from the {kind.noun} folders: one started from another tab or the command line is here too."
    options = dict(key=key, format_func=lambda job: f"{titles[job]} · {state_label(states[job])}", help=help_text)
    job_id = st.selectbox(kind.noun.capitalize(), list(states), **options)
    live = states[job_id] in ACTIVE
    st.fragment(run_every=REFRESH_SECONDS if live else None)(_watch)(kind, root, job_id, states, details, locked)


def started(scope: str, job_dir: Path, message: str, toast_scope: str | None = None) -> None:
    """Watch a job just started or resumed on the page of `scope` the next time it is drawn, and say so."""
    st.session_state[f"{scope}_watch_next"] = job_dir.name
    flash(toast_scope or scope, message, ":material/rocket_launch:")
    st.rerun()


def _watch(kind: JobKind, root: Path, job_id: str, drawn: dict[str, str], details: Callable, locked) -> None:
    with internal_errors(f"the {kind.noun} monitor"):  # a fragment's own reruns do not pass through app.py
        if {job: str(folder.read_status(root / job).get("state", "interrupted")) for job in drawn} != drawn:
            st.rerun()  # a job started, moved on, ended or vanished: redraw menu, banners and buttons from one read
        if not kind.is_job(job_dir := root / job_id):
            st.info(f"This {kind.noun}'s folder is gone. Pick another {kind.noun} above.", icon=":material/info:")
            return
        status = folder.read_status(job_dir)
        if f"{kind.scope}_monitor_message" in st.session_state:  # what a Stop or Resume click left
            show_error(*st.session_state.pop(f"{kind.scope}_monitor_message"))
        details(job_dir, status)
        label, key = folder.read_label(job_dir), f"{kind.scope}-label-{job_dir.name}"  # shown wherever it is listed
        editor = st.popover("Name, tags and note", icon=":material/edit:", disabled=bool(locked), help=locked)
        with editor, st.form(key, border=False):
            name = st.text_input("Name", label.name, folder.MAX_NAME, key=f"{key}-name")
            tags = st.text_input("Tags", ", ".join(label.tags), key=f"{key}-tags", help="Comma-separated.")
            note = st.text_area("Note", label.note, folder.MAX_NOTE, key=f"{key}-note")
            saved = st.form_submit_button("Save", icon=":material/save:", disabled=bool(locked))
        labelled = lambda: folder.write_label(job_dir, name=name, tags=tags.split(","), note=note)  # noqa: E731
        if saved and attempt(f"The {kind.noun}'s label could not be saved.", labelled, OSError):
            st.rerun()  # the menu and tables show the new name
        with st.expander("Log", expanded=status.get("state") == "failed"):
            st.caption(f"The last 40 lines of `{job_dir / folder.LOG_FILE}`, without TensorFlow's start-up notices")
            st.code(folder.read_log_tail(job_dir, max_lines=40) or "(the log is empty so far)", "text", height=260)


def header(job_dir: Path, status: dict[str, Any], description: str, notes: dict[str, str]) -> None:
    """The job's name, tags, note and description beside its status and phase, then the page's note on its state:
    an error when it failed, a success when it finished, else information."""
    state, label = str(status.get("state")), folder.read_label(job_dir)
    title, badge = st.columns([5, 1], vertical_alignment="center")
    named = f"**{label.name}** · {job_dir.name}" if label.name else f"**{job_dir.name}**"
    tags, note = " ".join(f":gray-badge[{tag}]" for tag in label.tags), f"  \n*{label.note}*" if label.note else ""
    title.markdown(f"{named} {tags}  \n{description}{note}")
    _, color, icon = STATE_BADGES.get(state, (state, "gray", None))
    badge.badge(state_label(state, status.get("phase")), color=color, icon=icon)
    if text := notes.get(state):
        show = {"failed": (st.error, "error"), "finished": (st.success, "check_circle")}.get(state, (st.info, "info"))
        show[0](text, icon=f":material/{show[1]}:")


def progress_bar(records: list[dict], status: dict[str, Any], waiting: str, prefix: str = ""):
    """Progress from the job's records and phase: starting; epoch, batch and (while training, when there is an
    estimate) the time left; evaluating."""
    now, state, phase = progress.progress_snapshot(records), status.get("state"), status.get("phase")
    text = f"{prefix}Epoch {now.epoch}/{now.epochs}" if now else ""
    if now and now.batch is not None and now.steps:
        text += f" · batch {now.batch}/{now.steps}"
    if (eta := now.eta_at(time.time()) if now and state == "running" else None) is not None and eta >= 1:
        text += f" · about {format_duration(eta)} left"
    if state == "created" or (state in ACTIVE and (phase == "starting" or now is None)):
        text = f"{prefix}{waiting}"
    elif state == "running" and phase == "evaluating":
        text = f"{prefix}Training done · evaluating the best checkpoint on the validation split…"
    if text:
        st.progress(now.fraction if now else 0.0, text=text)
    return now


def stop_resume_buttons(kind: JobKind, job_dir: Path, state: str, refusal: str | None = None) -> None:
    """Stop (an active job) or Resume (one `runs.may_resume` accepts); greyed out with `refusal` as their help."""

    def clicked(action: Callable[[Path], Any], verb: str) -> None:
        try:
            action(job_dir)
        except (FerError, OSError) as error:  # OSError: a read-only or vanished folder
            st.session_state[f"{kind.scope}_monitor_message"] = (f"The {kind.noun} could not be {verb}.", error)
        else:
            if verb == "resumed":
                flash(kind.scope, f"Resumed {job_dir.name}: it continues in its own process.", ":material/play_circle:")

    stopping = state in ACTIVE and folder.stop_requested(job_dir)
    if state in ACTIVE:
        label = "Stopping after the current batch…" if stopping else "Stop"
        button = (label, folder.request_stop, "stopped", kind.stop_help, "stop", "secondary")
    elif runs.may_resume(job_dir, state):
        button = ("Resume", kind.resume, "resumed", kind.resume_help, "play_arrow", "primary")
    else:
        return
    label, action, verb, tip, icon, kind_of_button = button
    options = dict(key=f"{kind.scope}-{icon}-{job_dir.name}", disabled=stopping or bool(refusal), help=refusal or tip)
    st.button(label, icon=f":material/{icon}:", type=kind_of_button, on_click=clicked, args=(action, verb), **options)


def precision_switch_note(run_dir: Path, state: str) -> None:
    """Says, beside Resume, that a mixed bfloat16 run continues in float32 on this CPU."""
    if not runs.may_resume(run_dir, state):  # a training run's monitor redraws every few seconds: nothing to read
        return
    try:
        precision = run_launch.load_config(run_dir).precision
    except FerError:  # an unreadable config: the run's header already says so
        return
    if precision_for_this_cpu(precision) != precision:
        st.info(
            "This run trains in mixed bfloat16, and this CPU has no native bfloat16 (it would train many times "
            "slower): **Resume** continues it in float32, from the same step and weights.",
            icon=":material/memory:",
        )


# --- portable snapshots: a run carried to another machine in one file (ferlib.training.snapshot) ---------------


def snapshot_download(run_dir: Path, state: str) -> None:
    """The run's snapshot to download once it has a checkpoint and is not training: written when the download is
    clicked (it reads every checkpoint)."""

    def written() -> bytes:
        with tempfile.TemporaryDirectory() as directory:
            snapshot.write_snapshot(run_dir, path := Path(directory) / "snapshot.zip")
            return path.read_bytes()

    if state not in ACTIVE and (run_dir / runs.LAST_MODEL).exists():
        options = dict(mime="application/zip", on_click="ignore", icon=":material/download:", help=SNAPSHOT_HELP)
        st.download_button("Download snapshot", written, f"{run_dir.name}.snapshot.zip", **options)


def restore_from_snapshot(runs_dir: Path, blocked: str | None, sources: list[Path]) -> None:
    """Resume a run from a snapshot written here or on another machine: restored as stopped, then resumed."""
    with st.expander("Resume from a snapshot", icon=":material/unarchive:"):
        upload = st.file_uploader("A training snapshot (.zip)", type=["zip"], key="training_snapshot_upload")
        options = dict(format_func=lambda path: dataset_label(path) if path else "The one the snapshot names")
        data = st.selectbox("Dataset to continue on", [None, *sources], key="training_snapshot_data", **options)
        if not st.button(
            "Resume from the snapshot", type="primary", disabled=bool(blocked) or not upload, help=blocked
        ):
            return
    with tempfile.TemporaryDirectory() as directory:
        (path := Path(directory) / "snapshot.zip").write_bytes(upload.getvalue())

        def restored() -> Path:  # nothing is created when the snapshot or the dataset fails
            saved = snapshot.read_snapshot(path)
            dataset = folder.existing_dataset(str(Path(data).resolve()) if data else saved.config.data)
            return snapshot.restore_snapshot(saved, runs_dir, data=dataset)

        if not (run_dir := attempt("This snapshot cannot be resumed here.", restored, OSError)):
            return
    failure = f"The snapshot was restored as the stopped run {run_dir.name}, but it could not be resumed."
    if attempt(failure, lambda: run_launch.resume_run(run_dir), OSError):
        started("training", run_dir, f"Restored {run_dir.name} from the snapshot: it continues training.")
