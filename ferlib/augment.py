"""Training-time augmentation as a Keras pipeline, usable in tf.data and on plain arrays."""

from __future__ import annotations

import keras
import numpy as np

from ferlib.config import AugmentationConfig


def build_augmenter(config: AugmentationConfig, seed: int | None = None) -> keras.Sequential:
    """Random flip / shift / rotation / zoom / contrast / erasing on 0-255 float batches (N, H, W, 1)."""
    steps: list[keras.layers.Layer] = []
    if config.horizontal_flip:
        steps.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if config.rotate_degrees:
        steps.append(keras.layers.RandomRotation(config.rotate_degrees / 360.0, fill_mode="reflect", seed=seed))
    if config.zoom:
        steps.append(keras.layers.RandomZoom(config.zoom, config.zoom, fill_mode="reflect", seed=seed))
    if config.translate:
        steps.append(keras.layers.RandomTranslation(config.translate, config.translate, fill_mode="reflect", seed=seed))
    if config.contrast:
        steps.append(keras.layers.RandomContrast(config.contrast, value_range=(0, 255), seed=seed))
    if config.erasing:
        steps.append(
            keras.layers.RandomErasing(factor=config.erasing, scale=(0.02, 0.2), value_range=(0, 255), seed=seed)
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
