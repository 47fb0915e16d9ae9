"""Response shapes, declared for the OpenAPI document (responses are serialised by orjson)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

NonFinite = Literal["NaN", "Infinity", "-Infinity"]
Number = float | NonFinite
"""A JSON number, or the string standing for a value JSON cannot carry."""


class WarningOut(BaseModel):
    code: str
    message: str


class ReferenceOut(BaseModel):
    value: Any = Field(description="The reference's value, shaped like 'value'.")
    max_abs_diff: Number
    max_rel_diff: Number
    agrees: bool = Field(description="Within the per-dtype tolerance.")
    tolerance: dict[str, Number]
    grad: dict[str, Any] | None = None


class LossResponse(BaseModel):
    name: str
    value: Any = Field(description="What torch returned: a number, or nested lists for 'none'.")
    reduction: str | None
    dtype: str
    device: str
    shape: list[int]
    target_form: str | None = Field(
        default=None, description="cross_entropy: 'class_indices' or 'class_probabilities'."
    )
    denominator: Number | None = Field(description="What 'mean' divided by.")
    reference: ReferenceOut | None
    breakdown: dict[str, Any] | None = Field(description="Per-element terms of the reference.")
    extras: dict[str, Any] | None = None
    warnings: list[WarningOut]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None
    errors: list[dict[str, str]] | None = None


class LossSummary(BaseModel):
    name: str
    summary: str
    formula: str
    inputs: list[dict[str, Any]]
    parameters: dict[str, Any]
    extras: list[str]
    example: dict[str, Any]


class LossList(BaseModel):
    losses: list[LossSummary]
