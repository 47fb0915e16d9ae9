"""Configuration, read from environment variables prefixed ``LOSS_SERVICE_``.

This module is the configuration reference: every field's docstring says what it controls.
Nothing here is instantiated at import time; ``get_settings()`` builds (and caches) one
``Settings`` for the process, and ``create_app(settings)`` accepts an explicit one for tests.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DTypeName = Literal["float32", "float64", "float16", "bfloat16"]


class Settings(BaseSettings):
    """All knobs of the service; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="LOSS_SERVICE_", extra="ignore")

    device: str = "auto"
    """Where torch computes: ``auto`` (cuda when available, else cpu), ``cpu``, ``cuda``, ``cuda:N``
    or ``mps``. An explicit device that does not exist stops start-up."""

    host: str = "127.0.0.1"
    """Interface the server binds to."""

    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port the server listens on."""

    dtype: DTypeName = "float32"
    """Default floating dtype of the torch computation when a request names none."""

    reference: bool = True
    """Whether the NumPy float64 reference (and the breakdown) is computed when a request does
    not say."""

    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    """Largest request body accepted; larger bodies are answered 413 before they are read."""

    max_depth: int = Field(default=12, ge=1, le=64)
    """Deepest JSON nesting accepted (tensor rank plus the envelope)."""

    max_elements: int = Field(default=50_000_000, ge=1)
    """Most numbers accepted in one tensor."""

    torch_threads: int = Field(default=1, ge=0)
    """Intra-op threads torch may use; 0 keeps torch's own default (one per core). One by
    default: requests already run concurrently, and on small tensors waking a thread pool costs
    far more than the loss itself (a 3x3 cross-entropy took 0.3 ms instead of 10 us on 2 busy
    cores)."""

    inline_max_bytes: int = Field(default=4096, ge=0)
    """``POST /v1/losses/<name>`` bodies up to this size (by ``Content-Length``) are computed on
    the event loop, before routing (``service.api.inline``): a few hundred numbers take less
    time than the hop to a worker thread. 0 sends every body to a thread."""

    max_batch_items: int = Field(default=256, ge=1)
    """Most items in one ``POST /v1/losses:batch``; more are refused (422) before any runs."""

    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    """Log level of the server."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
