"""Peak memory of bad inputs: `info` on a small zip holding a 1 GiB member, and analysing a 144-megapixel photo.

Each command runs in its own process; the figure is its peak resident set size. The photo's cost is also given as
what it adds over the same command on an ordinary photo. `--checkout DIR` measures another checkout of the project
(say, an older version) with the same files, for a before/after comparison.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
from common import REPO_ROOT

# Linux counts a child's peak from the memory of the process that started it, so each command is started by this
# small, fresh interpreter instead of by the benchmark (which has just drawn a 144-megapixel photo).
_LAUNCHER = (
    "import os, subprocess, sys; process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, "
    "stderr=subprocess.DEVNULL); _, status, usage = os.wait4(process.pid, 0); "
    "print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))"
)


def peak_megabytes(command: list[str], cwd: Path) -> tuple[float, int]:
    """(peak RSS in MB, exit status) of a command run to completion."""
    environment = {**os.environ, "PYTHONPATH": str(cwd)}  # the checkout measured, not the installed copy
    output = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *command], cwd=cwd, env=environment, capture_output=True, text=True
    ).stdout.split()
    return int(output[0]) / 1024, int(output[1])


def make_inputs(folder: Path) -> dict[str, Path]:
    """A 1 GiB member in a zip of a few real-looking faces, a 144-megapixel JPEG and an ordinary photo."""
    archive = folder / "bomb.zip"
    face = cv2.imencode(".jpg", np.full((48, 48), 128, np.uint8))[1].tobytes()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        for index, name in enumerate(("happy", "sad", "angry", "neutral")):
            handle.writestr(f"train/{name}/Training_{index}.jpg", face)
            handle.writestr(f"test/{name}/PublicTest_{index}.jpg", face)
        with handle.open("train/happy/Training_999.jpg", "w", force_zip64=True) as member:
            block = bytes(64 * 1024 * 1024)
            for _ in range(16):
                member.write(block)
    photo = np.full((9000, 16000, 3), 120, np.uint8)
    cv2.circle(photo, (8000, 4500), 2000, (200, 180, 160), -1)
    huge = folder / "huge.jpg"
    huge.write_bytes(cv2.imencode(".jpg", photo)[1].tobytes())
    del photo
    ordinary = folder / "ordinary.jpg"
    ordinary.write_bytes(cv2.imencode(".jpg", np.full((480, 640, 3), 120, np.uint8))[1].tobytes())
    return {"bomb": archive, "huge": huge, "ordinary": ordinary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", default=str(REPO_ROOT), help="the project checkout to measure")
    arguments = parser.parse_args()
    checkout = Path(arguments.checkout).resolve()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        inputs = make_inputs(folder)
        print(f"checkout: {checkout}")
        print(
            f"bomb.zip: {inputs['bomb'].stat().st_size / 1e6:.1f} MB holding a 1 GiB member; "
            f"huge.jpg: {inputs['huge'].stat().st_size / 1e6:.1f} MB, 144 megapixels"
        )
        python = [sys.executable, "-m", "ferlib"]
        cache = {"FERLIB_CACHE_DIR": str(folder / "cache")}
        os.environ.update(cache)
        info, info_status = peak_megabytes([*python, "info", "--data", str(inputs["bomb"])], checkout)
        ordinary, _ = peak_megabytes([*python, "predict", str(inputs["ordinary"])], checkout)
        huge, huge_status = peak_megabytes([*python, "predict", str(inputs["huge"])], checkout)
        print(f"{'command':<40} {'peak MB':>8} {'exit':>5}")
        print(f"{'info on bomb.zip':<40} {info:>8.0f} {info_status:>5}")
        print(f"{'predict an ordinary 640x480 photo':<40} {ordinary:>8.0f}")
        print(f"{'predict huge.jpg':<40} {huge:>8.0f} {huge_status:>5}")
        print(f"huge photo adds {huge - ordinary:.0f} MB over an ordinary one")


if __name__ == "__main__":
    main()
