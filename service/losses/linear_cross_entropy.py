"""Cross-entropy of a linear head's logits: ``torch.nn.functional.linear_cross_entropy``.

The logits are ``z = input @ linear_weight.T + linear_bias`` (``torch.nn.functional.linear``):
hidden states of width H and a head of C classes (shape (C, H), or (C, d1, ..., dK, H) for a
K-dimensional loss, whose logits are (N, C, d1, ..., dK)). The loss is ``cross_entropy(z, target,
weight, reduction, ignore_index, label_smoothing)`` (see ``service.losses.cross_entropy`` for the
formula and the ``mean`` denominators), with one difference: ``ignore_index`` defaults to
``None``, which means -100 for class indices and is the only value allowed with class
probabilities (torch refuses any other).

``options`` selects torch's chunked implementation, which never holds the N x C logits: an
object with the fields of ``torch.nn.LinearCrossEntropyOptions`` (``batch_chunk_size``,
``chunking_method``, ``acc_policy``, ``acc_dtype`` as a dtype name, ``allow_retain_graph``), or
``null`` for the reference path. Torch falls back to the reference path (and the service warns)
with label smoothing, class probabilities or a K-dimensional head.

The NumPy reference never holds them either: it computes the logits in float64 a block of rows
at a time (at most ``BLOCK_ELEMENTS`` logits), and from each block the per-row log Σ exp, the
target's logit, the loss and, with the gradient, that block's share of

    ∂/∂z = g·((Σ_c a_c)·softmax(z) - a),  ∂/∂input = ∂z·W,  ∂/∂W = ∂zᵀ·input,  ∂/∂b = Σ_n ∂z

(``a`` the cross-entropy coefficients, g = 1/denominator for ``mean``), so memory is bounded by
the block, not by N x C.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.dtypes import TORCH_DTYPES
from service.errors import InvalidInput, LimitExceeded
from service.losses.base import (
    ErrorSample,
    Loss,
    LossParams,
    LossWarning,
    Prepared,
    Reduction,
    Reference,
    Sample,
    Tensor,
    TorchFeature,
)
from service.losses.common import (
    ClassWeight,
    all_targets_ignored_warning,
    at_targets,
    class_indices,
    class_weights,
    floating,
    grad_scale,
    logsumexp,
    quietly,
    require_shape,
    shape_str,
    take_class,
)
from service.losses.reduction import REDUCTIONS
from service.losses.registry import register

#: Most logits the reference holds at once (8 MB of float64), whatever N x C is.
BLOCK_ELEMENTS = 1 << 20

#: What ``ignore_index=None`` means for class indices.
DEFAULT_IGNORE_INDEX = -100


#: Every ``acc_policy`` some torch release accepted; the installed one may accept fewer.
ACC_POLICY_NAMES = ("accurate", "balanced", "compact", "auto")


def _accepted_policies() -> frozenset[str]:
    """The ``acc_policy`` values the installed torch's ``LinearCrossEntropyOptions`` accepts
    ('balanced' went in torch 2.14): asked of torch itself, once, at start-up."""
    options: Any = getattr(torch.nn, "LinearCrossEntropyOptions", None)
    accepted = set()
    for policy in ACC_POLICY_NAMES if options is not None else ():
        try:
            options(acc_policy=policy)
        except (ValueError, TypeError):
            continue
        accepted.add(policy)
    return frozenset(accepted)


ACC_POLICIES: frozenset[str] = _accepted_policies()


class LinearCrossEntropyOptionsModel(BaseModel):
    """``torch.nn.LinearCrossEntropyOptions``'s fields, with torch's defaults and values."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    allow_retain_graph: bool = Field(
        default=False, description="Allow retain_graph=True on backward (scalar reductions)."
    )
    batch_chunk_size: int | None = Field(
        default=None, ge=1, description="Rows per chunk; null for one chunk (or the heuristic)."
    )
    chunking_method: str | None = Field(
        default="auto",
        description="'auto', 'aspect_ratio' or 'aspect_ratio:N' (N >= 1); null to use "
        "batch_chunk_size alone.",
    )
    acc_policy: Literal["accurate", "balanced", "compact", "auto"] = Field(
        default="auto", description="Precision/memory trade-off of the chunked path."
    )
    acc_dtype: Literal["float16", "bfloat16", "float32", "float64"] | None = Field(
        default=None,
        description="Accumulation dtype: the compute dtype, or float32 for float16/bfloat16; "
        "null lets torch choose.",
    )

    @field_validator("acc_policy")
    @classmethod
    def _policy_of_this_torch(cls, value: str) -> str:
        if ACC_POLICIES and value not in ACC_POLICIES:
            accepted = ", ".join(repr(p) for p in ACC_POLICY_NAMES if p in ACC_POLICIES)
            raise ValueError(
                f"torch {torch.__version__} has no acc_policy {value!r}; it accepts {accepted}"
            )
        return value

    @field_validator("chunking_method")
    @classmethod
    def _known_method(cls, value: str | None) -> str | None:
        if value is None or value == "auto":
            return value
        name, sep, factor = value.partition(":")
        factor = factor if sep else "1"
        if not (name == "aspect_ratio" and factor.isascii() and factor.isdigit() and int(factor)):
            raise ValueError(
                f"unknown chunking method {value!r}; expected 'auto', 'aspect_ratio' or "
                "'aspect_ratio:N' with N >= 1"
            )
        return value

    def to_torch(self) -> torch.nn.LinearCrossEntropyOptions:
        fields = self.model_dump()
        dtype = fields.pop("acc_dtype")
        return torch.nn.LinearCrossEntropyOptions(
            **fields, acc_dtype=None if dtype is None else TORCH_DTYPES[dtype]
        )


class LinearCrossEntropyParams(LossParams):
    input: Tensor = Field(description="Hidden states, shape (N, H) or (H).")
    linear_weight: Tensor = Field(
        description="The head's weight, shape (C, H), or (C, d1, ..., dK, H) for a "
        "K-dimensional loss (batched input only)."
    )
    target: Tensor = Field(
        description="Class indices of shape (N) or (N, d1, ..., dK) (() unbatched), or class "
        "probabilities of the logits' shape (N, C, d1, ..., dK)."
    )
    linear_bias: Tensor | None = Field(
        default=None, description="The head's bias, shape (C) or (C, d1, ..., dK)."
    )
    weight: ClassWeight = None
    reduction: Reduction = "mean"
    ignore_index: int | None = Field(
        default=None,
        description="Target value that is ignored (class indices only); null means -100.",
    )
    label_smoothing: float = Field(default=0.0, ge=0.0, le=1.0)
    options: LinearCrossEntropyOptionsModel | None = Field(
        default=None,
        description="torch.nn.LinearCrossEntropyOptions for the chunked path; null for the "
        "reference path.",
    )


@register
class LinearCrossEntropy(Loss[LinearCrossEntropyParams]):
    name = "linear_cross_entropy"
    module = "LinearCrossEntropyLoss"
    warning_codes = frozenset(
        {
            "options_ignored",
            "all_targets_ignored",
            "weight_with_probabilities",
            "target_not_a_distribution",
        }
    )
    requires = TorchFeature(
        ("nn.functional.linear_cross_entropy", "nn.LinearCrossEntropyOptions"), since="2.13"
    )
    summary = "Cross-entropy of a linear head's logits, without holding the N x C logits."
    formula = "z = input·Wᵀ + b; loss = Σ_c a_c·(logsumexp(z) - z_c); a = w_y·onehot(y) or w·t"
    params_model = LinearCrossEntropyParams
    tensor_inputs = ("input", "linear_weight", "target", "linear_bias", "weight")
    differentiable = ("input", "linear_weight", "linear_bias", "target")
    nonnegative = True

    def torch_options(self, params: LinearCrossEntropyParams) -> dict[str, Any]:
        kwargs = params.torch_kwargs(self.tensor_inputs)
        if params.options is not None:
            kwargs["options"] = params.options.to_torch()
        return kwargs

    def torch_loss(
        self, params: LinearCrossEntropyParams, tensors: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Torch's call, with ``options`` dropped where torch would ignore them: it then falls
        back to the very same reference path, but with a UserWarning that the service reports
        as its own ``options_ignored`` warning (and must not let escape)."""
        kwargs = self.torch_options(params)
        falls_back = (
            tensors["target"].dtype != torch.int64
            or params.label_smoothing != 0.0
            or tensors["linear_weight"].dim() != 2
        )
        if falls_back:
            kwargs["options"] = None
        fn = torch.nn.functional.linear_cross_entropy
        return fn(**tensors, **kwargs)  # type: ignore[arg-type]

    def prepare(self, params: LinearCrossEntropyParams, dtype: str) -> Prepared:
        x, w_lin = params.input, params.linear_weight
        if x.ndim not in (1, 2):
            raise InvalidInput.at(
                "input", f"rank {x.ndim} (shape {shape_str(x.shape)}); expected (N, H) or (H)"
            )
        if w_lin.ndim < 2:
            raise InvalidInput.at(
                "linear_weight",
                f"rank {w_lin.ndim} (shape {shape_str(w_lin.shape)}); expected (C, H) or "
                "(C, d1, ..., dK, H)",
            )
        hidden = x.shape[-1]
        if w_lin.shape[-1] != hidden:
            raise InvalidInput.at(
                "linear_weight",
                f"last dimension {w_lin.shape[-1]} differs from the input's ({hidden}): both "
                "are the hidden width H",
            )
        n_classes, out = int(w_lin.shape[0]), tuple(w_lin.shape[1:-1])
        if n_classes == 0:
            raise InvalidInput.at("linear_weight", "the class dimension (dimension 0) is empty")
        if out and x.ndim == 1:
            raise InvalidInput.at(
                "input",
                f"a K-dimensional head (linear_weight {shape_str(w_lin.shape)}) needs batched "
                f"input (N, {hidden}), got {shape_str(x.shape)}",
            )
        batch = x.shape[:-1]
        logits_shape = (*batch, n_classes, *out)
        arrays: dict[str, Any] = {
            "input": floating(x, dtype),
            "linear_weight": floating(w_lin, dtype),
        }
        floating_names = {"input", "linear_weight"}
        if params.linear_bias is not None:
            require_shape(
                params.linear_bias, "linear_bias", (n_classes, *out), "one bias per logit"
            )
            arrays["linear_bias"] = floating(params.linear_bias, dtype)
            floating_names.add("linear_bias")
        t = params.target
        if t.shape == logits_shape:
            form = "class_probabilities"
            if params.ignore_index is not None:
                raise InvalidInput.at(
                    "ignore_index",
                    "must be null when target holds class probabilities (torch refuses it)",
                )
            arrays["target"] = floating(t, dtype)
            floating_names.add("target")
        else:
            form = "class_indices"
            require_shape(
                t,
                "target",
                (*batch, *out),
                f"class indices for logits {shape_str(logits_shape)}; probabilities would need "
                "the logits' shape",
            )
            arrays["target"] = class_indices(t, n_classes, self.ignore_index(params))
        if params.weight is not None:
            arrays["weight"] = class_weights(params.weight, n_classes, dtype)
            floating_names.add("weight")
        chunked = params.options is not None and _chunked(params, form, out)
        if chunked:
            _check_chunking(params, dtype, rows=math.prod(batch), hidden=hidden, classes=n_classes)
        elif math.prod(logits_shape) > params.limits.max_elements:
            # Off the chunked path torch holds every logit: one tensor, under the same limit.
            raise LimitExceeded.at(
                "linear_weight",
                f"the logits {shape_str(logits_shape)} hold {math.prod(logits_shape)} elements, "
                f"more than the limit of {params.limits.max_elements}; torch computes them in "
                "full unless 'options' selects its chunked path (class indices, no label "
                "smoothing, a (C, H) head)",
            )
        return Prepared(
            arrays=arrays,
            floating=frozenset(floating_names),
            facts={"target_form": form, "classes": n_classes, "chunked": chunked},
            scale=_logit_bound(arrays),
        )

    @staticmethod
    def ignore_index(params: LinearCrossEntropyParams) -> int:
        return DEFAULT_IGNORE_INDEX if params.ignore_index is None else params.ignore_index

    def reference(
        self, params: LinearCrossEntropyParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        x = prep.arrays["input"]
        w_lin = prep.arrays["linear_weight"]
        bias = prep.arrays.get("linear_bias")
        target = prep.arrays["target"]
        weight = prep.arrays.get("weight")
        indices = prep.facts["target_form"] == "class_indices"
        unbatched = x.ndim == 1
        if unbatched:
            x, target = x[None, :], target[None, ...]
        n_rows, hidden = x.shape
        n_classes, out = w_lin.shape[0], w_lin.shape[1:-1]
        head = w_lin.reshape(-1, hidden)  # (C·P, H), rows in (c, d1, ..., dK) order
        flat_bias = None if bias is None else bias.reshape(-1)
        ignore = self.ignore_index(params)
        w: Any = 1.0 if weight is None else weight
        eps = params.label_smoothing
        want_grad = "grad" in include

        if indices:
            kept, _, w_y = at_targets(target, ignore, weight)
            denominator = float(w_y.sum())
        else:
            denominator = float(math.prod(target.shape[:1] + target.shape[2:]))
        g = grad_scale(params.reduction, denominator)

        per_row = math.prod(out) * n_classes
        block = max(1, BLOCK_ELEMENTS // max(per_row, 1))
        losses = np.empty((n_rows, *out))
        lse_all = np.empty((n_rows, *out))
        term_all = np.empty((n_rows, *out))
        grad_x = np.zeros_like(x) if want_grad else None
        grad_head = np.zeros_like(head) if want_grad else None
        grad_bias = np.zeros(head.shape[0]) if want_grad and bias is not None else None
        grad_t = np.empty(target.shape) if want_grad and not indices else None
        for start in range(0, n_rows, block):
            rows = slice(start, min(start + block, n_rows))
            z = x[rows] @ head.T
            if flat_bias is not None:
                z = z + flat_bias
            z = np.moveaxis(z.reshape(-1, n_classes, *out), 1, -1)  # (rows, d..., C)
            lse = logsumexp(z, axis=-1)
            logp = z - lse[..., None]
            if indices:
                k_b, safe_b, w_b = at_targets(target[rows], ignore, weight)
                z_y = take_class(z, safe_b)
                nll = w_b * (lse - z_y)
                term_all[rows] = np.where(k_b, z_y, 0.0)
            else:
                t_b = np.moveaxis(target[rows], 1, -1)
                nll = -(w * t_b * logp).sum(axis=-1)
                term_all[rows] = (w * t_b * z).sum(axis=-1)
            if eps > 0:
                smooth = -(logp * w).sum(axis=-1)
                if indices:
                    smooth = np.where(k_b, smooth, 0.0)
                losses[rows] = (1 - eps) * nll + (eps / n_classes) * smooth
            else:
                losses[rows] = nll
            lse_all[rows] = lse
            if grad_x is not None and grad_head is not None:
                if indices:
                    onehot = np.arange(n_classes) == safe_b[..., None]
                    coef = (1 - eps) * w_b[..., None] * onehot
                    coef = coef + (eps / n_classes) * w * k_b[..., None]
                else:
                    coef = w * ((1 - eps) * t_b + eps / n_classes)
                    grad_t[rows] = np.moveaxis(-(1 - eps) * g * w * logp, -1, 1)  # type: ignore[index]
                core = coef.sum(axis=-1, keepdims=True) * np.exp(logp) - coef
                with quietly(divide="ignore", invalid="ignore"):
                    gz = np.where(core == 0, 0.0, g * core)
                gz_flat = np.moveaxis(gz, -1, 1).reshape(gz.shape[0], -1)  # (rows, C·P)
                grad_x[rows] = gz_flat @ head
                grad_head += gz_flat.T @ x[rows]
                if grad_bias is not None:
                    grad_bias += gz_flat.sum(axis=0)

        breakdown: dict[str, npt.NDArray[Any]] = {"logsumexp": lse_all}
        if indices:
            breakdown |= {"target_logit": term_all, "weight": w_y, "ignored": ~kept}
        else:
            breakdown["target_term"] = term_all
        if unbatched:
            losses = losses[0]
            breakdown = {k: v[0] for k, v in breakdown.items()}
        ref = Reference.reduced(losses, params.reduction, denominator, breakdown)
        if want_grad and prep.facts["chunked"] and params.reduction == "mean" and not denominator:
            # torch's chunked path scales every gradient by 1/denominator, ignored rows too:
            # over a zero denominator all of them are NaN (the reference path gives 0s).
            for grad in (grad_x, grad_head, grad_bias):
                if grad is not None:
                    grad.fill(np.nan)
        if grad_x is not None and grad_head is not None:
            ref.grads["input"] = grad_x[0] if unbatched else grad_x
            ref.grads["linear_weight"] = grad_head.reshape(w_lin.shape)
            if grad_bias is not None:
                ref.grads["linear_bias"] = grad_bias.reshape(bias.shape)  # type: ignore[union-attr]
            if grad_t is not None:
                ref.grads["target"] = grad_t[0] if unbatched else grad_t
        return ref

    def warnings(self, params: LinearCrossEntropyParams, prep: Prepared) -> list[LossWarning]:
        out: list[LossWarning] = []
        if params.options is not None and not prep.facts["chunked"]:
            out.append(
                LossWarning(
                    "options_ignored",
                    "torch ignores 'options' and computes the logits in full: its chunked path "
                    "needs class indices, label_smoothing 0 and a two-dimensional "
                    "linear_weight (C, H).",
                )
            )
        if prep.facts["target_form"] == "class_indices":
            y = prep.arrays["target"]
            ignore = self.ignore_index(params)
            if y.size and bool(np.all(y == ignore)):
                out.append(all_targets_ignored_warning(ignore))
            return out
        if params.weight is not None:
            out.append(
                LossWarning(
                    "weight_with_probabilities",
                    "with class-probability targets, 'mean' divides by the number of elements, "
                    "not by the sum of the weights as it does for class indices.",
                )
            )
        t = params.target
        class_dim = 0 if params.input.ndim == 1 else 1
        if t.size and (t.min() < 0 or not np.all(np.abs(t.sum(axis=class_dim) - 1.0) <= 1e-3)):
            out.append(
                LossWarning(
                    "target_not_a_distribution",
                    "target has the logits' shape, so it is read as class probabilities, but "
                    "its rows are not distributions (negative, or not summing to 1).",
                )
            )
        return out

    def example(self) -> dict[str, Any]:
        return {
            "input": [[0.5, -1.0, 0.25], [1.5, 0.0, -0.5]],
            "linear_weight": [
                [0.2, 0.1, -0.3],
                [-0.4, 0.5, 0.1],
                [0.3, -0.2, 0.6],
                [0.0, 0.4, -0.1],
            ],
            "target": [2, 0],
            "options": {"batch_chunk_size": 1},
        }

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "example")
        options: list[dict[str, Any] | None] = [
            None,
            {},
            {"batch_chunk_size": 2},
            {"chunking_method": "aspect_ratio:2"},
            {"chunking_method": None, "batch_chunk_size": 3, "acc_policy": "accurate"},
            {"acc_policy": "balanced"},
            {"acc_policy": "compact", "allow_retain_graph": True},
        ]
        # Only the policies the installed torch has ('balanced' went in 2.14).
        options = [o for o in options if o is None or o.get("acc_policy", "auto") in ACC_POLICIES]
        i = 0
        for scale in (0.1, 1.0, 10.0):
            for n, hidden, classes in ((6, 4, 5), (1, 3, 7), (9, 2, 3)):
                for reduction in REDUCTIONS:
                    opts = options[i % len(options)]
                    i += 1
                    x = rng.standard_normal((n, hidden)) * scale
                    head = rng.standard_normal((classes, hidden))
                    y = rng.integers(0, classes, size=n)
                    base = {
                        "input": x.tolist(),
                        "linear_weight": head.tolist(),
                        "reduction": reduction,
                        "options": opts,
                    }
                    note = f"{n}x{hidden}->{classes} x{scale} options={opts}"
                    yield Sample(base | {"target": y.tolist()}, f"indices {note}")
                    bias = rng.standard_normal(classes).tolist()
                    weight = rng.uniform(0.1, 2.0, classes).tolist()
                    y_ign = np.where(rng.random(n) < 0.4, -1, y)
                    yield Sample(
                        base
                        | {
                            "target": y_ign.tolist(),
                            "linear_bias": bias,
                            "weight": weight,
                            "ignore_index": -1,
                        },
                        f"bias, weight, some ignored {note}",
                    )
                    probs = rng.dirichlet(np.ones(classes), size=n)
                    yield Sample(
                        base | {"target": probs.tolist(), "linear_bias": bias},
                        f"probabilities {note}",
                    )
                    yield Sample(
                        base | {"target": y.tolist(), "label_smoothing": 0.2, "weight": weight},
                        f"smoothed {note}",
                    )
        x = rng.standard_normal((4, 3))
        tricky: dict[str, dict[str, Any]] = {
            "unbatched": {
                "input": x[0].tolist(),
                "linear_weight": rng.standard_normal((5, 3)).tolist(),
                "target": 3,
                "options": {},
            },
            "unbatched probabilities": {
                "input": x[0].tolist(),
                "linear_weight": rng.standard_normal((5, 3)).tolist(),
                "target": rng.dirichlet(np.ones(5)).tolist(),
            },
            "K-dimensional head": {
                "input": x.tolist(),
                "linear_weight": rng.standard_normal((5, 2, 3)).tolist(),
                "linear_bias": rng.standard_normal((5, 2)).tolist(),
                "target": rng.integers(0, 5, size=(4, 2)).tolist(),
                "options": {"batch_chunk_size": 2},
                "reduction": "none",
            },
            "K-dimensional probabilities": {
                "input": x.tolist(),
                "linear_weight": rng.standard_normal((3, 2, 3)).tolist(),
                "target": np.moveaxis(rng.dirichlet(np.ones(3), size=(4, 2)), -1, 1).tolist(),
                "label_smoothing": 0.1,
            },
            "all ignored (default -100)": {
                "input": x.tolist(),
                "linear_weight": rng.standard_normal((5, 3)).tolist(),
                "target": [-100] * 4,
                "options": {},
            },
            "ignore_index in range": {
                "input": x.tolist(),
                "linear_weight": rng.standard_normal((5, 3)).tolist(),
                "target": [0, 1, 2, 2],
                "ignore_index": 2,
                "options": {"chunking_method": "aspect_ratio"},
            },
            "large logits": {
                "input": (x * 50).tolist(),
                "linear_weight": (rng.standard_normal((6, 3)) * 20).tolist(),
                "target": [0, 5, 3, 1],
            },
            "integer hidden states": {
                "input": [[1, 0, 2], [0, 1, 1]],
                "linear_weight": [[1, 0, 0], [0, 1, 0]],
                "target": [0, 1],
            },
        }
        for note, body in tricky.items():
            yield Sample(body, note)

    def error_samples(self) -> Iterator[ErrorSample]:
        ok = {"input": [[0.1, 0.2]], "linear_weight": [[0.5, 0.1], [0.2, -0.3]], "target": [1]}
        yield ErrorSample(ok | {"input": [[[0.1, 0.2]]]}, "input", "rank 3 input")
        yield ErrorSample(ok | {"input": 0.1}, "input", "0-dim input")
        yield ErrorSample(ok | {"linear_weight": [0.5, 0.1]}, "linear_weight", "rank 1 weight")
        yield ErrorSample(
            ok | {"linear_weight": [[0.5, 0.1, 0.2]]}, "linear_weight", "hidden width differs"
        )
        yield ErrorSample(ok | {"linear_bias": [0.1]}, "linear_bias", "bias of the wrong length")
        yield ErrorSample(ok | {"target": [2]}, "target", "index out of range")
        yield ErrorSample(ok | {"target": [1.5]}, "target", "fractional index")
        yield ErrorSample(ok | {"target": [[1], [0]]}, "target", "wrong shape")
        yield ErrorSample(ok | {"weight": [1.0]}, "weight", "weight of the wrong length")
        yield ErrorSample(
            ok | {"target": [[0.3, 0.7]], "ignore_index": -100},
            "ignore_index",
            "ignore_index with probabilities",
        )
        yield ErrorSample(
            {"input": [0.1, 0.2], "linear_weight": [[[0.5, 0.1]]], "target": [0]},
            "input",
            "K-dimensional head with unbatched input",
        )
        yield ErrorSample(ok | {"label_smoothing": 1.5}, "label_smoothing", "above 1")
        yield ErrorSample(ok | {"reduction": "avg"}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"options": 1}, "options", "options as a number")
        yield ErrorSample(
            ok | {"options": {"acc_policy": "fast"}}, "options.acc_policy", "unknown policy"
        )
        yield ErrorSample(
            ok | {"options": {"chunking_method": "aspect_ratio:0"}},
            "options.chunking_method",
            "factor 0",
        )
        yield ErrorSample(
            ok | {"options": {"chunking_method": "rows"}},
            "options.chunking_method",
            "unknown method",
        )
        yield ErrorSample(
            ok | {"options": {"batch_chunk_size": 0}},
            "options.batch_chunk_size",
            "chunk size 0",
        )
        yield ErrorSample(
            ok | {"options": {"acc_dtype": "int8"}}, "options.acc_dtype", "unknown dtype"
        )
        yield ErrorSample(
            ok | {"options": {"acc_dtype": "float16"}, "dtype": "float32"},
            "options.acc_dtype",
            "float16 accumulation of float32",
        )
        yield ErrorSample(
            {"input": [[0.1, 0.2]] * 8, "linear_weight": [[0.5, 0.1]] * 4, "target": [1] * 8}
            | {"options": {"batch_chunk_size": 3, "chunking_method": "aspect_ratio"}},
            "options.batch_chunk_size",
            "chunk size and method disagree",
        )
        yield ErrorSample(
            {"input": [[], []], "linear_weight": [[], []], "target": [0, 1], "options": {}},
            "input",
            "no hidden features for the chunking heuristic",
        )
        yield ErrorSample(ok | {"options": {"chunk": 2}}, "options.chunk", "unknown option")
        yield ErrorSample({"input": [[0.1]], "target": [0]}, "linear_weight", "missing weight")


def _chunked(params: LinearCrossEntropyParams, form: str, out: tuple[int, ...]) -> bool:
    """Whether torch takes its chunked path for these options (else it warns and falls back)."""
    return form == "class_indices" and params.label_smoothing == 0.0 and not out


def _check_chunking(
    params: LinearCrossEntropyParams, dtype: str, *, rows: int, hidden: int, classes: int
) -> None:
    """Refuse, naming the option, what torch's chunked path raises on."""
    options = params.options
    assert options is not None
    acc = options.acc_dtype
    mixed = acc == "float32" and dtype in ("float16", "bfloat16")
    if acc is not None and acc != dtype and not mixed:
        raise InvalidInput.at(
            "options.acc_dtype",
            f"{acc} accumulation of {dtype} inputs: torch accumulates in the compute dtype, "
            "or in float32 for float16 and bfloat16",
        )
    method = options.chunking_method
    if method == "auto":
        method = None if options.batch_chunk_size is not None else "aspect_ratio"
    if method is None:
        return
    if hidden == 0:
        raise InvalidInput.at(
            "input",
            "the hidden width is 0, and torch's chunking heuristic divides by it: give "
            "options.batch_chunk_size (with chunking_method null or 'auto')",
        )
    factor = int(method.split(":", 1)[1]) if ":" in method else 1
    size = _aspect_ratio_chunk(rows, hidden, classes, factor)
    if options.batch_chunk_size is not None and options.batch_chunk_size != size:
        raise InvalidInput.at(
            "options.batch_chunk_size",
            f"{options.batch_chunk_size} differs from the {size} rows chunking_method "
            f"{options.chunking_method!r} gives; pass only one",
        )


def _aspect_ratio_chunk(rows: int, hidden: int, classes: int, factor: int) -> int:
    """torch's 'aspect_ratio:N' chunk: the power of 2 giving a logits block the input's size."""
    target = -(-rows // -(-classes // hidden))
    return min((1 << (target - 1).bit_length()) // factor, rows)


def _logit_bound(arrays: dict[str, Any]) -> float:
    """An upper bound on |logit| (max ‖input row‖·max ‖head row‖ + max |bias|, Cauchy-Schwarz),
    which sets the comparison's absolute tolerance as the logits' magnitude does for
    cross_entropy."""
    x, head = arrays["input"], arrays["linear_weight"]
    if not x.size or not head.size:
        return 1.0
    x_norm = float(np.sqrt((x.reshape(-1, x.shape[-1]) ** 2).sum(axis=-1)).max())
    w_norm = float(np.sqrt((head.reshape(-1, head.shape[-1]) ** 2).sum(axis=-1)).max())
    bias = arrays.get("linear_bias")
    b = float(np.abs(bias).max()) if bias is not None and bias.size else 0.0
    bound = x_norm * w_norm + b
    return max(1.0, bound) if np.isfinite(bound) else 1.0
