"""Training throughput (images/s) of candidate designs, measured before committing CPU hours to one.

Each design trains for a few hundred real FER-2013 faces through ferlib's own training pipeline (the same
augmentation, optimizer and loss as `python -m ferlib train`), after a warm-up that absorbs tracing. Run it
with nothing else on the CPU: the figure is what one epoch of 28,709 faces will cost. `--precision both` times
each design in float32 and in mixed bfloat16 (the config's `precision`), alternating; `--onednn both` with
TensorFlow's oneDNN kernels on (ferlib's default) and off. The oneDNN column is what TensorFlow actually used.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time

from common import limit_threads, split_faces

WIDTHS = {"32-64-128-256": [32, 64, 128, 256], "40-80-160-320": [40, 80, 160, 320]}
WIDTHS.update({"48-96-192-384": [48, 96, 192, 384], "64-128-256-512": [64, 128, 256, 512]})
# The long-run recipe (docs/experiments.md, "The next default model"): random 40-pixel crops, erasing, a weight average.
CROP_RECIPE = {"augmentation": {"translate": 4 / 48, "zoom": 0.2, "erasing": 0.5}, "ema_momentum": 0.999}
DESIGNS: dict[str, dict] = {
    "compact_cnn 32-64-128-256": {"architecture": "compact_cnn", "hyperparameters": {}},
    "vgg_fer 32-64-128-256 (compact)": {"architecture": "vgg_fer", "hyperparameters": {}},
    "vgg_fer 40-80-160-320 (shipped)": {
        "architecture": "vgg_fer",
        "hyperparameters": {"filters": WIDTHS["40-80-160-320"]},
    },
    **{
        f"vgg_fer {name} on 40-px crops": {
            "architecture": "vgg_fer",
            "hyperparameters": {"filters": widths, "input_crop": 40},
            **CROP_RECIPE,
        }
        for name, widths in WIDTHS.items()
        if name != "32-64-128-256"
    },
}


def measure(design: dict, steps: int, threads: int, precision: str = "float32") -> dict:
    """Images/s of one epoch of `steps` training batches of 64, after three warm-up batches."""
    limit_threads(threads)
    from ferlib.nets.architectures import build_model
    from ferlib.nets.precision import with_precision
    from ferlib.training.config import TrainConfig
    from ferlib.training.trainer import compile_model, make_training_pipeline

    config = TrainConfig(**design, precision=precision)
    images, labels = split_faces("train", limit=steps * config.batch_size)
    model = with_precision(build_model(config.architecture, **config.hyperparameters), config.precision)
    compile_model(model, config, steps)
    pipeline = make_training_pipeline(images, labels, config)
    model.fit(pipeline.take(3), epochs=1, verbose=0)  # tracing and first-call costs
    started = time.perf_counter()
    model.fit(pipeline, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    from tensorflow.python.util import _pywrap_util_port

    return {
        "onednn": bool(_pywrap_util_port.IsMklEnabled()),  # what TensorFlow actually used
        "parameters": model.count_params(),
        "images_per_second": len(labels) / seconds,
        "epoch_minutes": 28709 / (len(labels) / seconds) / 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # 40: at 20, one run on a shared 2-core machine timed the compact network slower than the wider shipped one.
    parser.add_argument("--steps", type=int, default=40, help="batches of 64 to time per design (default 40)")
    parser.add_argument("--threads", type=int, default=0, help="cores to use (0 = all)")
    parser.add_argument("--only", help="time only the designs whose name contains this text, e.g. 'crops'")
    parser.add_argument(
        "--precision",
        choices=["float32", "mixed_bfloat16", "both"],
        default="float32",
        help="the training precision to time (default float32); both: each design in each, alternating",
    )
    parser.add_argument(
        "--onednn",
        choices=["on", "off", "both"],
        default="on",
        help="TensorFlow's oneDNN kernels (TF_ENABLE_ONEDNN_OPTS; ferlib turns them on, default on); both: alternate",
    )
    parser.add_argument("--repeats", type=int, default=1, help="time each design (and precision) this many times")
    parser.add_argument("--design", help=argparse.SUPPRESS)  # worker mode: one design per process
    arguments = parser.parse_args()
    if arguments.design is not None:
        print(json.dumps(measure(DESIGNS[arguments.design], arguments.steps, arguments.threads, arguments.precision)))
        return
    precisions = ["float32", "mixed_bfloat16"] if arguments.precision == "both" else [arguments.precision]
    onednn = ["on", "off"] if arguments.onednn == "both" else [arguments.onednn]
    print(f"{'design':<44} {'precision':<15} {'oneDNN':<7} {'parameters':>11} {'images/s':>9} {'min/epoch':>10}")
    for name in DESIGNS if arguments.only is None else [name for name in DESIGNS if arguments.only in name]:
        for _, precision, kernels in itertools.product(range(arguments.repeats), precisions, onednn):
            command = [sys.executable, __file__, "--design", name, "--steps", str(arguments.steps)]
            command += ["--threads", str(arguments.threads), "--precision", precision]
            environment = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1" if kernels == "on" else "0"}
            output = subprocess.run(command, capture_output=True, text=True, env=environment)
            if output.returncode != 0:
                sys.exit(output.stderr)
            row = json.loads(output.stdout.strip().splitlines()[-1])
            used = "on" if row["onednn"] else "off"
            figures = f"{row['parameters']:>11,} {row['images_per_second']:>9.1f} {row['epoch_minutes']:>10.1f}"
            print(f"{name:<44} {precision:<15} {used:<7} {figures}", flush=True)


if __name__ == "__main__":
    main()
