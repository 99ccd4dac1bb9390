"""Learning from teachers: soft targets mixed into the labels, computed once and carried by the run and its snapshot."""

import json
import shutil

import numpy as np
import pytest
from conftest import stop_after_first_epoch

from ferlib.classes import EMOTIONS, ClassSet
from ferlib.cli import main
from ferlib.errors import FerError
from ferlib.evaluation.cards import render_model_card
from ferlib.jobs import runs
from ferlib.nets.modelio import read_metadata
from ferlib.training import run_launch
from ferlib.training.config import TrainConfig
from ferlib.training.distillation import TARGETS_FILE, mixed_targets, targets_for_run, teacher_probabilities
from ferlib.training.snapshot import read_snapshot, restore_snapshot, write_snapshot
from ferlib.training.trainer import run_training


class FixedModel:
    """A stand-in teacher whose every face (and its mirror) gets the same probabilities over seven emotions."""

    def __init__(self, probabilities):
        self.probabilities = np.asarray(probabilities, dtype=np.float32)

    def predict(self, batch, batch_size=256, verbose=0):
        return np.tile(self.probabilities, (len(batch), 1))


def test_a_target_mixes_the_label_with_the_teachers_by_their_weight():
    labels = np.array([0, 2])
    teachers = np.array([[0.2, 0.8, 0.0], [0.5, 0.0, 0.5]], dtype=np.float32)
    np.testing.assert_array_equal(mixed_targets(labels, 3, None, 0.0), np.eye(3)[labels])
    mixed = mixed_targets(labels, 3, teachers, 0.25)
    np.testing.assert_allclose(mixed, [[0.8, 0.2, 0.0], [0.125, 0.0, 0.875]])
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0)


def test_a_teacher_of_seven_emotions_speaks_for_merged_classes_and_subsets():
    probabilities = [0.1, 0.05, 0.15, 0.4, 0.2, 0.0, 0.1]  # angry disgust fear happy sad surprise neutral
    teacher = FixedModel(probabilities)
    card = {"class_names": list(EMOTIONS)}
    faces = np.zeros((3, 48, 48), np.uint8)
    merged = ClassSet.parse({"negative": ["angry", "disgust", "fear", "sad"], "happy": ["happy"]})
    np.testing.assert_allclose(teacher_probabilities(teacher, card, faces, merged), [[0.5 / 0.9, 0.4 / 0.9]] * 3)
    subset = ClassSet.parse(["happy", "sad"])
    np.testing.assert_allclose(teacher_probabilities(teacher, card, faces, subset), [[2 / 3, 1 / 3]] * 3, rtol=1e-6)
    with pytest.raises(FerError, match=r"^Expected a model that knows sad; received one over happy"):
        teacher_probabilities(teacher, {"class_names": ["happy", "neutral"]}, faces, subset)


def test_class_weights_follow_each_faces_label_even_where_the_teachers_outweigh_it():
    from ferlib.training.trainer import make_training_pipeline

    labels = np.array([0, 0, 0, 1])
    teachers = np.tile(np.eye(7, dtype=np.float32)[3], (4, 1))  # the teachers say happy for every face
    config = TrainConfig(teachers=["a.keras"], teacher_weight=0.9, class_weighting=True, batch_size=4, seed=1)
    pipeline = make_training_pipeline(np.zeros((4, 48, 48), np.uint8), labels, config, teacher_targets=teachers)
    ((_, targets, weights),) = list(pipeline.as_numpy_iterator())
    assert (targets.argmax(axis=1) == 3).all()
    np.testing.assert_allclose(sorted(weights), [4 / 21, 4 / 21, 4 / 21, 4 / 7])  # by the labels: 3 angry, 1 disgust


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"teachers": ["a.keras"]}, r"teachers and a teacher_weight above 0 together; received 1 teacher\(s\)"),
        ({"teacher_weight": 0.5}, r"teachers and a teacher_weight above 0 together; received 0 teacher\(s\)"),
        ({"teachers": "a.keras", "teacher_weight": 0.5}, r"teachers to be a list of \.keras paths"),
        ({"teachers": ["a.keras"], "teacher_weight": 1.5}, r"teacher_weight in \[0, 1\]; received 1.5"),
    ],
)
def test_teacher_settings_are_checked_together(changes, message):
    with pytest.raises(FerError, match=f"^Expected {message}"):
        TrainConfig(**changes)


def test_targets_are_kept_in_the_run_folder_and_refused_for_other_faces_or_teachers(tmp_path, tiny_model_path):
    teacher = copy_model(tiny_model_path, tmp_path / "teacher.keras")
    config = TrainConfig(teachers=[str(teacher)], teacher_weight=0.5)
    generator = np.random.default_rng(0)
    faces, labels = generator.integers(0, 256, (10, 48, 48), dtype=np.uint8), generator.integers(0, 7, 10)
    targets = targets_for_run(tmp_path, config, faces, labels)
    assert targets.shape == (10, 7) and targets.dtype == np.float32
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=2e-3)
    assert (tmp_path / TARGETS_FILE).exists()
    teacher.unlink()  # read back: the teacher is no longer needed
    np.testing.assert_array_equal(targets_for_run(tmp_path, config, faces, labels), targets)
    np.testing.assert_array_equal(targets_for_run(tmp_path, config, faces, labels, save=False), targets)  # a worker
    again = f"or delete {TARGETS_FILE} to score the faces again"
    with pytest.raises(FerError, match=rf"^Expected the 10 training faces {TARGETS_FILE} was computed on; .*{again}$"):
        targets_for_run(tmp_path, config, faces[::-1].copy(), labels)
    other = config.updated(teachers=[str(tmp_path / "other.keras")])
    with pytest.raises(FerError, match=rf"^Expected the teachers {TARGETS_FILE} was computed from \(.*teacher.keras\)"):
        targets_for_run(tmp_path, other, faces, labels)
    (tmp_path / TARGETS_FILE).write_bytes(b"PK damaged")
    with pytest.raises(FerError, match=r"^Expected readable teacher targets; received .*, which is damaged"):
        targets_for_run(tmp_path, config, faces, labels)
    assert targets_for_run(tmp_path, TrainConfig(), faces, labels) is None


def copy_model(source, target):
    shutil.copy(source, target)
    shutil.copy(source.with_suffix(".json"), target.with_suffix(".json"))
    return target


TINY = {"architecture": "compact_cnn", "hyperparameters": {"filters": [8, 16, 32], "dense_units": 16}}


def test_the_command_line_trains_a_run_with_a_teacher_and_its_card_says_so(tmp_path, training_data, tiny_model_path):
    teacher = copy_model(tiny_model_path, tmp_path / "teacher.keras")
    (tmp_path / "config.json").write_text(json.dumps({**TINY, "batch_size": 32, "epochs": 1}))
    arguments = ["train", "--config", str(tmp_path / "config.json"), "--data", str(training_data), "--quiet"]
    arguments += ["--runs-dir", str(tmp_path / "runs"), "--teacher", str(teacher), "--teacher-weight", "0.4"]
    assert main(arguments) == 0
    (run_dir,) = [path for path in (tmp_path / "runs").iterdir() if path.is_dir()]
    config = run_launch.load_config(run_dir)
    assert config.teachers == [str(teacher.resolve())] and config.teacher_weight == 0.4
    assert (run_dir / TARGETS_FILE).exists()
    card = read_metadata(run_dir / runs.BEST_MODEL)
    assert (
        "- Learned from `teacher.keras` as well as from the labels (knowledge distillation): each face's target "
        "was 60% its label and 40% the averaged probabilities of those models, then label smoothing 0.1."
        in render_model_card(card, "best.keras")
    )


def test_a_stopped_run_moves_with_its_targets_and_finishes_without_its_teacher(
    tmp_path, training_data, tiny_model_path
):
    teacher = copy_model(tiny_model_path, tmp_path / "teacher.keras")
    config = TrainConfig(
        **TINY, batch_size=32, epochs=2, data=str(training_data), teachers=[str(teacher)], teacher_weight=0.5
    )
    run_dir = run_launch.create_checked_run(config, tmp_path / "laptop")
    with stop_after_first_epoch(run_dir):
        assert run_training(run_dir, verbose=0)["state"] == "stopped"
    targets = np.load(run_dir / TARGETS_FILE)["targets"]
    write_snapshot(run_dir, tmp_path / "run.snapshot.zip")
    assert TARGETS_FILE in read_snapshot(tmp_path / "run.snapshot.zip").files
    shutil.rmtree(run_dir)
    teacher.unlink()  # the moved run needs its targets, not its teacher

    moved = restore_snapshot(tmp_path / "run.snapshot.zip", tmp_path / "server")
    np.testing.assert_array_equal(np.load(moved / TARGETS_FILE)["targets"], targets)
    assert run_training(moved, resume=True, verbose=0)["state"] == "finished"
    assert [int(row["epoch"]) for row in runs.read_history(moved)] == [0, 1]


def test_the_command_line_refuses_a_missing_teacher_before_a_run_exists(tmp_path, training_data, capsys):
    arguments = ["train", "--data", str(training_data), "--runs-dir", str(tmp_path / "runs")]
    assert main([*arguments, "--teacher", str(tmp_path / "gone.keras")]) == 2
    assert capsys.readouterr().err.startswith("error: Expected each teacher to be an existing .keras file")
    assert not (tmp_path / "runs").exists() or not [path for path in (tmp_path / "runs").iterdir() if path.is_dir()]
    assert main([*arguments, "--run-dir", str(tmp_path / "runs"), "--resume", "--teacher", "a.keras"]) == 2
    assert "Expected --initial-model and --teacher only for a new run" in capsys.readouterr().err
