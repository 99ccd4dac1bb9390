"""Training throughput of one run in one process and across local worker processes (tf.distribute).

Each setting trains a fresh run for `--epochs` on a stratified share of FER-2013's training faces with
`python -m ferlib train [--workers N]`, and reports the images per second its progress log measured over the last
epoch (training steps only: the run's progress records count them, not the validation pass). On a machine with few
cores, N processes share them: the figure says what the gradient averaging and the duplicated input pipeline cost.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT, SHARED_ZIP

CONFIG = {  # the long run's network on 40-pixel crops, on a share of the faces
    "architecture": "vgg_fer",
    "hyperparameters": {"filters": [40, 80, 160, 320], "input_crop": 40},
    "batch_size": 64,
    "train_fraction": 0.1,
}


def measure(workers: int, epochs: int, data: Path, folder: Path) -> dict:
    config = folder / f"config-{workers}.json"
    config.write_text(json.dumps({**CONFIG, "epochs": epochs}))
    command = [sys.executable, "-m", "ferlib", "train", "--quiet", "--data", str(data), "--config", str(config)]
    command += ["--runs-dir", str(folder / f"runs-{workers}")] + (["--workers", str(workers)] if workers > 1 else [])
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=7200)
    if done.returncode != 0:
        raise SystemExit(f"workers={workers} failed:\n{done.stderr[-2000:]}")
    (run_dir,) = [path for path in (folder / f"runs-{workers}").iterdir() if (path / "config.json").exists()]
    records = [json.loads(line) for line in (run_dir / "progress.jsonl").read_text().splitlines()]
    batches = [record for record in records if record["event"] == "batch" and record["epoch"] == epochs]
    return {
        "workers": workers,
        "images_per_second": round(batches[-1]["images_per_second"], 1),
        "wall_seconds": round(time.time() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(SHARED_ZIP))
    parser.add_argument("--epochs", type=int, default=2, help="the last epoch is measured (default 2)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        for workers in arguments.workers:
            print(json.dumps(measure(workers, arguments.epochs, Path(arguments.data), Path(directory))), flush=True)


if __name__ == "__main__":
    main()
