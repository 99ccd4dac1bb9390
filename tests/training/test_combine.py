"""ferlib.training.combine and `python -m ferlib ensemble`: models combined into one shipped model with its card."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ferlib.classes import ClassSet
from ferlib.errors import FerError
from ferlib.evaluation.cards import describe_hyperparameters
from ferlib.evaluation.metrics import ten_view_mode
from ferlib.nets.classifier import TFLiteClassifier
from ferlib.nets.ensemble import ensemble_members
from ferlib.nets.modelio import check_initial_model, check_teacher, load_model, read_metadata
from ferlib.training.combine import ensemble_config, member_summary, ship_ensemble, training_effort


def copied_model(source, target):
    """A second model file with its card (same weights: the combining, not the accuracy, is under test)."""
    shutil.copy(source, target)
    shutil.copy(source.with_suffix(".json"), target.with_suffix(".json"))
    return target


def test_two_models_ship_as_one_ensemble_with_exports_and_a_card(tmp_path, tiny_model_path, training_data):
    other = copied_model(tiny_model_path, tmp_path / "other.keras")
    target = tmp_path / "shipped" / "pair.keras"
    card = ship_ensemble([tiny_model_path, other], training_data, target, weights=[3, 1], notes=["A pair."])
    names = ("pair.keras", "pair.json", "pair.md", "pair.tflite", "pair.int8.tflite")
    assert sorted(path.name for path in target.parent.iterdir()) == sorted(names)  # no staging folder left
    members = card["config"]["members"]  # listed once, in the config saved with the weights
    assert "members" not in card and [member["weight"] for member in members] == [0.75, 0.25]
    assert [member["model"] for member in members] == [f"{tiny_model_path.parent.name}/best.keras", "other.keras"]
    # The copy's card names the same run: one epoch of training behind both, counted once.
    assert [member["epochs_completed"] for member in members] == [1, 1] and card["epochs_completed"] == 1
    assert card["config"]["architecture"] == card["architecture"] == "ensemble"
    assert card["metrics"]["n"] == 56 and "validation_accuracy_tta_shifts" in card["metrics"]
    assert card == read_metadata(target)
    model, _ = load_model(target)  # every consumer's loader takes it
    assert [weight for _, weight in ensemble_members(model)] == [0.75, 0.25]
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48)).astype(np.uint8)
    same = TFLiteClassifier(target.with_suffix(".tflite"))(faces).argmax(1) == model.predict(
        faces[..., None].astype(np.float32), verbose=0
    ).argmax(1)
    assert same.all()
    with pytest.raises(FerError, match=r"^Expected initial_model to be one compact_cnn network; received pair\.keras"):
        check_initial_model(target, "compact_cnn", {})  # an ensemble starts no run: one of its members may
    assert check_teacher(target, ClassSet.all()) == target.resolve()  # but it may teach one
    markdown = target.with_suffix(".md").read_text()
    assert "An ensemble of 2 networks, combined by `python -m ferlib ensemble`" in markdown
    assert "| `other.keras` | 25% | compact_cnn |" in markdown and "- Note: A pair." in markdown
    settings = describe_hyperparameters(members[1]["hyperparameters"])
    assert f"- `other.keras`: {settings}." in markdown and "filters" in settings  # what each network is


def test_an_ensemble_card_sums_its_members_training_each_run_once(tmp_path, tiny_model_path, training_data):
    card = {key: value for key, value in read_metadata(tiny_model_path).items() if key != "stages"}
    shipped = tmp_path / "shipped.keras"  # a shipped member of another run: its card says how it was trained
    shutil.copy(tiny_model_path, shipped)
    shipped_card = {**card, "source_run": "20260101-000000-vgg_fer-aaaa", "epochs_completed": 90}
    (tmp_path / "shipped.json").write_text(json.dumps({**shipped_card, "train_wall_seconds": 5400.0}))
    card = ship_ensemble([tiny_model_path, shipped], training_data, tmp_path / "pair.keras")
    run_member = card["config"]["members"][0]
    assert card["epochs_completed"] == 91 and card["lineage_complete"] is True
    assert card["train_wall_seconds"] == pytest.approx(5400.0 + run_member["train_wall_seconds"])
    markdown = (tmp_path / "pair.md").read_text()
    assert "Its members trained 91 epochs in all, 1 h 30 min of wall time" in markdown
    assert "| `shipped.keras` | 50% | compact_cnn |" in markdown and "| 90 | 1 h 30 min |" in markdown
    nested = ship_ensemble([tmp_path / "pair.keras", shipped], training_data, tmp_path / "nested.keras")
    assert nested["epochs_completed"] == 91  # the pair's members and the shipped model: each run once

    untold = {key: value for key, value in read_metadata(shipped).items() if key != "epochs_completed"}
    (tmp_path / "shipped.json").write_text(json.dumps(untold))  # a member whose card does not say: no total made up
    card = ship_ensemble([tiny_model_path, shipped], training_data, tmp_path / "other.keras")
    assert card["config"]["members"][1]["epochs_completed"] is None
    assert card["epochs_completed"] is None and card["lineage_complete"] is False
    assert "Not every member's card says how long it trained" in (tmp_path / "other.md").read_text()


def test_a_member_whose_training_is_partly_unknown_leaves_the_total_unknown():
    known = {"lineage_complete": True, "stages": [{"source_run": "a", "epochs": 5, "train_wall_seconds": 60.0}]}
    partial = {"lineage_complete": False, "stages": [{"source_run": "b", "epochs": 3, "train_wall_seconds": 30.0}]}
    shared = {
        "lineage_complete": True,
        "stages": [*known["stages"], {"source_run": None, "epochs": 2, "train_wall_seconds": 9.0}],
    }
    assert training_effort([known, shared])["epochs_completed"] == 7  # run a once, the unnamed stage on its own
    assert training_effort([known, partial]) == {
        "epochs_completed": None,
        "train_wall_seconds": None,
        "lineage_complete": False,
    }


def test_models_over_other_classes_or_the_same_file_twice_are_refused(
    tmp_path, tiny_model_path, tiny_happy_sad_path, training_data
):
    target = tmp_path / "pair.keras"
    with pytest.raises(
        FerError, match=r"^Expected models over the same classes, in the same order; received best\.keras over angry"
    ):
        ship_ensemble([tiny_model_path, tiny_happy_sad_path], training_data, target)
    with pytest.raises(FerError, match=r"^Expected different models to combine"):
        ship_ensemble([tiny_model_path, tiny_model_path], training_data, target)
    with pytest.raises(FerError, match=r"^Expected an output path ending in \.keras"):
        ship_ensemble([tiny_model_path, tiny_happy_sad_path], training_data, tmp_path / "pair.h5")
    assert list(tmp_path.iterdir()) == []
    member = copied_model(tiny_model_path, tmp_path / "member.keras")
    before = member.read_bytes()
    with pytest.raises(FerError, match=r"^Expected an output path other than the models combined"):
        ship_ensemble([tiny_model_path, member], training_data, member)
    assert member.read_bytes() == before and sorted(path.name for path in tmp_path.iterdir()) == [
        "member.json",
        "member.keras",
    ]


def test_ensembles_of_crop_networks_read_ten_crops_even_nested_and_a_checkpoint_keeps_its_score(tmp_path):
    crop = {
        "config": {"architecture": "vgg_fer", "hyperparameters": {"input_crop": 40}},
        "metrics": {"val_accuracy": 0.6},
    }
    full = {"config": {"architecture": "vgg_fer", "hyperparameters": {}}, "metrics": {"validation_accuracy": 0.5}}
    pair = ensemble_config(ClassSet.all(), [member_summary(tmp_path / "a.keras", crop, 0.5)] * 2)
    nested = member_summary(tmp_path / "pair.keras", {"config": pair}, 0.5)
    crops = ensemble_config(ClassSet.all(), [nested, member_summary(tmp_path / "b.keras", crop, 0.5)])
    mixed = ensemble_config(ClassSet.all(), [nested, member_summary(tmp_path / "c.keras", full, 0.5)])
    assert (ten_view_mode(pair), ten_view_mode(crops), ten_view_mode(mixed)) == ("crops", "crops", "shifts")
    assert member_summary(tmp_path / "a.keras", crop, 0.5)["validation_accuracy"] == 0.6


def test_the_command_refuses_a_single_model_and_unreadable_weights(tmp_path, tiny_model_path, training_data):
    def ensemble(*arguments):
        command = [sys.executable, "-m", "ferlib", "ensemble", *map(str, arguments)]
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    alone = ensemble(tiny_model_path, "--data", training_data, "--output", tmp_path / "one.keras")
    assert alone.returncode == 2 and alone.stderr.strip().splitlines()[-1] == (
        "error: Expected two or more models to combine; received 1"
    )
    words = ensemble(
        tiny_model_path, tiny_model_path, "--data", training_data, "--output", tmp_path / "x.keras", "--weights", "a,b"
    )
    assert words.returncode == 2 and "Expected weights such as 0.6,0.4; received 'a,b'" in words.stderr
    two = [tiny_model_path, tiny_model_path, "--data", training_data, "--output", tmp_path / "x.keras"]
    searched = ensemble(*two, "--weights", "search")  # only `evaluate` searches weights; an ensemble's are chosen
    assert searched.returncode == 2 and "Expected weights such as 0.6,0.4; received 'search'" in searched.stderr
    assert list(tmp_path.iterdir()) == []
