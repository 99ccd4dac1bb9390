"""Saving models' weighted average as one ensemble model: a name, a button, and the job that combines, measures and
exports it in its own process (ferlib.training.combine_launch), watched until its model joins the model menu."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path

import streamlit as st

from ferlib.jobs import folder
from ferlib.jobs.ensembles import EnsembleJob, list_ensemble_jobs, stop_ensemble_job, summarize_ensemble_job
from ferlib.training.combine_launch import new_model_path, start_ensemble
from pages.components import access
from pages.components.common import attempt, format_duration, internal_errors, percent

REFRESH_SECONDS, JOB_KEY = 2.0, "metrics_ensemble_job"
NAME_HELP = "Letters, digits, - and _. It is saved beside the shipped models, with its card and TFLite exports."
SAVE_HELP = "Combines the models into one .keras model in its own process (a few minutes: it measures the ensemble "
SAVE_HELP += "with every test-time augmentation and exports float and int8 TFLite). You may leave this page meanwhile."
VIEWS = {"none": "plain", "flip": "flip", "shifts": "ten shifts", "crops": "ten crops", "zooms": "18 zooms and tilts"}


def suggested_name(names: Sequence[str]) -> str:
    """A model name from the members' names: letters, digits, - and _ only, at most 64 characters."""
    joined = "_".join(re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-_") for name in names)
    return f"ensemble_{joined}"[:64].rstrip("-_")


def save_section(
    model_paths: Sequence[Path], names: Sequence[str], weights: Sequence[float], data: Path, notes: Sequence[str] = ()
) -> None:
    """Name the ensemble and start the job that saves it (`notes` go on its card); then watch the job running now
    (from any session), else the one this session started for these models, weights and dataset."""
    root, locked = folder.default_ensembles_dir(), access.locked()
    busy = next((job for job in list_ensemble_jobs(root) if job.active), None)
    name_column, button_column = st.columns([3, 1], vertical_alignment="bottom")
    name = name_column.text_input(
        "Save it as a model named", suggested_name(names), 64, "metrics_ensemble_name", help=NAME_HELP
    )
    refusal = locked or (f"{busy.name} is being combined: wait for it." if busy else None)
    options = dict(icon=":material/merge:", disabled=bool(refusal), help=refusal or SAVE_HELP, width="stretch")
    request = [str(path) for path in model_paths], list(weights), str(data)
    if button_column.button("Save the ensemble", key="metrics_ensemble_save", **options):

        def started() -> Path:
            target = new_model_path(name.strip())
            return start_ensemble(list(model_paths), data, target, list(weights), notes=notes, root=root)

        if job_dir := attempt("The ensemble could not be started.", started):
            st.session_state[JOB_KEY] = (str(job_dir), request)
            st.rerun()  # the whole page again: its button greyed out while the job runs
    own, asked = st.session_state.get(JOB_KEY) or (None, None)
    job_dir = busy.path if busy else Path(own) if own and asked == request and Path(own).is_dir() else None
    if job_dir is not None:
        state = summarize_ensemble_job(job_dir).state
        live = state in folder.ACTIVE_STATES
        st.fragment(run_every=REFRESH_SECONDS if live else None)(_watch)(job_dir, state, bool(locked))


def _watch(job_dir: Path, drawn: str, locked: bool) -> None:
    with internal_errors("the ensemble job"):
        job = summarize_ensemble_job(job_dir)
        if job.state != drawn:
            st.rerun()  # finished, failed or stopped: the whole page again, its model menu with the new model
        describe(job, locked)


def describe(job: EnsembleJob, locked: bool) -> None:
    """What became of the job: running (with a Stop button), saved (with its figures), failed or stopped."""
    if job.active:
        elapsed = format_duration(time.time() - job.started) if job.started else "starting"
        st.info(
            f"Combining **{job.name}**: measuring it on every validation face, then exporting TFLite… ({elapsed})",
            icon=":material/hourglass_top:",
        )
        st.button(
            "Stop",
            key=f"metrics-ensemble-stop-{job.path.name}",
            icon=":material/stop:",
            on_click=stop_ensemble_job,
            args=(job.path,),
            disabled=locked,
            help="Stops it now (or as soon as it has started); nothing is saved.",
        )
    elif job.state == "finished" and job.result:
        accuracy = job.result.get("accuracy") if isinstance(job.result.get("accuracy"), dict) else {}
        figures = ", ".join(f"{VIEWS.get(mode, mode)} {percent(value)}" for mode, value in accuracy.items())
        int8 = f"; int8 TFLite {percent(job.result.get('int8_accuracy'))}"
        st.success(
            f"Saved **{job.name}** (validation accuracy: {figures}{int8}). Choose it in the model menu above.",
            icon=":material/check_circle:",
        )
    elif job.state == "failed":
        st.error(f"{job.name} could not be combined: {job.error or 'see the job log'}", icon=":material/error:")
        with st.expander("Log"):
            st.code(folder.read_log_tail(job.path, max_lines=30) or "(the log is empty)", "text")
    else:
        st.warning(f"Combining {job.name} was {job.state}: nothing was saved.", icon=":material/warning:")
