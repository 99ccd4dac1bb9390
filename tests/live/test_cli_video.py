"""`python -m ferlib predict VIDEO`: one CSV row per face per frame, an annotated clip, the documented last line."""

import csv
import re

import cv2
import numpy as np
import pytest
from test_cli import run_cli

from ferlib.classes import EMOTIONS
from ferlib.live.video import CSV_COLUMNS, VideoWriter, read_video_frames


@pytest.fixture
def astronaut_mp4(tmp_path):
    """A 12-frame 320x240 MP4 of the smiling astronaut's head drifting right, 2 pixels a frame."""
    skimage_data = pytest.importorskip("skimage.data")
    head = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)[:240, 110:410]
    path = tmp_path / "astronaut.mp4"
    with VideoWriter(path, 12, 320, 240) as writer:
        for index in range(12):
            frame = np.zeros((240, 320, 3), np.uint8)
            frame[:, 10 + 2 * index : 310] = head[:, : 300 - 2 * index]
            writer.write(frame)
    return path


def test_predict_video_writes_csv_and_annotated_clip(astronaut_mp4, tiny_model_path, tmp_path):
    table, annotated = tmp_path / "out" / "faces.csv", tmp_path / "out" / "annotated.mp4"
    result = run_cli("predict", astronaut_mp4, "--model", tiny_model_path, "--csv", table, "--video-out", annotated)
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"frames=12 faces=(\d+) fps=(\d+\.\d)", result.stdout.strip().splitlines()[-1])
    assert match and int(match.group(1)) == 1 and float(match.group(2)) > 0
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(CSV_COLUMNS)
    # A face is confirmed on its third detection, and its frames before that get their rows too.
    assert [int(row["frame"]) for row in rows] == list(range(12))
    assert {row["face_id"] for row in rows} == {"1"} and {row["label"] for row in rows} <= set(EMOTIONS)
    assert float(rows[1]["time_s"]) == pytest.approx(1 / 12, abs=1e-3)
    for row in rows:
        assert sum(float(row[name]) for name in EMOTIONS) == pytest.approx(1.0, abs=2e-3)
        assert float(row["confidence"]) == max(float(row[name]) for name in EMOTIONS)
    assert int(rows[-1]["x"]) > int(rows[0]["x"])  # the box followed the drifting face
    frames = list(read_video_frames(annotated))
    assert len(frames) == 12 and frames[0][2].shape == (240, 320, 3)


def test_predict_video_prints_csv_without_a_file(astronaut_mp4, tiny_model_path):
    result = run_cli("predict", astronaut_mp4, "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert len(lines) == 1 + 12 + 1 and lines[-1].startswith("frames=12 faces=1 fps=")


def test_predict_video_mistakes_are_one_line_errors(astronaut_mp4, tiny_model_path, tmp_path):
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((60, 80, 3), 100, np.uint8))
    mixed = run_cli("predict", astronaut_mp4, photo, "--model", tiny_model_path)
    assert mixed.returncode == 2 and mixed.stderr.strip().splitlines()[-1] == (
        "error: Expected photos or a single video; received 2 files with a video"
    )
    views = run_cli("predict", astronaut_mp4, "--tta", "zooms", "--model", tiny_model_path)
    assert views.returncode == 2 and views.stderr.strip().splitlines()[-1] == (
        f"error: Expected --tta with photos (a video is read one view per frame); received {str(astronaut_mp4)!r}"
    )
    photos_only = run_cli("predict", photo, "--csv", tmp_path / "x.csv", "--model", tiny_model_path)
    assert photos_only.returncode == 2 and "Expected a video file with --csv" in photos_only.stderr
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    unreadable = run_cli("predict", broken, "--model", tiny_model_path)
    assert unreadable.returncode == 2 and "Traceback" not in unreadable.stderr
    assert unreadable.stderr.strip().splitlines()[-1].startswith("error: Expected a readable video file")


def test_every_frame_runs_the_detector_on_each_frame_with_the_same_rows(astronaut_mp4, tiny_model_path):
    fast = run_cli("predict", astronaut_mp4, "--model", tiny_model_path)
    exhaustive = run_cli("predict", astronaut_mp4, "--model", tiny_model_path, "--every-frame")
    assert exhaustive.returncode == 0, exhaustive.stderr
    assert exhaustive.stdout.strip().splitlines()[-1].startswith("frames=12 faces=1 fps=")
    frames = [[line.split(",")[0] for line in result.stdout.splitlines()[1:-1]] for result in (fast, exhaustive)]
    assert frames[0] == frames[1] == [str(index) for index in range(12)]
