"""The learning-rate schedule as a function of the optimizer's global step.

A run's rate is never set from outside: it is computed from `optimizer.iterations`, which a checkpoint saves, so a
resumed or moved run continues on exactly the same curve, step for step.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from ferlib.errors import FerError

FLOOR = 0.01  # the cosine curve ends at 1% of the base rate


@keras.saving.register_keras_serializable(package="ferlib", name="WarmupSchedule")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up over `warmup_steps`, then cosine decay to FLOOR x base by `total_steps` (or a constant rate)."""

    def __init__(self, base_rate: float, warmup_steps: int, total_steps: int, shape: str = "cosine") -> None:
        if shape not in ("cosine", "constant"):
            raise FerError(f"Expected a schedule shape of cosine or constant; received {shape!r}")
        self.base_rate = float(base_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.shape = shape

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = float(self.warmup_steps)
        warming = self.base_rate * (step + 1.0) / (warmup + 1.0)
        if self.shape == "constant":
            settled = keras.ops.convert_to_tensor(self.base_rate, "float32")
        else:
            span = float(max(1, self.total_steps - self.warmup_steps))
            progress = keras.ops.clip((step - warmup) / span, 0.0, 1.0)
            settled = self.base_rate * (FLOOR + (1.0 - FLOOR) * 0.5 * (1.0 + keras.ops.cos(math.pi * progress)))
        return keras.ops.where(step < warmup, warming, settled)

    def rate_at(self, step: int) -> float:
        """The same rate in plain Python (for pages, reports and tests)."""
        if step < self.warmup_steps:
            return self.base_rate * (step + 1) / (self.warmup_steps + 1)
        if self.shape == "constant":
            return self.base_rate
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.base_rate * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))

    def get_config(self) -> dict[str, Any]:
        return {
            "base_rate": self.base_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "shape": self.shape,
        }
