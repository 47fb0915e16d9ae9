"""/docs and /redoc in a real browser, offline: every file comes from the service itself."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import PageLog

PATH = '.opblock-summary-path[data-path="/v1/losses/cross_entropy"]'
OPERATION = f".opblock-post {PATH}"  # the loss has a GET too (its description)


def test_swagger_ui_lists_cross_entropy_and_try_it_out_answers_200(
    page: Page, page_log: PageLog, base_url: str
) -> None:
    page.goto(base_url + "/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    summary = page.locator(OPERATION)
    expect(summary).to_have_count(1)
    summary.click()
    block = page.locator(".opblock-post", has=page.locator(PATH))
    block.get_by_role("button", name="Try it out").click()
    body = block.locator("textarea.body-param__text")
    expect(body).to_contain_text('"input"')  # the documented example, ready to send
    block.get_by_role("button", name="Execute").click()
    status = block.locator(".live-responses-table .response .response-col_status")
    expect(status.first).to_have_text("200", timeout=30_000)
    assert '"reference"' in block.locator(".live-responses-table .microlight").first.inner_text()
    assert page_log.offsite == []
    assert page_log.console_errors == []


def test_redoc_renders_the_operations(page: Page, page_log: PageLog, base_url: str) -> None:
    page.goto(base_url + "/redoc")
    page.wait_for_selector(".api-content", timeout=30_000)
    expect(page.get_by_text("/v1/losses/cross_entropy").first).to_be_attached(timeout=30_000)
    assert page_log.offsite == []
    assert page_log.console_errors == []


def test_docs_favicon_is_served(page: Page, page_log: PageLog, base_url: str) -> None:
    """Browsers ask for /favicon.ico on their own; a 404 there is a console error."""
    response = page.goto(base_url + "/favicon.ico")
    assert response is not None
    assert response.status == 200
    assert response.headers["content-type"] == "image/png"
