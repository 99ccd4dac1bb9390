"""Training-time augmentation: its settings, and the Keras pipeline they build (in tf.data or on plain arrays)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras


@dataclass
class AugmentationConfig:
    """Training-time augmentation; zero or False switches a transform off."""

    horizontal_flip: bool = True
    translate: float = 0.1  # fraction of the image, each direction
    rotate_degrees: float = 10.0
    zoom: float = 0.1
    contrast: float = 0.0
    erasing: float = 0.0  # probability of erasing a random rectangle

    def is_active(self) -> bool:
        return bool(
            self.horizontal_flip or self.translate or self.rotate_degrees or self.zoom or self.contrast or self.erasing
        )


LAYER_SLOTS = ("flip", "rotation", "zoom", "translation", "contrast", "erasing")


def layer_seeds(seed: int | None) -> dict[str, int | None]:
    """A distinct seed per augmentation layer, derived from one seed (None: unseeded).

    Keras 3 random layers given the same seed draw the same uniform numbers: with one seed for all, a face was
    flipped exactly when its rotation was negative, and zoom came with a shift in a fixed direction.
    """
    if seed is None:
        return dict.fromkeys(LAYER_SLOTS)
    states = np.random.SeedSequence(int(seed)).generate_state(len(LAYER_SLOTS))
    return {slot: int(state % (2**31 - 1)) for slot, state in zip(LAYER_SLOTS, states, strict=True)}


def build_augmenter(config: AugmentationConfig, seed: int | None = None) -> keras.Sequential:
    """Random flip / shift / rotation / zoom / contrast / erasing on 0-255 float batches (N, H, W, 1)."""
    import keras  # heavy: only when a pipeline is built (configs are read by pages that never train)

    seeds = layer_seeds(seed)
    steps: list[keras.layers.Layer] = []
    if config.horizontal_flip:
        steps.append(keras.layers.RandomFlip("horizontal", seed=seeds["flip"]))
    if config.rotate_degrees:
        rotation = config.rotate_degrees / 360.0
        steps.append(keras.layers.RandomRotation(rotation, fill_mode="reflect", seed=seeds["rotation"]))
    if config.zoom:
        steps.append(keras.layers.RandomZoom(config.zoom, config.zoom, fill_mode="reflect", seed=seeds["zoom"]))
    if config.translate:
        shift = config.translate
        steps.append(keras.layers.RandomTranslation(shift, shift, fill_mode="reflect", seed=seeds["translation"]))
    if config.contrast:
        steps.append(keras.layers.RandomContrast(config.contrast, value_range=(0, 255), seed=seeds["contrast"]))
    if config.erasing:
        steps.append(
            keras.layers.RandomErasing(
                factor=(config.erasing, config.erasing),  # a single number would draw the probability from [0, p]
                scale=(0.02, 0.2),
                value_range=(0, 255),
                seed=seeds["erasing"],
            )
        )
    return keras.Sequential(steps, name="augmentation")


def augment_images(images: np.ndarray, config: AugmentationConfig, seed: int = 0) -> np.ndarray:
    """Augment preprocessed (N, 48, 48) uint8 faces, e.g. to show what training sees."""
    import keras

    augmenter = build_augmenter(config, seed=seed)
    batch = np.asarray(images, dtype=np.float32)[..., None]
    if not augmenter.layers:
        return np.asarray(images, dtype=np.uint8)
    output = keras.ops.convert_to_numpy(augmenter(batch, training=True))
    return np.clip(np.rint(output[..., 0]), 0, 255).astype(np.uint8)
