"""Helpers for the explainer page's browser tests: open the page on a loss, and the numbers a test
expects, from torch (the oracle) or from the service's API (what the page must show)."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import Page, ViewportSize, expect

from service.losses import registry
from tests.conventions.oracles.tools import torch_loss

#: The phone width the page must fit (an iPhone 12 to 15 in CSS pixels).
PHONE: ViewportSize = {"width": 390, "height": 844}


def shown(value: float) -> str:
    """A value as the page's headline shows it (``toFixed(4)``)."""
    return f"{value:.4f}"


def example(name: str) -> dict[str, Any]:
    """The loss's catalogue example: what the page loads when the loss is chosen."""
    return registry.require(name).example()


def torch_text(name: str, body: dict[str, Any]) -> str:
    """torch's float64 value of ``body`` for ``name``, as the page shows it."""
    return shown(torch_loss(name, body))


def open_loss(page: Page, base_url: str, name: str) -> None:
    """The page, ``name`` chosen in the selector, and torch's value of its example shown."""
    page.goto(f"{base_url}/explain")
    expect(page.locator("#loss option")).not_to_have_count(0)
    page.locator("#loss").select_option(name)
    expect(page.locator("#loss-title")).to_contain_text(name)
    expect(page.locator("#torch-value")).to_have_text(torch_text(name, example(name)))


def api(base_url: str, path: str, body: dict[str, Any]) -> Any:
    """The service's answer, for what the page must display (not for what is right)."""
    r = httpx.post(f"{base_url}/{path}", json=body, timeout=30)
    r.raise_for_status()
    return r.json()


def no_page_scroll(page: Page) -> None:
    """The page itself does not scroll sideways: wide content scrolls in its own box."""
    width = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width[0] <= width[1], f"the page scrolls sideways: {width[0]} > {width[1]} px"
