"""Real-browser tests: Debian's chromium driven by Playwright (pytest-playwright's fixtures).

The browser is the system's (`executable_path`), never one downloaded by ``playwright install``,
which cannot work on a machine whose only network is the package registries. Where chromium is
missing the tests skip, except under ``CI=true``, where a skip would be a test that did not run:
there it is a failure.

Every page test gets ``page_log``, which records each request the page makes that leaves the
service's origin and every console error, so a test can assert that a page works offline.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Page, Request

from tests.server import LiveServer

# Flags for a root, headless chromium on a machine with no network beyond the registries:
# without the background-networking ones chromium keeps trying (and failing) to reach its
# update and sync services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    """The system chromium, or ``LOSS_SERVICE_TEST_CHROMIUM`` where it lives elsewhere."""
    explicit = os.environ.get("LOSS_SERVICE_TEST_CHROMIUM")
    if explicit:
        return explicit if os.path.exists(explicit) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        reason = "needs Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; under CI=true a browser test may not skip")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def browser_type_launch_args(
    browser_type_launch_args: dict[str, Any], chromium_path: str
) -> dict[str, Any]:
    """pytest-playwright's launch arguments, pointed at the system chromium."""
    return {
        **browser_type_launch_args,
        "executable_path": chromium_path,
        "args": CHROMIUM_ARGS,
        "headless": True,
    }


@pytest.fixture(scope="session")
def base_url(server: LiveServer) -> str:
    """pytest-base-url's fixture: the live service every page test talks to."""
    return server.url


@dataclass
class PageLog:
    """What a page did that a test may want to refuse: requests off the origin, console errors."""

    origin: str
    offsite: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def on_request(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob", "about"):
            return
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.offsite.append(request.url)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)


@pytest.fixture
def page_log(page: Page, base_url: str) -> PageLog:
    """Attach to ``page`` before it navigates; read ``offsite`` and ``console_errors`` after."""
    log = PageLog(origin=base_url)
    page.on("request", log.on_request)
    page.on("console", log.on_console)
    page.on("pageerror", lambda error: log.console_errors.append(str(error)))
    return log


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/browser ``browser`` (``-m 'not browser'`` leaves them out)."""
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.browser)
