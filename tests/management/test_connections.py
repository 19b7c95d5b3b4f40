"""/api/v2/connections and /connections/{id}/clients (management-api.md §5)."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import pytest

from login_site.models import Connection
from tests.conftest import authorize_params
from tests.conftest import start_login
from tests.management.conftest import T1
from tests.management.conftest import T2
from tests.management.conftest import call
from tests.management.conftest import connection_id
from tests.management.conftest import grant_management_api


def stored(app, con_id):
    with app.extensions["login_site.sessionmaker"]() as db:
        return db.get(Connection, con_id)


def test_list_and_filter_by_strategy(api):
    token = api.token("read:connections")
    everything = call(api, "GET", "/api/v2/connections", token).get_json()
    assert {"db", "partners-db", "sms", "corp-saml"} <= {c["name"] for c in everything}
    databases = call(api, "GET", "/api/v2/connections?strategy=auth0", token).get_json()
    assert databases and {c["strategy"] for c in databases} == {"auth0"}
    both = call(api, "GET", "/api/v2/connections?strategy=auth0&strategy=sms", token).get_json()
    assert {c["strategy"] for c in both} == {"auth0", "sms"}


def test_list_pages_with_totals(api):
    token = api.token("read:connections")
    everything = call(api, "GET", "/api/v2/connections", token).get_json()
    body = call(
        api, "GET", "/api/v2/connections?page=0&per_page=3&include_totals=true", token
    ).get_json()
    assert (body["start"], body["limit"], body["length"]) == (0, 3, 3)
    assert body["total"] == len(everything)
    assert [c["id"] for c in body["connections"]] == [c["id"] for c in everything[:3]]


def test_get_one_never_shows_secrets(app, api):
    body = call(
        api,
        "GET",
        f"/api/v2/connections/{connection_id(app, 'sms')}",
        api.token("read:connections"),
    ).get_json()
    assert body["strategy"] == "sms"
    assert body["options"]["from"] == "+15005550006"
    assert "twilio_token" not in body["options"]
    assert "twilio_sid" not in body["options"]
    assert body["enabled_clients"] == ["web"]


def test_another_tenants_connection_is_404(app, api):
    other = connection_id(app, "db", tenant="t2")
    token = api.token()
    for method, path in [
        ("GET", f"/api/v2/connections/{other}"),
        ("PATCH", f"/api/v2/connections/{other}"),
        ("DELETE", f"/api/v2/connections/{other}"),
        ("GET", f"/api/v2/connections/{other}/clients"),
        ("PATCH", f"/api/v2/connections/{other}/clients"),
    ]:
        response = call(
            api,
            method,
            path,
            token,
            json=[{"client_id": "t2web", "status": False}]
            if path.endswith("/clients")
            else {"display_name": "x"},
        )
        assert response.status_code == 404, (method, path)
        assert response.get_json()["errorCode"] == "inexistent_connection"


def test_t2_does_not_see_t1_connections(app, api):
    grant_management_api(app, "t2", T2, "t2web")
    from tests.management.conftest import T2WEB

    token = api.token("read:connections", host=T2, credentials=T2WEB)
    names = [c["name"] for c in call(api, "GET", "/api/v2/connections", token, host=T2).get_json()]
    assert names == ["db"]


def test_create_a_database_connection(app, api, caplog):
    caplog.set_level(logging.INFO, logger="login_site.events")
    response = call(
        api,
        "POST",
        "/api/v2/connections",
        api.token("create:connections"),
        json={
            "name": "staff-db",
            "strategy": "auth0",
            "options": {"passwordPolicy": "excellent"},
            "enabled_clients": ["web"],
        },
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["id"].startswith("con_")
    assert body["enabled_clients"] == ["web"]
    assert body["options"]["passwordPolicy"] == "excellent"
    assert any(
        '"management.connection_created"' in r.getMessage()
        and '"actor_client_id": "m2m"' in r.getMessage()
        for r in caplog.records
    )


def test_secret_options_are_sealed(app, api, backend):
    response = call(
        api,
        "POST",
        "/api/v2/connections",
        api.token("create:connections", "update:connections"),
        json={
            "name": "corp",
            "strategy": "oidc",
            "options": {
                "issuer": "https://idp.test",
                "client_id": "c",
                "client_secret": "very-secret-value",
            },
        },
    )
    assert response.status_code == 201
    assert "client_secret" not in response.get_json()["options"]
    row = stored(app, response.get_json()["id"])
    assert "very-secret-value" not in str(row.options)
    assert set(row.options["client_secret"]) == {"$encrypted"}
    sealed = row.options["client_secret"]
    # A PATCH that leaves the (never shown) secret out keeps it.
    patched = call(
        api,
        "PATCH",
        f"/api/v2/connections/{row.id}",
        api.token("update:connections"),
        json={"options": {"issuer": "https://idp2.test", "client_id": "c"}},
    )
    assert patched.status_code == 200
    assert patched.get_json()["options"] == {"issuer": "https://idp2.test", "client_id": "c"}
    assert stored(app, row.id).options["client_secret"] == sealed


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"strategy": "auth0"}, "name"),
        ({"name": "x"}, "strategy"),
        ({"name": "-x", "strategy": "auth0"}, "name"),
        ({"name": "x", "strategy": "myspace"}, "strategy"),
        ({"name": "x", "strategy": "auth0", "options": []}, "options"),
        (
            {"name": "x", "strategy": "auth0", "options": {"passwordPolicy": "great"}},
            "options.passwordPolicy",
        ),
        ({"name": "x", "strategy": "auth0", "enabled_clients": ["nope"]}, "enabled_clients[0]"),
        (
            {"name": "x", "strategy": "auth0", "enabled_clients": ["web", "t2web"]},
            "enabled_clients[1]",
        ),
        ({"name": "x", "strategy": "auth0", "colour": "red"}, "colour"),
    ],
)
def test_invalid_create_bodies_are_400_naming_the_field(api, body, field):
    response = call(api, "POST", "/api/v2/connections", api.token("create:connections"), json=body)
    assert response.status_code == 400
    assert response.get_json()["errorCode"] == "invalid_body"
    assert field in response.get_json()["message"]


def test_duplicate_name_is_409(api):
    response = call(
        api,
        "POST",
        "/api/v2/connections",
        api.token("create:connections"),
        json={"name": "db", "strategy": "auth0"},
    )
    assert response.status_code == 409


def test_create_needs_create_scope(api):
    response = call(
        api,
        "POST",
        "/api/v2/connections",
        api.token("update:connections"),
        json={"name": "x", "strategy": "auth0"},
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "renamed"}, "name"),
        ({"strategy": "sms"}, "strategy"),
        ({"options": {"passwordPolicy": "great"}}, "options.passwordPolicy"),
        ({"enabled_clients": ["nope"]}, "enabled_clients[0]"),
        ({"shiny": True}, "shiny"),
    ],
)
def test_invalid_patch_is_400(app, api, body, field):
    con_id = connection_id(app, "partners-db")
    response = call(
        api, "PATCH", f"/api/v2/connections/{con_id}", api.token("update:connections"), json=body
    )
    assert response.status_code == 400
    assert field in response.get_json()["message"]
    assert stored(app, con_id).options["passwordPolicy"] == "fair"


def test_patch_replaces_options_whole(app, api):
    con_id = connection_id(app, "partners-db")
    assert (
        call(
            api,
            "PATCH",
            f"/api/v2/connections/{con_id}",
            api.token("read:connections"),
            json={"display_name": "x"},
        ).status_code
        == 403
    )
    response = call(
        api,
        "PATCH",
        f"/api/v2/connections/{con_id}",
        api.token("update:connections"),
        json={"options": {"passwordPolicy": "low"}, "display_name": "Partners"},
    )
    assert response.status_code == 200
    assert response.get_json()["options"] == {"passwordPolicy": "low"}
    assert response.get_json()["display_name"] == "Partners"


def test_delete(app, api, backend):
    con_id = connection_id(app, "closed-db")
    assert (
        call(
            api, "DELETE", f"/api/v2/connections/{con_id}", api.token("read:connections")
        ).status_code
        == 403
    )
    assert (
        call(
            api, "DELETE", f"/api/v2/connections/{con_id}", api.token("delete:connections")
        ).status_code
        == 204
    )
    assert stored(app, con_id) is None


def test_enabled_clients_are_paged_with_a_checkpoint(app, api):
    con_id = connection_id(app, "db")
    token = api.token("read:connections")
    first = call(api, "GET", f"/api/v2/connections/{con_id}/clients?take=2", token).get_json()
    assert len(first["clients"]) == 2
    rest = call(
        api, "GET", f"/api/v2/connections/{con_id}/clients?take=50&from={first['next']}", token
    ).get_json()
    assert "next" not in rest
    ids = [c["client_id"] for c in first["clients"] + rest["clients"]]
    assert ids == sorted(["web", "spa", "sdk-spa", "sdk-web", "third-party"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"client_id": "web", "status": False}, "array"),
        ([], "1 to 50"),
        ([{"client_id": "web", "status": "off"}], "[0].status"),
        ([{"client_id": "web", "status": False, "x": 1}], "[0].x"),
        (
            [{"client_id": "web", "status": True}, {"client_id": "t2web", "status": True}],
            "[1].client_id",
        ),
        ([{"client_id": "web", "status": True}] * 51, "1 to 50"),
    ],
)
def test_invalid_client_changes_are_400(app, api, body, field):
    con_id = connection_id(app, "partners-db")
    response = call(
        api,
        "PATCH",
        f"/api/v2/connections/{con_id}/clients",
        api.token("update:connections"),
        json=body,
    )
    assert response.status_code == 400
    assert field in response.get_json()["message"]


def test_disabling_a_connection_for_a_client_removes_it_from_the_login_page(app, api, backend, t1):
    con_id = connection_id(app, "partners-db")
    page, _state = start_login(t1, connection="partners-db")
    assert page.status_code == 200

    token = api.token("update:connections", "read:connections")
    response = call(
        api,
        "PATCH",
        f"/api/v2/connections/{con_id}/clients",
        token,
        json=[{"client_id": "web", "status": False}],
    )
    assert response.status_code == 204
    clients = call(api, "GET", f"/api/v2/connections/{con_id}/clients", token).get_json()
    assert [c["client_id"] for c in clients["clients"]] == ["partners"]

    refused = t1.get(
        "/authorize?" + urlencode(authorize_params(connection="partners-db")),
        base_url=f"http://{T1}",
    )
    assert refused.status_code == 400
    assert "not enabled for this application" in refused.get_data(as_text=True)

    response = call(
        api,
        "PATCH",
        f"/api/v2/connections/{con_id}/clients",
        token,
        json=[{"client_id": "web", "status": True}],
    )
    assert response.status_code == 204
    page, _state = start_login(t1, connection="partners-db")
    assert page.status_code == 200
