"""The ensemble weights that score best on labelled faces: a small search over whole-number weights.

Weights chosen on a split flatter that split's score, so callers report them as chosen there. Ties go to the
lower log-loss, then to the first combination tried (equal weights come first), which keeps the choice stable.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ferlib.errors import FerError

WEIGHT_LEVELS = (1, 2, 3, 4)
MAX_EXHAUSTIVE = 4096  # combinations tried one by one; more members are searched one weight at a time
MAX_ROUNDS = 8
LOG_FLOOR = 1e-7


@dataclass(frozen=True)
class WeightSearch:
    """The best weights found (relative, one per model), their accuracy and log-loss, and equal weights' accuracy."""

    weights: tuple[int, ...]
    accuracy: float
    log_loss: float
    equal_accuracy: float
    tried: int

    @property
    def gain(self) -> float:
        return self.accuracy - self.equal_accuracy


def search_weights(
    probabilities: Sequence[np.ndarray], labels: np.ndarray, levels: Sequence[int] = WEIGHT_LEVELS
) -> WeightSearch:
    """The whole-number weights from `levels` whose weighted average of `probabilities` (one (N, C) array per
    model, for the same faces) has the highest accuracy on `labels`: every combination when there are at most
    MAX_EXHAUSTIVE, else one model's weight at a time from equal weights until nothing improves."""
    stacked, truth = _checked(probabilities, labels, levels)
    count, levels = len(stacked), sorted(set(levels))
    tried: dict[tuple[int, ...], tuple[float, float]] = {}

    def measure(weights: tuple[int, ...]) -> tuple[float, float]:
        key = _reduced(weights)
        if key not in tried:
            tried[key] = _accuracy_and_log_loss(stacked, truth, key)
        return tried[key]

    equal = (levels[0],) * count
    if len(levels) ** count <= MAX_EXHAUSTIVE:
        candidates: Iterator[tuple[int, ...]] = itertools.product(levels, repeat=count)
        best = max(candidates, key=lambda weights: _rank(measure(weights)))  # max keeps the first of equals
    else:
        best = _coordinate_ascent(equal, levels, measure)
    accuracy, log_loss = measure(best)
    return WeightSearch(_reduced(best), accuracy, log_loss, measure(equal)[0], len(tried))


def _coordinate_ascent(
    start: tuple[int, ...], levels: list[int], measure: Callable[[tuple[int, ...]], tuple[float, float]]
) -> tuple[int, ...]:
    best = start
    for _ in range(MAX_ROUNDS):
        before = best
        for index in range(len(start)):
            options = [(*best[:index], level, *best[index + 1 :]) for level in levels]
            best = max([best, *options], key=lambda weights: _rank(measure(weights)))
        if best == before:
            break
    return best


def _rank(figures: tuple[float, float]) -> tuple[float, float]:
    accuracy, log_loss = figures
    return accuracy, -log_loss


def _reduced(weights: tuple[int, ...]) -> tuple[int, ...]:
    """(2, 4) and (1, 2) average alike: one key for both."""
    divisor = math.gcd(*weights)
    return tuple(weight // divisor for weight in weights)


def _accuracy_and_log_loss(stacked: np.ndarray, truth: np.ndarray, weights: tuple[int, ...]) -> tuple[float, float]:
    scale = np.asarray(weights, dtype=np.float64) / sum(weights)
    averaged = np.tensordot(scale, stacked, axes=1)
    accuracy = float(np.mean(np.argmax(averaged, axis=1) == truth))
    chosen = averaged[np.arange(len(truth)), truth]
    return accuracy, float(-np.mean(np.log(np.maximum(chosen, LOG_FLOOR))))


def _checked(
    probabilities: Sequence[np.ndarray], labels: np.ndarray, levels: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    if len(probabilities) < 2:
        raise FerError(f"Expected two or more models' probabilities to weigh; received {len(probabilities)}")
    if not levels or not all(isinstance(level, int) and level > 0 for level in levels):
        raise FerError(f"Expected positive whole-number weight levels; received {list(levels)}")
    arrays = [np.asarray(array, dtype=np.float64) for array in probabilities]
    shapes = {array.shape for array in arrays}
    truth = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise FerError(f"Expected (faces, classes) probabilities of one shape; received {[a.shape for a in arrays]}")
    faces, classes = arrays[0].shape
    if faces == 0 or len(truth) != faces:
        raise FerError(f"Expected one label for each of the {faces} faces; received {len(truth)}")
    if truth.min() < 0 or truth.max() >= classes:
        raise FerError(f"Expected labels from 0 to {classes - 1}; received {int(truth.min())} to {int(truth.max())}")
    return np.stack(arrays), truth
