"""The numeric precision a network computes in: float32, or mixed bfloat16 for faster training on CPUs that have it.

Under mixed bfloat16 the weights stay float32 and the layers compute in bfloat16; batch normalisation and the softmax
output stay float32. On CPUs with AVX-512 BF16 or AMX, oneDNN's bfloat16 kernels train about 1.4x faster
(`benchmarks/training_speed.py --precision`); elsewhere bfloat16 is emulated and slower. Saved models meant for use
(best.keras, shipped models) are float32, so inference and TFLite export never depend on the training precision.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

FLOAT32 = "float32"
MIXED_BFLOAT16 = "mixed_bfloat16"
PRECISIONS = (FLOAT32, MIXED_BFLOAT16)
_BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 "flags", Arm "Features" (Neoverse V1 and later)


@cache
def fast_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (Linux /proc/cpuinfo: AVX-512 BF16, AMX or Arm BF16)."""
    try:
        return has_bfloat16_flags(Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace"))
    except OSError:
        return False


def precision_for_this_cpu(precision: str) -> str:
    """The precision a run set to `precision` should train in here: float32 in place of mixed bfloat16 on a CPU
    without native bfloat16, where it trains many times slower (the weights are float32 either way)."""
    return FLOAT32 if precision == MIXED_BFLOAT16 and not fast_bfloat16() else precision


def has_bfloat16_flags(cpuinfo: str) -> bool:
    """Whether /proc/cpuinfo's text lists a native bfloat16 instruction set among its CPU flags."""
    listed = [line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith(("flags", "Features"))]
    flags = listed[0] if listed else []
    return any(flag in flags for flag in _BFLOAT16_CPU_FLAGS)


def precision_of(model: Any) -> str:
    """The precision the model's layers compute in: mixed_bfloat16 when any layer does, else float32."""
    policies = {layer.dtype_policy.name for layer in model.layers if hasattr(layer, "dtype_policy")}
    return MIXED_BFLOAT16 if MIXED_BFLOAT16 in policies else FLOAT32


def with_precision(model: Any, precision: str) -> Any:
    """The same functional network and weights, computing in `precision`; the model itself when it already does.

    The copy is uncompiled. The output layers stay float32 either way, so probabilities are always float32.
    """
    import keras

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}")
    if precision_of(model) == precision:
        return model
    config = copy.deepcopy(model.get_config())
    if "output_layers" not in config:
        raise ValueError(f"only functional models change precision here; received a {type(model).__name__}")
    listed = config["output_layers"]  # [name, 0, 0] for one output, a list of those for several
    outputs = {listed[0]} if isinstance(listed[0], str) else {entry[0] for entry in listed}
    for layer in config["layers"]:
        settings = layer["config"]
        if layer["class_name"] == "InputLayer" or "dtype" not in settings:
            continue
        settings["dtype"] = FLOAT32 if layer["name"] in outputs else precision
    copied = keras.Model.from_config(config)
    copied.set_weights(model.get_weights())
    return copied
