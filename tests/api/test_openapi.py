"""The OpenAPI document: named components, one tensor schema, readable operation ids.

What the generators make of it is tested in tests/clients/; here, the document itself."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest

from service.app import create_app
from service.losses import registry
from service.schema import tensor_alternatives
from tests.conftest import cpu_settings

pytestmark = pytest.mark.anyio

REF = "#/components/schemas/"


@pytest.fixture(scope="module")
async def doc(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    document: dict[str, Any] = r.json()
    return document


def operations(doc: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    out = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["operationId"] not in out, op["operationId"]
            out[op["operationId"]] = (method, path, op)
    return out


def walk(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        return [node] + [d for v in node.values() for d in walk(v)]
    if isinstance(node, list):
        return [d for v in node for d in walk(v)]
    return []


async def test_operation_ids_are_the_route_names(doc: dict[str, Any]) -> None:
    ops = operations(doc)
    expected = {
        "list_losses": ("get", "/v1/losses"),
        "describe_loss": ("get", "/v1/losses/{name}"),
        "compute_by_module_name": ("post", "/v1/losses/{name}"),
        "compute_batch": ("post", "/v1/losses:batch"),
        "conventions_cross_entropy": ("post", "/v1/conventions/cross_entropy"),
        "server_live": ("get", "/v2/health/live"),
        "server_ready": ("get", "/v2/health/ready"),
        "server_metadata": ("get", "/v2"),
        "model_metadata": ("get", "/v2/models/{name}"),
        "model_version_metadata": ("get", "/v2/models/{name}/versions/{version}"),
        "model_ready": ("get", "/v2/models/{name}/ready"),
        "model_version_ready": ("get", "/v2/models/{name}/versions/{version}/ready"),
        "model_infer": ("post", "/v2/models/{name}/infer"),
        "model_version_infer": ("post", "/v2/models/{name}/versions/{version}/infer"),
    }
    for name in registry.names():
        expected[f"compute_{name}"] = ("post", f"/v1/losses/{name}")
        expected[f"describe_{name}"] = ("get", f"/v1/losses/{name}")
    for op, where in expected.items():
        assert ops[op][:2] == where, op
    assert all(op.isidentifier() and op.islower() for op in ops)


async def test_one_named_tensor_schema(doc: dict[str, Any]) -> None:
    tensor = doc["components"]["schemas"]["Tensor"]
    assert tensor["anyOf"] == tensor_alternatives(8)
    assert len(tensor["anyOf"]) == 9
    assert tensor["anyOf"][2] == {
        "type": "array",
        "items": {"type": "array", "items": {"type": "number"}},
    }
    assert "to 8" in tensor["description"]
    # No tensor written out anywhere else, and no array left without its items.
    nodes = walk({k: v for k, v in doc.items() if k != "components"})
    nodes += walk({k: v for k, v in doc["components"]["schemas"].items() if k != "Tensor"})
    assert not [n for n in nodes if n.get("anyOf") == tensor["anyOf"]]
    assert not [n for n in nodes if n.get("type") == "array" and "items" not in n]
    refs = [n for n in nodes if n.get("$ref") == REF + "Tensor"]
    assert len(refs) >= sum(len(loss.tensor_inputs) for loss in registry.all_losses())


async def test_the_tensor_schema_follows_the_configured_rank() -> None:
    app = create_app(cpu_settings(max_rank=3))
    tensor = app.openapi()["components"]["schemas"]["Tensor"]
    assert tensor["anyOf"] == tensor_alternatives(3)
    assert "to 3" in tensor["description"]


@pytest.mark.parametrize("name", registry.names())
async def test_each_loss_body_is_its_named_model(doc: dict[str, Any], name: str) -> None:
    loss = registry.require(name)
    ops = operations(doc)
    component = loss.params_model.__name__
    for op in (f"compute_{name}",) + (
        (f"conventions_{name}",) if f"conventions_{name}" in ops else ()
    ):
        media = ops[op][2]["requestBody"]["content"]["application/json"]
        assert media["schema"] == {"$ref": REF + component}
        assert media["example"] is not None
    schema = doc["components"]["schemas"][component]
    assert set(schema["properties"]) == set(loss.params_model.model_fields)
    assert schema["additionalProperties"] is False
    for tensor in loss.tensor_inputs:
        prop = schema["properties"][tensor]
        assert prop.get("$ref") == REF + "Tensor" or {"$ref": REF + "Tensor"} in prop["anyOf"]
    # The documented schema accepts the example that works, and refuses an unknown field.
    validator = jsonschema.Draft202012Validator({**doc, "$ref": REF + component})
    validator.validate(loss.example())
    assert not validator.is_valid({**loss.example(), "no_such_argument": 1})


async def test_nested_models_are_components(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    lce = schemas["LinearCrossEntropyParams"]["properties"]["options"]
    assert {"$ref": REF + "LinearCrossEntropyOptionsModel"} in lce["anyOf"]
    assert "acc_policy" in schemas["LinearCrossEntropyOptionsModel"]["properties"]
    distance = schemas["TripletMarginWithDistanceParams"]["properties"]["distance_function"]
    assert REF + "DistanceFunction" in str(distance)
    assert "$defs" not in str(doc)


async def test_responses_are_named_components(doc: dict[str, Any]) -> None:
    ops = operations(doc)

    def schema(op: str, status: str, media: str = "application/json") -> Any:
        return ops[op][2]["responses"][status]["content"][media]["schema"]

    assert schema("compute_cross_entropy", "200") == {"$ref": REF + "LossResponse"}
    assert schema("compute_batch", "200") == {"$ref": REF + "BatchResponse"}
    assert schema("conventions_cross_entropy", "200") == {"$ref": REF + "ConventionsResponse"}
    assert schema("list_losses", "200") == {"$ref": REF + "LossList"}
    assert schema("describe_cross_entropy", "200") == {"$ref": REF + "LossSummary"}
    assert schema("model_infer", "200") == {"$ref": REF + "InferenceResponse"}
    assert schema("model_metadata", "200") == {"$ref": REF + "ModelMetadata"}
    assert schema("server_metadata", "200") == {"$ref": REF + "ServerMetadata"}
    assert schema("model_ready", "200") == {"$ref": REF + "ModelReady"}
    assert schema("model_infer", "400") == {"$ref": REF + "InferenceErrorResponse"}
    assert ops["model_infer"][2]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": REF + "InferenceRequest"
    }
    problem = {"$ref": REF + "Problem"}
    for status in ("400", "404", "413", "422", "501", "503"):
        content = ops["compute_cross_entropy"][2]["responses"][status]["content"]
        assert content == {"application/problem+json": {"schema": problem}}, status
    assert "available" in doc["components"]["schemas"]["LossSummary"]["required"]
