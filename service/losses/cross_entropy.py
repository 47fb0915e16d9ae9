"""Cross-entropy of logits: ``torch.nn.functional.cross_entropy``.

The input is *logits*, not probabilities. With p = softmax(x) over the class dimension and
lse(x) = log Σ_c exp(x_c), each element's loss is ``Σ_c a_c · (lse(x) - x_c)`` where ``a`` is

- class indices y: ``a = (1-ε)·w_y·onehot(y) + (ε/C)·w``, so the loss is
  ``(1-ε)·w_y·(lse - x_y) + (ε/C)·Σ_c w_c·(lse - x_c)``; elements whose target equals
  ``ignore_index`` contribute 0;
- class probabilities t: ``a = w ⊙ ((1-ε)·t + ε/C)``.

``w`` is ``weight`` (all ones when absent), ε is ``label_smoothing`` in [0, 1], C the number of
classes. ``mean`` divides the sum by Σ w_y over the targets not ignored for class indices, and by
the number of elements N (not by the weights) for probabilities; a mean over nothing is NaN.
The gradient with respect to x is ``g·((Σ_c a_c)·p - a)``, g being 1/denominator for ``mean``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field

from service.arrays import extremes
from service.losses.base import (
    DEFERRABLE,
    ErrorSample,
    Loss,
    LossParams,
    LossWarning,
    Prepared,
    Reduction,
    Reference,
    Sample,
    SmallRequest,
    Tensor,
)
from service.losses.common import (
    BLOCKED_ABOVE_ELEMENTS,
    F64,
    ClassWeight,
    all_targets_ignored_warning,
    at_targets,
    class_axis,
    class_count,
    class_indices,
    class_weights,
    floating,
    grad_scale,
    last_axis,
    logsumexp,
    quietly,
    refuse_class_axis_last,
    require_shape,
    row_blocks,
    scale_of,
    shape_str,
    take_class,
    without_class_axis,
)
from service.losses.reduction import REDUCTIONS
from service.losses.registry import register

#: The article's example: rows of probabilities drawn with np.random.seed(1024).
ARTICLE_INPUT: list[list[float]] = (
    np.random.RandomState(1024).dirichlet(np.ones(3), size=3).tolist()
)
ARTICLE_TARGET = [0, 1, 2]


class CrossEntropyParams(LossParams):
    input: Tensor = Field(description="Logits, shape (C), (N, C) or (N, C, d1, ..., dK).")
    target: Tensor = Field(
        description="Class indices of shape (), (N) or (N, d1, ..., dK), or class "
        "probabilities of the input's shape."
    )
    weight: ClassWeight = None
    ignore_index: int = Field(
        default=-100, description="Target value that is ignored (class indices only)."
    )
    reduction: Reduction = "mean"
    label_smoothing: float = Field(default=0.0, ge=0.0, le=1.0)


@register
class CrossEntropy(Loss[CrossEntropyParams]):
    name = "cross_entropy"
    module = "CrossEntropyLoss"
    warning_codes = frozenset(
        {
            "all_targets_ignored",
            "input_looks_like_probabilities",
            "target_not_a_distribution",
            "weight_with_probabilities",
        }
    )
    inline = True  # linear in the elements, no Python loop over them
    summary = "Cross-entropy between logits and class indices or class probabilities."
    formula = (
        "loss = Σ_c a_c·(logsumexp(x) - x_c); a = w_y·onehot(y) (indices) or w·t (probabilities)"
    )
    params_model = CrossEntropyParams
    tensor_inputs = ("input", "target", "weight")
    differentiable = ("input", "target")
    extras = ("log_softmax", "softmax")
    nonnegative = True

    def small_answer(self, body: Any, request: SmallRequest) -> dict[str, Any] | None:
        """A few rows of logits, in plain Python floats (``cross_entropy_small``)."""
        return cross_entropy_small.compute(
            self,
            body,
            default_dtype=request.default_dtype,
            default_reference=request.default_reference,
            device=request.device,
            limits=request.limits,
            guard=request.guard,
            clock=request.clock,
        )

    def prepare(self, params: CrossEntropyParams, dtype: str) -> Prepared:
        x = params.input
        n_classes = class_count(x, "logits")
        # The logits are the bulk of a large request: their rounding waits for the reference.
        deferred = {"input": dtype} if dtype in DEFERRABLE and x.dtype.kind == "f" else {}
        arrays: dict[str, Any] = {"input": x if deferred else floating(x, dtype)}
        floating_names = {"input"}
        t = params.target
        if t.shape == x.shape:
            form = "class_probabilities"
            arrays["target"] = floating(t, dtype)
            floating_names.add("target")
        else:
            form = "class_indices"
            refuse_class_axis_last(x, t)
            require_shape(
                t,
                "target",
                without_class_axis(x),
                f"class indices for input {shape_str(x.shape)}; "
                "probabilities would need the input's shape",
            )
            arrays["target"] = class_indices(t, n_classes, params.ignore_index)
        if params.weight is not None:
            arrays["weight"] = class_weights(params.weight, n_classes, dtype)
            floating_names.add("weight")
        # Rounding is monotonic: the extremes rounded give the rounded array's magnitude.
        ends = x if not x.size else floating(np.array(extremes(x)), dtype)
        return Prepared(
            arrays=arrays,
            floating=frozenset(floating_names),
            facts={"target_form": form, "classes": n_classes},
            scale=scale_of(ends),
            deferred=deferred,
        )

    def reference(
        self, params: CrossEntropyParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        if _in_row_blocks(prep, include):
            return self._reference_in_row_blocks(params, prep)
        # Each array is computed at most once and only when something reads it: this runs on
        # every request (the small ones are mostly NumPy call overhead), so the log-softmax,
        # the smoothing sum and the gradient's coefficients wait until they are needed.
        x = prep.array("input")
        class_dim = class_axis(x)
        xm = last_axis(x, class_dim)  # (..., C)
        n_classes = xm.shape[-1]
        weight = prep.arrays.get("weight")
        w: Any = 1.0 if weight is None else weight  # a scalar 1 multiplies like np.ones(C)
        eps = params.label_smoothing
        lse = logsumexp(xm, axis=-1)
        logp_cache: list[F64] = []

        def logp() -> F64:
            if not logp_cache:
                logp_cache.append(xm - lse[..., None])
            return logp_cache[0]

        breakdown: dict[str, Any] = {"logsumexp": lse}
        indices = prep.facts["target_form"] == "class_indices"
        if indices:
            kept, safe, w_y = at_targets(prep.arrays["target"], params.ignore_index, weight)
            x_y = take_class(xm, safe)
            nll = w_y * (lse - x_y)
            denominator = float(w_y.sum())
            target_logit = np.where(kept, x_y, 0.0)
            breakdown |= {"target_logit": target_logit, "weight": w_y, "ignored": ~kept}
        else:
            t = last_axis(prep.arrays["target"], class_dim)
            nll = -(w * t * logp()).sum(axis=-1)
            denominator = float(nll.size)
            breakdown["target_term"] = (w * t * xm).sum(axis=-1)
        if eps > 0:
            smooth = -(logp() * w).sum(axis=-1)  # Σ_c w_c·(lse - x_c)
            if indices:
                smooth = np.where(kept, smooth, 0.0)
            losses = (1 - eps) * nll + (eps / n_classes) * smooth
            breakdown["smoothing_term"] = (eps / n_classes) * smooth
        else:
            losses = nll
        ref = Reference.reduced(losses, params.reduction, denominator, breakdown)
        if "log_softmax" in include:
            ref.extras["log_softmax"] = np.moveaxis(logp(), -1, class_dim)
        if "softmax" in include:
            ref.extras["softmax"] = np.moveaxis(np.exp(logp()), -1, class_dim)
        if "grad" in include:
            if indices:
                coef = (1 - eps) * w_y[..., None] * (np.arange(n_classes) == safe[..., None])
                coef = coef + (eps / n_classes) * w * kept[..., None]
            else:
                coef = w * ((1 - eps) * t + eps / n_classes)
            g = grad_scale(params.reduction, denominator)  # inf, not a crash, over 0
            core = coef.sum(axis=-1, keepdims=True) * np.exp(logp()) - coef
            # Ignored elements have no coefficient: torch gives them a zero gradient even when
            # 'mean' divides by a zero denominator.
            with quietly(divide="ignore", invalid="ignore"):
                grad = np.where(core == 0, 0.0, g * core)
            ref.grads["input"] = np.moveaxis(grad, -1, class_dim)
            if not indices:
                ref.grads["target"] = np.moveaxis(-(1 - eps) * g * w * logp(), -1, class_dim)
        return ref

    def _reference_in_row_blocks(self, params: CrossEntropyParams, prep: Prepared) -> Reference:
        """``reference`` for a large input and no extras: the same formulas, each block of rows
        rounded to float64 and reduced over its classes before the next, so that the float64
        copy of the input and its temporaries (``x - m``, ``exp``, ``log_softmax``) never exist
        whole. Every per-row number is computed exactly as in one piece (the same operations
        in the same order on the same row), so the answer is identical, byte for byte."""
        raw = prep.arrays["input"]  # as sent, if its rounding was deferred
        rounding = prep.deferred.get("input")
        class_dim = class_axis(raw)
        xm = last_axis(raw, class_dim)  # (N, ..., C), a view
        n_classes = xm.shape[-1]
        weight = prep.arrays.get("weight")
        w: Any = 1.0 if weight is None else weight
        eps = params.label_smoothing
        indices = prep.facts["target_form"] == "class_indices"
        per_row = xm.shape[:-1]
        lse = np.empty(per_row)
        smooth = np.empty(per_row) if eps > 0 else None
        if indices:
            kept, safe, w_y = at_targets(prep.arrays["target"], params.ignore_index, weight)
            x_y = np.empty(per_row)
        else:
            t = last_axis(prep.arrays["target"], class_dim)
            nll = np.empty(per_row)
            target_term = np.empty(per_row)
        for rows in row_blocks(xm.shape[0], xm[0].size):
            xb = floating(xm[rows], rounding) if rounding else xm[rows]
            lse_b = logsumexp(xb, axis=-1)
            lse[rows] = lse_b
            logp_b = xb - lse_b[..., None] if smooth is not None or not indices else None
            if indices:
                x_y[rows] = take_class(xb, safe[rows])
            else:
                nll[rows] = -(w * t[rows] * logp_b).sum(axis=-1)
                target_term[rows] = (w * t[rows] * xb).sum(axis=-1)
            if smooth is not None:
                smooth[rows] = -(logp_b * w).sum(axis=-1)
            del xb, logp_b
        breakdown: dict[str, Any] = {"logsumexp": lse}
        if indices:
            nll = w_y * (lse - x_y)
            denominator = float(w_y.sum())
            breakdown |= {"target_logit": np.where(kept, x_y, 0.0), "weight": w_y, "ignored": ~kept}
        else:
            denominator = float(nll.size)
            breakdown["target_term"] = target_term
        if smooth is not None:
            if indices:
                smooth = np.where(kept, smooth, 0.0)
            losses = (1 - eps) * nll + (eps / n_classes) * smooth
            breakdown["smoothing_term"] = (eps / n_classes) * smooth
        else:
            losses = nll
        return Reference.reduced(losses, params.reduction, denominator, breakdown)

    def warnings(self, params: CrossEntropyParams, prep: Prepared) -> list[LossWarning]:
        out: list[LossWarning] = []
        x = params.input  # the numbers as sent, not rounded: no copy
        class_dim = 0 if x.ndim == 1 else 1
        indices = prep.facts["target_form"] == "class_indices"
        if (
            x.size
            and extremes(x)[0] >= 0
            and extremes(x)[1] <= 1
            and _sums_to_one(x.sum(axis=class_dim, dtype=np.float64))
        ):
            reading = _probability_reading(params, prep, x, class_dim, indices)
            out.append(looks_like_probabilities_warning(reading))
        if indices:
            y = prep.arrays["target"]
            if y.size and bool(np.all(y == params.ignore_index)):
                out.append(all_targets_ignored_warning(params.ignore_index))
        else:
            if params.weight is not None:
                out.append(weight_with_probabilities_warning())
            t = params.target
            if t.size and (t.min() < 0 or not _sums_to_one(t.sum(axis=class_dim))):
                out.append(target_not_a_distribution_warning())
        return out

    def example(self) -> dict[str, Any]:
        return {"input": ARTICLE_INPUT, "target": ARTICLE_TARGET}

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "the article's case")
        shapes = {1: (5,), 2: (4, 5), 3: (3, 4, 2), 4: (2, 3, 2, 2)}
        for scale in (0.1, 1.0, 30.0, 1e3):
            for rank, shape in shapes.items():
                for reduction in REDUCTIONS:
                    x = rng.standard_normal(shape) * scale
                    c = shape[0] if rank == 1 else shape[1]
                    batch = () if rank == 1 else shape[:1] + shape[2:]
                    y = rng.integers(0, c, size=batch)
                    weight = rng.uniform(0.1, 2.0, c).tolist()
                    base = {"input": x.tolist(), "reduction": reduction}
                    yield Sample(base | {"target": y.tolist()}, f"indices rank {rank} x{scale}")
                    if rank > 1:
                        y_ign = np.where(rng.random(batch) < 0.4, -1, y)
                        yield Sample(
                            base
                            | {
                                "target": y_ign.tolist(),
                                "weight": weight,
                                "ignore_index": -1,
                                "label_smoothing": 0.2,
                            },
                            f"weighted, some ignored, smoothed, rank {rank} x{scale}",
                        )
                        yield Sample(
                            base | {"target": np.full(batch, 3).tolist(), "ignore_index": 3},
                            f"all ignored rank {rank}",
                        )
                    probs = rng.dirichlet(np.ones(c), size=batch or None)
                    probs = np.moveaxis(probs, -1, 0 if rank == 1 else 1)
                    yield Sample(
                        base | {"target": probs.tolist()}, f"probabilities rank {rank} x{scale}"
                    )
                    yield Sample(
                        base | {"target": probs.tolist(), "weight": weight, "label_smoothing": 0.3},
                        f"weighted smoothed probabilities rank {rank} x{scale}",
                    )
        yield Sample({"input": [[1.0, 2.0]], "target": [1], "label_smoothing": 1.0}, "smoothing 1")

    def error_samples(self) -> Iterator[ErrorSample]:
        ok = {"input": [[0.1, 0.2, 0.7]], "target": [2]}
        yield ErrorSample(ok | {"target": [3]}, "target", "index out of range")
        yield ErrorSample(ok | {"target": [-1]}, "target", "negative index, not ignore_index")
        yield ErrorSample(ok | {"target": [1.5]}, "target", "fractional index")
        yield ErrorSample(ok | {"target": [[1], [2]]}, "target", "wrong shape")
        yield ErrorSample(ok | {"weight": [1.0, 2.0]}, "weight", "weight of the wrong length")
        yield ErrorSample(ok | {"reduction": "avg"}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"dtype": "int8"}, "dtype", "unknown dtype")
        yield ErrorSample(ok | {"label_smoothing": 1.5}, "label_smoothing", "above 1")
        yield ErrorSample(ok | {"label_smoothing": -0.1}, "label_smoothing", "below 0")
        yield ErrorSample({"target": [1]}, "input", "missing input")
        yield ErrorSample(ok | {"size_average": True}, "size_average", "deprecated argument")
        yield ErrorSample(ok | {"input": [[0.1, 0.2], [0.3]]}, "input", "ragged")
        yield ErrorSample(ok | {"input": [["a", 0.2, 0.3]]}, "input", "not a number")
        yield ErrorSample(ok | {"input": [[]], "target": [0]}, "input", "empty class dimension")
        yield ErrorSample(ok | {"input": 1.0}, "input", "no class dimension")
        yield ErrorSample(ok | {"ignore_index": 1.5}, "ignore_index", "fractional ignore_index")
        yield ErrorSample(
            {"input": np.zeros((2, 4, 6)).tolist(), "target": [[0, 1, 2, 3]] * 2},
            "input",
            "a language model's (B, T, V) logits: the class axis last",
        )


# The warnings' texts, shared with the small-request path (``cross_entropy_small``).


def looks_like_probabilities_warning(reading: float) -> LossWarning:
    shown = f"{reading:.4f}" if math.isfinite(reading) else str(reading)
    return LossWarning(
        "input_looks_like_probabilities",
        "every row of 'input' lies in [0, 1] and sums to 1: it looks like "
        "probabilities, but cross_entropy expects logits (it applies log_softmax "
        "itself). Read as probabilities, the mean of -log p[target] would be "
        f"{shown}. Pass logits, or log-probabilities to nll_loss.",
        {"probability_reading": reading},
    )


def weight_with_probabilities_warning() -> LossWarning:
    return LossWarning(
        "weight_with_probabilities",
        "with class-probability targets, 'mean' divides by the number of elements, "
        "not by the sum of the weights as it does for class indices.",
    )


def target_not_a_distribution_warning() -> LossWarning:
    return LossWarning(
        "target_not_a_distribution",
        "target has the input's shape, so it is read as class probabilities, but "
        "its rows are not distributions (negative, or not summing to 1).",
    )


#: ``_sums_to_one``'s bound on |sum - 1|.
SUM_TOLERANCE = 1e-3 + 1e-5 * 1.0


#: Extras that are arrays of the input's size: asked for, the reference runs in one piece.
_WHOLE_ARRAY_EXTRAS = frozenset({"grad", "log_softmax", "softmax"})


def _in_row_blocks(prep: Prepared, include: frozenset[str]) -> bool:
    """Whether the reference runs in row blocks: a large input with rows (rank >= 2) and no
    extra that is itself an array of the input's size."""
    x = prep.arrays["input"]
    return x.ndim >= 2 and x.size > BLOCKED_ABOVE_ELEMENTS and not include & _WHOLE_ARRAY_EXTRAS


def _sums_to_one(sums: npt.NDArray[Any]) -> bool:
    """``np.allclose(sums, 1.0, atol=1e-3)`` (rtol 1e-5), without its dozen NumPy calls."""
    return bool(np.all(np.abs(sums - 1.0) <= SUM_TOLERANCE))


def _probability_reading(
    params: CrossEntropyParams,
    prep: Prepared,
    x: npt.NDArray[Any],
    class_dim: int,
    indices: bool,
) -> float:
    """The article's textbook number: the mean of -log p[target] with the input read as p."""
    pm = last_axis(x, class_dim)
    if indices:
        y = prep.arrays["target"]  # already checked whole and in range by prepare
        kept = y != params.ignore_index
        if not kept.any():
            return float("nan")
        p = take_class(pm, y if kept.all() else np.where(kept, y, 0))[kept].astype(np.float64)
        if p.min() > 0:
            return float(-np.log(p).sum() / p.size)  # what .mean() computes, without its wrapper
        with quietly(divide="ignore"):
            return float(-np.log(p).sum() / p.size)
    with quietly(divide="ignore"):
        logp = np.log(pm.astype(np.float64, copy=False))
    t = last_axis(params.target.astype(np.float64), class_dim)
    with quietly(invalid="ignore"):
        terms = np.where(t == 0, 0.0, t * logp)
    return float(-terms.sum(axis=-1).mean())


# Last: the small path reads the warnings' texts above.
from service.losses import cross_entropy_small  # noqa: E402
