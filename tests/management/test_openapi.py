"""GET /api/v2/openapi.json: the OpenAPI 3.1 description of every Management API route, and
a schemathesis run over it (in-process, real token) that finds no server error."""

from __future__ import annotations

import json
import re

import httpx
import pytest
import schemathesis
from auth0.management import ManagementClient
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from sqlalchemy import select

from login_site.management import client_grants
from login_site.management import clients
from login_site.management import connections
from login_site.management import jobs
from login_site.management import openapi
from login_site.management import resource_servers
from login_site.management import tickets
from login_site.management import users
from login_site.models import Client
from login_site.models import ClientGrant
from login_site.models import Connection
from login_site.models import ResourceServer
from login_site.models import SigningKey
from login_site.models import Tenant
from login_site.models import User
from tests.conftest import basic
from tests.management.conftest import M2M
from tests.management.conftest import SCOPES
from tests.management.conftest import T1
from tests.management.conftest import bearer

# Bounded: about 40 operations, each on a fresh database; a few minutes in all.
EXAMPLES_PER_OPERATION = 25


def document(client, host=T1) -> dict:
    response = client.get("/api/v2/openapi.json", base_url=f"http://{host}")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def routes(app) -> set[tuple[str, str]]:
    """(method, path) of each route of the management blueprint, in OpenAPI spelling."""
    out = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] != "management":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path.startswith("/api/v2/")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((method.lower(), path.removeprefix("/api/v2")))
    return out


def described(doc: dict) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items() for method in item}


def test_every_management_route_is_described_and_nothing_else(app, client):
    doc = document(client)
    assert routes(app) == described(doc)
    # The users routes (another module) are there too.
    assert {("get", "/users"), ("post", "/users/{user_id}/identities")} <= described(doc)


def test_the_document_needs_no_token_and_names_the_tenant(client):
    doc = document(client)
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": f"http://{T1}/api/v2"}]
    assert f"http://{T1}/api/v2/" in doc["info"]["description"]
    assert document(client, "t2.test")["servers"] == [{"url": "http://t2.test/api/v2"}]


def test_every_operation_but_the_document_needs_a_bearer_token_and_names_its_scopes(client):
    doc = document(client)
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert doc["security"] == [{"bearer": []}]
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if path == "/openapi.json":
                assert operation["security"] == []
                continue
            assert "security" not in operation  # the global bearer requirement
            scopes = operation["x-required-scopes"]
            assert scopes and all(":" in s for s in scopes), (method, path)
            assert "401" in operation["responses"] and "403" in operation["responses"]
            for name in re.findall(r"{(\w+)}", path):
                assert any(p["name"] == name and p["in"] == "path" for p in operation["parameters"])


@pytest.mark.parametrize(
    ("schema", "fields"),
    [
        ("ClientCreate", clients.WRITABLE),
        ("ClientUpdate", clients.WRITABLE),
        ("ConnectionCreate", connections.CREATE_FIELDS),
        ("ConnectionUpdate", connections.UPDATE_FIELDS),
        ("ResourceServerCreate", resource_servers.CREATE_FIELDS),
        ("ResourceServerUpdate", resource_servers.UPDATE_FIELDS),
        ("ClientGrantCreate", client_grants.CREATE_FIELDS),
        ("ClientGrantUpdate", client_grants.UPDATE_FIELDS),
        ("PasswordChangeTicketCreate", tickets.PASSWORD_CHANGE_FIELDS),
        ("VerificationEmailJobCreate", jobs.VERIFICATION_FIELDS),
        ("UsersExportJobCreate", jobs.EXPORT_REQUEST_FIELDS),
        ("UserCreate", users.CREATE_FIELDS),
        ("UserUpdate", users.UPDATE_FIELDS),
    ],
)
def test_request_schemas_list_exactly_the_accepted_fields(client, schema, fields):
    described_schema = document(client)["components"]["schemas"][schema]
    assert described_schema["additionalProperties"] is False
    assert set(described_schema["properties"]) == set(fields)


def test_unknown_fields_are_rejected_where_the_schema_says_so(api):
    """additionalProperties: false is true of the API, not only of the document."""
    token = api.token()
    for path in ("/api/v2/clients", "/api/v2/resource-servers", "/api/v2/client-grants"):
        response = api.post(
            path, base_url=f"http://{T1}", headers=bearer(token), json={"surprise": 1}
        )
        assert response.status_code == 400, path
        assert "'surprise'" in response.get_json()["message"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v2/clients/a%00b", None),
        ("GET", "/api/v2/connections?name=a%00b", None),
        ("GET", "/api/v2/resource-servers/a%00b", None),
        ("GET", "/api/v2/client-grants?audience=a%00b", None),
        ("GET", "/api/v2/keys/signing/a%00b", None),
        ("GET", "/api/v2/jobs/a%00b", None),
        ("POST", "/api/v2/clients", {"name": "a\u0000b"}),
        (
            "POST",
            "/api/v2/connections",
            {"name": "x", "strategy": "oidc", "options": {"a\u0000": 1}},
        ),
        ("POST", "/api/v2/resource-servers", {"identifier": "https://a\u0000b/"}),
        ("POST", "/api/v2/client-grants", {"client_id": "web", "audience": "a\u0000", "scope": []}),
        (
            "POST",
            "/api/v2/tickets/password-change",
            {"email": "a\u0000@b.test", "connection_id": "c"},
        ),
    ],
)
def test_nul_characters_are_a_400_on_every_engine(api, backend, method, path, body):
    """PostgreSQL text cannot hold NUL: found as 500s by fuzzing, now refused up front."""
    kwargs = {"data": json.dumps(body), "content_type": "application/json"} if body else {}
    response = api.open(
        path, method=method, base_url=f"http://{T1}", headers=bearer(api.token()), **kwargs
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["errorCode"] in ("invalid_body", "invalid_query_string")


def test_auth0s_generated_python_sdk_reads_our_answers(app, mailbox):
    """auth0-python 6 is generated from Auth0's own OpenAPI document and parses answers into
    typed models: our shapes fit them. HTTPS to the tenant through an in-process transport."""
    audience = f"https://{T1}/api/v2/"
    with app.extensions["login_site.sessionmaker"]() as db:
        tenant = db.execute(select(Tenant).where(Tenant.name == "t1")).scalar_one()
        m2m = db.execute(
            select(Client).where(Client.tenant_id == tenant.id, Client.client_id == M2M[0])
        ).scalar_one()
        db.add(
            ResourceServer(
                tenant_id=tenant.id,
                identifier=audience,
                name="Management API",
                scopes=[{"value": s} for s in SCOPES],
            )
        )
        db.add(ClientGrant(tenant_id=tenant.id, client_pk=m2m.id, audience=audience, scope=SCOPES))
        carol = db.execute(
            select(User.user_id).where(
                User.tenant_id == tenant.id, User.email == "carol@example.test"
            )
        ).scalar_one()
        db.commit()
    http = httpx.Client(transport=httpx.WSGITransport(app=app))
    token = http.post(
        f"https://{T1}/oauth/token",
        data={"grant_type": "client_credentials", "audience": audience},
        headers=basic(*M2M),
    ).json()["access_token"]
    sdk = ManagementClient(domain=T1, token=token, httpx_client=http)

    apis = {api.identifier: api for api in sdk.resource_servers.list()}
    assert apis[audience].is_system is True
    created = sdk.resource_servers.create(
        identifier="https://sdk.test/", name="SDK", scopes=[{"value": "read:sdk"}]
    )
    assert sdk.resource_servers.update(created.id, name="SDK 2").name == "SDK 2"
    grant = sdk.client_grants.create(client_id="web", audience="https://sdk.test/", scope=[])
    assert sdk.client_grants.update(grant.id, scope=["read:sdk"]).scope == ["read:sdk"]
    assert [g.id for g in sdk.client_grants.list(audience="https://sdk.test/")] == [grant.id]
    sdk.client_grants.delete(grant.id)
    sdk.resource_servers.delete(created.id)

    keys = sdk.keys.signing.list()
    current = next(key for key in keys if key.current)
    assert sdk.keys.signing.get(current.kid).cert == current.cert
    assert sdk.keys.signing.rotate().kid != current.kid

    ticket = sdk.tickets.change_password(user_id=carol, ttl_sec=60).ticket
    assert ticket.startswith(f"https://{T1}/reset_password?ticket=")
    job = sdk.jobs.verification_email.create(user_id=carol)
    assert sdk.jobs.get(job.id).type == "verification_email"
    export = sdk.jobs.users_exports.create(format="json", fields=[{"name": "email"}])
    assert export.status == "completed"
    assert export.location == f"https://{T1}/api/v2/jobs/{export.id}/export"
    mailbox.wait_for(to="carol@example.test")


# --- fuzzing --------------------------------------------------------------------------------

OPERATIONS = [(op.method.upper(), op.path) for op in openapi.operations()]


def known_values(app, api, token) -> dict[str, list[str]]:
    """Ids that exist in T1, for path parameters and body fields: random strings alone would
    mostly meet a 404 before reaching the code behind it."""
    with app.extensions["login_site.sessionmaker"]() as db:
        tenant = db.execute(select(Tenant).where(Tenant.name == "t1")).scalar_one()
        alice, carol = (
            db.execute(
                select(User).where(User.tenant_id == tenant.id, User.email == email)
            ).scalar_one()
            for email in ("alice@example.test", "carol@example.test")
        )
        connection_ids = list(
            db.execute(select(Connection.id).where(Connection.tenant_id == tenant.id)).scalars()
        )
        apis = list(
            db.execute(
                select(ResourceServer).where(ResourceServer.tenant_id == tenant.id)
            ).scalars()
        )
        grant_ids = list(
            db.execute(select(ClientGrant.id).where(ClientGrant.tenant_id == tenant.id)).scalars()
        )
        kids = list(
            db.execute(select(SigningKey.kid).where(SigningKey.tenant_id == tenant.id)).scalars()
        )
    export = api.post(
        "/api/v2/jobs/users-exports", base_url=f"http://{T1}", headers=bearer(token), json={}
    ).get_json()["id"]
    return {
        "client_id": ["web", "spa", "partners", "third-party"],
        "connection_id": connection_ids,
        "user_id": [alice.user_id, carol.user_id],
        "provider": ["auth0"],
        "identity_user_id": [carol.user_id.split("|", 1)[1]],
        "rs_id": [a.id for a in apis] + [a.identifier for a in apis],
        "audience": [a.identifier for a in apis],
        "grant_id": grant_ids,
        "kid": kids,
        "job_id": [export],
        "email": ["alice@example.test", "carol@example.test"],
        "connection": ["db", "email-otp", "sms"],
    }


# schemathesis's own strategies use the random module (its warning, not ours).
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_generated_input_makes_a_server_error(app, api, method, path):
    """Valid and invalid inputs from the document, with a token holding every scope; some
    path parameters and body fields swapped for ids that exist. Each answer is a 2xx or a
    4xx in Auth0's shape, never a 5xx."""
    token = api.token()
    known = known_values(app, api, token)
    schema = schemathesis.openapi.from_wsgi("/api/v2/openapi.json", app, headers={"Host": T1})
    operation = schema[path][method]
    statuses: list[int] = []

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        ),
        data=st.data(),
    )
    def run(case, data) -> None:
        for name in list(case.path_parameters or {}):
            if name in known and data.draw(st.booleans()):
                case.path_parameters[name] = data.draw(st.sampled_from(known[name]))
        if isinstance(case.body, dict):
            for name in list(case.body):
                if name in known and data.draw(st.booleans()):
                    case.body[name] = data.draw(st.sampled_from(known[name]))
        response = case.call(base_url=f"http://{T1}/api/v2", headers=bearer(token))
        statuses.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])
        if response.status_code >= 400:
            body = response.json()
            assert {"statusCode", "error", "message", "errorCode"} <= set(body), body

    run()
    assert statuses and max(statuses) < 500
