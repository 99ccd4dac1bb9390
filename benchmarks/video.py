"""Video files: `predict CLIP --csv` against the PyPI `fer` package on the same clip, in one run, on one core.

The clip is 150 frames of 640x480 with scikit-image's astronaut (one smiling face, plus a helmet and a neck that
fool a Haar detector now and then) drifting left and right, written to MP4. ferlib is timed as the command runs it,
decoding included, with its default fast path (the detector on a 320-pixel copy every few frames, faces followed in
between) and with `--every-frame`; each stage's share is printed. `fer` gets the frames decoded beforehand and runs
`FER().detect_emotions` (its Haar cascade and mini-Xception) on each. Needs `fer` installed without its
dependencies: `pip install --no-deps -r requirements-bench.txt`.

    python benchmarks/video.py [--model models/fer_vgg.keras] [--frames 150]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT, astronaut_frames, limit_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO_ROOT / "models" / "fer_vgg.keras"))
    parser.add_argument("--frames", type=int, default=150)
    arguments = parser.parse_args()
    limit_threads(1)
    from ferlib.live.analyzer import LiveAnalyzer
    from ferlib.live.detection import make_detector
    from ferlib.live.session import model_variants
    from ferlib.live.video import (
        EVERY_FRAME,
        FAST,
        FAST_DETECTOR_OPTIONS,
        VIDEO_STAGES,
        VideoWriter,
        analyze_video,
        read_video_frames,
        write_records_csv,
    )
    from ferlib.nets.classifier import make_classifier

    frames = astronaut_frames(arguments.frames)
    variant = model_variants(arguments.model)[0]  # the fastest export, as `predict` uses
    classifier = make_classifier(variant.path, backend=variant.backend, num_threads=1)
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "astronaut.mp4"
        with VideoWriter(clip, 30, 640, 480) as writer:
            for frame in frames:
                writer.write(frame)
        rows = []
        for name, settings, options in (
            ("ferlib (default fast path)", FAST, FAST_DETECTOR_OPTIONS["haar"]),
            ("ferlib --every-frame", EVERY_FRAME, {}),
        ):
            analyzer = LiveAnalyzer(make_detector("haar", **options), classifier, settings)
            analyze_video(clip, analyzer)  # warm-up: first calls, caches
            started = time.perf_counter()
            analysis = analyze_video(clip, analyzer)
            write_records_csv(analysis.records, io.StringIO())
            elapsed = time.perf_counter() - started
            rows.append((name, analysis, analysis.frames / elapsed))
        decoded = [frame for _, _, frame in read_video_frames(clip)]
    try:
        from fer.fer import FER
    except ImportError:
        sys.exit("error: Expected the `fer` package; install it with `pip install --no-deps -r requirements-bench.txt`")
    detector = FER()
    for frame in decoded[:5]:
        detector.detect_emotions(frame)
    started = time.perf_counter()
    fer_faces = [len(detector.detect_emotions(frame)) for frame in decoded]
    fer_fps = len(decoded) / (time.perf_counter() - started)

    print(f"{len(decoded)} frames of 640x480, one face, one core; model {variant.path.name}")
    stages = "".join(f"{stage + ' ms':>16}" for stage in VIDEO_STAGES)
    print(f"{'pipeline':<28}{'fps':>8}{'x fer':>7}{'face ids':>9}{'rows':>6}{stages}")
    for name, analysis, fps in rows:
        cells = "".join(f"{1000 * analysis.stage_seconds[stage] / analysis.frames:>16.2f}" for stage in VIDEO_STAGES)
        print(f"{name:<28}{fps:>8.1f}{fps / fer_fps:>7.1f}{analysis.faces:>9}{len(analysis.records):>6}{cells}")
    one_face = sum(count == 1 for count in fer_faces) / len(fer_faces)
    print(f"{'fer FER().detect_emotions':<28}{fer_fps:>8.1f}{1.0:>7.1f}{'-':>9}{sum(fer_faces):>6}")
    print(f"fer found exactly one face in {one_face:.0%} of the frames")


if __name__ == "__main__":
    main()
