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
    assert app.image[0].captions == ["1 face(s) found"]
    (face,) = [expander for expander in app.expander if expander.label.startswith("Face 1:")]
    assert " happy (" in face.label
    app.run()
    assert not app.exception and len(analyses) == 1 and app.image[0].captions == ["1 face(s) found"]
