"""Training: configure a run, start it in its own process, watch it, stop or resume it, carry it to another machine
as a snapshot, and manage past runs. ferlib trains detached; the page only reads run folders."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import streamlit as st

from ferlib.data.sources import dataset_sources
from ferlib.errors import FerError
from ferlib.evaluation import catalog
from ferlib.jobs import folder, progress, runs
from ferlib.nets.architectures import architecture_names
from ferlib.training import run_launch
from ferlib.training.config import describe_config
from pages.components import access, charts, common, jobs
from pages.components.common import attempt, flash, percent, require_app
from pages.components.run_settings import (
    DEFAULTS,
    HELP,
    architecture_controls,
    data_controls,
    settings_controls,
    start_control,
    teacher_controls,
    train_config,
)

require_app("pages/training.py")

STOP_HELP = "Stop after the current batch; a checkpoint is saved first, so the run can be resumed later."
RESUME_HELP = "Continue from the last saved epoch in a new training process."
IS_RUN = lambda path: (path / folder.CONFIG_FILE).exists()  # noqa: E731
RUN = jobs.JobKind("training", "run", "runs", IS_RUN, run_launch.resume_run, STOP_HELP, RESUME_HELP)


def run_details(run_dir: Path, status: dict[str, Any]) -> None:
    """Status, progress, curves and actions of one run, redrawn every few seconds while it trains."""
    state, summary, records = str(status.get("state")), runs.summarize_run(run_dir), folder.read_progress(run_dir)
    saved, settings = summary.epochs_completed, config_description(run_dir)
    then = f"Once the cause is fixed, **Resume** continues from the last saved epoch ({saved})."
    then = then if runs.may_resume(run_dir, state) else "Start a new run once the cause is fixed."
    result = f" with validation accuracy {percent(status['accuracy'])}" if "accuracy" in status else ""
    lost = "The training process ended without finishing (it was killed or the machine restarted). **Resume** "
    notes = {
        "stopped": f"Stopped after epoch {saved}. **Resume** continues from that checkpoint.",
        "interrupted": f"{lost}continues from the last saved epoch ({saved}).",
        "failed": f"The run failed: {status.get('error', 'no reason was recorded')}. The log has the details. {then}",
        "finished": f"Finished{result}. The best checkpoint is `{run_dir / runs.BEST_MODEL}`.",
    }
    last, batch = (records or [{}])[-1], next((r for r in reversed(records) if r.get("event") == "batch"), {})
    if last.get("event") == "epoch" and last.get("partial"):  # stopped in the middle of an epoch
        at = f"batch {batch['batch']}/{batch['steps']} of " if batch.get("epoch") == last["epoch"] else ""
        resume = f"**Resume** trains epoch {last['epoch']} in full, from the weights saved at the stop."
        notes["stopped"] = f"Stopped at {at}epoch {last['epoch']} ({saved} epochs completed before it). {resume}"
    jobs.header(run_dir, status, f"{summary.architecture} · {settings}", notes)
    waiting = "Starting: loading the libraries, the data and the model (a few seconds to a minute)…"
    if now := jobs.progress_bar(records, status, waiting=waiting):
        rate = f"{now.learning_rate:.2e}" if now.learning_rate is not None else "–"
        speed = f"{now.images_per_second:,.0f} img/s" if now.images_per_second else "–"
        common.metric_row(
            [
                ("Epochs done", f"{saved} / {summary.epochs}", "Completed, saved epochs."),
                ("Learning rate", rate, "The current rate, after warm-up, schedule and plateau reductions."),
                ("Best validation accuracy", percent(summary.best_val_accuracy), "Its weights are in best.keras."),
                ("Speed", speed, "Training images per second in the current epoch (including augmentation)."),
            ]
        )
    elif state not in folder.ACTIVE_STATES:
        st.caption("This run recorded no progress.")
    epochs, batches = progress.epoch_records(records), progress.current_epoch_batches(records)
    resumes = [record.get("initial_epoch") for record in records if record.get("event") == "start"]
    if epochs or batches:
        charts.training_curves(epochs, "training", batches=batches, resumes=resumes)
    else:
        st.caption("Loss and accuracy curves appear here as soon as the first batches are done.")
    jobs.precision_switch_note(run_dir, state)
    jobs.stop_resume_buttons(RUN, run_dir, state, access.locked())
    jobs.snapshot_download(run_dir, state)


def config_description(run_dir: Path) -> str:
    try:
        return describe_config(run_launch.load_config(run_dir))
    except FerError:
        return "its settings could not be read"


def new_run_section(runs_dir: Path, blocked: str | None, sources: list[Path]) -> None:
    """The settings form; its submission starts the run in its own process and the monitor switches to it."""
    st.subheader("New run")
    if blocked:
        st.warning(blocked, icon=":material/block:")
    if not sources:
        common.show_no_dataset_hint()
    names = architecture_names()
    options = dict(key="training_architecture", help=HELP["architecture"])
    architecture = st.selectbox("Architecture", names, names.index(DEFAULTS.architecture), **options)
    models = catalog.available_models(runs_dir)  # read once: the start and the teachers are chosen among them
    data, start = data_controls(sources), start_control(models, architecture)
    with st.form("training_new_run", border=True):
        name_column, tags_column = st.columns(2)
        name = name_column.text_input("Name", max_chars=folder.MAX_NAME, key="training_name", help=HELP["name"])
        tags = tags_column.text_input("Tags", key="training_tags", help="Comma-separated, such as: baseline, flip")
        settings, entered = settings_controls(start), architecture_controls(architecture, start)
        settings |= teacher_controls(models, data.get("classes"))
        options = dict(type="primary", icon=":material/rocket_launch:", disabled=bool(blocked) or not data.get("data"))
        submitted = st.form_submit_button("Start training", help="It trains in its own process, tab or not.", **options)
    failure, chosen = "These settings cannot be used.", settings | data
    if not submitted or (config := attempt(failure, lambda: train_config(architecture, entered, chosen))) is None:
        return
    if run_dir := attempt("The run could not be started.", lambda: run_launch.start_run(config, runs_dir), OSError):
        labelled = lambda: folder.write_label(run_dir, name=name, tags=tags.split(","))  # noqa: E731
        attempt("The run started, but its name and tags could not be saved.", labelled)
        jobs.started("training", run_dir, f"Started {run_dir.name}: it trains in its own process, tab or no tab.")


def runs_table_section(runs_dir: Path, all_runs: list[runs.RunSummary], locked: str | None) -> None:
    """Every run with its name, tags, status, result and settings; deleting one asks first (checkpoints cannot come
    back)."""
    st.subheader("All runs")
    if not all_runs:
        st.caption(f"Runs you start appear here, with their status and best validation accuracy (`{runs_dir}`).")
        return
    rows = [
        {"run": run.title, "tags": ", ".join(run.label.tags), "status": jobs.state_label(run.state)}
        | {"architecture": run.architecture, "epochs": f"{run.epochs_completed} / {run.epochs}"}
        | {"best_val_accuracy": run.best_val_accuracy, "duration": runs.run_duration(run, time.time())}
        | {"started": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started)) if run.started else None}
        | {"settings": config_description(run.path)}
        for run in all_runs
    ]
    st.dataframe(common.readable_table(rows, {"best_val_accuracy": "Best val. accuracy"}), hide_index=True)
    st.caption(f"Run folders live in `{runs_dir}`; `tensorboard --logdir {runs_dir}` shows their TensorBoard logs.")
    deletable = {run.run_id: run.title for run in all_runs if run.state not in folder.ACTIVE_STATES}
    if len(deletable) < len(all_runs):
        st.caption("A run that is training cannot be deleted: stop it first.")
    if not deletable:
        return None
    choice_column, button_column = st.columns([3, 1], vertical_alignment="bottom")
    choice = choice_column.selectbox("Run to delete", list(deletable), format_func=deletable.get, key="training_delete")
    options = dict(icon=":material/delete:", width="stretch", disabled=bool(locked), help=locked or "Asks first.")
    with button_column.popover("Delete…", **options):  # opening it is the first step, confirming the second
        st.warning(f"Delete **{deletable[choice]}** and its files? This cannot be undone.", icon=":material/warning:")
        confirmed = st.button("Yes, delete", type="primary", disabled=bool(locked), help="Remove the run folder now.")
    if confirmed and attempt("The run could not be deleted.", lambda: runs.delete_run(runs_dir / choice), OSError):
        flash("training", f"Deleted {deletable[choice]}.", ":material/delete:")
        st.rerun()


st.title("Training")
st.caption("Train a model in a background process that outlives this tab; watch, stop, resume, snapshot, compare.")
common.show_flash("training")
runs_directory, dataset_paths, every_run = folder.default_runs_dir(), dataset_sources(), runs.list_runs()
locked = access.locked()
blocked = locked or jobs.busy_message("for it to finish, then start a run", every_run)
jobs.monitor(RUN, runs_directory, every_run, run_details, locked)
new_run_section(runs_directory, blocked, dataset_paths)
jobs.restore_from_snapshot(runs_directory, blocked, dataset_paths)
runs_table_section(runs_directory, every_run, locked)
