"""The explainer page in Debian's chromium: the article's numbers, the chart, an edit, no
console errors and nothing fetched from another origin."""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from playwright.sync_api import Page, expect

from service.losses import registry
from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from tests.browser.conftest import PageLog
from tests.conventions.oracles.tools import torch_loss
from tests.server import live_server

#: Where the screenshot goes when LOSS_SERVICE_SCREENSHOT is unset: the test's tmp path.
SCREENSHOT = "explain.png"


def torch_value(logits: list[list[float]], target: list[int]) -> str:
    x = torch.tensor(logits, dtype=torch.float64)
    return f"{float(F.cross_entropy(x, torch.tensor(target))):.4f}"


def test_the_articles_example(page: Page, base_url: str, page_log: PageLog, tmp_path: Path) -> None:
    page.goto(f"{base_url}/explain")
    page.get_by_role("button", name="Load the article's example").click()
    expect(page.locator("#torch-value")).to_have_text(torch_value(ARTICLE_INPUT, ARTICLE_TARGET))
    assert page.locator("#torch-value").text_content() == "1.1484"
    expect(page.locator("#agreement")).to_have_text("agree")
    conventions = page.locator("#conventions")
    expect(conventions.locator("tr[data-id=textbook]")).to_contain_text("1.3157")
    expect(conventions.locator("tr[data-id=article_loop]")).to_contain_text("3.9470")
    expect(conventions.locator("tr[data-id=keras_from_probs]")).to_contain_text("1.3157")
    expect(page.locator("#warnings")).to_contain_text("input_looks_like_probabilities")
    rows, classes = len(ARTICLE_INPUT), len(ARTICLE_INPUT[0])
    expect(page.locator("#chart rect.bar")).to_have_count(rows * classes)
    expect(page.locator("#chart rect.bar.target")).to_have_count(rows)
    expect(page.locator("#rows tbody tr")).to_have_count(rows)
    expect(page.locator("#precision tbody tr")).to_have_count(4)
    expect(page.locator("#curl")).to_contain_text("curl -s")
    page.screenshot(path=str(tmp_path / SCREENSHOT), full_page=True)

    edited = [row[:] for row in ARTICLE_INPUT]
    edited[0][0] = 2.5
    page.locator("input.logit[data-row='0'][data-col='0']").fill("2.5")
    expect(page.locator("#torch-value")).to_have_text(torch_value(edited, ARTICLE_TARGET))
    assert page.locator("#torch-value").text_content() != "1.1484"

    assert page_log.console_errors == []
    assert page_log.offsite == []


def test_binary_cross_entropy(page: Page, base_url: str, page_log: PageLog) -> None:
    page.goto(f"{base_url}/")
    page.locator("#loss").select_option("binary_cross_entropy")
    expect(page.locator("#conventions tr[data-id=sklearn_log_loss]")).to_be_visible()
    expect(page.locator("#chart rect.bar")).to_have_count(6)
    # Awaited: read at once, the text could still be cross_entropy's 1.1484.
    example = registry.require("binary_cross_entropy").example()
    expected = f"{torch_loss('binary_cross_entropy', example):.4f}"
    expect(page.locator("#torch-value")).to_have_text(expected)
    assert page_log.console_errors == []
    assert page_log.offsite == []


def test_asks_for_an_api_key_when_the_service_answers_401(page: Page) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    with live_server(env={"LOSS_SERVICE_API_KEYS": "sesame"}) as server:
        page.goto(f"{server.url}/explain")
        expect(page.locator("#key-form")).to_be_visible()
        expect(page.locator("#problem")).to_contain_text("API key")
        page.locator("#api-key").fill("sesame")
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("#key-form")).to_be_hidden()
        expect(page.locator("#torch-value")).to_have_text(re.compile(r"\d+\.\d{4}"))
        expect(page.locator("#curl")).to_contain_text("Authorization: Bearer $LOSS_SERVICE_API_KEY")
        assert "sesame" not in (page.locator("#curl").text_content() or "")
    # Chromium reports each refused fetch as "Failed to load resource ... 401": those only.
    assert all("401" in e for e in errors), errors
