"""The distances of the triplet losses, with their gradients, in NumPy float64.

``pairwise_distance`` is torch's: the p-norm over the last dimension of ``x1 - x2 + eps`` (eps
added to every coordinate of the difference, so d(x, x) = eps·D^(1/p), not 0). The cosine
distance is ``1 - cosine_similarity``, torch's similarity normalising each operand by its own
norm clamped at eps:

    s = Σ_i (x1_i / max(‖x1‖, eps)) · (x2_i / max(‖x2‖, eps))

Torch clamps the norms outside autograd, so its gradient is that of the formula with the clamped
value but the unclamped norm's derivative (and 0 for the norm of a zero vector):

    ∂s/∂x1 = x2 / (m1·m2) - s · x1 / (‖x1‖·m1),   m = max(‖x‖, eps)
"""

from __future__ import annotations

import numpy as np

from service.dtypes import QUIET
from service.losses.base import F64
from service.losses.common import quietly


def pnorm(u: F64, p: float) -> F64:
    """(Σ |u_i|^p)^(1/p) over the last axis, scaled by the largest |u_i| so that it neither
    overflows nor underflows; for p = 0 the number of non-zero entries."""
    if p == 0:
        counted: F64 = np.count_nonzero(u, axis=-1).astype(np.float64)
        return counted
    mag = np.abs(u)
    if u.shape[-1] == 0:
        return np.zeros(u.shape[:-1])
    peak = mag.max(axis=-1, keepdims=True)
    unit = np.where(peak > 0, peak, 1.0)
    if QUIET.get():  # the data plane's computation: quiet already
        return _scaled_norm(mag, unit, peak, p)
    with quietly(divide="ignore"):
        return _scaled_norm(mag, unit, peak, p)


def _scaled_norm(mag: F64, unit: F64, peak: F64, p: float) -> F64:
    inner = ((mag / unit) ** p).sum(axis=-1)
    norm: F64 = peak[..., 0] * inner ** (1.0 / p)
    return norm


def pnorm_grad(u: F64, d: F64, p: float) -> F64:
    """∂d/∂u = sign(u)·(|u| / d)^(p-1), 0 where d = 0 or u = 0, and 0 for p = 0."""
    if p == 0 or u.size == 0:
        return np.zeros(u.shape)
    dd = d[..., None]
    safe = np.where(dd > 0, dd, 1.0)
    mag = np.abs(u)
    with quietly(divide="ignore", invalid="ignore"):
        ratio = np.where(mag > 0, mag / safe, 1.0) ** (p - 1)
    grad: F64 = np.where((dd > 0) & (mag > 0), np.sign(u) * ratio, 0.0)
    return grad


def _norm(x: F64) -> F64:
    """The Euclidean norm over the last axis, without overflow for large entries."""
    return pnorm(x, 2.0)


def cosine_similarity(x1: F64, x2: F64, eps: float) -> F64:
    """torch's ``cosine_similarity`` over the last axis of two arrays of the same shape."""
    m1 = np.maximum(_norm(x1), eps)[..., None]
    m2 = np.maximum(_norm(x2), eps)[..., None]
    sim: F64 = ((x1 / m1) * (x2 / m2)).sum(axis=-1)
    return sim


def cosine_similarity_grads(x1: F64, x2: F64, s: F64, eps: float) -> tuple[F64, F64]:
    """∂s/∂x1 and ∂s/∂x2 for ``s = cosine_similarity(x1, x2, eps)``, as torch's autograd gives
    them (see the module docstring)."""
    n1, n2 = _norm(x1)[..., None], _norm(x2)[..., None]
    m1, m2 = np.maximum(n1, eps), np.maximum(n2, eps)
    sv = s[..., None]
    with quietly(divide="ignore", invalid="ignore"):
        g1: F64 = x2 / (m1 * m2) - np.where(n1 > 0, sv * x1 / (n1 * m1), 0.0)
        g2: F64 = x1 / (m1 * m2) - np.where(n2 > 0, sv * x2 / (n2 * m2), 0.0)
    return g1, g2
