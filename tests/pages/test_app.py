"""Dashboard pages under Streamlit's AppTest: they render without exceptions in each situation."""

import shutil

import pytest
from conftest import REPO_ROOT
from streamlit.testing.v1 import AppTest


def run_app(timeout: float = 60) -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=timeout)
    return app.run()


def test_home_without_a_model_explains_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("FERLIB_MODEL", str(tmp_path / "absent.keras"))
    app = run_app()
    assert not app.exception
    assert app.title[0].value == "🎭 FER Studio"
    assert any("No trained model is installed yet" in info.value for info in app.info)


def test_home_with_a_model_shows_its_card(monkeypatch, tmp_path, tiny_model_path):
    model = tmp_path / "model.keras"
    shutil.copy(tiny_model_path, model)
    shutil.copy(tiny_model_path.with_suffix(".json"), model.with_suffix(".json"))
    model.with_suffix(".md").write_text("# Model card: model.keras\n\n## Limitations and risks\n")
    monkeypatch.setenv("FERLIB_MODEL", str(model))
    app = run_app()
    assert not app.exception
    labels = [metric.label for metric in app.metric]
    assert "Validation accuracy" in labels and "Macro-F1" in labels
    assert app.metric[0].value.endswith("%")
    (card,) = [expander for expander in app.expander if expander.label.startswith("Model card")]
    assert "Limitations and risks" in "\n".join(markdown.value for markdown in card.markdown)


def test_home_with_a_damaged_card_says_so(monkeypatch, tmp_path, tiny_model_path):
    """A truncated sidecar used to read as 'no card': the page showed 0.0% accuracy with no explanation."""
    model = tmp_path / "model.keras"
    shutil.copy(tiny_model_path, model)
    model.with_suffix(".json").write_text('{"class_names": ["angry", ')
    monkeypatch.setenv("FERLIB_MODEL", str(model))
    app = run_app()
    assert not app.exception
    assert any("card could not be read" in error.value and "model.json" in error.value for error in app.error)
    assert app.metric[0].value == "–"


@pytest.fixture(autouse=True)
def clear_streamlit_caches():
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


def test_home_reads_an_uploaded_photo_with_the_shipped_model_once(monkeypatch):
    """The workshop's question, 'happy or sad?': the astronaut photo's one face comes out happy; later reruns
    redraw it from the cached analysis instead of finding and classifying the face again."""
    import cv2

    from ferlib.live.pipeline import EmotionPipeline

    skimage_data = pytest.importorskip("skimage.data")
    monkeypatch.delenv("FERLIB_MODEL", raising=False)
    analyses, analyze = [], EmotionPipeline.analyze
    monkeypatch.setattr(EmotionPipeline, "analyze", lambda self, image: analyses.append(1) or analyze(self, image))
    ok, photo = cv2.imencode(".jpg", cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    assert ok
    app = run_app(timeout=120)
    app.get("file_uploader")[0].upload("astronaut.jpg", photo.tobytes(), "image/jpeg").run()
    assert not app.exception
    assert app.image[0].captions == ["1 face found"]
    (face,) = [expander for expander in app.expander if expander.label.startswith("Face 1:")]
    assert " happy (" in face.label
    app.run()
    assert not app.exception and len(analyses) == 1 and app.image[0].captions == ["1 face found"]
    # Read 18 ways, as the model's best accuracy was measured: one more analysis, its own answer.
    from ferlib.data.preprocess import decode_photo
    from ferlib.evaluation.metrics import AveragedViews
    from ferlib.live.detection import make_detector
    from ferlib.nets.classifier import make_classifier

    app.toggle(key="home_views").set_value(True).run()
    assert not app.exception and len(analyses) == 2
    image = decode_photo(photo.tobytes())
    averaged = EmotionPipeline(make_detector("haar"), AveragedViews(make_classifier(), "zooms")).analyze(image)
    (face,) = [expander for expander in app.expander if expander.label.startswith("Face 1:")]
    assert face.label.endswith(f" happy ({averaged.faces[0].confidence:.0%})")


def test_a_bug_shows_a_short_internal_error_and_logs_its_traceback(monkeypatch, caplog, tmp_path):
    """Anything but a user mistake (FerError) is a bug: a short error box, its traceback in the server log."""
    from ferlib.jobs import runs

    def broken(*arguments, **keywords):
        raise RuntimeError("a bug deep inside")

    monkeypatch.setenv("FERLIB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(runs, "list_runs", broken)
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60)
    app.switch_page("pages/training.py")
    with caplog.at_level("ERROR", logger="fer_studio"):
        app.run()
    assert not app.exception
    (error,) = app.error
    assert error.value.startswith("Internal error") and "a bug" in error.value and "server log" in error.value
    assert "a bug deep inside" not in error.value  # the details go to the log, not the page
    (record,) = [record for record in caplog.records if record.name == "fer_studio"]
    assert record.exc_info and record.exc_info[0] is RuntimeError and "Training" in record.getMessage()


def test_a_user_mistake_no_page_explained_shows_its_message(monkeypatch, tmp_path):
    from ferlib.errors import FerError
    from ferlib.jobs import runs

    def refuse(*arguments, **keywords):
        raise FerError("Expected a runs folder; received a file")

    monkeypatch.setenv("FERLIB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(runs, "list_runs", refuse)
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60)
    app.switch_page("pages/training.py")
    app.run()
    assert not app.exception
    assert "Expected a runs folder; received a file" in app.error[0].value


@pytest.mark.parametrize("control", ["rerun", "switch_page"])
def test_streamlit_control_flow_passes_through_the_internal_error_guard(monkeypatch, tmp_path, control):
    """st.rerun and st.switch_page raise BaseExceptions inside navigation.run(): the guard must let them through."""
    import streamlit as st

    from ferlib.jobs import runs

    calls = []

    def list_runs(*arguments, **keywords):
        calls.append(control)
        if len(calls) == 1:
            st.rerun() if control == "rerun" else st.switch_page("pages/home.py")
        return []

    monkeypatch.setenv("FERLIB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(runs, "list_runs", list_runs)
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60)
    app.switch_page("pages/training.py")
    app.run()
    assert not app.exception and not app.error
    expected = "Training" if control == "rerun" else "🎭 FER Studio"
    assert app.title[0].value == expected and calls[0] == control
