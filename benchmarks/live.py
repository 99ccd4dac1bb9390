"""Live-video speed on one core: our pipeline against the PyPI `fer` package on the same 640x480 frames.

The frames are scikit-image's astronaut (one smiling face) drifting across a 640x480 frame. Our pipeline is timed
per stage (detection including the tracking between detections, batched classification, overlay) with the
detector on every frame and with it every few frames as the live page does when it falls behind; `fer` is timed
through `FER().detect_emotions` (its Haar cascade and mini-Xception). Needs `fer` installed without its
dependencies: `pip install --no-deps -r requirements-bench.txt`.

    python benchmarks/live.py [--model models/fer_vgg.keras] [--frames 300] [--interval 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from common import REPO_ROOT, astronaut_frames, limit_threads

STAGES = ("detection", "classification", "overlay", "total")


def time_ferlib(analyzer, frames: list[np.ndarray]) -> tuple[dict[str, float], float, float]:
    """Mean ms per frame of each stage, frames per second, and the share of frames with exactly one face."""
    for frame in frames[:10]:
        analyzer.process(frame)
    analyzer.reset()
    totals = {stage: 0.0 for stage in STAGES}
    one_face = 0
    started = time.perf_counter()
    for frame in frames:
        _, result = analyzer.process(frame)
        for stage in STAGES:
            totals[stage] += result.timings_ms[stage]
        one_face += len(result.faces) == 1
    elapsed = time.perf_counter() - started
    return (
        {stage: value / len(frames) for stage, value in totals.items()},
        len(frames) / elapsed,
        one_face / len(frames),
    )


def time_fer(frames: list[np.ndarray]) -> tuple[float, float, float]:
    """fer's mean and median ms per frame and its share of frames with exactly one face."""
    try:
        from fer.fer import FER
    except ImportError:
        sys.exit("error: Expected the `fer` package; install it with `pip install --no-deps -r requirements-bench.txt`")
    detector = FER()
    for frame in frames[:5]:
        detector.detect_emotions(frame)
    samples, one_face = [], 0
    for frame in frames:
        started = time.perf_counter()
        faces = detector.detect_emotions(frame)
        samples.append(1000 * (time.perf_counter() - started))
        one_face += len(faces) == 1
    return statistics.fmean(samples), statistics.median(samples), one_face / len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO_ROOT / "models" / "fer_vgg.keras"))
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--fer-frames", type=int, default=100, help="fer is slow: fewer frames for it")
    parser.add_argument("--interval", type=int, default=5, help="detector every N frames in the second ferlib row")
    arguments = parser.parse_args()
    limit_threads(1)
    from ferlib.live.analyzer import LiveSettings
    from ferlib.live.session import build_analyzer, model_variants

    variants = model_variants(arguments.model)
    if not variants:
        sys.exit(f"error: Expected a model at {arguments.model}; received no file")
    variant = variants[0]  # the fastest form that exists
    frames = astronaut_frames(arguments.frames)
    rows = []
    for name, settings in (
        ("ferlib, detector every frame", LiveSettings(adaptive=False, detection_interval=1)),
        (
            f"ferlib, detector every {arguments.interval}th frame",
            LiveSettings(
                adaptive=False, detection_interval=arguments.interval, max_detection_interval=arguments.interval
            ),
        ),
    ):
        analyzer = build_analyzer("haar", variant, settings)
        stages, fps, one_face = time_ferlib(analyzer, frames)
        rows.append((name, stages, fps, one_face))
    fer_mean, fer_median, fer_one_face = time_fer(frames[: arguments.fer_frames])
    fer_fps = 1000 / fer_mean

    print(f"640x480 frames, one face, one core; model {variant.path.name} ({variant.backend})")
    header = f"{'pipeline':<36}" + "".join(f"{stage + ' ms':>18}" for stage in STAGES) + f"{'fps':>9}{'x fer':>8}"
    print(header + f"{'1 face':>8}")
    for name, stages, fps, one_face in rows:
        cells = "".join(f"{stages[stage]:>18.2f}" for stage in STAGES)
        print(f"{name:<36}{cells}{fps:>9.1f}{fps / fer_fps:>8.1f}{one_face:>8.0%}")
    fer_cells = "".join(f"{'-':>18}" for _ in STAGES[:-1]) + f"{fer_mean:>18.2f}"
    print(f"{'fer FER().detect_emotions':<36}{fer_cells}{fer_fps:>9.1f}{1.0:>8.1f}{fer_one_face:>8.0%}")
    print(f"fer median {fer_median:.2f} ms per frame over {len(frames[: arguments.fer_frames])} frames")


if __name__ == "__main__":
    main()
