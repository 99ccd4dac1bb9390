"""Training: configure a run, start it in its own process, watch it live, stop or resume it, manage past runs.

The page never trains inside the Streamlit script: it writes a run folder and starts `python -m ferlib train`
detached (`ferlib.jobs.runs.start_run`), then only reads the folder. A run therefore survives reloads and closed tabs,
and opening the page later finds it again. One run trains at a time (ferlib refuses a second one).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ferlib.data.augment import AugmentationConfig
from ferlib.errors import FerError
from ferlib.jobs import folder, progress, runs, searches
from ferlib.nets.architectures import ARCHITECTURE_DEFAULTS, architecture_names
from ferlib.nets.modelio import default_model_path, read_metadata
from ferlib.training.config import OPTIMIZERS, SCHEDULES, TrainConfig, describe_config
from pages.common import (
    data_directories,
    dataset_sources,
    flash,
    format_duration,
    require_app,
    show_error,
    show_flash,
    show_monitor_message,
    show_no_dataset_hint,
    stop_resume_buttons,
)

require_app("pages/training.py")

REFRESH_SECONDS = 2.0
LOG_LINES = 40
DEFAULTS = TrainConfig()
STATE_BADGES = {
    "created": ("starting", "blue", ":material/hourglass_top:"),
    "running": ("running", "blue", ":material/play_circle:"),
    "finished": ("finished", "green", ":material/check_circle:"),
    "failed": ("failed", "red", ":material/error:"),
    "stopped": ("stopped", "orange", ":material/stop_circle:"),
    "interrupted": ("interrupted", "orange", ":material/warning:"),
}
ACTIVATIONS = ("relu", "elu", "gelu", "swish", "selu")
HYPERPARAMETER_HELP = {
    "filters": "Channels of each convolution block, comma-separated: one block per number, each halving the image.",
    "convs_per_block": "3×3 convolutions (each with batch norm) stacked in every block before its pooling.",
    "kernel_size": "Side of the convolution kernels in pixels.",
    "activation": "The non-linearity after every convolution and the dense layer.",
    "block_dropout": "Fraction of activations dropped after each block while training (0 switches it off).",
    "dense_units": "Width of the dense layer before the classifier (0 goes straight from the features to the output).",
    "dense_dropout": "Fraction of the dense layer's activations dropped while training.",
}


# --- small formatting helpers -------------------------------------------------------------------------------


def state_badge(state: str) -> None:
    label, color, icon = STATE_BADGES.get(state, (state, "gray", None))
    st.badge(label, color=color, icon=icon)


def state_label(state: str) -> str:
    return STATE_BADGES.get(state, (state,))[0]


def parse_widths(text: str) -> tuple[int, ...]:
    """'32, 64, 128' → (32, 64, 128); anything else raises ValueError in ferlib's wording."""
    try:
        widths = tuple(int(part) for part in text.replace(";", ",").split(",") if part.strip())
    except FerError:
        raise FerError(f"Expected comma-separated whole numbers such as 32, 64, 128; received {text!r}") from None
    if not widths or min(widths) < 1:
        raise FerError(f"Expected at least one positive channel count; received {text!r}")
    return widths


def choose_watched_run(all_runs: list[runs.RunSummary], active: list[runs.RunSummary]) -> str:
    """The run shown in the monitor: the one just started, else the user's choice, else the active or newest."""
    run_ids = [run.run_id for run in all_runs]
    states = {run.run_id: run.state for run in all_runs}
    if "training_watch_next" in st.session_state:
        st.session_state["training_watched_run"] = st.session_state.pop("training_watch_next")
    if st.session_state.get("training_watched_run") not in run_ids:
        st.session_state["training_watched_run"] = (active or all_runs)[0].run_id
    return st.selectbox(
        "Run",
        run_ids,
        key="training_watched_run",
        format_func=lambda run_id: f"{run_id} · {state_label(states[run_id])}",
        help="Runs are read from their folders, so a run started earlier (even from another tab or the "
        "command line) is found here. The newest is listed first.",
    )


def monitor_section(runs_dir: Path, all_runs: list[runs.RunSummary], active: list[runs.RunSummary]) -> None:
    st.subheader("Watch a run")
    if not all_runs:
        st.info(
            "No runs yet. Choose the settings under **New run** below and press **Start training**: the run "
            "trains in its own process, so you can close this tab and come back to watch it.",
            icon=":material/model_training:",
        )
        return
    run_id = choose_watched_run(all_runs, active)
    live = any(run.run_id == run_id for run in active)
    monitor = st.fragment(run_every=REFRESH_SECONDS if live else None)(render_monitor)
    monitor(runs_dir / run_id, live)


def render_monitor(run_dir: Path, was_live: bool) -> None:
    """Status, progress, curves, log and actions of one run; re-run every few seconds while it trains."""
    if not (run_dir / folder.CONFIG_FILE).exists():
        if was_live:
            st.rerun()  # stop polling: the whole page redraws without the vanished run
        st.info("This run's folder is gone (it was deleted). Pick another run above.", icon=":material/info:")
        return
    status = folder.read_status(run_dir)
    state = str(status.get("state"))
    if (state in folder.ACTIVE_STATES) != was_live:
        st.rerun()  # the run started or ended: refresh the whole page (runs table, Start button, refresh timer)
    show_monitor_message("training")
    records = folder.read_progress(run_dir)
    summary = runs.summarize_run(run_dir)
    render_status(run_dir, status, summary)
    render_progress(records, state, summary)
    render_curves(run_dir.name, records)
    stop_resume_buttons(
        run_dir,
        state,
        scope="training",
        noun="run",
        resume=runs.resume_run,
        stop_help="Ask the training process to stop after its current batch; it saves a checkpoint first, "
        "so the run can be resumed later.",
        resume_help="Continue from the last completed epoch (last.keras) in a new training process. "
        "Refused while another run is training.",
    )
    render_log(run_dir)


def render_status(run_dir: Path, status: dict[str, Any], summary: runs.RunSummary) -> None:
    state = str(status.get("state"))
    title, badge = st.columns([5, 1], vertical_alignment="center")
    try:
        description = f"{summary.architecture} · {describe_config(runs.load_config(run_dir))}"
    except FerError:
        description = f"{summary.architecture} · config.json could not be read"
    title.markdown(f"**{run_dir.name}**  \n{description}")
    with badge:
        state_badge(state)
    explanations = {
        "created": "Starting: the training process is starting up (loading its libraries, then the data).",
        "stopped": f"Stopped after epoch {summary.epochs_completed}. **Resume** continues from that checkpoint.",
        "interrupted": "The training process ended without finishing (it was killed or the machine restarted). "
        f"**Resume** continues from the last saved epoch ({summary.epochs_completed}).",
    }
    if state == "failed":
        if runs.may_resume(run_dir, state):
            saved = summary.epochs_completed
            then = f"Once the cause is fixed, **Resume** continues from the last saved epoch ({saved})."
        else:
            then = "Start a new run once the cause is fixed."
        st.error(
            f"The run failed: {status.get('error', 'no reason was recorded')}. The log below has the details. {then}",
            icon=":material/error:",
        )
    elif state == "finished":
        accuracy = status.get("accuracy")
        result = f" with validation accuracy {accuracy:.1%}" if isinstance(accuracy, float) else ""
        st.success(
            f"Finished{result}. The best checkpoint is `{run_dir / runs.BEST_MODEL}`.", icon=":material/check_circle:"
        )
    elif state in explanations:
        st.info(explanations[state], icon=":material/info:")


def render_progress(records: list[dict[str, Any]], state: str, summary: runs.RunSummary) -> None:
    snapshot = progress.progress_snapshot(records)
    live = state in folder.ACTIVE_STATES
    if snapshot is None:
        if live:
            st.progress(0.0, text="Waiting for the first batch (loading the data can take a few seconds)…")
        else:
            st.caption("This run recorded no progress.")
        return
    eta = snapshot.eta_at(time.time()) if state == "running" else None
    text = f"Epoch {snapshot.epoch}/{snapshot.epochs}"
    if snapshot.batch is not None and snapshot.steps:
        text += f" · batch {snapshot.batch}/{snapshot.steps}"
    if eta is not None:
        text += f" · about {format_duration(eta)} left"
    st.progress(snapshot.fraction, text=text)
    epochs, rate, best, speed = st.columns(4)
    epochs.metric("Epochs done", f"{summary.epochs_completed} / {summary.epochs}", help="Completed, saved epochs.")
    rate.metric(
        "Learning rate",
        f"{snapshot.learning_rate:.2e}" if snapshot.learning_rate is not None else "–",
        help="The optimizer's current learning rate (after warm-up, schedule and plateau reductions).",
    )
    best.metric(
        "Best validation accuracy",
        f"{summary.best_val_accuracy:.1%}" if summary.best_val_accuracy is not None else "–",
        help="The best epoch so far on the validation split; its weights are kept in best.keras.",
    )
    speed.metric(
        "Speed",
        f"{snapshot.images_per_second:,.0f} img/s" if snapshot.images_per_second else "–",
        help="Training images per second in the current epoch (including augmentation).",
    )


def curve_figure(title: str, series: list[tuple[str, list[float], list[float | None], str]], percent: bool):
    """A small line chart with one trace per (name, x, y, dash) series."""
    figure = go.Figure()
    for name, x_values, y_values, dash in series:
        figure.add_trace(go.Scatter(x=x_values, y=y_values, name=name, mode="lines+markers", line=dict(dash=dash)))
    figure.update_layout(
        title=dict(text=title, font=dict(size=14)),
        height=260,
        margin=dict(l=0, r=10, t=35, b=0),
        legend=dict(orientation="h", y=-0.25),
        xaxis=dict(title="epoch"),
        yaxis=dict(tickformat=".0%" if percent else None),
    )
    return figure


def render_curves(run_id: str, records: list[dict[str, Any]]) -> None:
    """Loss, accuracy and learning rate per epoch, with the epoch in progress as a dotted running line."""
    epochs = progress.epoch_records(records)
    batches = progress.current_epoch_batches(records)
    if not epochs and not batches:
        st.caption("Loss and accuracy curves appear here as soon as the first batches are done.")
        return
    x_epochs = [record["epoch"] for record in epochs]
    x_batches = [record["epoch"] - 1 + record["batch"] / max(1, record["steps"]) for record in batches]

    def column(records_: list[dict[str, Any]], key: str) -> list[float | None]:
        return [record.get(key) for record in records_]

    loss_column, accuracy_column, rate_column = st.columns(3)
    charts = {
        loss_column: ("Loss", "loss", False),
        accuracy_column: ("Accuracy", "accuracy", True),
    }
    for container, (title, key, percent) in charts.items():
        series = [
            ("train", x_epochs, column(epochs, key), "solid"),
            ("validation", x_epochs, column(epochs, f"val_{key}"), "solid"),
            ("train, this epoch", x_batches, column(batches, key), "dot"),
        ]
        container.plotly_chart(curve_figure(title, series, percent), key=f"curve-{key}-{run_id}", width="stretch")
    rates = [("learning rate", x_epochs, column(epochs, "learning_rate"), "solid")]
    rate_column.plotly_chart(curve_figure("Learning rate", rates, False), key=f"curve-lr-{run_id}", width="stretch")


def render_log(run_dir: Path) -> None:
    tail = folder.read_log_tail(run_dir, max_lines=LOG_LINES)
    st.caption(f"Last {LOG_LINES} lines of `{run_dir / folder.LOG_FILE}`")
    st.code(tail or "(the log is empty so far)", language="text", height=260)


# --- starting a run -----------------------------------------------------------------------------------------


def dataset_label(path: Path) -> str:
    return f"{path.name}  ({path.parent})"


def hyperparameter_widget(architecture: str, name: str, default: Any) -> Any:
    """One architecture setting, with a widget chosen by its default's type."""
    key = f"training_hp_{architecture}_{name}"
    help_text = HYPERPARAMETER_HELP.get(name, f"The architecture's {name!r} setting.") + f" Default: {default}."
    label = name.replace("_", " ").capitalize()
    if isinstance(default, (tuple, list)):
        return st.text_input(label, ", ".join(str(value) for value in default), key=key, help=help_text)
    if isinstance(default, str):
        options = list(ACTIVATIONS) if default in ACTIVATIONS else [default, *ACTIVATIONS]
        return st.selectbox(label, options, index=options.index(default), key=key, help=help_text)
    if isinstance(default, int):
        minimum = 0 if name == "dense_units" else 1
        return st.number_input(label, min_value=minimum, max_value=4096, value=default, step=1, key=key, help=help_text)
    return st.slider(label, 0.0, 0.9, float(default), 0.05, key=key, help=help_text)


def hyperparameter_controls(architecture: str) -> dict[str, Any]:
    """Widgets for every setting of the chosen architecture, returning the values as entered."""
    defaults = ARCHITECTURE_DEFAULTS[architecture]
    values: dict[str, Any] = {}
    with st.expander(f"Architecture settings ({architecture})"):
        columns = st.columns(2)
        for index, (name, default) in enumerate(defaults.items()):
            with columns[index % 2]:
                values[name] = hyperparameter_widget(architecture, name, default)
    return values


def parse_hyperparameters(architecture: str, entered: dict[str, Any]) -> dict[str, Any]:
    """Entered values in the types the architecture expects (channel lists from text)."""
    defaults = ARCHITECTURE_DEFAULTS[architecture]
    return {
        name: parse_widths(value) if isinstance(defaults[name], (tuple, list)) else value
        for name, value in entered.items()
    }


def optimisation_controls() -> dict[str, Any]:
    first, second, third, fourth = st.columns(4)
    epochs = first.number_input(
        "Epochs",
        1,
        500,
        DEFAULTS.epochs,
        key="training_epochs",
        help="Passes over the training images. VGG-style models on FER-2013 usually peak after 30–60.",
    )
    batch_size = second.number_input(
        "Batch size",
        1,
        4096,
        DEFAULTS.batch_size,
        key="training_batch_size",
        help="Images per optimisation step. Larger batches are faster per image on CPU but may need a larger "
        "learning rate.",
    )
    optimizer = third.selectbox(
        "Optimizer",
        OPTIMIZERS,
        index=OPTIMIZERS.index(DEFAULTS.optimizer),
        key="training_optimizer",
        help="sgd: SGD with Nesterov momentum 0.9 (the classic FER-2013 recipe); adam; adamw: Adam with "
        "decoupled weight decay.",
    )
    learning_rate = fourth.number_input(
        "Learning rate",
        0.00001,
        10.0,
        DEFAULTS.learning_rate,
        step=0.001,
        format="%.5f",
        key="training_learning_rate",
        help="The peak step size. Typical: 0.01 for SGD, 0.001 for Adam/AdamW.",
    )
    first, second, third, fourth = st.columns(4)
    schedule = first.selectbox(
        "Schedule",
        SCHEDULES,
        index=SCHEDULES.index(DEFAULTS.schedule),
        key="training_schedule",
        help="cosine: decay to 1% of the rate by the last epoch; plateau: halve it when validation accuracy "
        "stalls for 3 epochs; constant: keep it.",
    )
    warmup_epochs = second.number_input(
        "Warm-up epochs",
        0,
        50,
        DEFAULTS.warmup_epochs,
        key="training_warmup",
        help="Epochs over which the learning rate ramps up linearly before the schedule starts; steadies the first "
        "steps.",
    )
    patience = third.number_input(
        "Early stopping patience",
        0,
        100,
        DEFAULTS.early_stopping_patience,
        key="training_patience",
        help="Stop when validation accuracy has not improved for this many epochs. 0 switches early stopping off.",
    )
    label_smoothing = fourth.slider(
        "Label smoothing",
        0.0,
        0.5,
        DEFAULTS.label_smoothing,
        0.05,
        key="training_label_smoothing",
        help="Moves this much of each target's probability onto the other classes: guards against over-confident "
        "predictions on FER-2013's noisy labels.",
    )
    weight_decay = st.number_input(
        "Weight decay",
        0.0,
        0.1,
        DEFAULTS.weight_decay,
        step=0.0001,
        format="%.5f",
        key="training_weight_decay",
        help="Shrinks the weights a little every step (L2-style regularisation). 0 switches it off. Used by sgd and "
        "adamw (which falls back to 0.004 when it is 0); adam has none.",
    )
    keep_epochs = st.toggle(
        "Keep every epoch's checkpoint",
        DEFAULTS.keep_epoch_checkpoints,
        key="training_keep_epochs",
        help="Saves each epoch's weights in the run's epochs/ folder (the model's size each), so "
        "`python -m ferlib average` can average them (stochastic weight averaging): usually a little more accurate "
        "than any one epoch when the schedule is constant for those epochs.",
    )
    return {
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "optimizer": optimizer,
        "learning_rate": float(learning_rate),
        "schedule": schedule,
        "warmup_epochs": int(warmup_epochs),
        "early_stopping_patience": int(patience),
        "label_smoothing": float(label_smoothing),
        "weight_decay": float(weight_decay),
        "keep_epoch_checkpoints": bool(keep_epochs),
    }


def switched_amount(column, name: str, label: str, default: float, maximum: float, step: float, help_text: str):
    """A toggle with its strength slider: the amount when switched on, 0 when off."""
    on = column.toggle(label, value=default > 0, key=f"training_aug_{name}_on", help=help_text)
    amount = column.slider(
        f"{label} amount",
        0.0,
        maximum,
        float(default) if default > 0 else step * 2,
        step,
        key=f"training_aug_{name}",
        help=help_text,
        label_visibility="collapsed",
    )
    return float(amount) if on else 0.0


def augmentation_controls() -> AugmentationConfig:
    defaults = AugmentationConfig()
    st.markdown("**Augmentation** (applied to training batches only)")
    columns = st.columns(6)
    flip = columns[0].toggle(
        "Flip",
        value=defaults.horizontal_flip,
        key="training_aug_flip",
        help="Mirror faces left-right at random: expressions are symmetric enough that this doubles the data.",
    )
    return AugmentationConfig(
        horizontal_flip=flip,
        translate=switched_amount(
            columns[1],
            "translate",
            "Translate",
            defaults.translate,
            0.45,
            0.05,
            "Shift faces up to this fraction of the image in each direction.",
        ),
        rotate_degrees=switched_amount(
            columns[2],
            "rotate",
            "Rotate",
            defaults.rotate_degrees,
            90.0,
            5.0,
            "Rotate faces by up to this many degrees either way.",
        ),
        zoom=switched_amount(
            columns[3],
            "zoom",
            "Zoom",
            defaults.zoom,
            0.45,
            0.05,
            "Zoom in or out by up to this fraction.",
        ),
        contrast=switched_amount(
            columns[4],
            "contrast",
            "Contrast",
            defaults.contrast,
            0.9,
            0.05,
            "Change contrast by up to this factor: helps with FER-2013's mix of lighting.",
        ),
        erasing=switched_amount(
            columns[5],
            "erasing",
            "Erasing",
            defaults.erasing,
            1.0,
            0.05,
            "Probability of blanking a random rectangle (random erasing): teaches the model to use the whole face.",
        ),
    )


def data_controls(sources: list[Path]) -> dict[str, Any]:
    first, second, third = st.columns([3, 2, 1])
    dataset = first.selectbox(
        "Dataset",
        sources,
        format_func=dataset_label,
        key="training_dataset",
        help="FER-2013 as Kaggle's zip or folder, or fer2013.csv, found in "
        + ", ".join(f"`{directory}`" for directory in data_directories())
        + ". Validation is FER-2013's PublicTest split (or a seeded 10% of train).",
    )
    train_fraction = second.slider(
        "Training fraction",
        0.05,
        1.0,
        DEFAULTS.train_fraction,
        0.05,
        key="training_fraction",
        help="Train on a stratified share of the training split: smaller runs for quick experiments.",
    )
    seed = third.number_input(
        "Seed",
        0,
        2**31 - 1,
        DEFAULTS.seed,
        key="training_seed",
        help="Seeds the weights, shuffling, augmentation and training fraction, so a run can be repeated.",
    )
    return {
        "data": str(Path(dataset).expanduser().resolve()) if dataset is not None else "",
        "train_fraction": float(train_fraction),
        "seed": int(seed),
    }


def warm_start_choices(runs_dir: Path, architecture: str) -> dict[str, str]:
    """Saved models of `architecture` a run can start from: label by path, the shipped model first."""
    choices = {"": "Random initialisation"}
    shipped = default_model_path().expanduser().resolve()
    try:
        shipped_config = read_metadata(shipped).get("config") if shipped.exists() else None
    except FerError:  # a damaged card: the shipped model is not offered (the Home page says why)
        shipped_config = None
    if isinstance(shipped_config, dict) and shipped_config.get("architecture") == architecture:
        choices[str(shipped)] = f"Shipped model ({shipped.name})"  # labels stay stable, so a choice survives reruns
    for run in runs.list_runs(runs_dir):
        best = (run.path / runs.BEST_MODEL).resolve()
        if run.architecture == architecture and run.state in ("finished", "stopped") and best.exists():
            choices[str(best)] = f"Run {run.run_id} (best checkpoint)"
    return choices


def warm_start_control(runs_dir: Path, architecture: str) -> str:
    choices = warm_start_choices(runs_dir, architecture)
    return st.selectbox(
        "Start from",
        list(choices),
        format_func=choices.get,
        key=f"training_initial_model_{architecture}",
        help="Random initialisation trains from scratch. A saved model of the same architecture and layer sizes "
        "continues from its weights with this run's own schedule and settings (a warm restart): how a longer "
        "training continues in a new run.",
    )


def start_training(runs_dir: Path, architecture: str, settings: dict[str, Any], entered: dict[str, Any]) -> None:
    """Validate the settings, start the run in its own process and switch the monitor to it."""
    try:
        config = TrainConfig(
            architecture=architecture, hyperparameters=parse_hyperparameters(architecture, entered), **settings
        )
    except FerError as error:
        show_error("These settings cannot be used.", error)
        return
    try:
        run_dir = runs.start_run(config, runs_dir)
    except (ValueError, OSError) as error:  # OSError: a read-only or vanished folder
        show_error("The run could not be started.", error)
        return
    st.session_state["training_watch_next"] = run_dir.name
    flash(
        "training",
        f"Started {run_dir.name}. It trains in its own process; you can close this tab.",
        ":material/rocket_launch:",
    )
    st.rerun()


def new_run_section(runs_dir: Path, active: list[runs.RunSummary]) -> None:
    st.subheader("New run")
    sources = dataset_sources()
    if active:
        st.warning(
            f"**{active[0].run_id}** is {state_label(active[0].state)}. This machine trains one run at a time: "
            "stop it under **Watch a run** (it can be resumed later) or wait for it to finish, then start another.",
            icon=":material/block:",
        )
    searching = searches.active_searches()
    if searching and not active:
        st.warning(
            f"The hyperparameter search **{searching[0].search_id}** is {state_label(searching[0].state)}. One job "
            "runs at a time: stop it on the **Tune** page (it can be resumed later), then start a run.",
            icon=":material/block:",
        )
    if not sources:
        show_no_dataset_hint()
    names = architecture_names()
    architecture = st.selectbox(
        "Architecture",
        names,
        index=names.index(DEFAULTS.architecture),
        key="training_architecture",
        help="compact_cnn: three conv blocks and global pooling, fast, for quick tries. vgg_fer: four VGG-style "
        "blocks of two 3×3 convolutions with batch norm and a dense head, the stronger and slower model.",
    )
    with st.form("training_new_run", border=True):
        settings = data_controls(sources)
        settings["initial_model"] = warm_start_control(runs_dir, architecture)
        settings.update(optimisation_controls())
        settings["augmentation"] = augmentation_controls()
        entered = hyperparameter_controls(architecture)
        submitted = st.form_submit_button(
            "Start training",
            type="primary",
            icon=":material/rocket_launch:",
            disabled=bool(active) or bool(searching) or not sources,
            help="Creates a run folder and trains in a separate process that keeps going if you close the tab.",
        )
    if submitted:
        start_training(runs_dir, architecture, settings, entered)


# --- the runs table -----------------------------------------------------------------------------------------


def config_description(run: runs.RunSummary) -> str:
    try:
        return describe_config(runs.load_config(run.path))
    except FerError:
        return "config.json could not be read"


def runs_frame(all_runs: list[runs.RunSummary]) -> pd.DataFrame:
    now = time.time()
    return pd.DataFrame(
        {
            "Run": [run.run_id for run in all_runs],
            "Status": [state_label(run.state) for run in all_runs],
            "Architecture": [run.architecture for run in all_runs],
            "Epochs": [f"{run.epochs_completed} / {run.epochs}" for run in all_runs],
            "Best val. accuracy": [run.best_val_accuracy for run in all_runs],
            "Duration": [format_duration(runs.run_duration(run, now)) for run in all_runs],
            "Started": [datetime.fromtimestamp(run.started) if run.started else None for run in all_runs],
            "Settings": [config_description(run) for run in all_runs],
        }
    )


def delete_controls(runs_dir: Path, all_runs: list[runs.RunSummary]) -> None:
    """Pick a run, press Delete, then confirm: two steps, because checkpoints cannot be recovered."""
    deletable = [run.run_id for run in all_runs if run.state not in folder.ACTIVE_STATES]
    if len(deletable) < len(all_runs):
        st.caption("A run that is training cannot be deleted: stop it first.")
    if not deletable:
        return
    pending = st.session_state.get("training_delete_pending")
    if pending not in deletable:
        choice_column, button_column = st.columns([3, 1], vertical_alignment="bottom")
        choice = choice_column.selectbox(
            "Run to delete",
            deletable,
            key="training_delete_choice",
            help="Deleting removes the run's whole folder: checkpoints, logs and TensorBoard files.",
        )
        if button_column.button(
            "Delete…",
            icon=":material/delete:",
            key="training_delete",
            width="stretch",
            help="Asks for confirmation before anything is removed.",
        ):
            st.session_state["training_delete_pending"] = choice
            st.rerun()
        return
    st.warning(f"Delete **{pending}** and all its files? This cannot be undone.", icon=":material/warning:")
    confirm_column, cancel_column, _ = st.columns([1, 1, 3])
    if confirm_column.button(
        "Yes, delete",
        type="primary",
        key="training_delete_confirm",
        width="stretch",
        help="Remove the run folder now.",
    ):
        st.session_state.pop("training_delete_pending")
        try:
            runs.delete_run(runs_dir / pending)
        except (ValueError, OSError) as error:  # OSError: a read-only or vanished folder
            show_error("The run could not be deleted.", error)
            return
        flash("training", f"Deleted {pending}.", ":material/delete:")
        st.rerun()
    if cancel_column.button("Cancel", key="training_delete_cancel", width="stretch", help="Keep the run."):
        st.session_state.pop("training_delete_pending")
        st.rerun()


def runs_table_section(runs_dir: Path, all_runs: list[runs.RunSummary]) -> None:
    st.subheader("All runs")
    if not all_runs:
        st.caption(f"Runs you start appear here, with their status and best validation accuracy (folder `{runs_dir}`).")
        return
    st.dataframe(
        runs_frame(all_runs),
        hide_index=True,
        width="stretch",
        column_config={
            "Best val. accuracy": st.column_config.NumberColumn(format="percent"),
            "Started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        },
    )
    st.caption(f"Run folders live in `{runs_dir}`; `tensorboard --logdir {runs_dir}` shows their TensorBoard logs.")
    delete_controls(runs_dir, all_runs)


# --- the page -----------------------------------------------------------------------------------------------

st.title("Training")
st.caption(
    "Train a model on FER-2013 in a background process, watch its loss and accuracy live, stop and resume it, "
    "and compare runs. Runs keep going when you close the tab."
)
show_flash("training")
runs_directory = folder.default_runs_dir()
every_run = runs.list_runs(runs_directory)
active_now = [run for run in every_run if run.state in folder.ACTIVE_STATES]
monitor_section(runs_directory, every_run, active_now)
new_run_section(runs_directory, active_now)
runs_table_section(runs_directory, every_run)
