"""Hinge losses over class scores: ``multi_margin_loss`` and ``multilabel_margin_loss``.

Both take scores x of shape (C) or (N, C) (a 0-dim input counts as one sample of one class) and
compare the score of each right class with every wrong one; C is the number of classes.

``multi_margin_loss`` (one class index y per sample, target shape () or (N)):
``loss_n = (1/C)·Σ_{i ≠ y} w_y·max(0, margin - x_y + x_i)^p`` with p ∈ {1, 2}, ``margin`` any
real and ``weight`` w of shape (C) (all ones when absent). ``none`` keeps the target's shape.

``multilabel_margin_loss`` (target of the input's shape holding class indices, read up to the
first -1, which ends the list; the rest of the row is ignored):
``loss_n = (1/C)·Σ_{j ∈ labels} Σ_{i ∉ labels} max(0, 1 - (x_{y_j} - x_i))``. A label repeated
before the -1 counts twice, as in torch. ``none`` gives a 0-dim result for a 0/1-dim input.

For both, ``mean`` divides by the number of samples N, not by the weights. Torch 2.13 returns
uninitialised memory for ``mean`` and ``sum`` over an empty batch (N = 0), so the service refuses
those. Gradients (g = 1/N for ``mean``, else 1): each active term (z = margin - x_y + x_i > 0,
strictly, as torch's backward has it at the kink) adds g·w_y·p·z^(p-1)/C to ∂/∂x_i and subtracts
it from ∂/∂x_y; targets and weights are not differentiable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import torch
from pydantic import Field, ValidationInfo, field_validator

from service.arrays import ArrayLimitError
from service.errors import InvalidInput
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
)
from service.losses.common import (
    I64,
    class_indices,
    class_weights,
    element_limit,
    floating,
    grad_scale,
    ieee_quiet,
    integral,
    negative_weight_warning,
    require_shape,
    scale_of,
    shape_str,
)
from service.losses.reduction import REDUCTIONS
from service.losses.registry import register

P = TypeVar("P", bound=LossParams)

#: Rows × classes of the (pairs, C) blocks the multilabel reference works through at once.
BLOCK_ELEMENTS = 1 << 20


class ClassScoresLoss(Loss[P]):
    """The torch call of both losses, with a missing low-precision kernel named as such."""

    def torch_loss(self, params: P, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        try:
            return super().torch_loss(params, tensors)
        except NotImplementedError as exc:  # torch 2.13 has no CPU kernel for float16/bfloat16
            x = tensors["input"]
            raise InvalidInput.at(
                "dtype",
                f"torch {torch.__version__} has no {self.name} kernel for "
                f"{str(x.dtype).removeprefix('torch.')} on {x.device.type}; use float32 or float64",
            ) from exc


def class_scores_shape(x: npt.NDArray[Any], reduction: str) -> tuple[int, int]:
    """(N, C) of a score input as torch reads it, refusing what torch refuses or gets wrong."""
    if x.ndim > 2 or (x.ndim >= 1 and x.shape[-1] == 0):
        raise InvalidInput.at(
            "input",
            f"shape {shape_str(x.shape)}; expected a non-empty vector (C) or a matrix (N, C) "
            "with C > 0",
        )
    n, c = (1, 1) if x.ndim == 0 else (1, x.shape[0]) if x.ndim == 1 else x.shape
    if n == 0 and reduction != "none":
        raise InvalidInput.at(
            "input",
            f"an empty batch with reduction '{reduction}': torch 2.13 returns uninitialised "
            "memory here instead of a value; use reduction 'none'",
        )
    return int(n), int(c)


class MultiMarginLossParams(LossParams):
    input: Tensor = Field(description="Class scores, shape (C) or (N, C).")
    target: Tensor = Field(description="Class index per sample in [0, C), shape () or (N).")
    p: Literal[1, 2] = Field(default=1, description="Exponent of the hinge: 1 or 2.")
    margin: float = Field(default=1.0, description="Margin the right score should win by.")
    weight: Tensor | None = Field(
        default=None, description="Weight of each class (of the target's), shape (C)."
    )
    reduction: Reduction = "mean"


@register
class MultiMarginLoss(ClassScoresLoss[MultiMarginLossParams]):
    name = "multi_margin_loss"
    module = "MultiMarginLoss"
    warning_codes = frozenset({"negative_weight", "single_class", "weighted_mean_divides_by_count"})
    summary = "Multi-class hinge loss: the right class's score against every other class's."
    formula = "loss_n = (1/C)·Σ_{i≠y} w_y·max(0, margin - x_y + x_i)^p"
    params_model = MultiMarginLossParams
    tensor_inputs = ("input", "target", "weight")
    differentiable = ("input",)
    nonnegative = True
    inline = True  # linear in the elements (N x C), no Python loop over them

    def prepare(self, params: MultiMarginLossParams, dtype: str) -> Prepared:
        n, c = class_scores_shape(params.input, params.reduction)
        t = params.target
        if t.ndim > 1 or t.size != n:
            raise InvalidInput.at(
                "target",
                f"shape {shape_str(t.shape)}; expected one class index per sample, shape "
                f"({n}) (or () for a single sample)",
            )
        y = class_indices(t, c)
        arrays: dict[str, Any] = {"input": floating(params.input, dtype), "target": y}
        if params.weight is not None:
            arrays["weight"] = class_weights(params.weight, c, dtype)
        return Prepared(
            arrays=arrays,
            floating=frozenset(arrays) - {"target"},
            facts={"classes": c},
            scale=scale_of(arrays["input"]),
        )

    @ieee_quiet
    def reference(
        self, params: MultiMarginLossParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        y: I64 = prep.arrays["target"]
        n, c = y.size, prep.facts["classes"]
        x = prep.arrays["input"].reshape(n, c)
        labels = y.reshape(n)
        rows = np.arange(n)
        x_y = x[rows, labels]
        w = prep.arrays.get("weight")
        w_y = np.ones(n) if w is None else w[labels]
        others = np.arange(c) != labels[:, None]
        z = params.margin - x_y[:, None] + x
        active = others & (z > 0)
        hinge = np.where(active, z, 0.0) ** params.p
        losses = (w_y * hinge.sum(axis=1) / c).reshape(y.shape)
        breakdown: dict[str, npt.NDArray[Any]] = {
            "target_score": x_y.reshape(y.shape),
            "active_classes": active.sum(axis=1).reshape(y.shape),
        }
        if w is not None:
            breakdown["weight"] = w_y.reshape(y.shape)
        ref = Reference.reduced(losses, params.reduction, n, breakdown)
        if "grad" in include:
            g = grad_scale(params.reduction, n)
            slope = np.where(active, params.p * np.where(active, z, 0.0) ** (params.p - 1), 0.0)
            grad = g * w_y[:, None] * slope / c
            grad[rows, labels] -= grad.sum(axis=1)
            ref.grads["input"] = grad.reshape(prep.arrays["input"].shape)
        return ref

    @ieee_quiet
    def warnings(self, params: MultiMarginLossParams, prep: Prepared) -> list[LossWarning]:
        out: list[LossWarning] = []
        if prep.facts["classes"] == 1:
            out.append(
                LossWarning(
                    "single_class",
                    "with one class there is no other class to compare against: the loss is 0.",
                )
            )
        if params.weight is not None and params.reduction == "mean":
            out.append(
                LossWarning(
                    "weighted_mean_divides_by_count",
                    "multi_margin_loss multiplies each sample's loss by weight[target], but "
                    "'mean' divides by the number of samples, not by Σ weight[target] as "
                    "nll_loss and cross_entropy do.",
                )
            )
        negative = negative_weight_warning(params.weight)
        if negative is not None:
            out.append(negative)
        return out

    def example(self) -> dict[str, Any]:
        return {"input": [[0.1, 0.2, 0.4, 0.8], [1.5, -0.3, 0.2, 0.0]], "target": [3, 0]}

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "example")
        for p in (1, 2):
            for reduction in REDUCTIONS:
                base = {"p": p, "reduction": reduction}
                x = rng.standard_normal((4, 5))
                y = rng.integers(0, 5, 4)
                body = base | {"input": x.tolist(), "target": y.tolist()}
                yield Sample(body, f"batch p={p} {reduction}")
                yield Sample(
                    body | {"weight": rng.uniform(0, 2, 5).tolist()}, f"weighted p={p} {reduction}"
                )
                for margin in (0.0, -0.5, 2.5, 1e3):
                    yield Sample(body | {"margin": margin}, f"margin {margin:g} p={p} {reduction}")
                yield Sample(
                    base | {"input": rng.standard_normal(5).tolist(), "target": 2},
                    f"vector, 0-dim target p={p} {reduction}",
                )
                yield Sample(
                    base | {"input": rng.standard_normal(5).tolist(), "target": [4]},
                    f"vector, target (1) p={p} {reduction}",
                )
                yield Sample(
                    base | {"input": [[0.7, -0.2, 0.3]], "target": 1},
                    f"one row, 0-dim target p={p} {reduction}",
                )
                yield Sample(base | {"input": 0.5, "target": 0}, f"0-dim input p={p} {reduction}")
                yield Sample(
                    base | {"input": [[0.5], [-1.0]], "target": [0, 0], "weight": [2.0]},
                    f"one class p={p} {reduction}",
                )
                yield Sample(
                    base | {"input": [[0, 1, 2, 3], [3, 3, 1, 0]], "target": [2, 0]},
                    f"integer scores on the kink p={p} {reduction}",
                )
                for scale in (1e-4, 1e3):
                    yield Sample(
                        body | {"input": (x * scale).tolist()},
                        f"scale {scale:g} p={p} {reduction}",
                    )

    def error_samples(self) -> Iterator[ErrorSample]:
        ok: dict[str, Any] = {"input": [[0.1, 0.2, 0.7]], "target": [2]}
        yield ErrorSample(ok | {"target": [3]}, "target", "index out of range")
        yield ErrorSample(ok | {"target": [-1]}, "target", "negative index")
        yield ErrorSample(ok | {"target": [1.5]}, "target", "fractional index")
        yield ErrorSample(ok | {"target": [[2]]}, "target", "target of rank 2")
        yield ErrorSample(ok | {"target": [1, 2]}, "target", "one index too many")
        yield ErrorSample(ok | {"input": [[[0.1, 0.2]]]}, "input", "rank 3")
        yield ErrorSample(ok | {"input": [[]], "target": [0]}, "input", "empty class dimension")
        yield ErrorSample(ok | {"input": [], "target": 0}, "input", "empty vector")
        yield ErrorSample(ok | {"weight": [1.0, 2.0]}, "weight", "weight of the wrong length")
        yield ErrorSample(ok | {"weight": 1.0}, "weight", "0-dim weight (torch refuses)")
        yield ErrorSample(ok | {"weight": [[1.0, 2.0, 3.0]]}, "weight", "weight of rank 2")
        yield ErrorSample(ok | {"p": 3}, "p", "p other than 1 or 2")
        yield ErrorSample(ok | {"p": 0}, "p", "p of 0")
        yield ErrorSample(ok | {"margin": "1"}, "margin", "margin as a string")
        yield ErrorSample(ok | {"reduction": "batchmean"}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"size_average": True}, "size_average", "deprecated argument")


def label_lists(t: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """For each entry of each row, whether it is read: it comes before the row's first -1."""
    read: npt.NDArray[np.bool_] = np.cumsum(t < 0, axis=-1) == 0
    return read


class MultilabelMarginLossParams(LossParams):
    input: Tensor = Field(description="Class scores, shape (C) or (N, C).")
    target: Tensor = Field(
        description="Class indices of each sample's labels, the input's shape, read up to the "
        "first -1 (pad with -1)."
    )
    reduction: Reduction = "mean"

    @field_validator("target")
    @classmethod
    def _pairs_fit(cls, target: npt.NDArray[Any], info: ValidationInfo) -> npt.NDArray[Any]:
        """Torch and the reference compare every label with every class: refuse a request whose
        (label, class) pairs outnumber what one tensor may hold, rather than run for minutes."""
        x = info.data.get("input")
        if x is None or x.ndim == 0 or x.shape[-1] == 0 or target.size != x.size:
            return target  # prepare refuses the shapes
        c = x.shape[-1]
        pairs = int(label_lists(target.reshape(-1, c)).sum()) * c
        if pairs > element_limit(info):
            raise ArrayLimitError(
                f"{pairs} (label, class) pairs to compare; the limit is {element_limit(info)}"
            )
        return target


@register
class MultilabelMarginLoss(ClassScoresLoss[MultilabelMarginLossParams]):
    name = "multilabel_margin_loss"
    module = "MultiLabelMarginLoss"
    warning_codes = frozenset(
        {
            "duplicate_labels",
            "labels_after_terminator",
            "target_looks_multi_hot",
        }
    )
    summary = "Multi-label hinge loss: each label's score against every non-label's."
    formula = "loss_n = (1/C)·Σ_{j∈labels} Σ_{i∉labels} max(0, 1 - (x_{y_j} - x_i))"
    params_model = MultilabelMarginLossParams
    tensor_inputs = ("input", "target")
    differentiable = ("input",)
    nonnegative = True
    # Every label is compared with every class (N x C^2 pairs, in NumPy and in torch's kernel)
    # and the warnings loop over rows: inline only up to 1 kB, where C^2 stays under 30,000.
    inline = True
    inline_max_bytes = 1024

    def prepare(self, params: MultilabelMarginLossParams, dtype: str) -> Prepared:
        x, t = params.input, params.target
        _, c = class_scores_shape(x, params.reduction)
        if x.ndim == 2:
            require_shape(t, "target", x.shape, "one row of class indices per sample, -1-padded")
        elif t.ndim > 1 or t.size != c:
            raise InvalidInput.at(
                "target",
                f"shape {shape_str(t.shape)} does not match the input's {shape_str(x.shape)} "
                "(class indices padded with -1)",
            )
        y = integral(t, "target")
        bad = (y < -1) | (y >= c)
        if bad.any():
            raise InvalidInput.at(
                "target",
                f"value {int(y[bad].flat[0])} is neither a class index in [0, {c}) nor the "
                "terminator -1",
            )
        return Prepared(
            arrays={"input": floating(x, dtype), "target": y},
            floating=frozenset({"input"}),
            facts={"classes": c},
            scale=scale_of(x),
        )

    @ieee_quiet
    def reference(
        self, params: MultilabelMarginLossParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        c = prep.facts["classes"]
        x_in = prep.arrays["input"]
        x = x_in.reshape(-1, c)
        n = x.shape[0]
        t = prep.arrays["target"].reshape(n, c)
        read = label_lists(t)
        pair_rows, pair_cols = np.nonzero(read)
        pair_labels = t[pair_rows, pair_cols]
        is_label = np.zeros((n, c), dtype=bool)
        is_label[pair_rows, pair_labels] = True
        totals = np.zeros(n)
        violations = np.zeros(n, dtype=np.int64)
        grad = np.zeros((n, c)) if "grad" in include else None
        g = grad_scale(params.reduction, n) / c
        block = max(1, BLOCK_ELEMENTS // c)
        for start in range(0, pair_rows.size, block):
            rows = pair_rows[start : start + block]
            labels = pair_labels[start : start + block]
            z = 1.0 - x[rows, labels][:, None] + x[rows]
            active = ~is_label[rows] & (z > 0)
            totals += np.bincount(rows, weights=np.where(active, z, 0.0).sum(axis=1), minlength=n)
            violations += np.bincount(rows, weights=active.sum(axis=1), minlength=n).astype(
                np.int64
            )
            if grad is not None:
                np.add.at(grad, rows, g * active)
                np.add.at(grad, (rows, labels), -g * active.sum(axis=1))
        out_shape = () if x_in.ndim <= 1 else (n,)
        losses = (totals / c).reshape(out_shape)
        ref = Reference.reduced(
            losses,
            params.reduction,
            n,
            breakdown={
                "labels": read.sum(axis=1).reshape(out_shape),
                "violations": violations.reshape(out_shape),
            },
        )
        if grad is not None:
            ref.grads["input"] = grad.reshape(x_in.shape)
        return ref

    @ieee_quiet
    def warnings(self, params: MultilabelMarginLossParams, prep: Prepared) -> list[LossWarning]:
        out: list[LossWarning] = []
        c = prep.facts["classes"]
        t = prep.arrays["target"].reshape(-1, c)
        read = label_lists(t)
        no_terminator = ~(t < 0).any(axis=1)
        multi_hot = no_terminator & np.all((t == 0) | (t == 1), axis=1)
        if c > 2 and multi_hot.any():
            out.append(
                LossWarning(
                    "target_looks_multi_hot",
                    "a target row holds only 0s and 1s and no -1: it looks like a 0/1 indicator "
                    "of the labels, but multilabel_margin_loss reads class indices (so it sees "
                    "the labels {0, 1} only). Send the indices of the labels followed by -1, "
                    "e.g. [3, 0, -1, -1] for classes 0 and 3, or use "
                    "multilabel_soft_margin_loss for 0/1 targets.",
                    {"rows": np.flatnonzero(multi_hot)[:10].tolist()},
                )
            )
        ignored = ~read & (t >= 0)
        if ignored.any():
            out.append(
                LossWarning(
                    "labels_after_terminator",
                    "some rows hold class indices after their first -1: the list of labels ends "
                    "at the first -1, so those entries are ignored.",
                    {"rows": np.flatnonzero(ignored.any(axis=1))[:10].tolist()},
                )
            )
        duplicated = [
            i for i in range(t.shape[0]) if len(set(t[i][read[i]].tolist())) < int(read[i].sum())
        ]
        if duplicated:
            out.append(
                LossWarning(
                    "duplicate_labels",
                    "some rows name the same class twice before the -1: torch counts each "
                    "repetition again, so that label's terms weigh double.",
                    {"rows": duplicated[:10]},
                )
            )
        return out

    def example(self) -> dict[str, Any]:
        return {
            "input": [[0.1, 0.2, 0.4, 0.8], [0.9, -0.5, 0.3, 0.0]],
            "target": [[3, 0, -1, 1], [0, 2, -1, -1]],
        }

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "example (entries after -1 ignored)")

        def targets(n: int, c: int) -> list[list[int]]:
            rows = []
            for _ in range(n):
                k = int(rng.integers(0, c + 1))
                labels = rng.permutation(c)[:k].tolist()
                rows.append(labels + [-1] * (c - k))
            return rows

        for reduction in REDUCTIONS:
            base: dict[str, Any] = {"reduction": reduction}
            for scale in (1e-3, 1.0, 1e3):
                x = rng.standard_normal((4, 5)) * scale
                yield Sample(
                    base | {"input": x.tolist(), "target": targets(4, 5)},
                    f"batch scale {scale:g} {reduction}",
                )
            yield Sample(
                base | {"input": rng.standard_normal(6).tolist(), "target": targets(1, 6)[0]},
                f"vector {reduction}",
            )
            yield Sample(base | {"input": 0.3, "target": 0}, f"0-dim, one label {reduction}")
            yield Sample(base | {"input": 0.3, "target": [-1]}, f"0-dim, no label {reduction}")
            yield Sample(base | {"input": [0.3], "target": 0}, f"one class {reduction}")
            x = rng.standard_normal((3, 4))
            yield Sample(
                base | {"input": x.tolist(), "target": [[1, 0, 3, 2], [2, 1, 0, 3], [3, 2, 1, 0]]},
                f"every class a label, no -1 {reduction}",
            )
            yield Sample(
                base | {"input": x.tolist(), "target": [[-1, 0, 1, 2], [-1] * 4, [0, -1, 3, 3]]},
                f"no labels, and labels after -1 {reduction}",
            )
            yield Sample(
                base
                | {"input": x.tolist(), "target": [[1, 1, -1, 0], [2, 0, 2, -1], [3, 3, 3, 3]]},
                f"duplicate labels {reduction}",
            )
            yield Sample(
                base | {"input": x.tolist(), "target": [[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 1, 1]]},
                f"0/1 indicators (a common mistake) {reduction}",
            )
            yield Sample(
                base
                | {"input": [[0, 1, 2, 3], [2, 1, 1, 0]], "target": [[2, -1, 0, 0], [0, 3, -1, 0]]},
                f"integer scores on the kink {reduction}",
            )

    def error_samples(self) -> Iterator[ErrorSample]:
        ok: dict[str, Any] = {"input": [[0.1, 0.2, 0.7]], "target": [[2, 0, -1]]}
        yield ErrorSample(ok | {"target": [[3, -1, -1]]}, "target", "index out of range")
        yield ErrorSample(ok | {"target": [[2, -1, 5]]}, "target", "out of range after -1")
        yield ErrorSample(ok | {"target": [[2, -2, -1]]}, "target", "negative other than -1")
        yield ErrorSample(ok | {"target": [[2.5, -1, -1]]}, "target", "fractional index")
        yield ErrorSample(ok | {"target": [2, 0, -1]}, "target", "a vector for a matrix input")
        yield ErrorSample(ok | {"target": [[2, -1]]}, "target", "row too short")
        yield ErrorSample(
            {"input": [0.1, 0.2, 0.7], "target": [[2, 0, -1]]}, "target", "matrix for a vector"
        )
        yield ErrorSample(ok | {"input": [[[0.1, 0.2, 0.7]]]}, "input", "rank 3")
        yield ErrorSample({"input": [[]], "target": [[]]}, "input", "empty class dimension")
        yield ErrorSample({"input": [], "target": []}, "input", "empty vector")
        yield ErrorSample(ok | {"margin": 1.0}, "margin", "takes no margin")
        yield ErrorSample(ok | {"reduction": "batchmean"}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"reduce": True}, "reduce", "deprecated argument")
