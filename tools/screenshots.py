"""Retake the README's screenshots (docs/screenshots/*.png) from the running dashboard in headless Chromium.

    python tools/screenshots.py [--data ../shared/data/fer2013.zip] [--only home,live] [--runs-dir DIR]
                                [--searches-dir DIR]

Every page is shown as a user sees it, with the shipped models and real FER-2013 faces. The Training page shows the
runs in --runs-dir, else a small real run made first on a quarter of the training faces (stopped after a few epochs
and resumed, as people do); the Tune page the searches in --searches-dir, else a five-trial random search made first on
the default budget per trial. Both go in a temporary folder; the search takes the longest (1 h 47 min on two cores
shared with a training run). Needs Debian's chromium and Playwright (requirements-dev.txt), and a colour emoji font
for the icons (Debian's fonts-noto-color-emoji).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests" / "browser")]  # ferlib, and the browser tests' helpers

from chromium import (  # noqa: E402
    astronaut_clip,
    browser_available,
    chromium_page,
    page_exceptions,
    streamlit_server,
    wait_for_app,
)

from ferlib.jobs import folder  # noqa: E402

WIDTH = 1280
# Small enough for a few minutes on two cores, long enough to learn something: Adam on a quarter of the faces.
DEMO_RUN = {"architecture": "compact_cnn", "optimizer": "adam", "learning_rate": 0.001, "epochs": 10}
DEMO_RUN |= {"train_fraction": 0.25, "seed": 7}
DEMO_RUN_NAME = "Compact CNN on a quarter of the faces"
STOP_AFTER_EPOCH = 4


def ferlib_command(*arguments: str) -> None:
    """Run `python -m ferlib …` from the repository, quietly; a failure stops the script with its output."""
    done = subprocess.run([sys.executable, "-m", "ferlib", *arguments], cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"python -m ferlib {' '.join(arguments)} failed:\n{done.stderr[-3000:]}")


def demo_run(runs_dir: Path, data: str, work: Path) -> None:
    """A small real run, stopped by request after epoch STOP_AFTER_EPOCH and resumed to its end."""
    config = work / "demo-run.json"
    config.write_text(json.dumps(DEMO_RUN))
    command = [sys.executable, "-m", "ferlib", "train", "--config", str(config), "--data", data, "--quiet"]
    command += ["--runs-dir", str(runs_dir), "--name", DEMO_RUN_NAME, "--tag", "demo"]
    with (work / "demo-run.log").open("w") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        run_dir = None
        try:
            while process.poll() is None:
                run_dir = next((path for path in runs_dir.glob("*") if (path / folder.CONFIG_FILE).exists()), None)
                epochs = [r for r in folder.read_progress(run_dir) if r.get("event") == "epoch"] if run_dir else []
                if len(epochs) >= STOP_AFTER_EPOCH:
                    folder.request_stop(run_dir)
                    break
                time.sleep(1)
            process.wait()
        finally:
            if process.poll() is None:  # interrupted here: the run does not outlive the script
                process.kill()
    if process.returncode != 0 or run_dir is None:
        raise SystemExit(f"the demo run failed:\n{(work / 'demo-run.log').read_text()[-3000:]}")
    ferlib_command("train", "--run-dir", str(run_dir), "--resume", "--quiet")
    folder.write_label(
        run_dir, name=DEMO_RUN_NAME, tags=["demo"], note=f"Stopped after epoch {STOP_AFTER_EPOCH}, then resumed."
    )


def demo_search(searches_dir: Path, runs_dir: Path, data: str) -> None:
    """A small real random search over the compact network's settings, on the default budget per trial."""
    ferlib_command(
        "tune", "--data", data, "--strategy", "random", "--max-trials", "5", "--architecture", "compact_cnn",
        "--dir", str(searches_dir), "--runs-dir", str(runs_dir),
    )  # fmt: skip
    for search_dir in searches_dir.glob("*"):
        if (search_dir / folder.CONFIG_FILE).exists():
            folder.write_label(search_dir, name="Random search: five trials of the compact CNN", tags=["demo"])


def sample_photo(page) -> None:
    page.get_by_role("button", name="Try the sample photo").click()
    wait_for_app(page)


def live_camera(page) -> None:
    """START the fake camera and wait until the astronaut's emotion and the speed are shown beside the video."""
    component = page.frame_locator("iframe[title*='webrtc']")
    component.get_by_role("button", name=re.compile("^start$", re.I)).click(timeout=90000)
    deadline = time.time() + 120
    while time.time() < deadline:
        text = page.inner_text("[data-testid='stMain']")
        if re.search(r"Face \d+: \S+ \w+ \d+%", text) and re.search(r"\d+ fps to your browser", text):
            page.wait_for_timeout(8000)  # a few seconds of timeline
            return
        page.wait_for_timeout(500)
    raise SystemExit("the Live page showed no face within 120 s")


# Each screenshot: the page's path, what a user does first, and how much of the page (in pixels) the picture shows.
SHOTS: dict[str, tuple[str, Callable | None, int]] = {
    "home": ("", sample_photo, 1150),
    "dataset": ("dataset", None, 1100),
    "training": ("training", None, 1280),
    "metrics": ("metrics", None, 1200),
    "live": ("live", live_camera, 820),
    "tune": ("tune", None, 1380),
}


def settle(page) -> None:
    """Wait until the page has run; a page watching a job that is running never stops changing, so give it time."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        wait_for_app(page, timeout_ms=60000)
    except (TimeoutError, PlaywrightTimeout):
        page.wait_for_timeout(3000)


def take(url: str, names: list[str], output: Path, clip: Path) -> None:
    flags = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    flags.append(f"--use-file-for-fake-video-capture={clip}")
    with chromium_page(extra_flags=flags) as page:
        for name in names:
            path, action, height = SHOTS[name]
            page.set_viewport_size({"width": WIDTH, "height": height})  # the page scrolls inside, not the window
            page.goto(f"{url}/{path}")
            settle(page)
            if action:
                action(page)
            page.mouse.move(WIDTH // 2, 10)  # over nothing: no tooltip, no sidebar button
            page.wait_for_timeout(500)
            if errors := page_exceptions(page):
                raise SystemExit(f"the {name} page shows an error:\n{errors[0][:2000]}")
            target = output / f"{name}.png"
            page.screenshot(path=str(target))
            print(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data" / "fer2013.zip"))
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "screenshots")
    parser.add_argument("--only", help=f"comma-separated, of {','.join(SHOTS)} (default: all)")
    parser.add_argument("--runs-dir", type=Path, help="show these runs on Training instead of a new demo run")
    parser.add_argument("--searches-dir", type=Path, help="show these searches on Tune instead of a new demo search")
    arguments = parser.parse_args(argv)
    names = arguments.only.split(",") if arguments.only else list(SHOTS)
    if unknown := [name for name in names if name not in SHOTS]:
        parser.error(f"Expected page names among {', '.join(SHOTS)}; received {', '.join(unknown)}")
    if not Path(arguments.data).is_file():
        parser.error(f"Expected FER-2013's zip at --data; received {arguments.data!r}, which does not exist")
    if not browser_available():
        parser.error("Expected Chromium and Playwright (apt install chromium; pip install -r requirements-dev.txt)")
    if "live" in names and importlib.util.find_spec("skimage") is None:
        parser.error("Expected scikit-image for the fake camera's astronaut (pip install -r requirements-dev.txt)")
    arguments.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fer-screenshots-") as temporary:
        work = Path(temporary)
        runs_dir, searches_dir = arguments.runs_dir or work / "runs", arguments.searches_dir or work / "searches"
        (work / "runs").mkdir()
        if not arguments.runs_dir and "training" in names:
            demo_run(runs_dir, arguments.data, work)
        if not arguments.searches_dir and "tune" in names:
            demo_search(searches_dir, work / "runs", arguments.data)
        environment = {
            "FERLIB_RUNS_DIR": str(runs_dir),
            "FERLIB_SEARCHES_DIR": str(searches_dir),
            "FERLIB_ENSEMBLES_DIR": str(work / "ensembles"),
            "FERLIB_DATA_DIR": str(Path(arguments.data).parent),
        }
        os.environ.pop("FERLIB_PUBLIC", None)  # the administrator's view: every control shown
        with streamlit_server(env=environment) as url:
            take(url, names, arguments.output, astronaut_clip(work / "astronaut.y4m"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
