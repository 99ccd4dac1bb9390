"""Training-time augmentation as a Keras pipeline, usable in tf.data and on plain arrays."""

from __future__ import annotations

import keras
import numpy as np

from ferlib.training.config import AugmentationConfig

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
    augmenter = build_augmenter(config, seed=seed)
    batch = np.asarray(images, dtype=np.float32)[..., None]
    if not augmenter.layers:
        return np.asarray(images, dtype=np.uint8)
    output = keras.ops.convert_to_numpy(augmenter(batch, training=True))
    return np.clip(np.rint(output[..., 0]), 0, 255).astype(np.uint8)
