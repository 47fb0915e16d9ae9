"""Response shapes, declared for the OpenAPI document (responses are serialised by orjson)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

Number = float | str  # non-finite values travel as "NaN", "Infinity", "-Infinity"


class WarningOut(BaseModel):
    code: str
    message: str


class ReferenceOut(BaseModel):
    value: Any = Field(description="The reference's value, shaped like 'value'.")
    max_abs_diff: float
    max_rel_diff: float
    agrees: bool = Field(description="Within the per-dtype tolerance.")
    tolerance: dict[str, float]
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
    denominator: float | None = Field(description="What 'mean' divided by.")
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


class BatchItem(BaseModel):
    loss: str = Field(description="The loss's name, as in POST /v1/losses/{name}.")
    args: dict[str, Any] = Field(
        default_factory=dict, description="The body that POST /v1/losses/{loss} would take."
    )


class BatchRequest(BaseModel):
    items: list[BatchItem] = Field(description="Computed in order; at most max_batch_items.")


class BatchResult(BaseModel):
    status: int = Field(description="200, or the status the item alone would have had.")
    result: LossResponse | None = Field(
        default=None, description="The loss's response, when status is 200."
    )
    problem: Problem | None = Field(
        default=None,
        description="Otherwise, what was wrong with this item; 'field' is relative to the item "
        "('loss', 'args', 'args.<field>').",
    )


class BatchResponse(BaseModel):
    results: list[BatchResult] = Field(description="One per item, in the items' order.")
    succeeded: int
    failed: int
