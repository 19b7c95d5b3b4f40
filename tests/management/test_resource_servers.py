"""/api/v2/resource-servers: list, create, read by id or identifier, update, delete
(management-api.md §7); the tenant's own Management API cannot be changed or deleted."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest
from sqlalchemy import select

from login_site.models import ClientGrant
from login_site.models import ResourceServer
from tests.conftest import basic
from tests.management.conftest import M2M
from tests.management.conftest import T1
from tests.management.conftest import T2
from tests.management.conftest import T2WEB
from tests.management.conftest import call
from tests.management.conftest import grant_management_api

THINGS = "https://api.example.test/"
SYSTEM = f"http://{T1}/api/v2/"


def stored(app, identifier):
    with app.extensions["login_site.sessionmaker"]() as db:
        return db.execute(
            select(ResourceServer).where(ResourceServer.identifier == identifier)
        ).scalar_one_or_none()


def grants_for(app, audience):
    with app.extensions["login_site.sessionmaker"]() as db:
        return list(
            db.execute(select(ClientGrant).where(ClientGrant.audience == audience)).scalars()
        )


def new_api(api, token, host=T1, **fields):
    data = {"identifier": "https://new.test/api", "name": "New API", **fields}
    return call(api, "POST", "/api/v2/resource-servers", token, host=host, json=data)


def test_list_shows_the_tenants_apis_and_marks_the_system_one(api):
    response = call(api, "GET", "/api/v2/resource-servers", api.token("read:resource_servers"))
    assert response.status_code == 200
    by_identifier = {r["identifier"]: r for r in response.get_json()}
    assert set(by_identifier) == {THINGS, SYSTEM}
    assert by_identifier[SYSTEM]["is_system"] is True
    things = by_identifier[THINGS]
    assert things["is_system"] is False
    assert things["allow_offline_access"] is True
    assert [s["value"] for s in things["scopes"]] == ["read:things", "write:things"]
    assert things["signing_alg"] == "RS256"
    assert things["token_lifetime"] == 86400


def test_list_pages_with_totals_and_filters_by_identifier(api):
    token = api.token("read:resource_servers")
    body = call(
        api, "GET", "/api/v2/resource-servers?per_page=1&include_totals=true", token
    ).get_json()
    assert (body["start"], body["limit"], body["length"], body["total"]) == (0, 1, 1, 2)
    assert len(body["resource_servers"]) == 1
    only = call(
        api, "GET", f"/api/v2/resource-servers?identifiers={quote(THINGS, safe='')}", token
    ).get_json()
    assert [r["identifier"] for r in only] == [THINGS]


def test_create_then_read_by_id_and_by_url_encoded_identifier(app, api, backend, caplog):
    caplog.set_level(logging.INFO, logger="login_site.events")
    token = api.token("create:resource_servers", "read:resource_servers")
    response = new_api(
        api,
        token,
        identifier="https://new.test/api//v1",
        scopes=[{"value": "read:new", "description": "Read"}],
        token_lifetime=3600,
        allow_offline_access=True,
        token_dialect="rfc9068_profile",
    )
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["id"].startswith("rs_")
    assert created["is_system"] is False
    assert created["scopes"] == [{"value": "read:new", "description": "Read"}]
    assert (created["token_lifetime"], created["token_dialect"]) == (3600, "rfc9068_profile")
    for key in (created["id"], quote(created["identifier"], safe="")):
        again = call(api, "GET", f"/api/v2/resource-servers/{key}", token)
        assert again.status_code == 200, key
        assert again.get_json() == created
    assert stored(app, "https://new.test/api//v1").tenant_id is not None
    assert any('"management.resource_server_created"' in r.getMessage() for r in caplog.records)


def test_an_issued_token_uses_the_new_apis_lifetime(api):
    token = api.token("create:resource_servers", "create:client_grants")
    new_api(api, token, scopes=[{"value": "read:new"}], token_lifetime=600)
    grant = call(
        api,
        "POST",
        "/api/v2/client-grants",
        token,
        json={"client_id": "m2m", "audience": "https://new.test/api", "scope": ["read:new"]},
    )
    assert grant.status_code == 201
    response = api.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        data={"grant_type": "client_credentials", "audience": "https://new.test/api"},
        headers=basic(*M2M),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["expires_in"] == 600
    assert response.get_json()["scope"] == "read:new"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"identifier": None}, "identifier"),
        ({"identifier": ""}, "identifier"),
        ({"identifier": "has space"}, "identifier"),
        ({"name": 5}, "name"),
        ({"scopes": "read:new"}, "scopes"),
        ({"scopes": [{"value": "two words"}]}, "scopes[0].value"),
        ({"scopes": [{"value": "a"}, {"value": "a"}]}, "scopes[1].value"),
        ({"scopes": [{"value": "a", "extra": 1}]}, "scopes[0].extra"),
        ({"signing_alg": "HS256"}, "signing_alg"),
        ({"token_lifetime": 0}, "token_lifetime"),
        ({"token_lifetime": True}, "token_lifetime"),
        ({"token_lifetime": 2592001}, "token_lifetime"),
        ({"token_dialect": "jwt"}, "token_dialect"),
        ({"allow_offline_access": "yes"}, "allow_offline_access"),
        ({"is_system": True}, "is_system"),
        ({"id": "rs_mine"}, "id"),
        ({"enforce_policies": True}, "enforce_policies"),
    ],
)
def test_invalid_bodies_are_400_naming_the_field(app, api, fields, named):
    response = new_api(api, api.token("create:resource_servers"), **fields)
    assert response.status_code == 400
    body = response.get_json()
    assert body["errorCode"] == "invalid_body"
    assert f"'{named}'" in body["message"]
    assert stored(app, "https://new.test/api") is None


def test_identifier_is_required_and_unique_per_tenant(app, api):
    token = api.token("create:resource_servers")
    missing = call(api, "POST", "/api/v2/resource-servers", token, json={"name": "x"})
    assert missing.status_code == 400
    assert "'identifier'" in missing.get_json()["message"]
    duplicate = new_api(api, token, identifier=THINGS)
    assert duplicate.status_code == 409
    # The same identifier in another tenant is another API.
    grant_management_api(app, "t2", T2, "t2web")
    t2_token = api.token("create:resource_servers", host=T2, credentials=T2WEB)
    assert new_api(api, t2_token, identifier=THINGS, host=T2).status_code == 201


def test_the_management_api_identifier_is_reserved(api):
    token = api.token("create:resource_servers")
    for identifier in (SYSTEM, f"https://{T1}/api/v2/", "http://t1.localhost/api/v2/"):
        response = new_api(api, token, identifier=identifier)
        assert response.status_code in (400, 409), identifier


def test_update_replaces_the_given_properties(app, api, backend):
    token = api.token("update:resource_servers")
    response = call(
        api,
        "PATCH",
        f"/api/v2/resource-servers/{quote(THINGS, safe='')}",
        token,
        json={"name": "Renamed", "scopes": [{"value": "admin:things"}], "token_lifetime": 60},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["name"] == "Renamed"
    assert body["scopes"] == [{"value": "admin:things", "description": ""}]
    assert body["allow_offline_access"] is True  # untouched
    row = stored(app, THINGS)
    assert (row.name, row.token_lifetime, row.scope_values) == ("Renamed", 60, ["admin:things"])


def test_identifier_cannot_change(app, api):
    response = call(
        api,
        "PATCH",
        f"/api/v2/resource-servers/{quote(THINGS, safe='')}",
        api.token("update:resource_servers"),
        json={"identifier": "https://moved.test/"},
    )
    assert response.status_code == 400
    assert "'identifier'" in response.get_json()["message"]
    assert stored(app, THINGS) is not None
    assert stored(app, "https://moved.test/") is None


def test_the_system_api_cannot_be_changed_or_deleted(app, api):
    token = api.token()
    path = f"/api/v2/resource-servers/{quote(SYSTEM, safe='')}"
    shown = call(api, "GET", path, token).get_json()
    assert shown["is_system"] is True
    changed = call(api, "PATCH", path, token, json={"scopes": []})
    assert changed.status_code == 403
    assert changed.get_json()["errorCode"] == "operation_not_supported"
    deleted = call(api, "DELETE", path, token)
    assert deleted.status_code == 403
    assert len(stored(app, SYSTEM).scopes) == len(shown["scopes"])
    assert call(api, "GET", "/api/v2/clients", api.token("read:clients")).status_code == 200


def test_delete_removes_the_api_and_its_client_grants(app, api, backend):
    token = api.token("delete:resource_servers", "read:resource_servers")
    assert grants_for(app, THINGS)
    api_id = stored(app, THINGS).id
    assert call(api, "DELETE", f"/api/v2/resource-servers/{api_id}", token).status_code == 204
    assert stored(app, THINGS) is None
    assert grants_for(app, THINGS) == []
    assert call(api, "GET", f"/api/v2/resource-servers/{api_id}", token).status_code == 404


def test_another_tenants_api_is_404(app, api):
    grant_management_api(app, "t2", T2, "t2web")
    with app.extensions["login_site.sessionmaker"]() as db:
        t2_api = db.execute(
            select(ResourceServer).where(ResourceServer.identifier == f"http://{T2}/api/v2/")
        ).scalar_one()
    token = api.token()
    for key in (t2_api.id, quote(t2_api.identifier, safe=""), "rs_nope"):
        for method in ("GET", "PATCH", "DELETE"):
            response = call(api, method, f"/api/v2/resource-servers/{key}", token, json={})
            assert response.status_code == 404, (method, key)
            assert response.get_json()["errorCode"] == "inexistent_resource_server"
    assert stored(app, f"http://{T2}/api/v2/") is not None


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/api/v2/resource-servers", "read:resource_servers"),
        ("POST", "/api/v2/resource-servers", "create:resource_servers"),
        ("PATCH", f"/api/v2/resource-servers/{quote(THINGS, safe='')}", "update:resource_servers"),
        ("DELETE", f"/api/v2/resource-servers/{quote(THINGS, safe='')}", "delete:resource_servers"),
    ],
)
def test_each_operation_needs_its_scope(app, api, method, path, scope):
    response = call(api, method, path, api.token("read:clients"), json={"name": "x"})
    assert response.status_code == 403
    body = response.get_json()
    assert body["errorCode"] == "insufficient_scope"
    assert body["message"].endswith(scope)
    assert call(api, method, path, json={}).status_code == 401
    assert stored(app, THINGS).name == "Things API"
