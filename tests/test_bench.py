"""Smoke tests of the benchmark's helpers (the benchmark itself is ``make bench``, never a test)."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
import orjson
import pytest

from bench import bodies, cases, load, proc, report, run

WRK_OUTPUT = """\
Running 5s test @ http://127.0.0.1:8000/v1/losses/cross_entropy
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   686.61us  302.86us   5.55ms   87.29%
    Req/Sec    11.93k     2.19k   14.52k    66.67%
  60525 requests in 5.10s, 10.68MB read
  Non-2xx or 3xx responses: 12
Requests/sec:  11869.74
"""


def test_parse_wrk() -> None:
    assert load.parse_wrk(WRK_OUTPUT) == (60525, 5.10, 12)


def test_wrk_script_quotes_any_body(tmp_path: Path) -> None:
    body = b'{"a": [[1]], "b": "]=]"}'
    script = load.wrk_script(body, tmp_path).read_text()
    assert "[==[" in script
    assert body.decode() in script


def test_binary_body_framing() -> None:
    logits, target = bodies.large_arrays(rows=2, classes=3)
    body, headers = bodies.large_binary_body(logits, target)
    header_length = int(headers["Inference-Header-Content-Length"])
    header = orjson.loads(body[:header_length])
    sizes = [i["parameters"]["binary_data_size"] for i in header["inputs"]]
    assert sizes == [logits.nbytes, target.size * 8]
    assert len(body) == header_length + sum(sizes)
    blob = body[header_length : header_length + sizes[0]]
    assert np.array_equal(np.frombuffer(blob, "<f4").reshape(2, 3), logits)


def test_json_body_is_what_a_float32_client_sends() -> None:
    logits, target = bodies.large_arrays(rows=2, classes=3)
    body = orjson.loads(bodies.large_json_body(logits, target))
    assert np.array_equal(np.asarray(body["input"], dtype=np.float32), logits)
    assert body["reference"] is False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_peak_rss_growth_sees_an_allocation() -> None:
    # Fresh pages from the kernel, touched: a NumPy array could reuse memory that earlier tests
    # freed and the allocator kept resident, which no RSS measure would see.
    with proc.peak_rss_growth(os.getpid()) as measured, mmap.mmap(-1, 32 * 1024 * 1024) as block:
        block.write(b"\x01" * len(block))
    assert measured["growth_bytes"] >= 16e6


def test_report_lists_each_figure_with_its_ratio() -> None:
    figures = [
        report.Figure("small", "req/s", 300.0, "req/s", 100.0, "obvious", 3.0, ">= 2x", True),
        report.Figure("large binary", "infer", 0, "", note="skipped: 404"),
    ]
    text = report.report(figures, "python bench/run.py")
    assert "3.00x" in text
    assert "met" in text
    assert "skipped: 404" in text
    assert text.endswith("reproduce: python bench/run.py")


def test_report_gives_each_case_its_command() -> None:
    figures = [
        report.Figure("small", "req/s", 3.0, "req/s", 1.0, "obvious", 3.0, command="A"),
        report.Figure("small", "cpu", 1.0, "us", 1.0, "bare", 1.0, command="A"),
        report.Figure("memory", "rss", 1.0, "MB", 1.0, "body", 1.0, command="B"),
    ]
    lines = report.report(figures, "ALL").splitlines()
    assert [line.strip() for line in lines if "reproduce" in line] == [
        "reproduce: A",
        "reproduce: B",
        "reproduce: ALL",
    ]


def test_every_case_is_listed_and_selectable() -> None:
    assert set(cases.CASES) >= {"small", "large_json", "large_binary", "memory"}
    assert set(cases.CASES) >= {"workers", "reference_memory", "burst_memory"}
    assert run.selected("large,small") == ["small", "large_json", "large_binary", "memory"]
    assert "catalogue" in run.selected("catalogue,small")
    assert run.selected("memory") == ["memory"]
    with pytest.raises(SystemExit):
        run.selected("nonsense")


def test_case_command_keeps_the_options_but_the_case_list() -> None:
    argv = ["--cases", "small,memory", "--seconds", "2", "--json=x.json"]
    assert run.case_command(argv, "small") == "python bench/run.py --cases small --seconds 2"


def test_v2_json_body_carries_tensors_as_inputs_and_the_rest_as_parameters() -> None:
    body = orjson.loads(
        bodies.v2_json_body(
            {"input": [[0.5, 1.0]], "target": [1], "reduction": "sum"}, ("input", "target")
        )
    )
    assert [(i["name"], i["datatype"], i["shape"]) for i in body["inputs"]] == [
        ("input", "FP32", [1, 2]),
        ("target", "INT64", [1]),
    ]
    assert body["parameters"] == {"reduction": "sum"}
