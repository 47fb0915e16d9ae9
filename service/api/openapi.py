"""The OpenAPI document, shaped for client generators: named components and readable ids.

FastAPI names response models as components on its own. The request bodies are read by the
routes themselves (``LeanRoute``), so FastAPI never sees their models; ``json_body`` documents
one: the operation's schema is a ``$ref`` to a component named after the Pydantic model
(``CrossEntropyParams``), and the model's schema, with its nested models (``$defs``), travels in
the operation under ``x-components`` until ``install``'s builder moves it into
``components/schemas``. A route added with ``json_body`` gets its components by being added;
nothing here lists routes or models.

The builder also names the tensor schema: every tensor field of a request model (written by
``service.schema`` as a fixed-depth union) becomes a ``$ref`` to one component, ``Tensor``,
written for the server's configured maximum rank. Operation ids are the routes' names
(``compute_cross_entropy``, ``list_losses``, ``model_infer``), through FastAPI's
``generate_unique_id_function``; FastAPI warns of a duplicate, and the tests turn that warning
into a failure.

None of this changes validation: Pydantic and the routes' own checks decide as before, and the
document describes them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from service.api.problems import PROBLEM_MEDIA_TYPE
from service.schema import TENSOR_ANY_OF, TENSOR_DESCRIPTION, tensor_component

COMPONENTS_KEY = "x-components"
"""Where ``json_body`` leaves a model's component schemas in the operation, for ``install``."""

REF_PREFIX = "#/components/schemas/"
TENSOR = "Tensor"


def operation_id(route: APIRoute) -> str:
    """The route's name (its endpoint's name unless ``name=`` says otherwise)."""
    return route.name


def json_body(
    model: type[BaseModel], example: Any = None, description: str | None = None
) -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body ``model`` documents (the route reads and
    validates the body itself): a required body referring to the component named after
    ``model``, with ``example``."""
    schema = model.model_json_schema(ref_template=REF_PREFIX + "{model}")
    defs: dict[str, Any] = schema.pop("$defs", {})
    media: dict[str, Any] = {"schema": {"$ref": REF_PREFIX + model.__name__}}
    if example is not None:
        media["example"] = example
    body: dict[str, Any] = {"required": True, "content": {"application/json": media}}
    if description:
        body["description"] = description
    return {"requestBody": body, COMPONENTS_KEY: {model.__name__: schema, **defs}}


def install(app: FastAPI, max_rank: int) -> None:
    """Make ``app.openapi`` build the document once with the components gathered and the tensor
    schema named. Call it before anything else wraps ``app.openapi``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = finish(build(), max_rank)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def finish(document: dict[str, Any], max_rank: int) -> dict[str, Any]:
    """Move every operation's ``x-components`` into ``components/schemas``, document problem
    responses under their own media type, and refer every tensor to the ``Tensor``
    component."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for name, schema in operation.pop(COMPONENTS_KEY, {}).items():
                known = schemas.setdefault(name, schema)
                if known != schema:
                    raise RuntimeError(f"two different schemas are named {name!r}")
            for response in operation.get("responses", {}).values():
                problem_schema(response)
    document["paths"] = name_tensors(document.get("paths", {}))
    document["components"]["schemas"] = {
        name: name_tensors(schema) for name, schema in sorted(schemas.items())
    }
    if _refers_to(document, REF_PREFIX + TENSOR):
        document["components"]["schemas"][TENSOR] = tensor_component(max_rank)
    return document


def problem_schema(response: dict[str, Any]) -> None:
    """A response declared as ``application/problem+json`` with a model (``ERROR_RESPONSES``):
    FastAPI writes the model's schema under ``application/json``, which the service never
    answers there; move it to the media type it does answer."""
    content = response.get("content", {})
    if PROBLEM_MEDIA_TYPE in content and "schema" not in content[PROBLEM_MEDIA_TYPE]:
        json_media = content.pop("application/json", None)
        if json_media is not None:
            content[PROBLEM_MEDIA_TYPE] = json_media


def name_tensors(node: Any) -> Any:
    """``node`` with each tensor schema (``service.schema.TENSOR_SCHEMA``, found by its
    alternatives) replaced by a ``$ref`` to ``Tensor``; a field's own description stays beside
    the reference."""
    if isinstance(node, list):
        return [name_tensors(v) for v in node]
    if not isinstance(node, dict):
        return node
    if node.get("anyOf") == TENSOR_ANY_OF:
        out = {"$ref": REF_PREFIX + TENSOR}
        out.update(
            (k, v)
            for k, v in node.items()
            if k != "anyOf" and not (k == "description" and v == TENSOR_DESCRIPTION)
        )
        return out
    return {k: name_tensors(v) for k, v in node.items()}


def _refers_to(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_refers_to(v, ref) for v in node.values())
    if isinstance(node, list):
        return any(_refers_to(v, ref) for v in node)
    return False
