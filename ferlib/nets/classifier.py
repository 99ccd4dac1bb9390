"""Emotion classifiers: callables from preprocessed 48x48 uint8 faces to class probabilities.

Two backends share one interface: the Keras model (called directly, no `predict` overhead) and its
TFLite export (the fastest single-face path on a CPU).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ferlib.classes import EMOTIONS
from ferlib.data.preprocess import to_model_batch
from ferlib.errors import FerError
from ferlib.nets.modelio import (
    check_class_names,
    check_model_shapes,
    default_model_path,
    keras_source,
    load_model,
    read_metadata,
)


class KerasClassifier:
    """Runs the .keras model through a compiled (tf.function) forward pass."""

    backend = "keras"

    def __init__(self, model_path: str | os.PathLike | None = None, model: Any = None) -> None:
        if model is None:
            model, self.metadata = load_model(model_path)
        else:
            self.metadata = {}
        self.model = model
        self.class_names = class_names_for(self.metadata, int(model.output_shape[-1]))
        import tensorflow as tf

        self._forward = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        batch = to_model_batch(faces)
        if batch.shape[0] == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        return np.asarray(self._forward(batch), dtype=np.float32)

    def predict(self, batch: np.ndarray, batch_size: int = 256, verbose: int = 0) -> np.ndarray:
        """Keras-style batch prediction, so evaluation code can take either backend."""
        return np.concatenate([self(batch[i : i + batch_size, ..., 0]) for i in range(0, len(batch), batch_size)])


def class_names_for(metadata: dict[str, Any], outputs: int) -> tuple[str, ...]:
    """A model's class names from its card; for a model without one, FER-2013's seven (or numbered classes)."""
    if metadata:
        return check_class_names(metadata, "the model")
    return EMOTIONS if outputs == len(EMOTIONS) else tuple(f"class {index}" for index in range(outputs))


def available_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def tflite_interpreter_class():
    """LiteRT's interpreter (ai-edge-litert, TFLite's maintained runtime); TensorFlow's deprecated one otherwise."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter


class TFLiteClassifier:
    """Runs a .tflite export with the LiteRT interpreter; resizes its input for each batch size.

    Callable from several threads (Streamlit sessions share one cached classifier): an interpreter is not
    thread-safe, so a lock spans each resize, set, invoke and read.
    """

    backend = "tflite"

    def __init__(
        self, model_path: str | os.PathLike, num_threads: int | None = None, class_names: tuple[str, ...] | None = None
    ) -> None:
        path = Path(model_path)
        if not path.exists():
            raise FerError(f"Expected a .tflite model file; received {str(path)!r}, which does not exist")
        source = keras_source(path)  # the sidecar of the .keras model it was exported from, when that lies beside it
        self.metadata = read_metadata(source) if source.exists() else {}
        # An export made before its card is written (shipping) is told its classes.
        self.class_names = tuple(class_names) if class_names else check_class_names(self.metadata, path)
        # LiteRT takes None as one thread; None here means every core this process may use.
        threads = num_threads if num_threads is not None else available_cores()
        try:
            self.interpreter = tflite_interpreter_class()(model_path=str(path), num_threads=threads)
        except (ValueError, RuntimeError) as error:  # a truncated or foreign file
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise FerError(f"Expected a TFLite model file; received {str(path)!r} ({reason})") from None
        model_input = self.interpreter.get_input_details()[0]
        output = self.interpreter.get_output_details()[0]
        check_model_shapes(tuple(model_input["shape"]), tuple(output["shape"]), path, self.class_names)
        self.input_index, self.output_index = model_input["index"], output["index"]
        self.batch_size = 0
        self._lock = threading.Lock()

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        batch = to_model_batch(faces)
        if batch.shape[0] == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        with self._lock:
            if batch.shape[0] != self.batch_size:
                self.interpreter.resize_tensor_input(self.input_index, list(batch.shape))
                self.interpreter.allocate_tensors()
                self.batch_size = batch.shape[0]
            self.interpreter.set_tensor(self.input_index, batch)
            self.interpreter.invoke()
            return np.array(self.interpreter.get_tensor(self.output_index), dtype=np.float32)

    def predict(self, batch: np.ndarray, batch_size: int = 256, verbose: int = 0) -> np.ndarray:
        return np.concatenate([self(batch[i : i + batch_size, ..., 0]) for i in range(0, len(batch), batch_size)])


def make_classifier(model_path: str | os.PathLike | None = None, backend: str = "auto", num_threads: int | None = None):
    """The fastest available classifier for a model: its .tflite sibling when present (auto), else Keras."""
    path = Path(model_path) if model_path is not None else default_model_path()
    if path.suffix == ".tflite":
        return TFLiteClassifier(path, num_threads=num_threads)
    if backend not in ("auto", "keras", "tflite"):
        raise FerError(f"Expected backend auto, keras or tflite; received {backend!r}")
    tflite_path = path.with_suffix(".tflite")
    if backend == "tflite" or (backend == "auto" and tflite_path.exists()):
        return TFLiteClassifier(tflite_path, num_threads=num_threads)
    return KerasClassifier(path)
