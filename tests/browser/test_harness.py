"""The browser harness itself: the system chromium starts and the page log sees what it should."""

from __future__ import annotations

from playwright.sync_api import Page, Route

from tests.browser.conftest import PageLog


def test_chromium_renders_a_page_of_the_service(
    page: Page, page_log: PageLog, base_url: str
) -> None:
    page.goto(base_url + "/v2/health/live")
    assert '"live"' in page.content()
    assert page_log.offsite == []


def test_page_log_records_requests_to_other_origins(page: Page, page_log: PageLog) -> None:
    # A same-origin page (answered by page.route, so nothing leaves the machine) that asks for an
    # image elsewhere: the log must see that request, or an "offline" assertion could not fail.
    page.route(
        "http://elsewhere.invalid/**",
        lambda route: route.fulfill(status=204, body=b""),
    )

    def serve(route: Route) -> None:
        route.fulfill(
            status=200,
            content_type="text/html",
            body='<img src="http://elsewhere.invalid/x.png"><script>console.error("boom")</script>',
        )

    page.route("**/harness-probe", serve)
    page.goto(page_log.origin + "/harness-probe")
    page.wait_for_load_state("load")
    assert page_log.offsite == ["http://elsewhere.invalid/x.png"]
    assert page_log.console_errors == ["boom"]
