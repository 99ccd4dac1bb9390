"""Classifier speed: ms per single face and faces/s in batches of 256, on one core and on all cores.

Paths: the Keras model called directly, the Keras model under tf.function (compiled), and the TFLite exports
(float32 and int8). Each thread setting runs in its own process so thread pools start clean.

    python benchmarks/inference.py [--model models/fer_vgg.keras] [--repeats 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import REPO_ROOT, limit_threads, median_ms, validation_faces


def measure(model_path: Path, threads: int, repeats: int) -> list[dict]:
    limit_threads(threads)
    import keras
    import tensorflow as tf

    from ferlib.data.preprocess import to_model_batch
    from ferlib.nets.classifier import TFLiteClassifier, available_cores

    faces, _ = validation_faces(limit=256)
    single, batch = to_model_batch(faces[:1]), to_model_batch(faces[:256])
    model = keras.saving.load_model(model_path, compile=False)
    compiled = tf.function(lambda x: model(x, training=False), jit_compile=False, reduce_retracing=True)
    paths = {
        "keras call": lambda x: model(x, training=False),
        "keras compiled": compiled,
    }
    for suffix, name in ((".tflite", "tflite float32"), (".int8.tflite", "tflite int8")):
        tflite_path = model_path.with_suffix(suffix)
        if tflite_path.exists():
            classifier = TFLiteClassifier(tflite_path, num_threads=threads or available_cores())
            paths[name] = lambda x, classifier=classifier: classifier(x[..., 0])
    rows = []
    for name, function in paths.items():
        single_ms = median_ms(lambda function=function: function(single), repeats)
        batch_ms = median_ms(lambda function=function: function(batch), max(5, repeats // 30), warmup=3)
        rows.append(
            {
                "path": name,
                "threads": threads or available_cores(),
                "ms_per_face": single_ms,
                "faces_per_second_batch256": 256 / (batch_ms / 1000),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO_ROOT / "models" / "fer_vgg.keras"))
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)  # worker mode
    arguments = parser.parse_args()
    model_path = Path(arguments.model)
    if not model_path.exists():
        sys.exit(f"error: Expected a .keras model; received {model_path}, which does not exist")
    if arguments.threads is not None:
        print(json.dumps(measure(model_path, arguments.threads, arguments.repeats)))
        return
    rows = []
    for threads in (1, 0):
        output = subprocess.run(
            [
                sys.executable,
                __file__,
                "--model",
                str(model_path),
                "--repeats",
                str(arguments.repeats),
                "--threads",
                str(threads),
            ],
            capture_output=True,
            text=True,
        )
        if output.returncode != 0:
            sys.exit(output.stderr)
        rows += json.loads(output.stdout.strip().splitlines()[-1])
    from ferlib.nets.classifier import available_cores

    print(f"model: {model_path.name}   cores: {available_cores()}")
    print(f"{'path':<16} {'threads':>7} {'ms/face (1 face)':>17} {'faces/s (batch 256)':>20}")
    for row in rows:
        speed = row["faces_per_second_batch256"]
        print(f"{row['path']:<16} {row['threads']:>7} {row['ms_per_face']:>17.3f} {speed:>20.0f}")
    fastest = min((row for row in rows if row["threads"] == 1), key=lambda row: row["ms_per_face"])
    print(f"fastest single face on one core: {fastest['path']} {fastest['ms_per_face']:.3f} ms")


if __name__ == "__main__":
    main()
