"""Real-browser helpers: a `streamlit run app.py` server on localhost and Debian's headless Chromium via Playwright.

Playwright cannot download its own browser here, so it drives /usr/bin/chromium (Debian's `chromium` package,
installed by .ci/run). Tests using these helpers are skipped when Chromium or Playwright is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def browser_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def streamlit_server(env: dict[str, str] | None = None, timeout: float = 90) -> Iterator[str]:
    """Run `streamlit run app.py` on a free localhost port; yields its URL, stops it afterwards."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="streamlit-", suffix=".log", delete=False)  # noqa: SIM115 - kept for failures
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited early: {Path(log.name).read_text()[-2000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"streamlit did not answer within {timeout} s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def chromium_page(extra_flags: list[str] | None = None) -> Iterator[object]:
    """A Playwright page in headless Debian Chromium with this machine's offline-safe flags."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS + (extra_flags or []))
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            yield context.new_page()
        finally:
            browser.close()


# Present while a script run is in progress: the header's running icon and any st.spinner.
BUSY = "[data-testid='stStatusWidgetRunningIcon'], [data-testid='stSpinner']"


def wait_for_app(page, timeout_ms: int = 90000, settle_ms: int = 2000) -> None:
    """Wait until Streamlit has finished running the page and its content stopped changing for `settle_ms`.

    Stable text alone is not enough: a spinner ("Loading the model…") can stand still for seconds mid-run.
    """
    page.wait_for_selector("[data-testid='stMain']", timeout=timeout_ms)
    deadline = time.time() + timeout_ms / 1000
    previous, stable_since = None, time.time()
    while time.time() < deadline:
        current = page.inner_text("[data-testid='stMain']")
        if current != previous or page.query_selector(BUSY) is not None:
            previous, stable_since = current, time.time()
        elif current.strip() and time.time() - stable_since >= settle_ms / 1000:
            return
        page.wait_for_timeout(250)
    raise TimeoutError(f"the page kept changing for {timeout_ms} ms")


def page_exceptions(page) -> list[str]:
    """Texts of Streamlit exception boxes and error alerts that reveal a traceback."""
    texts = [element.inner_text() for element in page.query_selector_all("[data-testid='stException']")]
    texts += [
        text
        for text in (element.inner_text() for element in page.query_selector_all("[data-testid='stAlert']"))
        if "Traceback" in text
    ]
    return texts


def astronaut_clip(path: str | os.PathLike, seconds: int = 3, fps: int = 15) -> Path:
    """A 640x480 .y4m clip of scikit-image's smiling astronaut, gently moving: the fake camera's video (Chromium
    loops it)."""
    import cv2
    import numpy as np
    from skimage import data as skimage_data

    from ferlib.live.video import write_y4m

    face = cv2.resize(cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR), (480, 480))
    frames = []
    for index in range(seconds * fps):
        frame = np.zeros((480, 640, 3), np.uint8)
        shift = round(30 * np.sin(2 * np.pi * index / (seconds * fps)))
        frame[:, 80 + shift : 560 + shift] = face
        frames.append(frame)
    return write_y4m(path, frames, fps=fps)
