"""The registry of losses: one instance per name, duplicates refused, and the names people use.

Loss modules register themselves with ``@register`` when imported; ``service.losses`` imports
every module of the package, so adding a loss is adding a module.

A loss answers to its functional name (``cross_entropy``) and to the class name of its
``torch.nn`` module (``CrossEntropyLoss``). ``resolve`` is the one lookup every entry point
(``/v1``, ``/v2``, the batch items, the inline path) calls: it maps either name to the loss, and
refuses any other with a ``NotFound`` whose detail suggests the closest known names, so that
``crossentropy``, ``CrossEntropy``, ``cross-entropy`` and ``ce_loss`` all point at
``cross_entropy``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any, TypeVar

from service.errors import NotFound
from service.losses.base import Loss

_REGISTRY: dict[str, Loss[Any]] = {}
_ALIASES: dict[str, str] = {}

L = TypeVar("L", bound=type[Loss[Any]])

#: Short names in common use (other libraries', papers') that no spelling rule recovers.
COMMON_NAMES: dict[str, str] = {
    "ce": "cross_entropy",
    "categoricalcrossentropy": "cross_entropy",
    "sparsecategoricalcrossentropy": "cross_entropy",
    "softmaxcrossentropy": "cross_entropy",
    "bce": "binary_cross_entropy",
    "bcewithlogits": "binary_cross_entropy_with_logits",
    "sigmoidcrossentropy": "binary_cross_entropy_with_logits",
    "kl": "kl_div",
    "kld": "kl_div",
    "kldivergence": "kl_div",
    "mae": "l1_loss",
    "l2": "mse_loss",
    "meansquarederror": "mse_loss",
    "meanabsoluteerror": "l1_loss",
    "hinge": "hinge_embedding_loss",
    "triplet": "triplet_margin_loss",
    "cosine": "cosine_embedding_loss",
    "poisson": "poisson_nll_loss",
    "gaussian": "gaussian_nll_loss",
}

_PREFIXES = ("torch.nn.functional.", "torch.nn.", "nn.functional.", "functional.", "nn.", "f.")


class DuplicateLoss(RuntimeError):
    pass


class UnknownLoss(NotFound):
    """No loss answers to the name; ``suggestions`` are the closest known functional names."""

    def __init__(self, detail: str, suggestions: list[str]) -> None:
        super().__init__(detail)
        self.suggestions = suggestions


def register(cls: L) -> L:
    """Class decorator: instantiate and register ``cls`` under ``cls.name``."""
    add(cls())
    return cls


def add(loss: Loss[Any]) -> None:
    if loss.name in _REGISTRY or loss.name in _ALIASES:
        raise DuplicateLoss(f"a loss named {loss.name!r} is already registered")
    module = getattr(loss, "module", None)
    if module is not None and (module in _REGISTRY or module in _ALIASES):
        raise DuplicateLoss(f"a loss named {module!r} is already registered")
    loss.probe()
    _REGISTRY[loss.name] = loss
    if module is not None:
        _ALIASES[module] = loss.name


_complete = False


def _loaded() -> dict[str, Loss[Any]]:
    """The registry after every loss module has been imported (lookups never see half of it);
    once it is, a lookup is a dictionary's (the small-request front makes one per request)."""
    global _complete
    if not _complete:
        from service import losses

        losses.load()
        _complete = losses.is_loaded()
    return _REGISTRY


def get(name: str) -> Loss[Any] | None:
    """The loss answering to ``name`` (its functional or its module name), or None."""
    registry = _loaded()
    loss = registry.get(name)
    if loss is None and name in _ALIASES:
        loss = registry[_ALIASES[name]]
    return loss


def resolve(
    name: str, *, what: str = "loss", listed: str = "GET /v1/losses lists them"
) -> Loss[Any]:
    """The loss answering to ``name``; an ``UnknownLoss`` (404) suggesting the closest names
    when there is none. ``what`` and ``listed`` word the detail for the caller's vocabulary
    (``/v2`` calls losses models)."""
    loss = get(name)
    if loss is not None:
        return loss
    close = suggestions(name)
    hint = ""
    if close:
        hint = " did you mean " + " or ".join(repr(n) for n in close) + "?"
    raise UnknownLoss(f"no {what} named {name!r};{hint} {listed}", close)


def require(name: str) -> Loss[Any]:
    """The loss named ``name``; a KeyError when there is none (for code that knows it exists)."""
    return _loaded()[name]


def names() -> list[str]:
    return sorted(_loaded())


def aliases() -> dict[str, str]:
    """Each ``torch.nn`` module name with the functional name it stands for."""
    _loaded()
    return dict(sorted(_ALIASES.items()))


def all_losses() -> Iterator[Loss[Any]]:
    registry = _loaded()
    for name in sorted(registry):
        yield registry[name]


def normalise(name: str) -> str:
    """A name as the suggestions compare it: no ``torch.nn.`` prefix, lower case, without
    underscores, hyphens, spaces or dots, and without a trailing ``loss``."""
    text = name.strip().lower()
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    text = re.sub(r"[\s_.\-]+", "", text)
    while text.endswith("loss") and len(text) > len("loss"):
        text = text[: -len("loss")]
    return text


def suggestions(name: str, limit: int = 3) -> list[str]:
    """The functional names closest to ``name``: those it spells after ``normalise`` (or one
    of ``COMMON_NAMES``), then difflib's closest matches among every known spelling."""
    spellings: dict[str, str] = {}
    for functional in names():
        spellings.setdefault(normalise(functional), functional)
    for module, functional in _ALIASES.items():
        spellings.setdefault(normalise(module), functional)
    for short, functional in COMMON_NAMES.items():
        spellings.setdefault(short, functional)
    key = normalise(name)
    out: list[str] = []
    if key in spellings:
        out.append(spellings[key])
    for match in difflib.get_close_matches(key, list(spellings), n=limit + 2, cutoff=0.6):
        if spellings[match] not in out:
            out.append(spellings[match])
    return out[:limit]
