"""End to end: Chromium's fake camera plays the astronaut, the Live page streams it over WebRTC on localhost with no
ICE servers, and the label `happy` appears beside the video."""

import re
import time

import cv2
import numpy as np
import pytest
from browser import browser_available, chromium_page, page_exceptions, streamlit_server, wait_for_app

from ferlib.modelio import default_model_path
from ferlib.video import write_y4m

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not browser_available(), reason="Chromium or Playwright missing")]


def astronaut_clip(path, seconds: int = 3, fps: int = 15):
    """A 640x480 .y4m clip of scikit-image's smiling astronaut, gently moving (Chromium loops it)."""
    skimage_data = pytest.importorskip("skimage.data")
    face = cv2.resize(cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR), (480, 480))
    frames = []
    for index in range(seconds * fps):
        frame = np.zeros((480, 640, 3), np.uint8)
        shift = round(30 * np.sin(2 * np.pi * index / (seconds * fps)))
        frame[:, 80 + shift : 560 + shift] = face
        frames.append(frame)
    return write_y4m(path, frames, fps=fps)


def test_live_camera_shows_happy_for_the_smiling_astronaut(tmp_path):
    model = default_model_path()
    if not model.exists():
        pytest.skip(f"the shipped model {model} is not installed")
    clip = astronaut_clip(tmp_path / "astronaut.y4m")
    flags = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={clip}",
    ]
    with streamlit_server() as url, chromium_page(extra_flags=flags) as page:
        page.goto(f"{url}/live")
        wait_for_app(page)
        assert page.inner_text("h1").strip().endswith("Live")
        page.frame_locator("iframe[title*='webrtc']").get_by_role("button", name=re.compile("^start$", re.I)).click()
        deadline = time.time() + 60
        text = ""
        while time.time() < deadline:
            text = page.inner_text("[data-testid='stMain']")
            if re.search(r"Face \d+: \S+ happy \d+%", text) and re.search(r"\d+ fps processed", text):
                break
            page.wait_for_timeout(500)
        page.screenshot(path=str(tmp_path / "live.png"), full_page=True)
        assert re.search(r"Face \d+: \S+ happy \d+%", text), text[-1500:]
        assert re.search(r"\d+ fps processed", text)
        assert page_exceptions(page) == []
