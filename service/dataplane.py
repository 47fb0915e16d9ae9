"""The data plane: from a request body to a response, knowing nothing of HTTP.

``compute`` runs in a worker thread (the HTTP layer never calls it on the event loop): it
parses, validates through the loss's Pydantic model and its own checks, runs torch on the
configured device, runs the NumPy reference on the same rounded inputs, compares the two under
the per-dtype tolerance, and gathers warnings. Each step happens once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import torch
from pydantic import ValidationError

from service import losses
from service.arrays import ArrayLimits
from service.device import release_memory
from service.dtypes import LOW_PRECISION, TORCH_DTYPES
from service.errors import DeviceError, FieldError, InvalidInput, MalformedBody, NotFound
from service.losses import registry
from service.losses.base import Loss, LossParams, LossWarning, Prepared, Reference, Tolerance
from service.settings import Settings

log = logging.getLogger("service.dataplane")

GRAD = "grad"


@dataclass(frozen=True)
class Comparison:
    max_abs_diff: float
    max_rel_diff: float
    agrees: bool


class Dataplane:
    """Computes losses for one device and one set of settings."""

    def __init__(self, settings: Settings, device: torch.device) -> None:
        losses.load()
        self.settings = settings
        self.device = device
        self.limits = ArrayLimits(max_rank=settings.max_depth, max_elements=settings.max_elements)

    # -- entry points -------------------------------------------------------------------------

    def compute_json(self, name: str, raw: bytes) -> dict[str, Any]:
        """Parse a JSON body and compute; raises ``ServiceError`` subclasses on bad input."""
        loss = self.loss(name)
        body = parse_json(raw)
        may_hold_bools = b"true" in raw or b"false" in raw
        return self.compute(loss, body, may_hold_bools=may_hold_bools)

    def loss(self, name: str) -> Loss[Any]:
        loss = registry.get(name)
        if loss is None:
            raise NotFound(f"no loss named {name!r}; GET /v1/losses lists them")
        return loss

    def validate(self, loss: Loss[Any], body: Any, *, may_hold_bools: bool = True) -> LossParams:
        if not isinstance(body, dict):
            raise InvalidInput.at("", "the body must be a JSON object of keyword arguments")
        context = {"limits": self.limits, "may_hold_bools": may_hold_bools}
        try:
            params = loss.params_model.model_validate(body, context=context)
        except ValidationError as exc:
            raise InvalidInput.many(field_errors(exc)) from None
        unknown = sorted(set(params.include) - {GRAD, *loss.extras})
        if unknown:
            allowed = ", ".join(repr(e) for e in (GRAD, *loss.extras))
            raise InvalidInput.at("include", f"unknown extra {unknown[0]!r}; allowed: {allowed}")
        return params

    def compute(self, loss: Loss[Any], body: Any, *, may_hold_bools: bool = True) -> dict[str, Any]:
        params = self.validate(loss, body, may_hold_bools=may_hold_bools)
        dtype = params.dtype or self.settings.dtype
        want_reference = self.settings.reference if params.reference is None else params.reference
        include = frozenset(params.include)
        prep = loss.prepare(params, dtype)

        value, grads = self._run_torch(loss, params, prep, dtype, GRAD in include)
        response: dict[str, Any] = {
            "name": loss.name,
            "value": value,
            "reduction": getattr(params, "reduction", None),
            "dtype": dtype,
            "device": str(self.device),
            "shape": list(value.shape),
            **prep.facts,
            "denominator": None,
            "reference": None,
            "breakdown": None,
        }
        ref: Reference | None = None
        if want_reference or (include - {GRAD}):
            ref = loss.reference(params, prep, include)
        if want_reference and ref is not None:
            tol = loss.tolerance(dtype)
            cmp = compare(value, ref.value, tol, prep.scale)
            response["denominator"] = ref.denominator if params_reduces(params) else None
            response["reference"] = {
                "value": ref.value,
                "max_abs_diff": cmp.max_abs_diff,
                "max_rel_diff": cmp.max_rel_diff,
                "agrees": cmp.agrees,
                "tolerance": {"rtol": tol.rtol, "atol": tol.atol * prep.scale},
            }
            if grads and ref.grads:
                response["reference"]["grad"] = {
                    k: comparison_dict(compare(grads[k], ref.grads[k], tol, prep.scale))
                    for k in grads
                    if k in ref.grads
                }
            response["breakdown"] = {"loss": ref.losses, **ref.breakdown}
        extras: dict[str, Any] = {}
        if ref is not None:
            extras |= {k: v for k, v in ref.extras.items() if k in include}
        if grads:
            extras[GRAD] = grads
        if extras:
            response["extras"] = extras
        response["warnings"] = [warning_dict(w) for w in self._warnings(loss, params, prep, dtype)]
        return response

    # -- steps --------------------------------------------------------------------------------

    def _run_torch(
        self, loss: Loss[Any], params: LossParams, prep: Prepared, dtype: str, want_grad: bool
    ) -> tuple[npt.NDArray[Any], dict[str, npt.NDArray[Any]]]:
        torch_dtype = TORCH_DTYPES[dtype]
        try:
            tensors: dict[str, torch.Tensor] = {}
            for name, arr in prep.arrays.items():
                t = torch.from_numpy(arr)
                t = t.to(self.device, torch_dtype if name in prep.floating else torch.int64)
                if want_grad and name in prep.floating and name in loss.differentiable:
                    t.requires_grad_(True)
                tensors[name] = t
            if want_grad:
                out = loss.torch_loss(params, tensors)
                leaves = {k: t for k, t in tensors.items() if t.requires_grad}
                grads: dict[str, npt.NDArray[Any]] = {}
                if leaves and out.requires_grad:
                    got = torch.autograd.grad(out.sum(), list(leaves.values()), allow_unused=True)
                    grads = {
                        k: to_numpy(g) if g is not None else np.zeros(leaves[k].shape)
                        for k, g in zip(leaves, got, strict=True)
                    }
                return to_numpy(out.detach()), grads
            with torch.inference_mode():
                out = loss.torch_loss(params, tensors)
                return to_numpy(out), {}
        except torch.OutOfMemoryError as exc:
            release_memory(self.device)
            raise DeviceError(f"the device ran out of memory computing {loss.name}") from exc
        except (RuntimeError, ValueError, IndexError) as exc:
            # Torch refusing an input our checks let through: the client's input, our gap.
            log.warning("torch rejected input for %s: %s", loss.name, exc)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidInput.at("", f"torch rejected the input: {first}") from exc

    def _warnings(
        self, loss: Loss[Any], params: LossParams, prep: Prepared, dtype: str
    ) -> list[LossWarning]:
        out = loss.warnings(params, prep)
        if dtype in LOW_PRECISION:
            out.append(
                LossWarning(
                    "low_precision_dtype",
                    f"{dtype} keeps about {3 if dtype == 'float16' else 2} significant digits: "
                    "inputs were rounded to it and the loss may differ noticeably from float32.",
                )
            )
        return out

    def warm_up(self) -> None:
        loss = self.loss("cross_entropy")
        self.compute(loss, loss.example())


def params_reduces(params: LossParams) -> bool:
    """Whether the reduction divides by a denominator: 'mean', or a loss's own such as
    'batchmean'; 'none' and 'sum' divide by nothing."""
    return getattr(params, "reduction", "mean") not in ("none", "sum")


def parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc}") from None


def to_numpy(t: torch.Tensor) -> npt.NDArray[Any]:
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.cpu().numpy()


def compare(
    got: npt.NDArray[Any], want: npt.NDArray[np.float64], tol: Tolerance, scale: float
) -> Comparison:
    """Element-wise agreement; NaN and infinities agree only with themselves."""
    a = np.asarray(got, dtype=np.float64)
    b = np.asarray(want, dtype=np.float64)
    if a.shape != b.shape:
        return Comparison(float("inf"), float("inf"), False)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    finite = np.isfinite(a) & np.isfinite(b)
    if not np.all(same | finite):
        return Comparison(float("inf"), float("inf"), False)
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
        diff = np.where(same, 0.0, np.abs(a - b))
    if diff.size == 0:
        return Comparison(0.0, 0.0, True)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(b))
    ok = bool(np.all(diff <= tol.atol * scale + tol.rtol * np.abs(np.where(finite, b, 0.0))))
    return Comparison(float(diff.max()), float(rel.max()), ok)


def comparison_dict(c: Comparison) -> dict[str, Any]:
    return {"max_abs_diff": c.max_abs_diff, "max_rel_diff": c.max_rel_diff, "agrees": c.agrees}


def warning_dict(w: LossWarning) -> dict[str, Any]:
    return {"code": w.code, "message": w.message, **w.data}


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic's errors as (field, reason) pairs; built from ``errors()``, never ``str(exc)``."""
    out: list[FieldError] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (the body holds the loss's keyword arguments only)"
        out.append(FieldError(loc, msg))
    return out


def describe(loss: Loss[Any]) -> dict[str, Any]:
    """What GET /v1/losses says of one loss: inputs, parameters, formula and an example."""
    schema = loss.params_model.model_json_schema()
    props: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    fields = loss.params_model.model_fields
    params = {}
    for key, prop in props.items():
        if key in loss.tensor_inputs:
            continue
        entry = dict(prop)
        entry.pop("title", None)
        if key not in required:
            default = fields[key].get_default(call_default_factory=True)
            entry["default"] = default
        params[key] = entry
    return {
        "name": loss.name,
        "summary": loss.summary,
        "formula": loss.formula,
        "inputs": [
            {
                "name": n,
                "required": n in required,
                "description": props.get(n, {}).get("description", ""),
                "differentiable": n in loss.differentiable,
            }
            for n in loss.tensor_inputs
        ],
        "parameters": params,
        "extras": [GRAD, *loss.extras],
        "example": loss.example(),
    }
