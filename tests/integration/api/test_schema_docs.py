"""The OpenAPI schema, the docs page (assets served locally), and the admin for API clients."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from django.test import Client
from drf_spectacular.validation import validate_schema

from orders_api.models import ClientAPIKey, UsagePlan
from pipeline.adapters.dynamodb import DynamoStore
from tests.integration.api.conftest import KeyMaker

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def schema(client: Client) -> dict[str, Any]:
    """The served OpenAPI document."""
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable` as JSON Schema's type list, so jsonschema can check bodies."""
    if isinstance(node, dict):
        out = {k: _json_schema(v) for k, v in node.items() if k != "nullable"}
        if node.get("nullable") and "type" in node:
            out["type"] = [node["type"], "null"]
        return out
    if isinstance(node, list):
        return [_json_schema(v) for v in node]
    return node


class SchemaClient:
    """A client generated from the schema at run time: paths, methods, security header and
    response bodies all come from the document, so it works only if the document is right."""

    def __init__(self, document: dict[str, Any], http: Client, api_key: str):
        self.document = document
        self.http = http
        self.api_key = api_key
        self.operations = {
            op["operationId"]: (path, method, op)
            for path, item in document["paths"].items()
            for method, op in item.items()
        }
        scheme = next(iter(document["components"]["securitySchemes"].values()))
        assert scheme["in"] == "header"
        self.key_meta = "HTTP_" + scheme["name"].upper().replace("-", "_")

    def call(self, operation_id: str, body: Any = None, **path_params: str) -> Any:
        """Call an operation; check the answer against the schema's response for its status."""
        path, method, op = self.operations[operation_id]
        for name, value in path_params.items():
            path = path.replace("{" + name + "}", value)
        kwargs = {self.key_meta: self.api_key}
        if body is not None:
            content_type = next(iter(op["requestBody"]["content"]))
            response = getattr(self.http, method)(path, body, content_type=content_type, **kwargs)
        else:
            response = getattr(self.http, method)(path, **kwargs)
        documented = op["responses"][str(response.status_code)]
        body_schema = documented["content"]["application/json"]["schema"]
        jsonschema.validate(
            response.json(),
            _json_schema({**body_schema, "components": self.document["components"]}),
        )
        for header in documented.get("headers", {}):
            assert response.has_header(header), f"{header} documented but not sent"
        return response


def test_schema_is_valid_openapi_3_with_the_key_scheme(schema: dict[str, Any]):
    # Given the served schema, Then it validates and describes both operations and the key
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {"/submitorder", "/orders", "/orders/{order_id}"}
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": schema["components"]["securitySchemes"]["ApiKeyAuth"]["description"],
    }
    submit = schema["paths"]["/submitorder"]["post"]
    assert {"200", "400", "403", "413", "415", "422", "429", "503"} <= set(submit["responses"])
    assert "Retry-After" in submit["responses"]["429"]["headers"]
    assert "Location" in submit["responses"]["200"]["headers"]
    # And the request body's limits are the domain's own
    request = schema["components"]["schemas"]["SubmitOrderRequestRequest"]
    assert request["properties"]["Items"]["maxItems"] == 100
    assert request["properties"]["CustomerName"]["maxLength"] == 200


def test_a_client_driven_by_the_schema_works(
    schema: dict[str, Any], store: DynamoStore, make_key: KeyMaker
):
    # Given a client built from the schema and a key
    _, raw = make_key()
    api = SchemaClient(schema, Client(), raw)

    # When it submits the schema's own example, reads the order back and makes mistakes
    example = schema["paths"]["/submitorder"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]["FullOrder"]["value"]
    submitted = api.call("submitOrder", example)
    order = api.call("getOrder", order_id=submitted.json()["OrderId"])
    invalid = api.call("submitOrder", {"CustomerName": "", "Items": []})
    missing = api.call("getOrder", order_id="00000000-0000-0000-0000-000000000000")

    # Then every answer matched its documented shape (checked inside call) and status
    assert (submitted.status_code, order.status_code) == (200, 200)
    assert (invalid.status_code, missing.status_code) == (400, 404)
    assert order.json()["ShippingAddress"]["City"] == "Springfield"


def test_docs_page_loads_its_assets_from_the_portal_not_a_cdn(client: Client):
    # When the docs page is opened
    response = client.get("/api/docs/")

    # Then it is HTML whose scripts and styles are all on this server, and they are served
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    scripts = [a for a in assets if a.endswith(".js")]
    assert any("swagger-ui" in a for a in scripts)
    for asset in assets:
        if asset.startswith("/static/"):
            served = client.get(asset)
            assert served.status_code == 200, asset
            content = b"".join(served.streaming_content) if served.streaming else served.content
            assert content, asset


def test_admin_lists_keys_and_plans_and_shows_a_new_key_once(
    admin_client: Client, make_key: KeyMaker
):
    # Given a plan and a key
    plan = UsagePlan.objects.create(name="bulk", rate_limit=500, burst_limit=1000)
    make_key("listed client", plan=plan)

    # When staff open the lists
    keys = admin_client.get("/admin/orders_api/clientapikey/")
    plans = admin_client.get("/admin/orders_api/usageplan/")

    # Then they show the key with its plan, and the plan with its key count
    assert keys.status_code == plans.status_code == 200
    assert "listed client" in keys.content.decode() and "bulk" in keys.content.decode()
    assert "bulk" in plans.content.decode()

    # When staff add a key for a client on the plan
    response = admin_client.post(
        "/admin/orders_api/clientapikey/add/",
        {"name": "from admin", "plan": plan.pk, "expiry_date_0": "", "expiry_date_1": ""},
        follow=True,
    )

    # Then it exists with the plan, and its key is shown once on a page of its own (not in a
    # message, which Django's default storage would keep in a cookie)
    assert response.status_code == 200
    created = ClientAPIKey.objects.get(name="from admin")
    assert created.plan == plan
    assert f'id="new-api-key">{created.prefix}.' in response.content.decode()
    assert not any(created.prefix in m.value for m in response.cookies.values())


def test_admin_needs_a_staff_login(client: Client):
    # When someone not logged in opens the admin, Then they are sent to log in
    response = client.get("/admin/orders_api/clientapikey/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
