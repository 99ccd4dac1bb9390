"""A real-browser pass over every page, as a new user makes it (every expander opened, every tab visited): no raw
JSON on Home, no raw `None`, no commit hash, no '0 s left', no exception; and at phone width the sidebar starts
closed instead of covering the page."""

import re
import shutil

import pytest
from chromium import browser_available, chromium_page, page_exceptions, streamlit_server, wait_for_app

from ferlib.atomic import append_json_line, atomic_write_json
from ferlib.jobs import folder, searches
from ferlib.training.run_launch import load_config
from ferlib.tuning import search_launch, search_space

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not browser_available(), reason="Chromium or Playwright missing")]
COMMIT_HASH = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")
PAGES = ["", "dataset", "training", "metrics", "live", "tune"]


@pytest.fixture
def studio(tmp_path, tiny_model_path, training_data) -> dict[str, str]:
    """A finished, named run, a finished search and a dataset, as the environment of a `streamlit run app.py`."""
    runs_dir, searches_dir, data_dir = tmp_path / "runs", tmp_path / "searches", tmp_path / "data"
    run_dir = shutil.copytree(tiny_model_path.parent, runs_dir / tiny_model_path.parent.name)
    folder.write_label(run_dir, name="First try", tags=["demo"], note="One epoch on generated faces.")
    data_dir.mkdir()
    shutil.copy(training_data, data_dir / "fer_small.zip")
    space = {"learning_rate": [0.001, 0.01], "optimizer": ["sgd", "adam"]}
    config = search_space.SearchConfig(max_trials=2, epochs=1, subset=0.5, space=space, base=load_config(run_dir))
    search_dir = search_launch.create_search(config, searches_dir, search_id="20260101-000000-random-aaaa")
    for trial, values, score in [("0", {"learning_rate": 0.01, "optimizer": "sgd"}, 0.31), ("1", {}, None)]:
        append_json_line(
            search_dir / searches.TRIALS_FILE, {"event": "trial_start", "trial": trial, "hyperparameters": values}
        )
        if score:
            record = {"event": "trial_end", "trial": trial, "status": "completed", "score": score, "epochs": 1}
            append_json_line(search_dir / searches.TRIALS_FILE, record)
    atomic_write_json(search_dir / searches.BASELINE_FILE, {"score": 0.25, "config": config.base.to_dict()})
    best = {"trial": "0", "score": 0.31, "hyperparameters": {"learning_rate": 0.01}, "config": config.base.to_dict()}
    atomic_write_json(search_dir / searches.BEST_FILE, best)
    folder.write_status(search_dir, "running")
    folder.write_status(search_dir, "finished", reason="all trials done")
    return {
        "FERLIB_RUNS_DIR": str(runs_dir),
        "FERLIB_SEARCHES_DIR": str(searches_dir),
        "FERLIB_DATA_DIR": str(data_dir),
    }


def read(page) -> str:
    """Open every visible expander; the text a user can then read."""
    for expander in page.locator("[data-testid='stMain'] [data-testid='stExpander'] summary").all():
        if expander.is_visible() and expander.get_attribute("aria-expanded") != "true":
            expander.click()
    page.wait_for_timeout(400)
    return page.inner_text("[data-testid='stMain']")


def open_everything(page) -> str:
    """Visit every tab (and the tabs inside it) with every expander open; all the text a user can read."""
    tabs, seen = page.locator("[data-testid='stMain'] [role='tab']"), [read(page)]
    tablist = lambda index: tabs.nth(index).get_attribute("id").rsplit("-tab-", 1)[0]  # noqa: E731
    for outer in range(tabs.count()):
        if tabs.nth(outer).is_visible():
            tabs.nth(outer).click()
            seen.append(read(page))
            for inner in range(outer + 1, tabs.count()):  # tabs of another tab list, visible: inside this tab
                if tabs.nth(inner).is_visible() and tablist(inner) != tablist(outer):
                    tabs.nth(inner).click()
                    seen.append(read(page))
    return "\n".join(seen)


def test_every_page_reads_as_finished_in_a_real_browser(studio, tmp_path):
    with streamlit_server(env=studio) as url, chromium_page() as page:
        page.goto(url)
        wait_for_app(page)
        links = [link.get_attribute("href") for link in page.query_selector_all("[data-testid='stSidebarNav'] a")]
        assert [link.rstrip("/").removeprefix(url).lstrip("/") for link in links] == PAGES  # the sidebar's six
        for path in PAGES:
            page.goto(f"{url}/{path}")
            wait_for_app(page)
            if not path:
                page.get_by_role("button", name="Try the sample photo").click()
                wait_for_app(page)
            text = open_everything(page)
            page.screenshot(path=str(tmp_path / f"{path or 'home'}.png"), full_page=True)
            where = path or "home"
            assert page_exceptions(page) == [] and "Internal error" not in text, where
            assert not re.search(r"\bNone\b", text), (where, re.findall(r".{40}\bNone\b.{40}", text))
            assert not COMMIT_HASH.search(text), (where, COMMIT_HASH.findall(text))
            assert "0 s left" not in text, where
            if not path:
                assert page.locator("[data-testid='stJson']").count() == 0
                assert "1 face found" in text and "happy" in text and "train_wall_seconds" not in text
            if path == "training":
                assert "First try" in text and "One epoch on generated faces." in text


def test_at_phone_width_the_sidebar_starts_closed(tmp_path):
    env = {"FERLIB_RUNS_DIR": str(tmp_path / "runs"), "FERLIB_SEARCHES_DIR": str(tmp_path / "searches")}
    with streamlit_server(env=env) as url, chromium_page() as page:
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(url)
        wait_for_app(page)
        sidebar = page.locator("[data-testid='stSidebar']")
        assert sidebar.get_attribute("data-collapsed") == "true"
        box = page.locator("[data-testid='stMain'] h1").bounding_box()
        assert box and box["x"] < 100  # the title starts at the left edge, not behind an open sidebar


def test_a_public_demo_opens_to_its_administrator_only(tmp_path):
    """FERLIB_PUBLIC=1: Start is greyed out with the reason; a wrong password says so and is not kept in the field;
    the right one (admin_password under [ferlib] in the secrets) opens Start."""
    (tmp_path / "secrets.toml").write_text('[ferlib]\nadmin_password = "s3cret"\n')
    env = {"FERLIB_PUBLIC": "1", "STREAMLIT_SECRETS_FILES": str(tmp_path / "secrets.toml")}
    env |= {"FERLIB_RUNS_DIR": str(tmp_path / "runs"), "FERLIB_SEARCHES_DIR": str(tmp_path / "searches")}
    with streamlit_server(env=env) as url, chromium_page() as page:
        page.goto(f"{url}/training")
        wait_for_app(page)
        start = page.get_by_role("button", name="Start training")
        assert start.is_disabled() and "This public demo" in page.inner_text("[data-testid='stMain']")
        page.get_by_text("Administrator", exact=True).click()
        password = page.locator("[data-testid='stSidebar'] input[type=password]")
        for attempt in ("guess", "s3cret"):
            password.fill(attempt)
            page.get_by_role("button", name="Sign in").click()
            wait_for_app(page)
            if attempt == "guess":
                assert "not the administrator's password" in page.inner_text("[data-testid='stSidebar']")
                assert password.input_value() == "" and start.is_disabled()
        assert not page.get_by_role("button", name="Start training").is_disabled()


def test_home_answers_happy_or_sad_with_a_two_class_model(tmp_path, tiny_model_path, tiny_happy_sad_path):
    models = tmp_path / "models"
    models.mkdir()
    for source, name in ((tiny_model_path, "fer_vgg"), (tiny_happy_sad_path, "happy_or_sad")):
        shutil.copy(source, models / f"{name}.keras")
        shutil.copy(source.with_suffix(".json"), models / f"{name}.json")
    env = {"FERLIB_MODELS_DIR": str(models), "FERLIB_MODEL": str(models / "fer_vgg.keras")}
    env |= {"FERLIB_RUNS_DIR": str(tmp_path / "runs"), "FERLIB_SEARCHES_DIR": str(tmp_path / "searches")}
    with streamlit_server(env=env) as url, chromium_page() as page:
        page.goto(url)
        wait_for_app(page)
        page.get_by_text("Happy or sad?", exact=True).click()  # a segmented control
        wait_for_app(page)
        page.get_by_role("button", name="Try the sample photo").click()
        wait_for_app(page)
        answer = page.locator("[data-testid='stMain'] h1").nth(1).inner_text()  # the first is the page's title
        assert re.fullmatch(r"\S+ (Happy|Sad)", answer.strip()), answer
        text = page.inner_text("[data-testid='stMain']")
        assert page_exceptions(page) == [] and "% sure" in text
        faces = re.findall(r"Face \d: \S+ (\w+) \(\d+%\)", text)
        assert faces and set(faces) <= {"happy", "sad"}, faces
