"""Training configuration: one JSON-serialisable dataclass, validated on load."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ferlib.classes import ClassSet
from ferlib.data.augment import AugmentationConfig
from ferlib.errors import FerError
from ferlib.nets.architectures import architecture_names, check_hyperparameters
from ferlib.nets.precision import MIXED_BFLOAT16, PRECISIONS

# Raised whenever the same config starts training differently. Searches record it and refuse to resume across a
# change, so their trials are ranked on equal footing; each training session records it in its progress log's
# start record, and a shipped run whose epochs span two revisions says so on its card (`lineage.recipe_note`).
# 1: every augmentation layer shared the run's seed (flips moved with rotations). 2: a seed per layer, and search
# trials use the plateau schedule and class weights their config asks for. 3: the warm-up and cosine rate follow the
# global step instead of the epoch, and random erasing erases with exactly its configured probability.
RECIPE_REVISION = 3

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "plateau", "constant")


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as the run's config.json."""

    architecture: str = "vgg_fer"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: int = 1
    plateau_patience: int = 3
    plateau_factor: float = 0.5
    label_smoothing: float = 0.1
    # The classes to tell apart (ferlib.classes.ClassSet): None for FER-2013's seven, names ["happy", "sad"], or
    # merges {"negative": ["angry", "disgust", "fear", "sad"], "happy": ["happy"]}.
    classes: Any = None
    # Keep an exponential moving average of the weights with this momentum (0 = off, 0.999 ~ the last 1,000 steps);
    # it is validated every epoch beside the raw weights, and the better of the two becomes best.keras.
    ema_momentum: float = 0.0
    early_stopping_patience: int = 0  # 0 switches early stopping off
    class_weighting: bool = False
    train_fraction: float = 1.0  # stratified fraction of the training split to use
    seed: int = 2013
    data: str = ""
    initial_model: str = ""  # a .keras model of the same architecture whose weights start the run
    # Also save each epoch's weights as epochs/epoch-NNN.weights.h5 (the model's size each), for
    # `python -m ferlib average` (checkpoint averaging / SWA, ferlib.training.averaging).
    keep_epoch_checkpoints: bool = False
    # float32, or mixed_bfloat16: layers compute in bfloat16 with float32 weights (ferlib.nets.precision), about 1.4x
    # faster on CPUs with AVX-512 BF16 or AMX. Saved best models are float32 either way.
    precision: str = "float32"
    # Learn from these .keras models as well as from the labels (knowledge distillation, ferlib.training.distillation):
    # each face's target is its one-hot label with `teacher_weight` of it replaced by the teachers' probabilities.
    teachers: list[str] = field(default_factory=list)
    teacher_weight: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.augmentation, dict):
            self.augmentation = _from_dict(AugmentationConfig, self.augmentation, "augmentation")
        if not isinstance(self.augmentation, AugmentationConfig):
            raise FerError(f"Expected augmentation to be an object; received {self.augmentation!r}")
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first setting of the wrong type or out of range."""
        _check_types(self, "")
        self.classes = None if ClassSet.parse(self.classes).is_all else ClassSet.parse(self.classes).to_config()
        _check_types(self.augmentation, "augmentation.")
        if self.architecture not in architecture_names():
            raise FerError(
                f"Expected architecture among {', '.join(architecture_names())}; received {self.architecture!r}"
            )
        check_hyperparameters(self.architecture, self.hyperparameters)
        _check(self.optimizer in OPTIMIZERS, "optimizer among " + ", ".join(OPTIMIZERS), self.optimizer)
        _check(self.schedule in SCHEDULES, "schedule among " + ", ".join(SCHEDULES), self.schedule)
        _check(self.precision in PRECISIONS, "precision among " + ", ".join(PRECISIONS), self.precision)
        _check(self.epochs >= 1, "epochs >= 1", self.epochs)
        _check(1 <= self.batch_size <= 4096, "batch_size 1-4096", self.batch_size)
        _check(0 < self.learning_rate <= 10, "learning_rate in (0, 10]", self.learning_rate)
        _check(0 <= self.momentum < 1, "momentum in [0, 1)", self.momentum)
        _check(0 <= self.weight_decay < 1, "weight_decay in [0, 1)", self.weight_decay)
        _check(0 <= self.label_smoothing < 1, "label_smoothing in [0, 1)", self.label_smoothing)
        _check(0 <= self.ema_momentum < 1, "ema_momentum in [0, 1)", self.ema_momentum)
        _check(0 < self.train_fraction <= 1, "train_fraction in (0, 1]", self.train_fraction)
        _check(self.warmup_epochs >= 0, "warmup_epochs >= 0", self.warmup_epochs)
        _check(self.early_stopping_patience >= 0, "early_stopping_patience >= 0", self.early_stopping_patience)
        _check(
            isinstance(self.teachers, list) and all(isinstance(path, str) and path for path in self.teachers),
            "teachers to be a list of .keras paths",
            self.teachers,
        )
        _check(0 <= self.teacher_weight <= 1, "teacher_weight in [0, 1]", self.teacher_weight)
        if bool(self.teachers) != (self.teacher_weight > 0):
            raise FerError(
                "Expected teachers and a teacher_weight above 0 together; received "
                f"{len(self.teachers)} teacher(s) with teacher_weight {self.teacher_weight!r}"
            )
        augmentation = self.augmentation
        _check(0 <= augmentation.translate < 0.5, "augmentation.translate in [0, 0.5)", augmentation.translate)
        _check(
            0 <= augmentation.rotate_degrees <= 90,
            "augmentation.rotate_degrees in [0, 90]",
            augmentation.rotate_degrees,
        )
        _check(0 <= augmentation.zoom < 0.5, "augmentation.zoom in [0, 0.5)", augmentation.zoom)
        _check(0 <= augmentation.contrast < 1, "augmentation.contrast in [0, 1)", augmentation.contrast)
        _check(0 <= augmentation.erasing <= 1, "augmentation.erasing in [0, 1]", augmentation.erasing)

    @property
    def class_set(self) -> ClassSet:
        return ClassSet.parse(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, value, "config")

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a JSON config; a missing or malformed file raises ValueError naming it."""
        try:
            value = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FerError(f"Expected a JSON config file; received {str(path)!r}, which does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise FerError(
                f"Expected a JSON config file; received {str(path)!r}, which is not valid JSON ({error})"
            ) from None
        if not isinstance(value, dict):
            raise FerError(f"Expected a JSON object in {str(path)!r}; received {type(value).__name__}")
        return cls.from_dict(value)

    def updated(self, **changes: Any) -> TrainConfig:
        """A copy with some settings changed (validated)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})


_TYPE_CHECKS: dict[str, tuple[str, Any]] = {
    "int": ("a whole number", lambda value: isinstance(value, int) and not isinstance(value, bool)),
    "float": ("a number", lambda value: isinstance(value, (int, float)) and not isinstance(value, bool)),
    "bool": ("true or false", lambda value: isinstance(value, bool)),
    "str": ("a string", lambda value: isinstance(value, str)),
    "dict[str, Any]": ("an object", lambda value: isinstance(value, dict)),
}


def _check_types(instance: Any, prefix: str) -> None:
    """Refuse a setting of the wrong type (say "0.01" from a hand-edited JSON file) before any comparison."""
    for item in fields(instance):
        expected = _TYPE_CHECKS.get(str(item.type))
        value = getattr(instance, item.name)
        if expected is not None and not expected[1](value):
            raise FerError(f"Expected {prefix}{item.name} to be {expected[0]}; received {value!r}")


def _check(condition: bool, expected: str, received: Any) -> None:
    if not condition:
        raise FerError(f"Expected {expected}; received {received!r}")


def _from_dict(cls: type, value: dict[str, Any], what: str):
    names = {item.name for item in fields(cls)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise FerError(f"Expected {what} keys among {', '.join(sorted(names))}; received unknown {unknown}")
    return cls(**value)


def describe_config(config: TrainConfig) -> str:
    """A one-line summary of a config's optimisation and augmentation settings, for tables."""
    parts = [
        f"{config.optimizer} lr {config.learning_rate:g}",
        f"batch {config.batch_size}",
        config.schedule + (f" (warm-up {config.warmup_epochs})" if config.warmup_epochs else ""),
    ]
    if config.label_smoothing:
        parts.append(f"smoothing {config.label_smoothing:g}")
    if config.weight_decay:
        parts.append(f"decay {config.weight_decay:g}")
    if config.train_fraction < 1:
        parts.append(f"{config.train_fraction:.0%} of train")
    if config.teachers:
        parts.append(f"{len(config.teachers)} teacher(s) at {config.teacher_weight:g}")
    if config.precision == MIXED_BFLOAT16:
        parts.append("mixed bfloat16")
    augmentation = config.augmentation
    switches = {
        "flip": augmentation.horizontal_flip,
        "translate": augmentation.translate,
        "rotate": augmentation.rotate_degrees,
        "zoom": augmentation.zoom,
        "contrast": augmentation.contrast,
        "erasing": augmentation.erasing,
    }
    active = [name for name, value in switches.items() if value]
    parts.append("aug " + "+".join(active) if active else "no aug")
    return ", ".join(parts)
