"""What a loss module provides, and the request fields every loss shares.

A loss is one subclass of ``Loss`` in its own module: a Pydantic model of its keyword arguments
(named as in ``torch.nn.functional``), the checks torch would make (and those it forgets),
the torch call, a NumPy float64 reference written from the formula, its warnings, and sample
and error inputs that the generated tests run. The data plane drives all of them; nothing here
knows about HTTP.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Generic, TypeVar

import numpy as np
import numpy.typing as npt
import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from service.arrays import DEFAULT_LIMITS, ArrayLimits, extremes, to_array
from service.dtypes import DTypeName, round_to_dtype
from service.losses.reduction import Reduction as Reduction  # re-exported for every loss
from service.losses.reduction import mean_denominator, reduce
from service.schema import TENSOR_SCHEMA

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

SERVICE_FIELDS: frozenset[str] = frozenset({"dtype", "reference", "include"})


def _tensor(value: Any, info: ValidationInfo) -> npt.NDArray[Any]:
    context = info.context or {}
    limits: ArrayLimits = context.get("limits", DEFAULT_LIMITS)
    return to_array(
        value,
        limits=limits,
        may_hold_bools=context.get("may_hold_bools", True),
        parsed=context.get("parsed", False),
    )


Tensor = Annotated[
    npt.NDArray[Any], PlainValidator(_tensor), WithJsonSchema(TENSOR_SCHEMA, mode="validation")
]
"""A tensor field: validated into an int64 (all integers) or float64 array (float16 and float32
when an ndarray of that dtype is passed in-process, as the binary protocol does)."""


class LossParams(BaseModel):
    """Service fields shared by every loss; subclasses add the torch keyword arguments."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, arbitrary_types_allowed=True
    )

    dtype: DTypeName | None = Field(
        default=None,
        description="Floating dtype torch computes in; the server's default when absent.",
    )
    reference: bool | None = Field(
        default=None,
        description="Compute the NumPy float64 reference and the breakdown; the server's "
        "default when absent.",
    )
    include: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Opt-in heavy extras: 'grad' (gradients of the returned value with respect "
        "to each differentiable input; for reduction 'none', of their sum), 'precision' "
        "(torch's value in float64, float32, float16 and bfloat16 on the device, with its "
        "relative error split into input rounding and arithmetic) and the loss's own extras "
        "listed by GET /v1/losses/{name}.",
    )

    # A factory, not a default: pydantic deep-copies a private default for every instance.
    _limits: ArrayLimits = PrivateAttr(default_factory=lambda: DEFAULT_LIMITS)

    @model_validator(mode="after")
    def _keep_limits(self, info: ValidationInfo) -> LossParams:
        """Keep the configured limits (the validation context's), for checks made after
        validation: a broadcast's result, a lattice, is capped by the same settings."""
        self._limits = (info.context or {}).get("limits", DEFAULT_LIMITS)
        return self

    @property
    def limits(self) -> ArrayLimits:
        """The tensor limits this request was validated under (``LOSS_SERVICE_MAX_*``)."""
        return self._limits

    def torch_kwargs(self, tensor_names: tuple[str, ...]) -> dict[str, Any]:
        """The non-tensor keyword arguments, exactly as torch takes them."""
        return {k: getattr(self, k) for k in _option_names(type(self), tensor_names)}


@functools.cache
def _option_names(model: type[LossParams], tensor_names: tuple[str, ...]) -> tuple[str, ...]:
    """The fields of ``model`` that are torch options (computed once per loss)."""
    return tuple(k for k in model.model_fields if k not in SERVICE_FIELDS and k not in tensor_names)


@dataclass(frozen=True)
class Tolerance:
    """``|torch - reference| <= atol * scale + rtol * |reference|`` counts as agreement."""

    rtol: float
    atol: float


#: How closely torch in each dtype should meet a float64 reference on the same (rounded) inputs.
TOLERANCES: Mapping[str, Tolerance] = {
    "float64": Tolerance(rtol=1e-9, atol=1e-11),
    "float32": Tolerance(rtol=2e-5, atol=2e-6),
    "float16": Tolerance(rtol=1e-2, atol=2e-3),
    "bfloat16": Tolerance(rtol=4e-2, atol=2e-2),
}


@dataclass
class Prepared:
    """The request's tensors after validation, in the layout torch and the reference take.

    Floating arrays are float64 holding values already rounded to the compute dtype, so that
    torch and the reference see the same numbers; the others are int64."""

    arrays: dict[str, npt.NDArray[Any]]
    floating: frozenset[str]
    facts: dict[str, Any] = field(default_factory=dict)
    scale: float = 1.0
    deferred: dict[str, str] = field(default_factory=dict)
    """Floating arrays left as sent, by name, with the dtype they are to be rounded to. Torch
    rounds them itself on conversion, exactly as ``round_to_dtype`` does for float32 and
    float64 (``DEFERRABLE``), so the rounded float64 copy is made only if the reference asks
    for it through ``array``: with the reference off, a large input is never copied."""

    def array(self, name: str) -> npt.NDArray[Any]:
        """``arrays[name]``, rounded to the compute dtype first if that was deferred."""
        dtype = self.deferred.pop(name, None)
        if dtype is not None:
            self.arrays[name] = round_to_dtype(self.arrays[name], dtype)
        return self.arrays[name]

    def finite(self, name: str) -> bool:
        """Whether ``array(name)`` holds finite numbers only, without rounding a deferred array:
        rounding is monotonic, so its two extremes, rounded, tell."""
        arr = self.arrays[name]
        dtype = self.deferred.get(name)
        if not arr.size:
            return True
        if dtype is None:
            return bool(np.isfinite(arr).all())
        return bool(np.isfinite(round_to_dtype(np.array(extremes(arr)), dtype)).all())


#: Dtypes whose rounding torch's conversion from float64 reproduces exactly (one correctly
#: rounded step). float16 and bfloat16 may round twice in torch (through float32), so arrays
#: bound for them are rounded by ``round_to_dtype`` up front.
DEFERRABLE: frozenset[str] = frozenset({"float32", "float64"})


@dataclass
class Reference:
    """What the NumPy reference found."""

    value: F64
    losses: F64
    denominator: float | None = None
    breakdown: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    extras: dict[str, F64] = field(default_factory=dict)
    grads: dict[str, F64] = field(default_factory=dict)

    @classmethod
    def reduced(
        cls,
        losses: F64,
        reduction: str,
        denominator: float | None = None,
        breakdown: dict[str, npt.NDArray[Any]] | None = None,
    ) -> Reference:
        """The reference for element-wise ``losses``: their value under ``reduction`` from the
        one shared ``reduce``, and the denominator 'mean' divides by (the number of elements
        unless the loss gives its own; see ``service.losses.reduction``)."""
        d = mean_denominator(losses, denominator)
        return cls(reduce(losses, reduction, d), losses, d, breakdown or {})


@dataclass(frozen=True)
class SmallRequest:
    """What a loss's own small path (``Loss.small_answer``) needs from the data plane."""

    default_dtype: str
    default_reference: bool
    device: str
    limits: ArrayLimits
    guard: Callable[[Loss[Any], str, Callable[[], Any]], Any]
    """Runs the torch call (the data plane's ``guarded_torch``, which sorts torch's failures
    into device and input errors)."""
    clock: Any = None
    """A ``service.stages.StageClock`` when the stages are being timed (the benchmark)."""


@dataclass(frozen=True)
class LossWarning:
    """Something in the request that is legal but probably not what the user meant."""

    code: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """A request body (torch keyword arguments) that the generated tests compute both ways."""

    body: dict[str, Any]
    note: str = ""


@dataclass(frozen=True)
class ErrorSample:
    """A request body the service must refuse with ``status``, naming ``field``."""

    body: dict[str, Any]
    field: str
    note: str = ""
    status: int = 422


@dataclass(frozen=True)
class TorchFeature:
    """What a loss needs of torch beyond the service's floor: attributes of the ``torch``
    module (``nn.functional.linear_cross_entropy``), and the first release that has them.

    Whether the installed torch has them is asked of torch itself (``present``), never read
    from its version string: a build may backport a feature, or lack one its number promises.
    ``since`` only words the answer for a person."""

    attributes: tuple[str, ...]
    since: str

    def present(self) -> bool:
        for dotted in self.attributes:
            node: Any = torch
            for part in dotted.split("."):
                node = getattr(node, part, None)
                if node is None:
                    return False
        return True

    def describe(self) -> str:
        return ", ".join(f"torch.{a}" for a in self.attributes)


P = TypeVar("P", bound=LossParams)


class Loss(ABC, Generic[P]):
    """One loss of ``torch.nn.functional``; subclasses live one per module."""

    name: ClassVar[str]
    module: ClassVar[str]
    """The ``torch.nn`` module class computing the same loss (``CrossEntropyLoss``): an alias
    the routes accept for ``name``."""
    warning_codes: ClassVar[frozenset[str]] = frozenset()
    """Every warning code ``warnings`` can give (the data plane's own, ``GENERAL_WARNINGS``,
    come on top); a test checks it against what the samples give and against the README."""
    summary: ClassVar[str]
    formula: ClassVar[str]
    params_model: ClassVar[type[LossParams]]
    tensor_inputs: ClassVar[tuple[str, ...]]
    differentiable: ClassVar[tuple[str, ...]] = ("input",)
    extras: ClassVar[tuple[str, ...]] = ()
    tolerances: ClassVar[Mapping[str, Tolerance]] = {}
    nonnegative: ClassVar[bool] = False
    """True when every sample's element-wise losses are >= 0 (a property test checks it)."""
    inline: ClassVar[bool] = False
    """True when a small body is provably cheap to compute: torch and the reference take time
    that grows with the body, with no Python loop over its elements, so that
    ``service.api.inline`` may compute a body of up to ``LOSS_SERVICE_INLINE_MAX_BYTES`` on the
    event loop. Off by default; a loss with a per-frame or per-row loop (CTC's lattice) must
    keep it off, or a 4 kB body could hold the loop for tens of milliseconds."""
    inline_max_bytes: ClassVar[int | None] = None
    """A lower cap on the inline body, in bytes, for a loss whose cost grows faster than its
    body (``multilabel_margin_loss`` compares every label with every class: quadratic in the
    classes); None: the service's ``inline_max_bytes``."""

    requires: ClassVar[TorchFeature | None] = None
    """What of torch this loss needs beyond the service's floor (``None``: nothing)."""
    available: bool = True
    """Whether the installed torch has ``requires``: probed once, when the loss is registered
    (``probe``). Where it has not, the catalogue lists the loss with ``available: false`` and
    ``torch_required``, and every route computing it answers ``NotImplementedByTorch`` (501)."""

    def probe(self) -> None:
        """Ask torch whether it has what this loss needs (once, at registration)."""
        self.available = self.requires is None or self.requires.present()

    def tolerance(self, dtype: str) -> Tolerance:
        return self.tolerances.get(dtype, TOLERANCES[dtype])

    def small_answer(self, body: Any, request: SmallRequest) -> dict[str, Any] | None:
        """This loss's own answer to a small body, computed without the general path's
        machinery, or None (the default) for the general path to compute it.

        A loss may give one for the bodies it can vouch for (``cross_entropy``: a few rows of
        logits, ``service.losses.cross_entropy_small``): the data plane asks it first, on the
        CPU, and it must answer exactly the general path's response, byte for byte once
        serialised, or None for anything else (every refusal then comes from the general path,
        with its message)."""
        return None

    @abstractmethod
    def prepare(self, params: P, dtype: str) -> Prepared:
        """Check what torch checks (and what it forgets), raising ``InvalidInput``."""

    def torch_options(self, params: P) -> dict[str, Any]:
        """The non-tensor keyword arguments as torch takes them. JSON carries no callable and no
        dataclass: a loss taking one (a distance function, an options record) builds it here."""
        return params.torch_kwargs(self.tensor_inputs)

    def torch_loss(self, params: P, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Call ``torch.nn.functional.<name>`` with the request's keyword arguments."""
        fn = getattr(torch.nn.functional, self.name)
        return fn(**tensors, **self.torch_options(params))  # type: ignore[no-any-return]

    @abstractmethod
    def reference(self, params: P, prep: Prepared, include: frozenset[str]) -> Reference:
        """The loss from its formula in float64, with the breakdown and what ``include`` asks."""

    def warnings(self, params: P, prep: Prepared) -> list[LossWarning]:
        return []

    @abstractmethod
    def example(self) -> dict[str, Any]:
        """A request body that works when posted; shown in the docs."""

    @abstractmethod
    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        """Bodies covering the loss's shapes and options, for the reference-vs-torch tests."""

    @abstractmethod
    def error_samples(self) -> Iterator[ErrorSample]:
        """Bodies the service must refuse, each naming the offending field."""
