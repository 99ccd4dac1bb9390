"""Trials per hour of a search: one worker on one core, one on two cores, and two workers of one core each.

Each configuration runs the same small random search (`tune --strategy random --max-trials 4 --epochs 1
--subset F`) on the real dataset in a fresh folder; the rate counts the trials' own time, from the first trial's
start to the last one's end (the baseline and the processes' start-up are left out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import SHARED_ZIP

CONFIGURATIONS = {
    "1 worker, 1 core": {"workers": 1, "cores": 1},
    "1 worker, 2 cores": {"workers": 1, "cores": 2},
    "2 workers, 1 core each": {"workers": 2, "cores": 2},
}


def trials_per_hour(search_dir: Path) -> tuple[float, int]:
    records = [json.loads(line) for line in (search_dir / "trials.jsonl").read_text().splitlines()]
    starts = [record["time"] for record in records if record.get("event") == "trial_start"]
    ends = [record for record in records if record.get("event") == "trial_end" and record.get("status") == "completed"]
    span = max(record["time"] for record in ends) - min(starts)
    return 3600 * len(ends) / span, len(ends)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_ZIP))
    parser.add_argument("--subset", default="0.05", help="fraction of the training split per trial (default 0.05)")
    arguments = parser.parse_args()
    print(f"{'configuration':<26}{'trials':>8}{'trials/hour':>13}")
    for name, setting in CONFIGURATIONS.items():
        with tempfile.TemporaryDirectory() as folder:
            command = [sys.executable, "-m", "ferlib", "tune", "--data", arguments.data, "--strategy", "random"]
            command += ["--max-trials", "4", "--epochs", "1", "--subset", arguments.subset]
            command += ["--workers", str(setting["workers"]), "--dir", f"{folder}/s", "--runs-dir", f"{folder}/r"]
            cores = set(sorted(os.sched_getaffinity(0))[: setting["cores"]])
            result = subprocess.run(
                command, capture_output=True, text=True, preexec_fn=lambda cores=cores: os.sched_setaffinity(0, cores)
            )
            if result.returncode != 0:
                sys.exit(result.stderr[-2000:])
            (search_dir,) = Path(folder, "s").iterdir()
            rate, trials = trials_per_hour(search_dir)
        print(f"{name:<26}{trials:>8}{rate:>13.0f}")


if __name__ == "__main__":
    main()
