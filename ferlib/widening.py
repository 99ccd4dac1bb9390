"""Net2WiderNet (Chen, Goodfellow & Shlens, ICLR 2016): start a wider network from a trained narrower one.

The wider network computes the same function as the narrow one: each new channel copies an existing one
(its kernel, bias and batch-norm statistics), and the next layer divides the weights it reads from every
copy by the number of copies. Training then continues from the narrow network's accuracy instead of from
scratch, which on two CPU cores is the difference between hours and days. A little noise on the copies'
incoming weights breaks their symmetry; dropout does the rest once training starts.

Works for the sequential conv/batch-norm/pool/dense stacks of `ferlib.architectures`, matched layer by layer
by name; dense widths may grow too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Layers that keep each channel where it is and hold no weights: the channel map passes through them.
_PASS_THROUGH = {"Rescaling", "Activation", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "Dropout"}


def widening_map(old_width: int, new_width: int, generator: np.random.Generator) -> np.ndarray:
    """For each of `new_width` channels, the old channel it copies: the old ones in place, then random copies."""
    if new_width < old_width:
        raise ValueError(f"Expected a width of at least {old_width} to widen into; received {new_width}")
    return np.concatenate([np.arange(old_width), generator.integers(0, old_width, new_width - old_width)])


def widen_into(source: Any, target: Any, *, noise: float = 0.0, seed: int = 0) -> None:
    """Set `target`'s weights so that it computes `source`'s function with its (equal or larger) widths.

    `noise` is the standard deviation, relative to each kernel's own, of Gaussian noise added to the copied
    channels' incoming weights (0 keeps the function exactly). Raises ValueError when `target` is not a
    widening of `source`: other layers, another order, or a narrower layer.
    """
    generator = np.random.default_rng(seed)
    source_layers = [layer for layer in source.layers if type(layer).__name__ != "InputLayer"]
    target_layers = [layer for layer in target.layers if type(layer).__name__ != "InputLayer"]
    source_plan = [(layer.name, type(layer).__name__) for layer in source_layers]
    target_plan = [(layer.name, type(layer).__name__) for layer in target_layers]
    if source_plan != target_plan:
        raise ValueError(
            f"Expected a model with the layers of {target.name!r} ({len(target_plan)} layers) to widen from; "
            f"received {source.name!r} with layers {[name for name, _ in source_plan]}"
        )
    incoming: np.ndarray | None = None  # which source channel each target channel of the current tensor copies
    for old_layer, new_layer in zip(source_layers, target_layers, strict=True):
        kind = type(new_layer).__name__
        if kind in _PASS_THROUGH:
            continue
        if kind == "Flatten":
            incoming = _flattened_map(incoming, old_layer, new_layer)
        elif kind == "BatchNormalization":
            weights = old_layer.get_weights()
            new_layer.set_weights(weights if incoming is None else [weight[incoming] for weight in weights])
        elif kind in ("Conv2D", "Dense"):
            incoming = _widen_kernel_layer(old_layer, new_layer, incoming, noise, generator)
        else:
            raise ValueError(f"Expected layers Net2WiderNet knows how to widen; received {kind} {new_layer.name!r}")


def _flattened_map(channels: np.ndarray | None, old_layer: Any, new_layer: Any) -> np.ndarray:
    """Flatten (channels last) lays out position-major: feature (position, channel) sits at position*C + channel."""
    old_shape, new_shape = tuple(old_layer.input.shape[1:]), tuple(new_layer.input.shape[1:])
    if old_shape[:-1] != new_shape[:-1]:
        raise ValueError(
            f"Expected equal spatial sizes before {new_layer.name!r}; received {old_shape} and {new_shape}"
        )
    positions, old_channels = int(np.prod(old_shape[:-1])), old_shape[-1]
    channels = np.arange(old_channels) if channels is None else channels
    return (np.arange(positions)[:, None] * old_channels + channels[None, :]).reshape(-1)


def _widen_kernel_layer(
    old_layer: Any, new_layer: Any, incoming: np.ndarray | None, noise: float, generator: np.random.Generator
) -> np.ndarray:
    """Copy a Conv2D/Dense kernel into a wider one; returns the map of its output channels."""
    old_weights = old_layer.get_weights()
    kernel = old_weights[0]
    new_in, new_out = new_layer.kernel.shape[-2], new_layer.kernel.shape[-1]
    incoming = np.arange(kernel.shape[-2]) if incoming is None else incoming
    if len(incoming) != new_in:
        raise ValueError(
            f"Expected {new_in} inputs to {new_layer.name!r}; the widened layer before gives {len(incoming)}"
        )
    outgoing = widening_map(kernel.shape[-1], int(new_out), generator)
    copies = np.bincount(incoming, minlength=kernel.shape[-2]).astype(kernel.dtype)
    widened = kernel[..., incoming, :] / copies[incoming][:, None]
    widened = widened[..., outgoing]
    if noise > 0 and new_out > kernel.shape[-1]:
        copied = widened[..., kernel.shape[-1] :]
        copied += generator.normal(0.0, noise * float(kernel.std()), copied.shape).astype(kernel.dtype)
    new_layer.set_weights([widened, *(weight[outgoing] for weight in old_weights[1:])])
    return outgoing
