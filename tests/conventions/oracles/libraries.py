"""The real libraries, imported the way their users import them, as the conventions' oracles.

Keras 3 runs on the torch backend (``KERAS_BACKEND`` must be set before keras is imported) and
JAX on the CPU with 64-bit floats, so that both compute in float64 like the rows. SciPy and
torchmetrics are imported as they are; transformers' ``ForCausalLMLoss`` is its causal
language model loss (transformers does not depend on torch, so it installs beside the pinned
torch without pulling another). TensorFlow is
not installed (it is larger than the rest together): its rows are checked against the formulas
its documentation gives, written here with torch's functions.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import keras
import optax
import scipy.special
import sklearn.metrics
import torchmetrics.functional
from transformers.loss.loss_utils import ForCausalLMLoss

jax.config.update("jax_enable_x64", True)  # type: ignore[no-untyped-call]

assert keras.backend.backend() == "torch", "KERAS_BACKEND was set after keras was imported"

__all__ = [
    "ForCausalLMLoss",
    "jax",
    "jnp",
    "keras",
    "optax",
    "scipy",
    "sklearn",
    "torchmetrics",
]
