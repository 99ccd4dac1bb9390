"""What a training snapshot's half precision changes: accuracy and predictions before and after a round trip.

Writes a run's snapshot, restores it into a temporary folder and scores the original and restored checkpoints (the
training weights, their moving average when the run keeps one, and the best checkpoint) on the validation split.
Prints the snapshot's size, each pair's accuracy, how many faces change their prediction and the largest change of
any weight.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
from common import SHARED_ZIP, limit_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="a run folder with last.keras")
    parser.add_argument("--data", default=str(SHARED_ZIP), help="the dataset whose validation split to score on")
    arguments = parser.parse_args()
    limit_threads(0)
    import keras

    import ferlib.training.schedule  # noqa: F401  (the checkpoint's optimizer refers to it)
    from ferlib.data.datasets import load_dataset
    from ferlib.jobs import runs
    from ferlib.nets.precision import FLOAT32, with_precision
    from ferlib.training.callbacks import averaged_weights
    from ferlib.training.snapshot import restore_snapshot, write_snapshot

    images, labels = load_dataset(arguments.data).subset("validation")
    faces = images[..., None].astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        summary = write_snapshot(arguments.run_dir, Path(folder) / "run.snapshot.zip")
        print(
            f"snapshot: {summary.size_bytes / 2**20:.1f} MiB, {summary.half_precision_arrays} arrays in half "
            f"precision, {summary.exact_arrays} exact, written in {time.perf_counter() - started:.1f} s"
        )
        restored_dir = restore_snapshot(summary.path, Path(folder) / "runs")
        print(f"{'checkpoint':<28} {'original':>9} {'restored':>9} {'changed':>8} {'max |dw|':>10}")
        for name, averaged in ((runs.LAST_MODEL, False), (runs.LAST_MODEL, True), (runs.BEST_MODEL, False)):
            pair = [
                keras.saving.load_model(root / name, compile=averaged)
                for root in (Path(arguments.run_dir), restored_dir)
                if (root / name).exists()
            ]
            if len(pair) < 2 or (averaged and not getattr(pair[0].optimizer, "use_ema", False)):
                continue
            predictions, weights = [], []
            for model in pair:
                context = averaged_weights(model) if averaged else contextlib.nullcontext()
                with context:
                    exact = with_precision(model, FLOAT32)  # both in float32: only the snapshot's rounding differs
                    predictions.append(exact.predict(faces, batch_size=256, verbose=0).argmax(axis=1))
                    weights.append([np.asarray(weight) for weight in model.trainable_weights])
            accuracy = [float(np.mean(prediction == labels)) for prediction in predictions]
            changed = int(np.sum(predictions[0] != predictions[1]))
            largest = max(float(np.max(np.abs(a - b))) for a, b in zip(*weights, strict=True))
            label = f"{name}{' (moving average)' if averaged else ''}"
            print(f"{label:<28} {accuracy[0]:>9.4f} {accuracy[1]:>9.4f} {changed:>8} {largest:>10.2e}")


if __name__ == "__main__":
    main()
