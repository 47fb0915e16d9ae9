"""The data plane: from a request body to a response, knowing nothing of HTTP.

``compute`` runs in a worker thread (the HTTP layer never calls it on the event loop): it
parses, validates through the loss's Pydantic model and its own checks, runs torch on the
configured device, runs the NumPy reference on the same rounded inputs, compares the two under
the per-dtype tolerance, and gathers warnings. Each step happens once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import orjson
import torch
from pydantic import ValidationError

from service import conventions, fastjson, losses
from service.arrays import (
    ArrayLimitError,
    ArrayLimits,
    check_json_depth,
    forget_extremes,
    remember_extremes,
)
from service.comparison import Comparison as Comparison
from service.comparison import compare as compare
from service.comparison import comparison_dict as comparison_dict
from service.device import is_device_fault, release_memory
from service.dtypes import LOW_PRECISION, QUIET, TORCH_DTYPES
from service.errors import (
    DeviceError,
    FieldError,
    InvalidInput,
    LimitExceeded,
    MalformedBody,
    NotImplementedByTorch,
)
from service.losses import registry
from service.losses.base import Loss, LossParams, LossWarning, Prepared, Reference, SmallRequest
from service.precision import PRECISION, precision_table
from service.schema import inline_defs
from service.settings import Settings
from service.stages import StageClock

log = logging.getLogger("service.dataplane")

T = TypeVar("T")

GRAD = "grad"

#: Torch dtypes whose NumPy cast from float64/int64 rounds exactly as torch's would.
_NUMPY_TWINS: dict[torch.dtype, np.dtype[Any]] = {
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.int64: np.dtype(np.int64),
}


class Dataplane:
    """Computes losses for one device and one set of settings."""

    def __init__(self, settings: Settings, device: torch.device) -> None:
        losses.load()
        self.settings = settings
        self.device = device
        self.limits = limits_of(settings)
        self.on_disagreement: Callable[[str, str], None] | None = None
        """Called with ``(loss, dtype)`` for each response whose reference disagrees (metrics)."""
        self._device_name = str(device)
        # Losses with their own path for small bodies (``Loss.small_answer``), same bytes as the
        # general path; on the CPU only: elsewhere the tensors must go to the device.
        self._small: frozenset[str] = frozenset(
            loss.name
            for loss in registry.all_losses()
            if type(loss).small_answer is not Loss.small_answer and device.type == "cpu"
        )
        self._losses: dict[str, Loss[Any]] = {
            **{module: registry.require(name) for module, name in registry.aliases().items()},
            **{loss.name: loss for loss in registry.all_losses()},
        }
        self._small_request = SmallRequest(
            default_dtype=settings.dtype,
            default_reference=settings.reference,
            device=self._device_name,
            limits=self.limits,
            guard=self.guarded_torch,
        )

    @property
    def small_paths(self) -> frozenset[str]:
        """The losses whose own small path (``Loss.small_answer``) this data plane asks first;
        assign an empty collection to send every body through the general path."""
        return self._small

    @small_paths.setter
    def small_paths(self, names: Any) -> None:
        self._small = frozenset(names)

    # -- entry points -------------------------------------------------------------------------

    def compute_json(self, name: str, raw: bytes | bytearray) -> dict[str, Any]:
        """Parse a JSON body and compute; raises ``ServiceError`` subclasses on bad input.

        A ``bytearray`` body is consumed: it is emptied as soon as it is parsed, so that a large
        body does not stay in memory beside its arrays while torch and the reference run."""
        return self.compute_json_timed(name, raw, None)

    def compute_json_timed(
        self, name: str, raw: bytes | bytearray, clock: StageClock | None
    ) -> dict[str, Any]:
        """``compute_json``, with its stages timed by ``clock`` (``service.stages``)."""
        loss = self.loss(name)
        body, may_hold_bools = self.parse(loss, raw)
        if isinstance(raw, bytearray):
            del raw[:]
        if clock is not None:
            clock.lap("parse")
        return self.compute(loss, body, may_hold_bools=may_hold_bools, parsed=True, clock=clock)

    def parse(self, loss: Loss[Any], raw: bytes | bytearray) -> tuple[Any, bool]:
        """The body, and whether a boolean may hide in its lists (``to_array`` looks if so).

        Large bodies have their tensors parsed straight into arrays (``service.fastjson``);
        whatever that path cannot vouch for is parsed the ordinary way."""
        fast = fastjson.loads(raw, loss.tensor_inputs, limits=self.limits)
        if fast is not None:
            return fast, False  # tensor lists are already numeric arrays
        return parse_json(raw, self.limits), b"true" in raw or b"false" in raw

    def _disagreed(self, name: str, dtype: str) -> None:
        if self.on_disagreement is not None:
            self.on_disagreement(name, dtype)

    def loss(self, name: str) -> Loss[Any]:
        """The loss answering to ``name`` (functional or ``torch.nn`` module name); a 404
        suggesting the closest names otherwise, and a 501 when the installed torch lacks it."""
        loss = self._losses.get(name)
        return require_available(loss if loss is not None else registry.resolve(name))

    def validate(
        self, loss: Loss[Any], body: Any, *, may_hold_bools: bool = True, parsed: bool = False
    ) -> LossParams:
        """The body's parameters, validated. ``may_hold_bools``: a boolean may hide among the
        numbers of its lists (known cheaply from the raw body, which holds ``true`` or
        ``false``); ``parsed``: the body came from a JSON parser, so its numbers are finite."""
        if not isinstance(body, dict):
            raise InvalidInput.at("", "the body must be a JSON object of keyword arguments")
        context = {"limits": self.limits, "may_hold_bools": may_hold_bools, "parsed": parsed}
        try:
            params = loss.params_model.model_validate(body, context=context)
        except ValidationError as exc:
            errors = field_errors(exc)
            if any(
                isinstance(e.get("ctx", {}).get("error"), ArrayLimitError) for e in exc.errors()
            ):
                raise LimitExceeded.many(errors) from None
            raise InvalidInput.many(errors) from None
        unknown = sorted(set(params.include) - {GRAD, PRECISION, *loss.extras})
        if unknown:
            allowed = ", ".join(repr(e) for e in (GRAD, PRECISION, *loss.extras))
            raise InvalidInput.at("include", f"unknown extra {unknown[0]!r}; allowed: {allowed}")
        return params

    def compute(
        self,
        loss: Loss[Any],
        body: Any,
        *,
        may_hold_bools: bool = True,
        parsed: bool = False,
        clock: StageClock | None = None,
    ) -> dict[str, Any]:
        """The response to ``body`` (the loss's keyword arguments); raises ``ServiceError``
        subclasses on bad input. ``may_hold_bools`` and ``parsed`` say what is known of the
        body's numbers (``validate``)."""
        if not loss.available:
            require_available(loss)
        if loss.name in self._small:  # the loss's own path first: a few Python floats
            request = self._small_request
            if clock is not None:
                request = SmallRequest(**(request.__dict__ | {"clock": clock}))
            answer = loss.small_answer(body, request)
            if answer is not None:
                reference = answer["reference"]
                if reference is not None and not reference["agrees"]:
                    self._disagreed(loss.name, answer["dtype"])
                return answer
        token = remember_extremes()  # each large array is scanned for its extremes once
        quiet = QUIET.set(True)
        try:
            # IEEE semantics, silently, throughout: inf·0 is NaN in the reference as in torch,
            # beyond a dtype's range is ±inf, and the comparison (not a Python warning) is
            # where a disagreement shows.
            with np.errstate(all="ignore"):
                return self._compute(loss, body, may_hold_bools, parsed, clock)
        finally:
            QUIET.reset(quiet)
            forget_extremes(token)

    def _compute(
        self,
        loss: Loss[Any],
        body: Any,
        may_hold_bools: bool,
        parsed: bool,
        clock: StageClock | None,
    ) -> dict[str, Any]:
        """The general path: validation, the loss's checks, torch, the reference, the
        comparison and the warnings."""
        params = self.validate(loss, body, may_hold_bools=may_hold_bools, parsed=parsed)
        dtype = params.dtype or self.settings.dtype
        want_reference = self.settings.reference if params.reference is None else params.reference
        include = frozenset(params.include)
        prep = loss.prepare(params, dtype)
        if clock is not None:
            clock.lap("validate")

        value, grads = self._run_torch(loss, params, prep, dtype, GRAD in include)
        if clock is not None:
            clock.lap("torch")
        response: dict[str, Any] = {
            "name": loss.name,
            "value": value,
            "reduction": getattr(params, "reduction", None),
            "dtype": dtype,
            "device": self._device_name,
            "shape": list(value.shape),
            **prep.facts,
            "denominator": None,
            "reference": None,
            "breakdown": None,
        }
        ref: Reference | None = None
        if want_reference or (include - {GRAD, PRECISION}):
            ref = loss.reference(params, prep, include)  # quiet: see ``compute``
        if want_reference and ref is not None:
            tol = loss.tolerance(dtype)
            cmp = compare(value, ref.value, tol, prep.scale)
            if not cmp.agrees:
                self._disagreed(loss.name, dtype)
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
        if PRECISION in include:
            # Every dtype in turn, on this device: a heavy extra, so in this general path only.
            extras[PRECISION] = precision_table(loss, params, self._torch_value)
        if extras:
            response["extras"] = extras
        if clock is not None:
            clock.lap("reference")
        response["warnings"] = [warning_dict(w) for w in self._warnings(loss, params, prep, dtype)]
        if clock is not None:
            clock.lap("warnings")
        return response

    def torch_value(self, loss: Loss[Any], params: LossParams) -> npt.NDArray[Any]:
        """Torch's value for a validated request, exactly as ``compute`` reports it (the same
        preparation in the request's dtype, the same call, the same refusals)."""
        dtype = params.dtype or self.settings.dtype
        prep = loss.prepare(params, dtype)
        return self._torch_value(loss, params, prep, dtype)

    # -- steps --------------------------------------------------------------------------------

    def _run_torch(
        self, loss: Loss[Any], params: LossParams, prep: Prepared, dtype: str, want_grad: bool
    ) -> tuple[npt.NDArray[Any], dict[str, npt.NDArray[Any]]]:
        return self.guarded_torch(
            loss, dtype, lambda: self._torch(loss, params, prep, dtype, want_grad)
        )

    def _torch(
        self, loss: Loss[Any], params: LossParams, prep: Prepared, dtype: str, want_grad: bool
    ) -> tuple[npt.NDArray[Any], dict[str, npt.NDArray[Any]]]:
        torch_dtype = TORCH_DTYPES[dtype]
        tensors: dict[str, torch.Tensor] = {}
        for name, arr in prep.arrays.items():
            t = self._tensor(
                arr,
                torch_dtype if name in prep.floating else torch.int64,
                rounded=name not in prep.deferred,
            )
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

    def guarded_torch(self, loss: Loss[Any], dtype: str, fn: Callable[[], T]) -> T:
        """``fn()``, a torch computation, with its failures sorted: the device's (out of memory,
        CUDA errors: ``DeviceError``, 503) from the input's (``InvalidInput``, 422). The
        small-request paths run their torch call through this too."""
        try:
            return fn()
        except torch.OutOfMemoryError as exc:
            release_memory(self.device)
            raise DeviceError(f"the device ran out of memory computing {loss.name}") from exc
        except NotImplementedError as exc:
            # No kernel for this dtype on this device (e.g. some float16 losses on CPU).
            log.info("no %s kernel for %s on %s: %s", dtype, loss.name, self.device, exc)
            raise InvalidInput.at(
                "dtype", f"torch has no {self.device.type} kernel for {loss.name} in {dtype}"
            ) from exc
        except (RuntimeError, ValueError, IndexError) as exc:
            if is_device_fault(exc):  # the device failed (CUDA error), not the input
                log.error("device error computing %s: %s", loss.name, exc)
                release_memory(self.device)
                raise DeviceError(f"the device failed computing {loss.name}") from exc
            # Torch refusing an input our checks let through: the client's input, our gap.
            log.warning("torch rejected input for %s: %s", loss.name, exc)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidInput.at("", f"torch rejected the input: {first}") from exc

    def _torch_value(
        self, loss: Loss[Any], params: LossParams, prep: Prepared, dtype: str
    ) -> npt.NDArray[Any]:
        return self._run_torch(loss, params, prep, dtype, False)[0]

    def _tensor(
        self, arr: npt.NDArray[Any], dtype: torch.dtype, *, rounded: bool = False
    ) -> torch.Tensor:
        """``arr`` as a tensor of ``dtype`` on the device; on the CPU, NumPy's cast (the same
        correctly rounded conversion) is a few microseconds cheaper than torch's ``.to``.

        ``rounded``: ``arr`` already holds values of the compute dtype (``round_to_dtype``'s,
        infinities included), so the cast is exact and cannot overflow: no ``errstate`` then,
        which costs more than the cast of a small array."""
        np_dtype = _NUMPY_TWINS.get(dtype)
        if self.device.type == "cpu" and np_dtype is not None:
            if arr.dtype == np_dtype:
                return torch.from_numpy(arr)
            if rounded or QUIET.get():
                return torch.from_numpy(arr.astype(np_dtype))
            with np.errstate(over="ignore"):  # beyond float32's range is ±inf, as in torch
                return torch.from_numpy(arr.astype(np_dtype))
        return torch.from_numpy(arr).to(self.device, dtype)

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
        overflowed = [name for name in sorted(prep.floating) if not prep.finite(name)]
        if overflowed:
            limit = float(
                np.finfo(np.float32).max if dtype != "float16" else np.finfo(np.float16).max
            )
            if dtype == "float64":
                limit = float(np.finfo(np.float64).max)
            out.append(
                LossWarning(
                    "value_overflow",
                    f"{', '.join(repr(n) for n in overflowed)} holds numbers beyond {dtype}'s "
                    f"range (about ±{limit:.3g}); they became infinities before torch saw them.",
                    {"fields": overflowed},
                )
            )
        return out

    def warm_up(self) -> None:
        loss = self.loss("cross_entropy")
        self.compute(loss, loss.example())


#: Warning codes the data plane gives for any loss (beside each loss's ``warning_codes``).
GENERAL_WARNINGS: frozenset[str] = frozenset({"low_precision_dtype", "value_overflow"})


def warning_codes(loss: Loss[Any]) -> list[str]:
    """Every warning code ``loss`` can give, its own and the data plane's, sorted."""
    return sorted(loss.warning_codes | GENERAL_WARNINGS)


def require_available(loss: Loss[Any]) -> Loss[Any]:
    """``loss``, or ``NotImplementedByTorch`` (501) naming the installed and the needed torch
    when the installed one lacks what it needs (``Loss.requires``, probed at start-up)."""
    if loss.available or loss.requires is None:
        return loss
    raise NotImplementedByTorch(
        f"{loss.name} needs torch >= {loss.requires.since} ({loss.requires.describe()}); the "
        f"installed torch is {torch.__version__}. GET /v1/losses lists what this server "
        "computes ('available')."
    )


def torch_required(loss: Loss[Any]) -> str | None:
    """The first torch release that computes ``loss``, where it is later than the service's
    floor; ``None`` where any supported torch does."""
    return loss.requires.since if loss.requires is not None else None


def params_reduces(params: LossParams) -> bool:
    """Whether the reduction divides by a denominator: 'mean', or a loss's own such as
    'batchmean'; 'none' and 'sum' divide by nothing."""
    return getattr(params, "reduction", "mean") not in ("none", "sum")


def limits_of(settings: Settings) -> ArrayLimits:
    """The tensor and nesting limits the settings configure."""
    return ArrayLimits(
        max_rank=settings.max_rank,
        max_dim=settings.max_dim,
        max_elements=settings.max_elements,
        max_depth=settings.max_depth,
    )


def parse_json(raw: bytes | bytearray, limits: ArrayLimits) -> Any:
    """The body as Python values; nesting is measured on the bytes first, so no parser ever
    walks a document deeper than ``limits.max_depth``."""
    try:
        check_json_depth(raw, limits)
    except ArrayLimitError as exc:
        raise LimitExceeded.at(exc.field, str(exc)) from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc}") from None


def to_numpy(t: torch.Tensor) -> npt.NDArray[Any]:
    if t.requires_grad:
        t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    if t.device.type != "cpu":
        t = t.cpu()
    return t.numpy()


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
    schema = inline_defs(loss.params_model.model_json_schema())
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
        "module": loss.module,
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
        "extras": [GRAD, PRECISION, *loss.extras],
        "warning_codes": warning_codes(loss),
        "example": loss.example(),
        "conventions": conventions.has(loss.name),
        "available": loss.available,
        "torch_required": torch_required(loss),
    }
