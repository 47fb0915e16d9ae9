"""Limits that only a real socket shows: a body announced too large is refused on its headers,
before it is sent; a body that stalls is refused when its time is up; neither costs the server
its next answer."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from tests.server import LiveServer

pytestmark = pytest.mark.slow

CE = "/v1/losses/cross_entropy"


def exchange(server: LiveServer, head: bytes, body: bytes, timeout: float = 30) -> bytes:
    """Send ``head`` and the start of a body, then read the answer until the server closes."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(head + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
        return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def request_head(length: int) -> bytes:
    return (
        f"POST {CE} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def status_and_problem(answer: bytes) -> tuple[int, dict[str, object], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body), head.lower()


def assert_still_answers(server: LiveServer) -> None:
    body = {"input": ARTICLE_INPUT, "target": ARTICLE_TARGET}
    assert httpx.post(server.url + CE, json=body, timeout=30).status_code == 200


def test_a_body_announced_too_large_is_refused_before_it_is_sent(
    hooked_server: LiveServer,
) -> None:
    started = time.monotonic()
    answer = exchange(hooked_server, request_head(1 << 40), b"")  # a terabyte, never sent
    status, problem, head = status_and_problem(answer)
    assert status == 413
    assert b"content-type: application/problem+json" in head
    assert str(problem["type"]).endswith("/payload-too-large")
    assert time.monotonic() - started < 10
    assert_still_answers(hooked_server)


def test_a_stalled_body_is_refused_with_408(hooked_server: LiveServer) -> None:
    answer = exchange(hooked_server, request_head(1000), b'{"input": [[1.0, 2.0')
    status, problem, head = status_and_problem(answer)
    assert status == 408
    assert b"content-type: application/problem+json" in head
    assert str(problem["type"]).endswith("/body-timeout")
    assert_still_answers(hooked_server)
