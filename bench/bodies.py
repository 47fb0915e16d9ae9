"""The request bodies the cases send."""

from __future__ import annotations

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


def burst_json_body(rows: int = 256, classes: int = 4000) -> bytes:
    """One request of the burst case: float32 logits as JSON, reference on (the default)."""
    logits, target = large_arrays(rows, classes)
    body = {"input": logits, "target": target}
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
