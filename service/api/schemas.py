"""Response shapes, declared for the OpenAPI document (responses are serialised by orjson)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    name: str = Field(description="The functional name (torch.nn.functional.<name>).")
    module: str = Field(
        description="The torch.nn module class computing the same loss; the routes accept it "
        "in place of the name."
    )
    summary: str
    formula: str
    inputs: list[dict[str, Any]]
    parameters: dict[str, Any]
    extras: list[str]
    warning_codes: list[str] = Field(
        description="Every warning code this loss can give (the README's table says what each "
        "means and what to do)."
    )
    example: dict[str, Any]
    conventions: bool = Field(
        description="Whether POST /v1/conventions/{name} and POST /v1/diagnose/{name} exist for "
        "this loss (GET /v1/conventions lists them)."
    )
    available: bool = Field(
        description="Whether this server's torch computes the loss; when false, POST answers "
        "501 (problem type not-implemented) and 'torch_required' says which torch would."
    )
    torch_required: str | None = Field(
        description="The first torch release that has what this loss needs, when later than "
        "the service's lowest supported torch; null when any supported torch computes it."
    )


class LossList(BaseModel):
    losses: list[LossSummary]


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Any] = Field(
        description='Computed in order, at most max_batch_items. Each item is {"loss": "<name>", '
        '"args": {...}}, args being the body POST /v1/losses/{loss} takes. Any JSON value is '
        "accepted here because an item of another shape fails alone: its result is a problem."
    )


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
