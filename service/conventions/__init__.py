"""Every library's convention for the same request, and the mistakes that change a number.

``POST /v1/conventions/{name}`` answers with rows: the request read as torch, the textbook,
scikit-learn, Keras, optax, TensorFlow, ... read it, each computed here in NumPy float64 from
that library's own algorithm (no library is imported at run time; the tests import them).
``POST /v1/diagnose/{name}`` turns it around: given the number a user got, it lists the rows
and the known mistakes that produce it.

The package is records all the way down (``records``): each family module (``cross_entropy``,
``binary``, ``kl_div``, ...) declares a ``Family`` with its rows and mistakes, ``shared`` holds
mistakes that span families, and ``registry`` assembles them per loss by importing every family
module. ``compare`` and ``diagnose`` compute the answers; nothing here knows about HTTP.
"""

from __future__ import annotations

from service.conventions.compare import catalogue, conventions, conventions_json
from service.conventions.diagnose import diagnose, diagnose_json
from service.conventions.registry import has, names

__all__ = [
    "catalogue",
    "conventions",
    "conventions_json",
    "diagnose",
    "diagnose_json",
    "has",
    "names",
]
