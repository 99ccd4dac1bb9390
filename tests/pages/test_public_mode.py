"""A public deployment (FERLIB_PUBLIC=1, or `public = true` under [ferlib] in the secrets) under AppTest: no enabled
button starts, resumes, stops or deletes a job, trains the best trial or stores a dataset, each refusal says why in
one sentence, and the administrator's password (admin_password under [ferlib]) opens them again."""

import os
import shutil
from types import SimpleNamespace

import pytest
from conftest import REPO_ROOT
from streamlit.testing.v1 import AppTest

from ferlib.atomic import atomic_write_json
from ferlib.jobs import folder, runs, searches
from ferlib.training import run_launch
from ferlib.training.config import TrainConfig
from ferlib.tuning import search_launch, search_space
from pages.components.access import LOCKED

TINY = {"filters": (8, 16, 32), "dense_units": 16}
JOB_BUTTONS = ("Start training", "Resume", "Stop", "Yes, delete", "Resume from the snapshot", "Start search")
JOB_BUTTONS += ("Train with the best hyperparameters", "Check and save", "Save")


@pytest.fixture
def deployment(tmp_path, monkeypatch, training_data) -> SimpleNamespace:
    """A stopped run, a finished search, a running search elsewhere in time and a dataset, as an admin left them."""
    paths = SimpleNamespace(runs=tmp_path / "runs", searches=tmp_path / "searches", data=tmp_path / "data")
    for path in vars(paths).values():
        path.mkdir()
    for name, path in (("RUNS", paths.runs), ("SEARCHES", paths.searches), ("DATA", paths.data)):
        monkeypatch.setenv(f"FERLIB_{name}_DIR", str(path))
    shutil.copy(training_data, paths.data / "fer_small.zip")
    config = TrainConfig(architecture="compact_cnn", hyperparameters=TINY, data=str(training_data), epochs=3)
    paths.run = run_launch.create_run(config, paths.runs, run_id="20260101-000000-compact_cnn-aaaa")
    folder.write_status(paths.run, "stopped", epochs_completed=1)
    (paths.run / runs.LAST_MODEL).write_bytes(b"a checkpoint")
    space = {"learning_rate": [0.001, 0.01]}
    search = search_space.SearchConfig(max_trials=2, epochs=1, subset=0.5, space=space, base=config)
    paths.search = search_launch.create_search(search, paths.searches, search_id="20260101-000000-random-aaaa")
    best = {"trial": "0", "score": 0.4, "hyperparameters": {"learning_rate": 0.01}, "config": config.to_dict()}
    atomic_write_json(paths.search / searches.BEST_FILE, best)
    folder.write_status(paths.search, "running")
    folder.write_status(paths.search, "stopped")
    monkeypatch.setattr(folder, "spawn", lambda *arguments, **keywords: SimpleNamespace(pid=os.getpid()))
    return paths


@pytest.fixture(autouse=True)
def clear_streamlit_caches():
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


def open_page(page: str, secrets: dict | None = None) -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
    app.secrets.update(secrets or {})
    app.switch_page(f"pages/{page}.py")
    return app.run()


def sign_in(app: AppTest, password: str) -> None:
    app.text_input(key="ferlib_admin_password").set_value(password)
    next(button for button in app.sidebar.button if button.label == "Sign in").click().run()


def job_controls(app: AppTest) -> dict[str, bool]:
    """Every button and popover that changes jobs or data: label → whether it is enabled."""
    found = {button.label: not button.disabled for button in app.button if button.label in JOB_BUTTONS}
    popovers = [(popover.proto.popover.label, popover.proto.popover.disabled) for popover in app.get("popover")]
    return found | {label: not disabled for label, disabled in popovers if label in ("Delete…", "Name, tags and note")}


@pytest.mark.parametrize("switch", ["environment", "secrets"])
def test_a_public_demo_has_no_enabled_job_buttons_and_says_why(deployment, monkeypatch, switch):
    monkeypatch.delenv("FERLIB_PUBLIC", raising=False)
    secrets = {"ferlib": {"public": True, "admin_password": "s3cret"}}
    if switch == "environment":
        monkeypatch.setenv("FERLIB_PUBLIC", "1")
        secrets = {}
    training, tune = open_page("training", secrets), open_page("tune", secrets)
    assert not training.exception and not tune.exception
    controls = job_controls(training) | job_controls(tune)
    assert {"Start training", "Resume", "Delete…", "Resume from the snapshot", "Start search"} <= set(controls)
    assert {"Train with the best hyperparameters", "Name, tags and note"} <= set(controls)
    assert not any(controls.values()), controls
    assert LOCKED in [warning.value for warning in training.warning] + [warning.value for warning in tune.warning]
    assert LOCKED.count(". ") == 0 and len(LOCKED) < 250  # one sentence
    dataset = open_page("dataset", secrets)
    assert not dataset.exception and LOCKED in [info.value for info in dataset.info]
    assert dataset.file_uploader(key="dataset_upload").proto.disabled and not job_controls(dataset)["Check and save"]


def test_the_admin_password_opens_the_job_buttons_and_a_wrong_one_does_not(deployment, monkeypatch):
    monkeypatch.setenv("FERLIB_PUBLIC", "1")
    secrets = {"ferlib": {"admin_password": "s3cret"}}
    app = open_page("training", secrets)
    sign_in(app, "guess")
    assert any("not the administrator's password" in error.value for error in app.sidebar.error)
    assert not any(job_controls(app).values())

    sign_in(app, "s3cret")
    assert not app.exception and app.session_state["ferlib_admin"] is True
    assert "Sign out" in [button.label for button in app.sidebar.button]
    controls = job_controls(app)
    assert controls["Start training"] and controls["Resume"] and controls["Delete…"] and controls["Name, tags and note"]
    app.switch_page("pages/tune.py").run()
    controls = job_controls(app)
    assert controls["Start search"] and controls["Resume"] and controls["Train with the best hyperparameters"]

    app.switch_page("pages/training.py").run()
    next(button for button in app.button if button.label == "Resume").click().run()
    assert not app.exception and folder.read_status(deployment.run)["state"] == "created"  # it really resumed


def test_without_an_admin_password_in_the_secrets_no_password_opens_them(deployment, monkeypatch):
    monkeypatch.setenv("FERLIB_PUBLIC", "1")
    app = open_page("tune")
    sign_in(app, "")
    assert not any(job_controls(app).values())


def test_a_private_deployment_is_unchanged(deployment, monkeypatch):
    monkeypatch.delenv("FERLIB_PUBLIC", raising=False)
    app = open_page("training")
    assert not app.exception and "Administrator" not in [expander.label for expander in app.sidebar.expander]
    controls = job_controls(app)
    assert controls.pop("Resume from the snapshot") is False  # it waits for a snapshot, not for a password
    assert controls and all(controls.values())
