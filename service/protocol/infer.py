"""One inference exchange, from request bytes to response bytes, against the data plane.

This is the blocking part of ``POST /v2/models/<name>/infer``; the HTTP layer runs it in a
worker thread. Binary tensors stay views of the request body until the data plane converts
them to the compute layout, so a large binary request is never turned into Python numbers.
"""

from __future__ import annotations

from service.dataplane import Dataplane
from service.protocol import request as protocol_request
from service.protocol.models import output_arrays, response_parameters, to_loss_call
from service.protocol.request import Buffer
from service.protocol.response import EncodedResponse, encode


def infer(
    dataplane: Dataplane,
    model_name: str,
    model_version: str | None,
    body: Buffer,
    header_length: str | None,
) -> EncodedResponse:
    """Decode, compute and encode; raises ``ServiceError`` subclasses for the client's errors."""
    loss = dataplane.loss(model_name)
    request = protocol_request.decode(body, header_length, dataplane.limits)
    call = to_loss_call(loss, request)
    result = dataplane.compute(loss, call.body, may_hold_bools=False)
    outputs = output_arrays(loss, call, result)
    parameters = response_parameters(result, call.ignored_parameters)
    return encode(request, loss.name, model_version, outputs, parameters)
