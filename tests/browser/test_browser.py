"""Every page of `streamlit run app.py` opened in real headless Chromium: no exception anywhere."""

import pytest
from chromium import browser_available, chromium_page, page_exceptions, streamlit_server, wait_for_app

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not browser_available(), reason="Chromium or Playwright missing")]


def navigation_links(page) -> list[str]:
    return [link.get_attribute("href") for link in page.query_selector_all("[data-testid='stSidebarNav'] a")]


def test_every_page_opens_without_an_exception(tmp_path):
    isolated = {"FERLIB_RUNS_DIR": str(tmp_path / "runs"), "FERLIB_SEARCHES_DIR": str(tmp_path / "searches")}
    with streamlit_server(env=isolated) as url, chromium_page() as page:
        page.goto(url)
        wait_for_app(page)
        assert "FER Studio" in page.inner_text("h1")
        links = navigation_links(page)
        assert len(links) == 6, links  # Home, Dataset, Training, Metrics, Live, Tune
        for link in links:
            page.goto(link)
            wait_for_app(page)
            page.screenshot(path=str(tmp_path / f"{link.rstrip('/').rsplit('/', 1)[-1] or 'home'}.png"), full_page=True)
            assert page_exceptions(page) == [], link
