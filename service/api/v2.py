"""``/v2``: the Open Inference Protocol (KServe v2) over REST, with binary tensor data.

Every loss is a model named after it. Routes copy what HTTP carries (path, body bytes, the
``Inference-Header-Content-Length`` and ``Content-Encoding`` headers) and hand it to
``service.protocol``, in a worker thread. The body is read as bytes and never parsed by FastAPI:
tritonclient sends no ``Content-Type``, and FastAPI does not parse a body without one.
Errors are ``{"error": "..."}`` (``service.api.problems`` renders them so on ``/v2``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from service import __version__, losses
from service.api.body import read_body_buffer
from service.api.openapi import json_body
from service.api.state import ServiceState, get_state
from service.dataplane import require_available
from service.errors import NotFound, Unavailable
from service.jsonenc import dumps
from service.losses import registry
from service.losses.base import Loss
from service.protocol.infer import infer
from service.protocol.models import VERSION, model_metadata
from service.protocol.request import HEADER_LENGTH, decompress

SERVER_NAME = "loss-service"
EXTENSIONS = ["binary_tensor_data"]


class InferenceErrorResponse(BaseModel):
    """The protocol's error body."""

    error: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": InferenceErrorResponse, "description": text}
    for code, text in {
        400: "The request is malformed or its tensors cannot be computed.",
        404: "No such model (loss) or version.",
        413: "The body is larger than the configured limit.",
        501: "The installed torch lacks what this loss needs; the error names the installed "
        "and the needed torch versions.",
        503: "The service is not ready.",
    }.items()
}


class InferenceRequestInput(BaseModel):
    name: str = Field(description="A torch argument's name: input, target, weight, ...")
    shape: list[int]
    datatype: str = Field(description="FP16, BF16, FP32, FP64, INT8 ... INT64, UINT8, BOOL.")
    parameters: dict[str, Any] | None = Field(
        default=None, description="binary_data_size when the data follows the JSON as bytes."
    )
    data: list[Any] | None = Field(default=None, description="Flat or nested, row-major.")


class InferenceRequestOutput(BaseModel):
    name: str = Field(description="loss, per_sample, reference, grad_<input> or an extra.")
    parameters: dict[str, Any] | None = Field(
        default=None, description="binary_data: true to have this output sent as bytes."
    )


class InferenceRequest(BaseModel):
    """The protocol's inference request (documented here; ``service.protocol.request``
    decodes and checks it)."""

    id: str | None = None
    parameters: dict[str, Any] | None = Field(
        default=None,
        description="The loss's options (reduction, ignore_index, ...), dtype and reference.",
    )
    inputs: list[InferenceRequestInput]
    outputs: list[InferenceRequestOutput] | None = None


INFER_EXAMPLE = {
    "inputs": [
        {
            "name": "input",
            "shape": [2, 3],
            "datatype": "FP32",
            "data": [2.0, 0.5, -1.0, 0.1, 0.2, 3.0],
        },
        {"name": "target", "shape": [2], "datatype": "INT64", "data": [0, 2]},
    ],
    "parameters": {"reduction": "mean"},
}
#: One media type: a second one (application/octet-stream for the binary extension) makes
#: openapi-python-client write a module that does not import. The binary form is described.
INFER_BODY = json_body(
    InferenceRequest,
    INFER_EXAMPLE,
    description="JSON inference request, optionally followed by binary tensor data (the "
    "binary tensor data extension: the Inference-Header-Content-Length header then gives the "
    "JSON's length, and an input's parameters give its binary_data_size). The body is read "
    "whatever its Content-Type.",
)


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 marks a dimension of any size.")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ModelReady(BaseModel):
    name: str
    ready: bool


class OutputTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = Field(
        default=None, description="binary_data_size when the data follows the JSON as bytes."
    )
    data: list[Any] | None = Field(default=None, description="Flat, row-major.")


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = Field(
        default=None, description="dtype, reduction, agreement with the reference, warnings."
    )
    outputs: list[OutputTensor]


def _doc(model: type[BaseModel], binary: bool = False) -> dict[int | str, dict[str, Any]]:
    """Document a 200 answer without validating it (responses are written by orjson)."""
    doc: dict[str, Any] = {"model": model, "description": "Success"}
    if binary:
        doc["content"] = {
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "example": "JSON header, then the binary outputs' bytes",
            }
        }
    return {200: doc}


def _json(content: Any, status: int = 200) -> Response:
    return Response(dumps(content), status_code=status, media_type="application/json")


def _model(name: str, version: str | None) -> Loss[Any]:
    loss = registry.resolve(
        name, what="model", listed="every loss listed by GET /v1/losses is a model"
    )
    if version is not None and version != VERSION:
        raise NotFound(
            f"model {name!r} has no version {version!r}; its only version is {VERSION!r}"
        )
    # A loss the installed torch lacks is a model that is never ready: its metadata, readiness
    # and inference all answer 501 naming the torch it needs.
    return require_available(loss)


async def _ready(state: ServiceState) -> None:
    if not await state.ensure_ready():
        raise Unavailable(f"the device is not usable: {state.warm_up_error}", retry_after=5)


async def _metadata(request: Request, name: str, version: str | None) -> Response:
    state = get_state(request)
    return _json(model_metadata(_model(name, version), state.settings.dtype))


async def _model_ready(request: Request, name: str, version: str | None) -> Response:
    loss = _model(name, version)
    await _ready(get_state(request))
    return _json({"name": loss.name, "ready": True})


async def _infer(request: Request, name: str, version: str | None) -> Response:
    state = get_state(request)
    _model(name, version)  # 404 before reading the body of a request for no model
    limit = state.settings.max_body_bytes
    raw = await read_body_buffer(request, limit)
    header = request.headers.get(HEADER_LENGTH)
    encoding = request.headers.get("content-encoding")

    def work() -> tuple[bytes, str, dict[str, str]]:
        body = decompress(raw, encoding, limit)
        encoded = infer(state.dataplane, name, version, body, header)
        return encoded.body, encoded.media_type, encoded.headers()

    content, media_type, headers = await state.run(work)
    return Response(content, media_type=media_type, headers=headers)


def build_router() -> APIRouter:
    losses.load()
    router = APIRouter(prefix="/v2", tags=["open inference protocol"], responses=ERROR_RESPONSES)

    @router.get("", responses=_doc(ServerMetadata))
    async def server_metadata() -> Response:
        """Server name, version and the protocol extensions it supports."""
        return _json({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})

    @router.get("/models/{name}", responses=_doc(ModelMetadata), name="model_metadata")
    async def get_model_metadata(request: Request, name: str) -> Response:
        """A loss as a model: its input and output tensors (-1 marks a variable size)."""
        return await _metadata(request, name, None)

    @router.get(
        "/models/{name}/versions/{version}",
        responses=_doc(ModelMetadata),
        name="model_version_metadata",
    )
    async def get_model_version_metadata(request: Request, name: str, version: str) -> Response:
        return await _metadata(request, name, version)

    @router.get("/models/{name}/ready", responses=_doc(ModelReady))
    async def model_ready(request: Request, name: str) -> Response:
        """200 once the device is warm; 404 for an unknown model."""
        return await _model_ready(request, name, None)

    @router.get("/models/{name}/versions/{version}/ready", responses=_doc(ModelReady))
    async def model_version_ready(request: Request, name: str, version: str) -> Response:
        return await _model_ready(request, name, version)

    @router.post(
        "/models/{name}/infer", openapi_extra=INFER_BODY, responses=_doc(InferenceResponse, True)
    )
    async def model_infer(request: Request, name: str) -> Response:
        """Compute the loss: inputs named like the torch arguments, options as parameters."""
        return await _infer(request, name, None)

    @router.post(
        "/models/{name}/versions/{version}/infer",
        openapi_extra=INFER_BODY,
        responses=_doc(InferenceResponse, True),
    )
    async def model_version_infer(request: Request, name: str, version: str) -> Response:
        return await _infer(request, name, version)

    return router
