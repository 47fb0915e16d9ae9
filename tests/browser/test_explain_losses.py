"""The explainer page on every loss that has conventions, in chromium at a phone's width: the
selector lists them all, each shows its own inputs, options, breakdown and conventions (with
each `why`), and the page itself never scrolls sideways. Then the editors: JSON for any shape,
an optional input, the row and column buttons, an option; each edit awaited against torch."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from playwright.sync_api import Page, expect

from service.conventions import catalogue, names
from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from tests.browser.conftest import PageLog
from tests.browser.explainer import PHONE, api, example, no_page_scroll, open_loss, shown


def grid_cells(value: Any) -> int | None:
    """How many cells the page's grid has for ``value``, or None where it shows JSON."""

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if number(value):
        return 1
    if not isinstance(value, list) or not value:
        return None
    if all(number(v) for v in value):
        return len(value)
    if all(isinstance(r, list) for r in value):
        cols = len(value[0])
        if cols and all(len(r) == cols and all(number(v) for v in r) for r in value):
            return len(value) * cols
    return None


def count(value: Any) -> int:
    return sum(count(v) for v in value) if isinstance(value, list) else 1


def ce(logits: list[list[float]], target: list[int], **kwargs: Any) -> str:
    x = torch.tensor(logits, dtype=torch.float64)
    return shown(float(F.cross_entropy(x, torch.tensor(target), **kwargs)))


def test_the_selector_lists_every_loss_with_conventions(
    page: Page, base_url: str, page_log: PageLog
) -> None:
    page.goto(f"{base_url}/explain")
    listed = [entry["name"] for entry in catalogue()["losses"]]
    assert set(listed) == set(names())
    options = page.locator("#loss option")
    expect(options).to_have_count(len(listed))
    assert options.evaluate_all("os => os.map(o => o.value)") == listed
    expect(page.locator("#loss")).to_have_value("cross_entropy")  # it opens on the article's
    assert page_log.console_errors == []
    assert page_log.offsite == []


@pytest.mark.parametrize("name", names())
def test_each_loss_at_a_phones_width(
    page: Page, base_url: str, page_log: PageLog, name: str
) -> None:
    page.set_viewport_size(PHONE)
    open_loss(page, base_url, name)
    body = example(name)
    described = page.request.get(f"{base_url}/v1/losses/{name}").json()

    # Its own inputs: a grid where the tensor has one, JSON otherwise, empty where left out.
    for spec in described["inputs"]:
        editor = page.locator(f"[data-editor='{spec['name']}']")
        expect(editor).to_be_visible()
        expect(editor).to_contain_text(spec["description"])
        value = body.get(spec["name"])
        cells = grid_cells(value)
        if cells is not None:
            expect(editor.locator("input.cell")).to_have_count(cells)
        else:
            area = editor.locator("textarea")
            expect(area).to_be_visible()
            text = area.input_value()
            assert (json.loads(text) if text else None) == value
    # Its options, as the example sets them.
    for key, value in body.items():
        if any(spec["name"] == key for spec in described["inputs"]):
            continue
        control = page.locator(f"#param-{key}")
        expect(control).to_be_visible()
        if isinstance(value, bool):
            assert control.is_checked() is value
        elif isinstance(value, str):
            expect(control).to_have_value(json.dumps(value))

    # Every convention row with its why (or the library's refusal), as the service answers.
    answer = api(base_url, f"v1/conventions/{name}", body)
    expect(page.locator("#conventions tbody tr")).to_have_count(len(answer["conventions"]))
    for row in answer["conventions"]:
        tr = page.locator(f"#conventions tr[data-id='{row['id']}']")
        expect(tr.locator("td.why")).to_have_text(row["error"] if "error" in row else row["why"])
        if "error" not in row:
            expect(tr.locator("td.num")).to_have_text(shown(row["value"]))
    # The per-row terms: one table row per term of the breakdown's loss.
    computed = api(base_url, f"v1/losses/{name}", body)
    terms = count(computed["breakdown"]["loss"])
    expect(page.locator("#rows tbody tr")).to_have_count(min(terms, 200))

    # A phone: the page fits, the wide conventions table scrolls in its own box.
    no_page_scroll(page)
    box = page.locator("#conventions").evaluate(
        "t => { const b = t.parentElement; return [getComputedStyle(b).overflowX,"
        " b.scrollWidth > b.clientWidth, b.getBoundingClientRect().right]; }"
    )
    overflow, scrolls, right = box
    assert overflow == "auto"
    assert scrolls, "the conventions table is expected to be wider than a phone"
    assert right <= PHONE["width"]
    assert page_log.console_errors == []
    assert page_log.offsite == []


def test_a_wide_grid_scrolls_in_its_box_on_a_phone(
    page: Page, base_url: str, page_log: PageLog
) -> None:
    page.set_viewport_size(PHONE)
    open_loss(page, base_url, "cross_entropy")
    for _ in range(4):
        page.get_by_role("button", name="+ column").click()
    expect(page.locator("[data-editor=input] input.cell")).to_have_count(len(ARTICLE_INPUT) * 7)
    wider = [[*row, *[row[-1]] * 4] for row in ARTICLE_INPUT]
    expect(page.locator("#torch-value")).to_have_text(ce(wider, ARTICLE_TARGET))
    no_page_scroll(page)
    scrolls = page.locator("[data-editor=input] .editor-body").evaluate(
        "b => b.scrollWidth > b.clientWidth && getComputedStyle(b).overflowX === 'auto'"
    )
    assert scrolls
    assert page_log.console_errors == []


def test_rows_and_columns(page: Page, base_url: str, page_log: PageLog) -> None:
    open_loss(page, base_url, "cross_entropy")
    page.get_by_role("button", name="+ row").click()
    logits = [row[:] for row in ARTICLE_INPUT] + [ARTICLE_INPUT[-1][:]]
    target = [*ARTICLE_TARGET, ARTICLE_TARGET[-1]]
    expect(page.locator("[data-editor=target] input.cell")).to_have_count(len(target))
    expect(page.locator("#torch-value")).to_have_text(ce(logits, target))
    expect(page.locator("#rows tbody tr")).to_have_count(len(target))
    page.get_by_role("button", name="+ column").click()
    logits = [[*row, row[-1]] for row in logits]
    expect(page.locator("#torch-value")).to_have_text(ce(logits, target))
    expect(page.locator("#chart rect.bar")).to_have_count(len(target) * len(logits[0]))
    page.get_by_role("button", name="− row").click()
    page.get_by_role("button", name="− row").click()
    logits, target = logits[:-2], target[:-2]
    page.locator("[data-editor=target] input.cell[data-row='0']").fill("3")
    target[0] = 3
    expect(page.locator("#torch-value")).to_have_text(ce(logits, target))
    assert page_log.console_errors == []


def test_any_shape_as_json(page: Page, base_url: str, page_log: PageLog) -> None:
    open_loss(page, base_url, "cross_entropy")
    page.locator("button.mode[data-input=input]").click()
    area = page.locator("[data-editor=input] textarea")
    assert json.loads(area.input_value()) == ARTICLE_INPUT
    # K-dimensional logits (N, C, d1): only the JSON field can say them.
    logits = [[[1.0, 0.5], [0.2, -1.0], [0.3, 2.0]], [[0.0, 0.1], [1.5, 0.2], [-0.4, 0.9]]]
    target = [[0, 2], [1, 1]]
    page.locator("button.mode[data-input=target]").click()
    page.locator("[data-editor=target] textarea").fill(json.dumps(target))
    area.fill(json.dumps(logits))
    x = torch.tensor(logits, dtype=torch.float64)
    expected = shown(float(F.cross_entropy(x, torch.tensor(target))))
    expect(page.locator("#torch-value")).to_have_text(expected)
    expect(page.locator("#rows tbody tr")).to_have_count(4)  # a term per (n, d1)
    expect(page.locator("button.mode[data-input=input]")).to_be_disabled()  # no grid for 3-d

    area.fill("[[1, 2], [")
    expect(page.locator("#problem")).to_contain_text("'input' is not valid JSON")
    expect(page.locator("[data-editor=input] .json-error")).to_contain_text("not JSON yet")
    area.fill(json.dumps(logits))
    expect(page.locator("#problem")).to_be_hidden()
    # Chromium logs each refused fetch (a target for the old shape while the input changes).
    assert all("422" in e for e in page_log.console_errors), page_log.console_errors
    assert page_log.offsite == []


def test_an_optional_input_and_an_option(page: Page, base_url: str, page_log: PageLog) -> None:
    open_loss(page, base_url, "cross_entropy")
    weight = [1.0, 2.0, 0.5]
    page.locator("[data-editor=weight] textarea").fill(json.dumps(weight))
    w = torch.tensor(weight, dtype=torch.float64)
    expect(page.locator("#torch-value")).to_have_text(ce(ARTICLE_INPUT, ARTICLE_TARGET, weight=w))
    expect(page.locator("#curl")).to_contain_text('"weight":[1,2,0.5]')
    page.locator("#param-label_smoothing").fill("0.1")
    expected = ce(ARTICLE_INPUT, ARTICLE_TARGET, weight=w, label_smoothing=0.1)
    expect(page.locator("#torch-value")).to_have_text(expected)
    page.locator("[data-editor=weight] textarea").fill("")
    expected = ce(ARTICLE_INPUT, ARTICLE_TARGET, label_smoothing=0.1)
    expect(page.locator("#torch-value")).to_have_text(expected)
    assert '"weight"' not in (page.locator("#curl").text_content() or "")
    # A refusal is the service's, naming the field.
    page.locator("#param-label_smoothing").fill("2")
    expect(page.locator("#problem")).to_contain_text("label_smoothing")
    assert all("422" in e for e in page_log.console_errors), page_log.console_errors
