"""Ensembles: several networks over the same classes, as one model whose probabilities are their weighted average.

An ensemble is an ordinary functional Keras model: the input face goes to each member (nested as `member_1`,
`member_2`, …), each member's probabilities are scaled by its weight (a Rescaling layer `weight_k`) and `average`
adds them up. So everything that takes a model (evaluation and its TTA modes, TFLite export, the live pipeline,
distillation teachers) takes an ensemble unchanged, and it saves and loads as one .keras file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ferlib.data.preprocess import IMAGE_SIZE
from ferlib.errors import FerError
from ferlib.nets.precision import FLOAT32, with_precision

MEMBER_PREFIX = "member_"
WEIGHT_PREFIX = "weight_"
OUTPUT_NAME = "average"
ENSEMBLE_ARCHITECTURE = "ensemble"


def ensemble_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """The members' weights scaled to sum to 1 (equal when `weights` is None); refused unless there are two or more
    members and one positive, finite weight for each."""
    if count < 2:
        raise FerError(f"Expected two or more models to combine; received {count}")
    if weights is None:
        return [1.0 / count] * count
    values = list(weights)
    if len(values) != count:
        raise FerError(f"Expected one weight for each of the {count} models; received {len(values)}")
    if not all(isinstance(value, int | float) and math.isfinite(value) and value > 0 for value in values):
        raise FerError(f"Expected positive weights; received {values}")
    total = float(sum(values))
    return [float(value) / total for value in values]


def build_ensemble(models: Sequence[Any], weights: Sequence[float] | None = None) -> Any:
    """One functional model averaging `models`' probabilities with `weights` (scaled to sum to 1).

    Each model must take (N, 48, 48, 1) faces and give the same number of probabilities; the caller checks that
    their classes are the same, in the same order (their cards say which).
    """
    import keras

    scaled = ensemble_weights(weights, len(models))
    expected_input = (IMAGE_SIZE, IMAGE_SIZE, 1)
    outputs = {int(model.output_shape[-1]) for model in models}
    inputs = {tuple(model.input_shape[1:]) for model in models}
    if inputs != {expected_input}:
        raise FerError(f"Expected models taking {expected_input} faces; received inputs {sorted(inputs)}")
    if len(outputs) != 1:
        raise FerError(f"Expected models with the same number of classes; received {sorted(outputs)}")
    face = keras.Input(expected_input, name="face")
    parts = []
    for index, (model, weight) in enumerate(zip(models, scaled, strict=True), start=1):
        model = with_precision(model, FLOAT32)  # a member reads as its ensemble's precision: float32 throughout
        member = keras.Model(model.inputs[0], model.outputs[0], name=f"{MEMBER_PREFIX}{index}")
        parts.append(keras.layers.Rescaling(weight, name=f"{WEIGHT_PREFIX}{index}")(member(face)))
    return keras.Model(face, keras.layers.Add(name=OUTPUT_NAME)(parts), name=ENSEMBLE_ARCHITECTURE)


def ensemble_members(model: Any) -> list[tuple[Any, float]]:
    """An ensemble's members with their weights, in order; [] for a model that is not an ensemble."""
    names = {layer.name: layer for layer in model.layers}
    members = []
    index = 1
    while f"{MEMBER_PREFIX}{index}" in names and f"{WEIGHT_PREFIX}{index}" in names:
        members.append((names[f"{MEMBER_PREFIX}{index}"], float(names[f"{WEIGHT_PREFIX}{index}"].scale)))
        index += 1
    return members if len(members) >= 2 and OUTPUT_NAME in names else []
