"""The Training page's new-run form: a widget per TrainConfig setting, with its help, and the config they make."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from ferlib.classes import ClassSet
from ferlib.data.augment import AugmentationConfig
from ferlib.data.sources import data_directories
from ferlib.errors import FerError
from ferlib.evaluation import catalog
from ferlib.nets.architectures import ACTIVATIONS, ARCHITECTURE_DEFAULTS, OPTIONAL_LAYERS, shapes_layers
from ferlib.nets.precision import FLOAT32, MIXED_BFLOAT16, PRECISIONS, fast_bfloat16
from ferlib.training.config import OPTIMIZERS, SCHEDULES, TrainConfig
from ferlib.tuning import search_space
from pages.components import common
from pages.components.class_choice import class_set_choice
from pages.components.common import attempt, dataset_label

DEFAULTS = TrainConfig()
HELP = {name: spec.help for name, spec in search_space.SPECS.items()} | {  # by TrainConfig field or setting
    "name": "A name for the run, shown wherever runs are listed (optional; you can add tags and a note later).",
    "architecture": "compact_cnn: three conv blocks, fast. vgg_fer: four VGG-style blocks and a dense head, stronger.",
    "data": "FER-2013 as Kaggle's zip or folder, or fer2013.csv, from {}. Validation is FER-2013's PublicTest "
    "split where the files name it, else a seeded 10% of the training faces.",
    "train_fraction": "Train on a stratified share of the training split: smaller runs for quick experiments.",
    "seed": "Seeds the weights, shuffling, augmentation and training fraction, so a run can be repeated.",
    "initial_model": "A saved model of the same architecture and sizes whose weights start this run (a warm restart).",
    "teachers": "Models whose probabilities the run learns from as well as from the labels (knowledge distillation). "
    "They score every training face once, when the run starts.",
    "teacher_weight": "The share of each face's target that the teachers' averaged probabilities make; the rest is "
    "its label.",
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
    "BF16 and 1.8x with AMX, many times slower elsewhere (about 11x on an AVX2 CPU). The saved best model computes in "
    "float32 either way.",
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


def data_controls(sources: list[Path]) -> dict[str, Any]:
    """The run's dataset and the classes to tell apart on it (with the faces per class they keep)."""
    help_text = HELP["data"].format(", ".join(f"`{directory}`" for directory in data_directories()))
    data = st.selectbox("Dataset", sources, format_func=dataset_label, key="training_dataset", help=help_text)
    counted = attempt("This dataset cannot be read.", lambda: common.load_dataset(str(data)).counts()) if data else None
    classes = class_set_choice("training_classes", counted or None)
    settings = {"data": str(Path(data).expanduser().resolve()) if data else ""}
    return {**settings, "classes": classes.to_config()} if classes else {}


def start_control(entries: list[catalog.CatalogEntry], architecture: str) -> catalog.CatalogEntry | None:
    """The model whose weights start the run, if any, among the catalog's `entries`. Outside the form, so that
    choosing one fills the architecture settings with its own."""
    models = {str(entry.model_path): entry for entry in entries if entry.architecture == architecture}
    starts = {"": "Random initialisation", **{path: common.entry_label(entry) for path, entry in models.items()}}
    options = dict(format_func=starts.get, key=f"training_initial_model_{architecture}", help=HELP["initial_model"])
    return models.get(st.selectbox("Start from", list(starts), **options))


def teacher_controls(entries: list[catalog.CatalogEntry], classes: Any = None, key: str = "training") -> dict[str, Any]:
    """The models the run learns from besides the labels (those of the catalog's `entries` that know every class it
    learns), and their share of each face's target; `key` names the widgets."""
    target = ClassSet.parse(classes)
    models = {str(entry.model_path): common.entry_label(entry) for entry in entries if _knows(entry, target)}
    teacher_column, weight_column = st.columns(2)
    options = dict(format_func=models.get, key=f"{key}_teachers", help=HELP["teachers"])
    chosen = teacher_column.multiselect("Learn from", list(models), placeholder="The labels only", **options)
    options = dict(key=f"{key}_teacher_weight", help=HELP["teacher_weight"], disabled=not models)
    weight = weight_column.slider("Teachers' share", 0.05, 1.0, 0.5, 0.05, **options)
    return {"teachers": chosen, "teacher_weight": float(weight) if chosen else 0.0}


def _knows(entry: catalog.CatalogEntry, classes: ClassSet) -> bool:
    """Whether a model's outputs cover every class of `classes` (a teacher must speak for each)."""
    try:
        ClassSet.parse(list(entry.classes)).columns_for(classes)
    except FerError:
        return False
    return True


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
