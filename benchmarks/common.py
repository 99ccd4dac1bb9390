"""Shared helpers of the benchmark scripts: timing, thread pinning, real faces to run on."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_ZIP = REPO_ROOT.parent / "shared" / "data" / "fer2013.zip"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import ferlib  # noqa: E402, F401  before TensorFlow, as in the CLI and the app: it sets TensorFlow's oneDNN default


def limit_threads(threads: int) -> None:
    """Pin this process to `threads` cores (0 = all) before TensorFlow starts, so 'one core' means one core."""
    if threads > 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]))
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)  # 0 lets TensorFlow use every core
    tf.config.threading.set_inter_op_parallelism_threads(1 if threads == 1 else 0)


def median_ms(function: Callable[[], object], repeats: int, warmup: int = 10) -> float:
    """Median wall time of `function` in milliseconds, after warm-up calls."""
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(1000 * (time.perf_counter() - started))
    return statistics.median(samples)


def validation_faces(limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FER-2013 PublicTest faces and labels from ../shared/data, or random faces when the data is absent."""
    return split_faces("validation", limit)


def split_faces(split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One split's faces and labels from ../shared/data, or random faces when the data is absent."""
    if SHARED_ZIP.exists():
        from ferlib.data.datasets import load_dataset

        images, labels = load_dataset(SHARED_ZIP).subset(split)
    else:
        print(f"note: {SHARED_ZIP} not found; timing on random faces", file=sys.stderr)
        generator = np.random.default_rng(0)
        count = max(512, limit or 0)
        images = generator.integers(0, 256, (count, 48, 48), dtype=np.uint8)
        labels = generator.integers(0, 7, count).astype(np.int64)
    return (images[:limit], labels[:limit]) if limit else (images, labels)


def astronaut_frames(count: int) -> list[np.ndarray]:
    """`count` 640x480 BGR frames of the astronaut moving left and right by up to 40 pixels."""
    import cv2
    from skimage import data

    face = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (480, 480))
    frames = []
    for index in range(count):
        frame = np.zeros((480, 640, 3), np.uint8)
        shift = round(40 * np.sin(2 * np.pi * index / 90))
        frame[:, 80 + shift : 560 + shift] = face
        frames.append(frame)
    return frames
