"""TFLite exports of a model (float32 and int8), how often they agree with it, and its FLOPs per face."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ferlib.atomic import atomic_save
from ferlib.errors import FerError
from ferlib.nets.classifier import KerasClassifier, TFLiteClassifier


def export_tflite(model: Any, path: str | os.PathLike) -> Path:
    """Write the model as a float32 .tflite file (atomically)."""
    target = Path(path)
    if target.suffix != ".tflite":
        raise FerError(f"Expected a path ending in .tflite; received {str(path)!r}")
    atomic_save(target, lambda temporary: model.export(temporary, format="litert", verbose=False))
    return target


def export_tflite_int8(model: Any, path: str | os.PathLike, representative_faces: np.ndarray) -> Path:
    """Write an int8-quantised .tflite (weights and activations; float32 input/output), calibrated on real faces.

    About 4x smaller and faster on CPUs with int8 kernels; its agreement with the float model is measured, not assumed.
    """

    import tensorflow as tf

    target = Path(path)
    if target.suffix != ".tflite":
        raise FerError(f"Expected a path ending in .tflite; received {str(path)!r}")
    faces = np.asarray(representative_faces, dtype=np.float32)[..., None]

    def representative():
        for face in faces:
            yield [face[None]]

    with tempfile.TemporaryDirectory() as directory:
        _export_for_inference(model, directory)
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        data = converter.convert()
    atomic_save(target, lambda temporary: Path(temporary).write_bytes(data))
    return target


def _export_for_inference(model: Any, directory: str) -> None:
    """A SavedModel whose one endpoint calls the model with training=False, as the float export does.

    `model.export(format="tf_saved_model")` leaves `training` unset, and behind a CenterCrop input layer Keras 3.15
    traced the first block's batch norms in training mode: the int8 model normalised each face by its own
    statistics and lost 1.7 points of accuracy.
    """
    import functools

    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    signature = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)]
    archive.add_endpoint("serve", functools.partial(model.__call__, training=False), input_signature=signature)
    archive.write_out(directory, verbose=False)


def count_flops(model: Any) -> int:
    """Floating-point operations for one face (a multiply-add counts as two), from conv and dense layers."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):  # a nested network, such as an ensemble's member
            total += count_flops(layer)
        elif isinstance(layer, keras.layers.Conv2D):
            _, height, width, channels_out = layer.output.shape
            kernel_height, kernel_width = layer.kernel_size
            channels_in = layer.input.shape[-1]
            total += 2 * height * width * kernel_height * kernel_width * channels_in * channels_out
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * int(layer.input.shape[-1]) * int(layer.units)
    return int(total)


def tflite_agreement(
    keras_model: Any, tflite_path: str | os.PathLike, images: np.ndarray, class_names: tuple[str, ...] | None = None
) -> float:
    """Fraction of faces on which the TFLite export's top-1 class equals the Keras model's."""
    keras_classifier = KerasClassifier(model=keras_model)
    tflite_classifier = TFLiteClassifier(tflite_path, class_names=class_names or keras_classifier.class_names)
    agree = 0
    for start in range(0, len(images), 256):
        batch = images[start : start + 256]
        agree += int(np.sum(keras_classifier(batch).argmax(1) == tflite_classifier(batch).argmax(1)))
    return agree / max(1, len(images))
