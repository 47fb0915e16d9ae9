"""Configuration, read from environment variables prefixed ``LOSS_SERVICE_``.

This module is the configuration reference: every field's docstring says what it controls.
Nothing here is instantiated at import time; ``get_settings()`` builds (and caches) one
``Settings`` for the process, and ``create_app(settings)`` accepts an explicit one for tests.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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

    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = 1
    """Server processes sharing the port: a count, or ``auto`` for one per CPU the process may
    use (affinity mask and cgroup CPU quota). Every limit below holds per worker."""

    dtype: DTypeName = Field(
        default="float32",
        validation_alias=AliasChoices(
            "dtype", "default_dtype", "LOSS_SERVICE_DTYPE", "LOSS_SERVICE_DEFAULT_DTYPE"
        ),
    )
    """Default floating dtype of the torch computation when a request names none."""

    reference: bool = True
    """Whether the NumPy float64 reference (and the breakdown) is computed when a request does
    not say."""

    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    """Largest request body in bytes; larger ones get 413, refused on Content-Length unread.
    This and every limit and bound below holds per worker process (see ``workers``)."""

    max_depth: int = Field(default=12, ge=2, le=64)
    """Deepest JSON nesting of a body (tensor rank plus the envelope), checked before parsing."""

    max_rank: int = Field(default=8, ge=1, le=32)
    """Most dimensions of one tensor."""

    max_dim: int = Field(default=16_777_216, ge=1)
    """Largest size of any one dimension of a tensor."""

    max_elements: int = Field(default=50_000_000, ge=1)
    """Most numbers in one tensor (the product of its dimensions)."""

    max_batch_items: int = Field(default=256, ge=1)
    """Most items in one batch request."""

    max_concurrency: int = Field(default=4, ge=1, le=256)
    """Computations running at once in one worker process (its threads); a timed-out one counts
    until it ends. N workers run up to N times as many."""

    max_queue: int = Field(default=32, ge=0)
    """Requests one worker process lets in beyond its computing ones (reading or waiting); past
    it, 503 at once."""

    request_timeout: float = Field(default=60.0, gt=0)
    """Seconds a request may wait for a slot and compute: 503 if still queued, 504 if computing."""

    body_timeout: float = Field(default=30.0, gt=0)
    """Seconds a client may take to send its body; 408 past it."""

    retry_after: int = Field(default=1, ge=1)
    """Seconds suggested in Retry-After when the service refuses for overload."""

    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """API keys, comma-separated; if set, all but health (and open docs) need one, else 401."""

    open_docs: bool = True
    """Whether /docs, /redoc and /openapi.json stay open when API keys are required."""

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins allowed by CORS, comma-separated (``*`` for any); empty turns CORS off."""

    shutdown_grace: int = Field(default=30, ge=0)
    """Seconds in-flight requests get to finish after SIGTERM before they are cancelled."""

    torch_threads: int = Field(default=1, ge=0)
    """Intra-op threads for torch (0: one per core); 1 spares small losses the pool's wake-ups."""

    malloc_arenas: int = Field(default=2, ge=0)
    """glibc malloc arenas shared by all threads (0: glibc's default); see service.memory."""

    malloc_trim_delay: float = 1.0
    """Seconds the service must be idle after a request with a body of 1 MiB or more before
    freed memory goes back to the system (glibc ``malloc_trim``); negative: never."""

    inline_max_bytes: int = Field(default=4096, ge=0)
    """Loss bodies up to this many bytes are computed on the event loop, before routing; 0: none."""

    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    """Log level of the server."""

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """Environment variables hold lists as ``a,b,c``; blanks around items are dropped."""
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
