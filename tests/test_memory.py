"""The malloc arena cap is applied where the C library is glibc, and is a no-op elsewhere."""

from __future__ import annotations

import ctypes
import sys

import pytest

from service.memory import limit_malloc_arenas


def glibc() -> bool:
    return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "gnu_get_libc_version")


def test_zero_leaves_the_default() -> None:
    assert limit_malloc_arenas(0) is False


@pytest.mark.skipif(not glibc(), reason="needs glibc")
def test_applied_on_glibc() -> None:
    assert limit_malloc_arenas(2) is True
