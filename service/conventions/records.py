"""The records conventions and diagnoses are made of, and the request they are computed on.

A *family module* (``cross_entropy.py``, ``kl_div.py``, ...) declares one ``Family``: the losses
it covers, how it reads a request into its own view (its *case*), the reductions its rows
compare, and, with the family's decorators, its records:

- ``@FAMILY.convention(id, library, call, reads=..., fix=...)`` on a function ``(case, row)``
  that fills the ``Row`` in (``value``, ``per_sample``, the ``why`` clauses, a ``call`` in the
  request's own names) or refuses it (``row.refuse(reason)``): one library's reading;
- ``@FAMILY.mistake(id, explanation=..., fix=..., applies=...)`` on a function ``(case)``
  returning the number that mistake produces (``None`` where it produces none): a slip that
  turns torch's number into the user's.

Records keep their declaration order; a record may narrow its family's losses (``losses=``) and
say when it applies to a request (``applies=``). Mistakes that span families are declared once
in ``shared.py`` on the plain ``Request`` and taken by a family with ``shared=(...)``. The
package assembles every family module by importing it (``registry.load``): adding a loss's
conventions is adding a module, adding a row is one decorated function in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from service.conventions.base import LOGITS, Row
from service.errors import ServiceError
from service.losses.base import F64, Loss, LossParams, Prepared, Reference

C = TypeVar("C")
K = TypeVar("K")

Text = str | Callable[[C], str]
"""A sentence, or a function of the case that words it with the request's numbers."""

ConventionFn = Callable[[C, Row], None]
MistakeFn = Callable[[C], float | None]
Applies = Callable[[C], bool]

Kind = Literal["convention", "mistake"]


@dataclass
class Request:
    """One validated request, prepared in float64 on the numbers as sent, with the service's
    float64 reference: torch's convention, which every row and mistake is measured against."""

    loss: Loss[Any]
    params: LossParams
    prep: Prepared
    reference: Reference
    _cases: dict[int, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.loss.name

    @property
    def reduction(self) -> str:
        return str(getattr(self.params, "reduction", "mean"))

    @property
    def torch_value(self) -> float:
        """Torch's reduced value for the request, from the float64 reference."""
        return float(self.reference.value)

    @property
    def losses(self) -> F64:
        """Torch's per-element losses (weighted, 0 where ignored), shaped like the batch."""
        return np.asarray(self.reference.losses, dtype=np.float64)

    def array(self, name: str) -> Any:
        """The prepared array ``name`` (float64 for floating inputs), or None when absent."""
        if name not in self.prep.arrays:
            return None
        return self.prep.array(name)

    def case(self, builder: Callable[[Request], K]) -> K:
        """``builder(self)``, built once per request (families share their case)."""
        key = id(builder)
        if key not in self._cases:
            self._cases[key] = builder(self)
        out: K = self._cases[key]
        return out

    def rerun(self, **update: Any) -> Reference | None:
        """The service's float64 reference for this request with some arguments replaced
        (arrays or options, under their torch names); None where the loss refuses them. A
        mistake that is "torch on other numbers" is one call of this."""
        params = self.params.model_copy(update=update)
        try:
            prep = self.loss.prepare(params, "float64")
            with np.errstate(all="ignore"):
                return self.loss.reference(params, prep, frozenset())
        except ServiceError:
            return None

    def value_with(self, **update: Any) -> float | None:
        """``rerun``'s reduced value (a number), or None."""
        ref = self.rerun(**update)
        return None if ref is None else float(ref.value)


def identity(request: Request) -> Request:
    """The case of a family that reads the request as it is."""
    return request


def always(case: Any) -> bool:
    return True


def word(text: Text[C], case: C) -> str:
    return text if isinstance(text, str) else text(case)


@dataclass(frozen=True)
class Convention(Generic[C]):
    """One library's reading of the request: a row of ``POST /v1/conventions/{name}``."""

    id: str
    library: str
    call: str
    """The call in its usual form; ``compute`` may word it in the request's own names."""
    reads_input_as: str
    compute: ConventionFn[C]
    fix: Text[C]
    """What to change, in that library, to get torch's number (a diagnosis's ``fix``)."""
    losses: frozenset[str] | None = None
    """The losses of its family it applies to (None: all of them)."""
    applies: Applies[C] = always
    """Whether the row exists for this request (``hf_causal_lm``: sequence requests only)."""
    kind: Kind = "convention"

    def row(self, case: C) -> Row:
        row = Row(self.id, self.library, self.call, reads_input_as=self.reads_input_as)
        self.compute(case, row)
        return row


@dataclass(frozen=True)
class Mistake(Generic[C]):
    """A slip that turns torch's number into another: a candidate of ``POST /v1/diagnose``."""

    id: str
    compute: MistakeFn[C]
    explanation: Text[C]
    """One sentence: what produces the number."""
    fix: Text[C]
    """One sentence: what to change to get torch's number."""
    losses: frozenset[str] | None = None
    applies: Applies[C] = always
    kind: Kind = "mistake"

    def only(self, *losses: str) -> Mistake[C]:
        """This mistake for some losses of the family that takes it (a shared mistake that
        applies to part of a family: ``shared.weights_not_in_denominator.only("mse_loss")``)."""
        return replace(self, losses=frozenset(losses))


class Family(Generic[C]):
    """The conventions and mistakes of one or more losses that read requests alike.

    Constructing one registers it (``registry.add``); its decorators add records in order."""

    def __init__(
        self,
        *losses: str,
        case: Callable[[Request], C],
        reductions: Sequence[str] = ("mean",),
        shared: Sequence[Mistake[Request]] = (),
    ) -> None:
        from service.conventions import registry

        self.losses: tuple[str, ...] = losses
        self.case = case
        self.reductions: tuple[str, ...] = tuple(reductions)
        """The reductions the rows compare (anything else is a 422 naming ``reduction``)."""
        self.shared: tuple[Mistake[Request], ...] = tuple(shared)
        self.conventions: list[Convention[C]] = []
        self.mistakes: list[Mistake[C]] = []
        registry.add(self)

    def convention(
        self,
        id: str,
        library: str,
        call: str,
        *,
        reads: str = LOGITS,
        fix: Text[C],
        losses: Iterable[str] | None = None,
        applies: Applies[C] = always,
    ) -> Callable[[ConventionFn[C]], ConventionFn[C]]:
        def add(fn: ConventionFn[C]) -> ConventionFn[C]:
            self.conventions.append(
                Convention(id, library, call, reads, fn, fix, self._narrow(losses), applies)
            )
            return fn

        return add

    def mistake(
        self,
        id: str,
        *,
        explanation: Text[C],
        fix: Text[C],
        losses: Iterable[str] | None = None,
        applies: Applies[C] = always,
    ) -> Callable[[MistakeFn[C]], MistakeFn[C]]:
        def add(fn: MistakeFn[C]) -> MistakeFn[C]:
            self.mistakes.append(Mistake(id, fn, explanation, fix, self._narrow(losses), applies))
            return fn

        return add

    def _narrow(self, losses: Iterable[str] | None) -> frozenset[str] | None:
        if losses is None:
            return None
        out = frozenset(losses)
        unknown = out - set(self.losses)
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not losses of this family {self.losses}")
        return out


def shared_mistake(
    id: str,
    *,
    explanation: Text[Request],
    fix: Text[Request],
    applies: Applies[Request] = always,
) -> Callable[[MistakeFn[Request]], Mistake[Request]]:
    """Declare a mistake on the plain ``Request``, for families to take with ``shared=``."""

    def make(fn: MistakeFn[Request]) -> Mistake[Request]:
        return Mistake(id, fn, explanation, fix, None, applies)

    return make
