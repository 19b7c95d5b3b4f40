"""/api/v2/clients: list, create, read, update, delete, rotate-secret (management-api.md §4)."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from login_site.models import Client
from login_site.models import ClientGrant
from login_site.vault import Keyring
from tests.conftest import BASE_CONFIG
from tests.conftest import basic
from tests.management.conftest import T1
from tests.management.conftest import call


def stored(app, client_id):
    with app.extensions["login_site.sessionmaker"]() as db:
        return db.execute(select(Client).where(Client.client_id == client_id)).scalar_one()


def test_list_is_a_bare_array_without_secrets(api):
    response = call(api, "GET", "/api/v2/clients", api.token("read:clients"))
    assert response.status_code == 200
    items = response.get_json()
    assert {"web", "m2m", "spa"} <= {c["client_id"] for c in items}
    assert "t2web" not in {c["client_id"] for c in items}
    assert all("client_secret" not in c for c in items)
    assert "web-secret-0123456789" not in response.get_data(as_text=True)


def test_list_pages_with_totals(api):
    token = api.token("read:clients")
    everything = call(api, "GET", "/api/v2/clients?per_page=100", token).get_json()
    response = call(api, "GET", "/api/v2/clients?page=1&per_page=2&include_totals=true", token)
    body = response.get_json()
    assert body["start"] == 2
    assert body["limit"] == 2
    assert body["length"] == 2
    assert body["total"] == len(everything)
    assert [c["client_id"] for c in body["clients"]] == [c["client_id"] for c in everything[2:4]]


def test_per_page_is_capped_at_100(api):
    response = call(
        api, "GET", "/api/v2/clients?per_page=5000&include_totals=true", api.token("read:clients")
    )
    assert response.get_json()["limit"] == 100


@pytest.mark.parametrize("query", ["page=-1", "per_page=abc", "include_totals=maybe"])
def test_bad_paging_is_400(api, query):
    response = call(api, "GET", f"/api/v2/clients?{query}", api.token("read:clients"))
    assert response.status_code == 400
    assert response.get_json()["message"].split("'")[1] in query


def test_get_one_client(api):
    response = call(api, "GET", "/api/v2/clients/web", api.token("read:clients"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["client_id"] == "web"
    assert body["callbacks"][0] == "https://app.test/cb"
    assert "client_secret" not in body


@pytest.mark.parametrize("client_id", ["t2web", "nope"])
def test_another_tenants_client_is_404(api, client_id):
    token = api.token()
    for method in ("GET", "PATCH", "DELETE"):
        response = call(api, method, f"/api/v2/clients/{client_id}", token, json={"name": "x"})
        assert response.status_code == 404, method
        assert response.get_json()["errorCode"] == "inexistent_client"
    assert call(api, "POST", f"/api/v2/clients/{client_id}/rotate-secret", token).status_code == 404


def test_create_returns_the_secret_once_and_stores_it_encrypted(app, api, backend, caplog):
    caplog.set_level(logging.INFO, logger="login_site.events")
    token = api.token("create:clients", "read:clients")
    response = call(
        api,
        "POST",
        "/api/v2/clients",
        token,
        json={
            "name": "New App",
            "app_type": "regular_web",
            "callbacks": ["https://new.test/cb"],
            "web_origins": ["https://new.test"],
        },
    )
    assert response.status_code == 201
    body = response.get_json()
    secret = body["client_secret"]
    assert len(secret) >= 32
    assert body["grant_types"] == ["authorization_code", "refresh_token", "client_credentials"]
    row = stored(app, body["client_id"])
    assert secret not in row.client_secret_enc
    assert Keyring(BASE_CONFIG["ENCRYPTION_KEYS"]).decrypt(row.client_secret_enc) == secret
    again = call(api, "GET", f"/api/v2/clients/{body['client_id']}", token).get_json()
    assert "client_secret" not in again
    assert any(
        '"management.client_created"' in r.getMessage()
        and '"actor_client_id": "m2m"' in r.getMessage()
        for r in caplog.records
    )


def test_spa_clients_are_public(api):
    response = call(
        api,
        "POST",
        "/api/v2/clients",
        api.token("create:clients"),
        json={"name": "S", "app_type": "spa"},
    )
    assert response.status_code == 201
    assert response.get_json()["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in response.get_json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "app_type": "robot"}, "app_type"),
        ({"name": "x", "callbacks": ["http://evil.test/cb"]}, "callbacks[0]"),
        ({"name": "x", "callbacks": ["https://a.test/cb", "https://a.test/#f"]}, "callbacks[1]"),
        ({"name": "x", "callbacks": ["myapp://cb"]}, "callbacks[0]"),
        ({"name": "x", "web_origins": ["https://a.test/path"]}, "web_origins[0]"),
        ({"name": "x", "allowed_origins": ["https://*.a.test"]}, "allowed_origins[0]"),
        ({"name": "x", "allowed_logout_urls": ["javascript:alert(1)"]}, "allowed_logout_urls[0]"),
        ({"name": "x", "grant_types": ["magic"]}, "grant_types[0]"),
        ({"name": "x", "is_first_party": "yes"}, "is_first_party"),
        ({"name": "x", "jwt_configuration": {"alg": "HS256"}}, "jwt_configuration.alg"),
        ({"name": "x", "favourite_colour": "red"}, "favourite_colour"),
        ({"name": "x", "client_secret": "s" * 40}, "client_secret"),
        ({"name": "x", "client_id": "mine"}, "client_id"),
    ],
)
def test_invalid_create_bodies_are_400_naming_the_field(api, body, field):
    response = call(api, "POST", "/api/v2/clients", api.token("create:clients"), json=body)
    assert response.status_code == 400
    payload = response.get_json()
    assert payload["errorCode"] == "invalid_body"
    assert f"'{field}'" in payload["message"]


def test_native_apps_may_use_custom_schemes(api):
    response = call(
        api,
        "POST",
        "/api/v2/clients",
        api.token("create:clients"),
        json={"name": "N", "app_type": "native", "callbacks": ["myapp://cb"]},
    )
    assert response.status_code == 201


def test_non_json_body_is_400(api):
    response = call(
        api,
        "POST",
        "/api/v2/clients",
        api.token("create:clients"),
        data="name=x",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    response = call(
        api,
        "POST",
        "/api/v2/clients",
        api.token("create:clients"),
        data="[1]",
        content_type="application/json",
    )
    assert response.status_code == 400


def test_duplicate_name_is_409(api):
    response = call(
        api, "POST", "/api/v2/clients", api.token("create:clients"), json={"name": "web"}
    )
    assert response.status_code == 409


def test_create_needs_create_scope(api):
    response = call(
        api,
        "POST",
        "/api/v2/clients",
        api.token("read:clients", "update:clients"),
        json={"name": "x"},
    )
    assert response.status_code == 403


def test_patch_replaces_given_properties(app, api):
    token = api.token("update:clients")
    response = call(
        api,
        "PATCH",
        "/api/v2/clients/partners",
        token,
        json={"callbacks": ["https://partners.test/new"], "description": "P"},
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["callbacks"] == ["https://partners.test/new"]
    assert body["description"] == "P"
    assert body["name"] == "partners"
    assert stored(app, "partners").callbacks == ["https://partners.test/new"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"callbacks": ["http://partners.test/cb"]}, "callbacks[0]"),
        ({"app_type": "spa", "bogus": 1}, "bogus"),
        ({"client_id": "other"}, "client_id"),
        ({"name": 42}, "name"),
        ({"refresh_token": {"rotation_type": "sometimes"}}, "refresh_token.rotation_type"),
    ],
)
def test_invalid_patch_is_400_and_changes_nothing(app, api, body, field):
    response = call(
        api, "PATCH", "/api/v2/clients/partners", api.token("update:clients"), json=body
    )
    assert response.status_code == 400
    assert f"'{field}'" in response.get_json()["message"]
    assert stored(app, "partners").callbacks == ["https://partners.test/cb"]


def test_patch_to_public_drops_the_secret(app, api):
    response = call(
        api,
        "PATCH",
        "/api/v2/clients/partners",
        api.token("update:clients"),
        json={"token_endpoint_auth_method": "none"},
    )
    assert response.status_code == 200
    assert stored(app, "partners").client_secret_enc is None


def test_patch_needs_update_scope(api):
    response = call(
        api,
        "PATCH",
        "/api/v2/clients/partners",
        api.token("read:clients"),
        json={"description": "x"},
    )
    assert response.status_code == 403


def test_delete_removes_the_client(api, backend):
    token = api.token("delete:clients", "read:clients")
    assert (
        call(api, "DELETE", "/api/v2/clients/partners", api.token("read:clients")).status_code
        == 403
    )
    assert call(api, "DELETE", "/api/v2/clients/partners", token).status_code == 204
    assert call(api, "GET", "/api/v2/clients/partners", token).status_code == 404


def test_rotate_secret_kills_the_old_one_at_once(app, api):
    created = call(
        api,
        "POST",
        "/api/v2/clients",
        api.token("create:clients"),
        json={"name": "Robot", "app_type": "non_interactive"},
    ).get_json()
    with app.extensions["login_site.sessionmaker"]() as db:
        row = db.execute(
            select(Client).where(Client.client_id == created["client_id"])
        ).scalar_one()
        db.add(
            ClientGrant(
                tenant_id=row.tenant_id,
                client_pk=row.id,
                audience="https://api.example.test/",
                scope=["read:things"],
            )
        )
        db.commit()

    def token_status(secret):
        return api.post(
            "/oauth/token",
            base_url=f"http://{T1}",
            data={"grant_type": "client_credentials", "audience": "https://api.example.test/"},
            headers=basic(created["client_id"], secret),
        ).status_code

    assert token_status(created["client_secret"]) == 200
    assert (
        call(
            api,
            "POST",
            f"/api/v2/clients/{created['client_id']}/rotate-secret",
            api.token("update:clients"),
        ).status_code
        == 403
    )
    response = call(
        api,
        "POST",
        f"/api/v2/clients/{created['client_id']}/rotate-secret",
        api.token("update:client_keys"),
    )
    assert response.status_code == 200
    new_secret = response.get_json()["client_secret"]
    assert new_secret != created["client_secret"]
    assert token_status(created["client_secret"]) == 401
    assert token_status(new_secret) == 200


def test_rotating_a_public_clients_secret_is_400(api):
    response = call(
        api, "POST", "/api/v2/clients/spa/rotate-secret", api.token("update:client_keys")
    )
    assert response.status_code == 400
