"""Training: configure a run, start it in its own process, watch it, stop or resume it, carry it to another machine
as a snapshot, and manage past runs. ferlib trains detached; the page only reads run folders."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import streamlit as st

from ferlib.data.augment import AugmentationConfig
from ferlib.data.sources import data_directories, dataset_sources
from ferlib.errors import FerError
from ferlib.evaluation import catalog
from ferlib.jobs import folder, progress, runs
from ferlib.nets.architectures import (
    ACTIVATIONS,
    ARCHITECTURE_DEFAULTS,
    OPTIONAL_LAYERS,
    architecture_names,
    shapes_layers,
)
from ferlib.nets.precision import FLOAT32, MIXED_BFLOAT16, PRECISIONS, fast_bfloat16
from ferlib.training.config import OPTIMIZERS, SCHEDULES, TrainConfig, describe_config
from ferlib.tuning import search_space
from pages.components import access, charts, common, jobs
from pages.components.class_choice import class_set_choice
from pages.components.common import attempt, dataset_label, flash, percent, require_app

require_app("pages/training.py")

DEFAULTS = TrainConfig()
STOP_HELP = "Stop after the current batch; a checkpoint is saved first, so the run can be resumed later."
RESUME_HELP = "Continue from the last saved epoch in a new training process."
IS_RUN = lambda path: (path / folder.CONFIG_FILE).exists()  # noqa: E731
RUN = jobs.JobKind("training", "run", "runs", IS_RUN, runs.resume_run, STOP_HELP, RESUME_HELP)
HELP = {name: spec.help for name, spec in search_space.SPECS.items()} | {  # by TrainConfig field or setting
    "name": "A name for the run, shown wherever runs are listed (optional; you can add tags and a note later).",
    "architecture": "compact_cnn: three conv blocks, fast. vgg_fer: four VGG-style blocks and a dense head, stronger.",
    "data": "FER-2013 as Kaggle's zip or folder, or fer2013.csv, from {}. Validation is FER-2013's PublicTest "
    "split where the files name it, else a seeded 10% of the training faces.",
    "train_fraction": "Train on a stratified share of the training split: smaller runs for quick experiments.",
    "seed": "Seeds the weights, shuffling, augmentation and training fraction, so a run can be repeated.",
    "initial_model": "A saved model of the same architecture and sizes whose weights start this run (a warm restart).",
    "epochs": "Passes over the training images. VGG-style models on FER-2013 still improve after 60–90 epochs "
    "when the learning rate decays over the whole run.",
    "batch_size": "Images per step. Larger batches are faster per image on CPU but may need a larger learning rate.",
    "schedule": "cosine: decay to 1% by the last epoch; plateau: halve when validation stalls 3 epochs; constant.",
    "warmup_epochs": "Epochs over which the learning rate ramps up linearly before the schedule starts.",
    "early_stopping_patience": "Stop when validation accuracy has not improved for this many epochs (0: never).",
    "label_smoothing": "Moves this much of each target onto the other classes: against FER-2013's noisy labels.",
    "weight_decay": "Shrinks the weights a little every step (sgd, adamw; adamw uses 0.004 when 0). 0: off.",
    "keep_epoch_checkpoints": "Saves each epoch's weights, so `python -m ferlib average` can average them (SWA).",
    "precision": "mixed bfloat16 computes in bfloat16 with float32 weights: about 1.4x faster on CPUs with AVX-512 "
    "BF16 or AMX, many times slower elsewhere (about 11x on an AVX2 CPU). The saved best model computes in float32 "
    "either way.",
    "filters": "Channels of each convolution block, comma-separated: one block per number, each halving the image.",
    "dense_units": "Width of the dense layer before the classifier (0: straight from the features to the output).",
    "dense_dropout": "Fraction of the dense layer's activations dropped while training.",
    "input_crop": "Look at the central square of this side only (training shifts the face under it); 0: all of it.",
}
PRECISION_LABELS = {
    FLOAT32: "float32",
    MIXED_BFLOAT16: "mixed bfloat16 "
    + ("(faster on this CPU)" if fast_bfloat16() else "(much slower here: no native bfloat16)"),
}
FIELDS = [  # TrainConfig field, label, then a menu's options or a number's minimum, maximum and step
    ("train_fraction", "Training fraction", 0.05, 1.0, 0.05),
    ("seed", "Seed", 0, 2**31 - 1, 1),
    ("epochs", "Epochs", 1, 500, 1),
    ("batch_size", "Batch size", 1, 4096, 1),
    ("optimizer", "Optimizer", OPTIMIZERS),
    ("learning_rate", "Learning rate", 0.00001, 10.0, 0.001),
    ("schedule", "Schedule", SCHEDULES),
    ("warmup_epochs", "Warm-up epochs", 0, 50, 1),
    ("early_stopping_patience", "Early stopping patience", 0, 100, 1),
    ("label_smoothing", "Label smoothing", 0.0, 0.5, 0.05),
    ("weight_decay", "Weight decay", 0.0, 0.1, 0.0001),
    ("keep_epoch_checkpoints", "Keep all epochs"),
]
AUGMENTATIONS = {  # AugmentationConfig field: label, maximum and step of its amount (none: a switch), help
    "horizontal_flip": ("Flip", None, None, "Mirror faces left-right at random: expressions are symmetric enough."),
    "translate": ("Translate", 0.45, 0.05, "Shift faces up to this fraction of the image in each direction."),
    "rotate_degrees": ("Rotate", 90.0, 5.0, "Rotate faces by up to this many degrees either way."),
    "zoom": ("Zoom", 0.45, 0.05, "Zoom in or out by up to this fraction."),
    "contrast": ("Contrast", 0.9, 0.05, "Change contrast by up to this factor: FER-2013 mixes lighting."),
    "erasing": ("Erasing", 1.0, 0.05, "Probability of blanking a random rectangle: use the whole face."),
}


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
        return describe_config(runs.load_config(run_dir))
    except FerError:
        return "its settings could not be read"


def train_config(architecture: str, entered: dict[str, Any], settings: dict[str, Any]) -> TrainConfig:
    """The run's config from the form: channel lists from their text ('32, 64' → (32, 64)), then TrainConfig's
    checks."""
    hyperparameters = dict(entered)
    for name, text in entered.items():
        if isinstance(ARCHITECTURE_DEFAULTS[architecture][name], (tuple, list)):
            try:
                values = tuple(int(part) for part in str(text).replace(";", ",").split(",") if part.strip())
            except ValueError:
                raise FerError(
                    f"Expected comma-separated whole numbers such as 32, 64, 128; received {text!r}"
                ) from None
            if not values or min(values) < 1:
                raise FerError(f"Expected at least one positive channel count; received {text!r}")
            hyperparameters[name] = values
    return TrainConfig(architecture=architecture, hyperparameters=hyperparameters, **settings)


def architecture_controls(architecture: str, start: catalog.CatalogEntry | None = None) -> dict[str, Any]:
    """A widget per setting of the architecture, chosen by its default's type; the values as entered.

    With a starting model, its card's settings are the values, and the ones that shape its layers are fixed: its
    weights fit no other sizes. Its widgets have their own keys, so choosing it resets them.
    """
    entered: dict[str, Any] = {}
    defaults, stored = ARCHITECTURE_DEFAULTS[architecture], (start.hyperparameters if start else None) or {}
    values = {name: stored.get(name, default) for name, default in defaults.items()}  # a card lists changes only
    fixed = {name for name in defaults if start and shapes_layers(name)}
    suffix = f"_from_{start.key}" if start else ""  # the catalog's key: stable across reruns
    with st.expander(f"Architecture settings ({architecture})"):
        if fixed:
            st.caption("The sizes are the starting model's: its weights fit no others. Dropout rates can change.")
        columns = st.columns(2)
        for index, (name, value) in enumerate(values.items()):
            column, label, default = columns[index % 2], name.replace("_", " ").capitalize(), defaults[name]
            help_text = f"{HELP.get(name, '')} Default: {default}."
            options = dict(key=f"training_hp_{architecture}_{name}{suffix}", help=help_text, disabled=name in fixed)
            if isinstance(default, (tuple, list)):  # the kind of widget follows the architecture's default
                entered[name] = column.text_input(label, ", ".join(map(str, value)), **options)
            elif isinstance(default, str):
                entered[name] = column.selectbox(label, list(dict.fromkeys([value, *ACTIVATIONS])), **options)
            elif isinstance(default, int):
                low = 0 if name in OPTIONAL_LAYERS else 1  # 0 leaves the layer out
                entered[name] = column.number_input(label, low, 4096, int(value), **options)
            else:
                entered[name] = column.slider(label, 0.0, 0.9, float(value), 0.05, **options)
    return entered


def config_control(column, field: str, label: str, *limits) -> Any:
    """A widget for a TrainConfig field, at its default: a toggle, a menu of `limits[0]`, or a number (min, max,
    step) in a box or, for fractions, on a slider."""
    default, options = getattr(DEFAULTS, field), dict(key=f"training_{field}", help=HELP[field])
    if isinstance(default, bool):
        return column.toggle(label, default, **options)
    if len(limits) == 1:
        return column.selectbox(label, limits[0], limits[0].index(default), **options)
    widget = column.slider if field in ("train_fraction", "label_smoothing") else column.number_input
    return widget(label, *limits[:2], default, limits[2], "%.5f" if limits[2] in (0.001, 0.0001) else None, **options)


def data_controls(sources: list[Path]) -> dict[str, Any]:
    """The run's dataset and the classes to tell apart on it (with the faces per class they keep)."""
    help_text = HELP["data"].format(", ".join(f"`{directory}`" for directory in data_directories()))
    data = st.selectbox("Dataset", sources, format_func=dataset_label, key="training_dataset", help=help_text)
    counted = attempt("This dataset cannot be read.", lambda: common.load_dataset(str(data)).counts()) if data else None
    classes = class_set_choice("training_classes", counted or None)
    settings = {"data": str(Path(data).expanduser().resolve()) if data else ""}
    return {**settings, "classes": classes.to_config()} if classes else {}


def start_control(runs_dir: Path, architecture: str) -> catalog.CatalogEntry | None:
    """The model whose weights start the run, if any. Outside the form, so that choosing one fills the architecture
    settings with its own."""
    entries = catalog.available_models(runs_dir)
    models = {str(entry.model_path): entry for entry in entries if entry.architecture == architecture}
    starts = {"": "Random initialisation", **{path: common.entry_label(entry) for path, entry in models.items()}}
    options = dict(format_func=starts.get, key=f"training_initial_model_{architecture}", help=HELP["initial_model"])
    return models.get(st.selectbox("Start from", list(starts), **options))


def settings_controls(start: catalog.CatalogEntry | None) -> dict[str, Any]:
    """The run's starting model, precision, optimisation and augmentation settings, as TrainConfig fields."""
    precision_column, _ = st.columns(2)
    settings = {"initial_model": str(start.model_path) if start else ""}
    settings["precision"] = precision_column.selectbox(
        "Precision", PRECISIONS, format_func=PRECISION_LABELS.get, key="training_precision", help=HELP["precision"]
    )
    for column, (field, *control) in zip(st.columns(4) * 3, FIELDS, strict=True):
        settings[field] = config_control(column, field, *control)
    st.markdown("**Augmentation** (applied to training batches only)")
    augmentation, amounts = AugmentationConfig(), {}
    for column, (field, (label, maximum, step, help_text)) in zip(st.columns(6), AUGMENTATIONS.items(), strict=True):
        default, key = getattr(augmentation, field), f"training_aug_{field}"
        amounts[field] = on = column.toggle(label, default > 0, f"{key}_on", help_text)
        if maximum is not None:  # a switch with its amount beneath
            options = dict(key=key, help=help_text, label_visibility="collapsed")
            amount = column.slider(f"{label} amount", 0.0, maximum, float(default or step * 2), step, **options)
            amounts[field] = float(amount) if on else 0.0
    return {**settings, "augmentation": AugmentationConfig(**amounts)}


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
    data, start = data_controls(sources), start_control(runs_dir, architecture)
    with st.form("training_new_run", border=True):
        name_column, tags_column = st.columns(2)
        name = name_column.text_input("Name", max_chars=folder.MAX_NAME, key="training_name", help=HELP["name"])
        tags = tags_column.text_input("Tags", key="training_tags", help="Comma-separated, such as: baseline, flip")
        settings, entered = settings_controls(start), architecture_controls(architecture, start)
        options = dict(type="primary", icon=":material/rocket_launch:", disabled=bool(blocked) or not data.get("data"))
        submitted = st.form_submit_button("Start training", help="It trains in its own process, tab or not.", **options)
    failure, chosen = "These settings cannot be used.", settings | data
    if not submitted or (config := attempt(failure, lambda: train_config(architecture, entered, chosen))) is None:
        return
    if run_dir := attempt("The run could not be started.", lambda: runs.start_run(config, runs_dir), OSError):
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
