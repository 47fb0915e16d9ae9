"""The request bodies the cases send."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

CLASSES = 32000
ROWS = 64


def small_body() -> bytes:
    """The article's 3x3 ``cross_entropy`` body (reference and breakdown on by default)."""
    from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET

    return orjson.dumps({"input": ARTICLE_INPUT, "target": ARTICLE_TARGET})


def large_arrays(
    rows: int = ROWS, classes: int = CLASSES
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    rng = np.random.default_rng(20261127)
    logits = (rng.standard_normal((rows, classes)) * 3).astype(np.float32)
    return logits, rng.integers(0, classes, rows)


def large_json_body(logits: npt.NDArray[np.float32], target: npt.NDArray[np.int64]) -> bytes:
    """The JSON a client holding float32 logits sends (orjson writes float32's shortest form)."""
    body = {"input": logits, "target": target, "reference": False}
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def large_binary_body(
    logits: npt.NDArray[np.float32], target: npt.NDArray[np.int64], reference: bool = True
) -> tuple[bytes, dict[str, str]]:
    """An Open Inference Protocol request with both inputs as binary tensors."""
    x = np.ascontiguousarray(logits, dtype="<f4").tobytes()
    y = np.ascontiguousarray(target, dtype="<i8").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(logits.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(x)},
                },
                {
                    "name": "target",
                    "shape": list(target.shape),
                    "datatype": "INT64",
                    "parameters": {"binary_data_size": len(y)},
                },
            ],
            "parameters": {"reference": reference},
        }
    )
    headers = {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }
    return header + x + y, headers


def v2_json_body(example: dict[str, Any], tensor_inputs: tuple[str, ...]) -> bytes:
    """A loss's ``/v1`` body as an Open Inference Protocol JSON request: each tensor an input
    (FP32, or INT64 when all its values are integers), every other field a parameter. FP32
    rather than FP64 because the ``/v1`` body computes in float32 too (``dtype`` follows the
    first floating input's datatype)."""
    inputs = []
    for name in tensor_inputs:
        if name not in example or example[name] is None:
            continue
        arr = np.asarray(example[name])
        datatype = "INT64" if arr.dtype.kind in "iub" else "FP32"
        inputs.append(
            {
                "name": name,
                "shape": list(arr.shape),
                "datatype": datatype,
                "data": arr.ravel().tolist(),
            }
        )
    parameters = {k: v for k, v in example.items() if k not in tensor_inputs}
    return orjson.dumps({"inputs": inputs, "parameters": parameters})


def burst_json_body(rows: int = 256, classes: int = 4000) -> bytes:
    """One request of the burst case: float32 logits as JSON, reference on (the default)."""
    logits, target = large_arrays(rows, classes)
    body = {"input": logits, "target": target}
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
