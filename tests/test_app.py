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
