"""Completing a shipped card: figures it lacks are added only after its recorded ones reproduce."""

import shutil

import pytest

from ferlib.atomic import atomic_write_json
from ferlib.cli import main
from ferlib.evaluation import metric_key
from ferlib.export import ship_model
from ferlib.model_card import render_model_card
from ferlib.modelio import read_metadata, sidecar_path

# What a card shipped before 10-view TTA and top-2 with TTA were recorded lacks.
LATER_FIGURES = [
    metric_key("top2_accuracy", "flip"),
    metric_key("accuracy", "shifts"),
    metric_key("macro_f1", "shifts"),
    metric_key("top2_accuracy", "shifts"),
]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, tiny_model_path, training_data):
    """The tiny model shipped once; each test copies it."""
    target = tmp_path_factory.mktemp("shipped") / "m.keras"
    ship_model(tiny_model_path.parent, training_data, target)
    return target


def old_card_copy(shipped, folder):
    """A copy of the shipped files whose card lacks the later figures, as a card shipped before them does."""
    for path in shipped.parent.glob("m.*"):
        shutil.copy2(path, folder / path.name)
    model = folder / "m.keras"
    card = read_metadata(model)
    complete = dict(card["metrics"])
    card["metrics"] = {key: value for key, value in complete.items() if key not in LATER_FIGURES}
    atomic_write_json(sidecar_path(model), card)
    (folder / "m.md").write_text(render_model_card(card, model.name), encoding="utf-8")
    return model, complete


def test_the_missing_figures_are_measured_and_added_without_touching_the_model(
    tmp_path, shipped, training_data, capsys
):
    model, complete = old_card_copy(shipped, tmp_path)
    model_bytes, model_mtime = model.read_bytes(), model.stat().st_mtime_ns
    assert "10 views" not in (tmp_path / "m.md").read_text(encoding="utf-8")

    assert main(["complete-card", "--data", str(training_data), "--model", str(model)]) == 0
    output = capsys.readouterr().out
    card = read_metadata(model)
    for key in LATER_FIGURES:
        assert card["metrics"][key] == pytest.approx(complete[key], abs=1e-6), key  # what ship measured
        assert f"{key}={complete[key]:.4f}" in output
    assert card["metrics"] == pytest.approx(complete)
    assert [addition["keys"] for addition in card["metrics_added"]] == [LATER_FIGURES]
    markdown = (tmp_path / "m.md").read_text(encoding="utf-8")
    assert markdown == render_model_card(card, model.name)
    assert "with TTA over flips and ±2-pixel shifts (10 views)" in markdown
    assert "after shipping, by `python -m ferlib complete-card`" in markdown
    assert "top-2 accuracy with horizontal-flip TTA" in markdown
    assert (model.read_bytes(), model.stat().st_mtime_ns) == (model_bytes, model_mtime)  # caches keyed on it hold

    assert main(["complete-card", "--data", str(training_data), "--model", str(model)]) == 0
    assert "nothing added" in capsys.readouterr().out
    assert read_metadata(model) == card  # a second completion records nothing more


def test_a_card_whose_figures_do_not_reproduce_is_left_unchanged(tmp_path, shipped, training_data, capsys):
    model, _ = old_card_copy(shipped, tmp_path)
    card = read_metadata(model)
    card["metrics"][metric_key("accuracy", "none")] -= 0.05  # another model's figure
    atomic_write_json(sidecar_path(model), card)
    before = sidecar_path(model).read_bytes(), (tmp_path / "m.md").read_bytes()

    assert main(["complete-card", "--data", str(training_data), "--model", str(model)]) == 2
    error = capsys.readouterr().err
    assert "Expected the card's recorded figures to reproduce" in error
    assert "validation_accuracy recorded" in error and "Traceback" not in error
    assert (sidecar_path(model).read_bytes(), (tmp_path / "m.md").read_bytes()) == before


def test_another_dataset_or_a_model_without_a_card_is_refused(tmp_path, shipped, kaggle_dir, capsys):
    model, _ = old_card_copy(shipped, tmp_path)
    before = sidecar_path(model).read_bytes()
    assert main(["complete-card", "--data", str(kaggle_dir), "--model", str(model)]) == 2
    assert "Expected the dataset the card was measured on" in capsys.readouterr().err
    assert sidecar_path(model).read_bytes() == before

    bare = tmp_path / "bare.keras"
    shutil.copy2(model, bare)
    assert main(["complete-card", "--data", str(kaggle_dir), "--model", str(bare)]) == 2
    assert "Expected a shipped model's card with its validation accuracy" in capsys.readouterr().err
    assert main(["complete-card", "--data", str(kaggle_dir), "--model", str(tmp_path / "none.keras")]) == 2
    assert "Expected an existing .keras model" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda metrics: metrics.update(validation_accuracy=float("nan")), "with its validation accuracy"),
        (lambda metrics: metrics.pop("validation_accuracy"), "with its validation accuracy"),
        (lambda metrics: metrics.pop("split"), "records its validation split and face count"),
        (lambda metrics: metrics.update(validation_macro_f1_tta=float("nan")), "validation_macro_f1_tta recorded nan"),
    ],
)
def test_a_card_without_checkable_figures_is_refused(tmp_path, shipped, training_data, capsys, change, message):
    model, _ = old_card_copy(shipped, tmp_path)
    card = read_metadata(model)
    change(card["metrics"])
    atomic_write_json(sidecar_path(model), card)
    before = sidecar_path(model).read_bytes()
    assert main(["complete-card", "--data", str(training_data), "--model", str(model)]) == 2
    assert message in capsys.readouterr().err
    assert sidecar_path(model).read_bytes() == before


def test_figures_within_the_tolerance_reproduce_and_outside_it_do_not(tmp_path, shipped, training_data):
    from ferlib.card_completion import REPRODUCTION_TOLERANCE, complete_card

    model, complete = old_card_copy(shipped, tmp_path)
    card = read_metadata(model)
    key = metric_key("accuracy", "flip")
    card["metrics"][key] = complete[key] + 1.5 * REPRODUCTION_TOLERANCE
    atomic_write_json(sidecar_path(model), card)
    with pytest.raises(ValueError, match=f"^Expected the card's recorded figures to reproduce .*{key} recorded"):
        complete_card(model, training_data)
    card["metrics"][key] = complete[key] + 0.5 * REPRODUCTION_TOLERANCE  # another CPU's rounding
    atomic_write_json(sidecar_path(model), card)
    assert list(complete_card(model, training_data)) == LATER_FIGURES
