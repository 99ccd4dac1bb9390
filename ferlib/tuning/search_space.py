"""The tunable hyperparameters and how a set of their values becomes a TrainConfig.

Plain Python (no Keras): the dashboard offers these choices and the tuner samples them, and both turn a
trial's values into the same TrainConfig a training run would use, so the best trial can be trained in full.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ferlib.data.augment import AugmentationConfig
from ferlib.errors import FerError
from ferlib.nets.architectures import ARCHITECTURE_DEFAULTS
from ferlib.training.config import OPTIMIZERS, TrainConfig


@dataclass(frozen=True)
class HyperparameterSpec:
    """One tunable setting: the values on offer, the default search space and what it changes."""

    name: str
    kind: type
    options: tuple[Any, ...]
    default_choices: tuple[Any, ...]
    help: str


SPECS: dict[str, HyperparameterSpec] = {
    spec.name: spec
    for spec in (
        HyperparameterSpec(
            "width_multiplier",
            float,
            (0.25, 0.5, 0.75, 1.0, 1.5, 2.0),
            (0.5, 1.0, 1.5),
            "Scales the channels of every convolution block (1 keeps the architecture's widths).",
        ),
        HyperparameterSpec(
            "convs_per_block",
            int,
            (1, 2, 3),
            (1, 2),
            "Depth: convolutions (each with batch norm) stacked in every block before its pooling.",
        ),
        HyperparameterSpec("kernel_size", int, (3, 5, 7), (3, 5), "Side of the convolution kernels in pixels."),
        HyperparameterSpec(
            "activation",
            str,
            ("relu", "elu", "gelu", "swish"),
            ("relu", "elu", "gelu"),
            "The non-linearity after every convolution and the dense layer.",
        ),
        HyperparameterSpec(
            "block_dropout",
            float,
            (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
            (0.0, 0.1, 0.2, 0.3),
            "Fraction of activations dropped after each convolution block while training.",
        ),
        HyperparameterSpec(
            "learning_rate",
            float,
            (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1),
            (0.001, 0.003, 0.01, 0.03),
            "The optimizer's peak step size (after warm-up, decayed by the cosine schedule).",
        ),
        HyperparameterSpec(
            "optimizer",
            str,
            OPTIMIZERS,
            OPTIMIZERS,
            "sgd: SGD with Nesterov momentum; adam; adamw: Adam with decoupled weight decay.",
        ),
        HyperparameterSpec(
            "augmentation",
            float,
            (0.0, 0.5, 1.0, 1.5, 2.0),
            (0.0, 0.5, 1.0, 1.5),
            "Augmentation strength: scales the shift, rotation, zoom, contrast and erasing amounts of the "
            "baseline's augmentation (0 switches augmentation off, 1 keeps it).",
        ),
    )
}
ARCHITECTURE_SETTINGS = ("convs_per_block", "kernel_size", "activation", "block_dropout")


def default_space() -> dict[str, list[Any]]:
    """The default search space: every hyperparameter with its default choices."""
    return {name: list(spec.default_choices) for name, spec in SPECS.items()}


def validate_space(space: dict[str, Any]) -> dict[str, list[Any]]:
    """The space with values in their kinds; unknown names, empty lists and values not on offer raise ValueError."""
    if not isinstance(space, dict) or not space:
        raise FerError(f"Expected a search space mapping hyperparameter names to values; received {space!r}")
    unknown = sorted(set(space) - set(SPECS))
    if unknown:
        raise FerError(f"Expected hyperparameters among {', '.join(SPECS)}; received {unknown}")
    checked: dict[str, list[Any]] = {}
    for name, values in space.items():
        spec = SPECS[name]
        if not isinstance(values, (list, tuple)) or not values:
            raise FerError(f"Expected at least one value for {name}; received {values!r}")
        try:
            typed = [spec.kind(value) for value in values]
        except (TypeError, ValueError):
            raise FerError(f"Expected {spec.kind.__name__} values for {name}; received {list(values)!r}") from None
        pairs = zip(values, typed, strict=True)
        truncated = [value for value, kept in pairs if spec.kind is int and isinstance(value, float) and value != kept]
        if truncated:  # int(5.5) would quietly search 5
            raise FerError(f"Expected whole numbers for {name}; received {truncated}")
        outside = [value for value in typed if value not in spec.options]
        if outside:
            offered = ", ".join(str(option) for option in spec.options)
            raise FerError(f"Expected values of {name} among {offered}; received {outside}")
        checked[name] = sorted(set(typed), key=spec.options.index)
    return checked


def scaled_augmentation(base: AugmentationConfig, strength: float) -> AugmentationConfig:
    """The baseline's augmentation with every amount multiplied by `strength` (kept within the valid ranges)."""
    return AugmentationConfig(
        horizontal_flip=base.horizontal_flip and strength > 0,
        translate=min(0.45, base.translate * strength),
        rotate_degrees=min(90.0, base.rotate_degrees * strength),
        zoom=min(0.45, base.zoom * strength),
        contrast=min(0.9, base.contrast * strength),
        erasing=min(1.0, base.erasing * strength),
    )


def trial_config(base: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """The baseline config with a trial's hyperparameter values applied (names not given keep the baseline's)."""
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        raise FerError(f"Expected hyperparameters among {', '.join(SPECS)}; received {unknown}")
    architecture_defaults = ARCHITECTURE_DEFAULTS[base.architecture]
    hyperparameters = dict(base.hyperparameters)
    if "width_multiplier" in values:
        widths = hyperparameters.get("filters", architecture_defaults["filters"])
        multiplier = float(values["width_multiplier"])
        hyperparameters["filters"] = tuple(max(4, round(int(width) * multiplier)) for width in widths)
    for name in ARCHITECTURE_SETTINGS:
        if name in values:
            hyperparameters[name] = values[name]
    changes: dict[str, Any] = {"hyperparameters": hyperparameters}
    if "learning_rate" in values:
        changes["learning_rate"] = float(values["learning_rate"])
    if "optimizer" in values:
        changes["optimizer"] = str(values["optimizer"])
    if "augmentation" in values:
        changes["augmentation"] = scaled_augmentation(base.augmentation, float(values["augmentation"]))
    return base.updated(**changes)


def baseline_values(base: TrainConfig) -> dict[str, Any]:
    """The hyperparameter values the untuned baseline config amounts to, e.g. to mark it among the trials."""
    settings = {**ARCHITECTURE_DEFAULTS[base.architecture], **base.hyperparameters}
    return {
        "width_multiplier": 1.0,
        **{name: settings[name] for name in ARCHITECTURE_SETTINGS},
        "learning_rate": base.learning_rate,
        "optimizer": base.optimizer,
        "augmentation": 1.0,
    }


STRATEGIES = ("random", "grid", "bayesian", "hyperband")


@dataclass
class SearchConfig:
    """Everything a search needs: strategy, search space, budget and the untuned baseline config.

    The budget (epochs per trial, fraction of the training data) is applied to `base`, so the baseline and
    every trial train on exactly the same data for the same number of epochs. The default budget (900 steps of 64
    FER-2013 faces per trial) is about the least on which the networks learn: after 3 epochs on 20% of the faces,
    none beat always answering "happy" (docs/experiments.md, "A budget for tuning").
    """

    strategy: str = "bayesian"
    max_trials: int = 10
    epochs: int = 10
    subset: float = 0.2
    max_minutes: float = 0.0  # 0: no wall-clock limit
    workers: int = 1  # local worker processes training trials at once (ferlib.tuning.distributed); 1: in-process
    space: dict[str, list[Any]] = field(default_factory=default_space)
    base: TrainConfig = field(default_factory=lambda: TrainConfig(architecture="compact_cnn"))

    def __post_init__(self) -> None:
        if isinstance(self.base, dict):
            self.base = TrainConfig.from_dict(self.base)
        if not isinstance(self.strategy, str) or self.strategy not in STRATEGIES:
            raise FerError(f"Expected strategy among {', '.join(STRATEGIES)}; received {self.strategy!r}")
        _check(isinstance(self.max_trials, int) and self.max_trials >= 1, "max_trials >= 1", self.max_trials)
        _check(isinstance(self.epochs, int) and self.epochs >= 1, "epochs >= 1", self.epochs)
        _check(isinstance(self.subset, (int, float)) and 0 < self.subset <= 1, "subset in (0, 1]", self.subset)
        _check(
            isinstance(self.max_minutes, (int, float)) and math.isfinite(self.max_minutes) and self.max_minutes >= 0,
            "max_minutes >= 0",
            self.max_minutes,
        )
        _check(isinstance(self.workers, int) and 1 <= self.workers <= 64, "workers 1-64", self.workers)
        # Trials learn from the labels alone; teachers belong to the full run a search's best trial leads to.
        _check(not self.base.teachers, "a search base without teachers (a training run's setting)", self.base.teachers)
        self.space = validate_space(self.space)
        self.base = self.base.updated(epochs=self.epochs, train_fraction=float(self.subset))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "base": self.base.to_dict()}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> SearchConfig:
        names = {item.name for item in fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise FerError(f"Expected search config keys among {', '.join(sorted(names))}; received {unknown}")
        return cls(**value)


def _check(condition: bool, expected: str, received: Any) -> None:
    if not condition:
        raise FerError(f"Expected {expected}; received {received!r}")
