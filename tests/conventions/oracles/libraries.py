"""The real libraries, imported the way their users import them, as the conventions' oracles.

Keras 3 runs on the torch backend (``KERAS_BACKEND`` must be set before keras is imported) and
JAX on the CPU with 64-bit floats, so that both compute in float64 like the rows. TensorFlow is
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
import sklearn.metrics

jax.config.update("jax_enable_x64", True)  # type: ignore[no-untyped-call]

assert keras.backend.backend() == "torch", "KERAS_BACKEND was set after keras was imported"

__all__ = ["jax", "jnp", "keras", "optax", "sklearn"]
