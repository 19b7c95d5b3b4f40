"""/api/v2/client-grants: list (filters audience, client_id), create, update, delete;
one grant per (client, API), both of the tenant (management-api.md §7)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func
from sqlalchemy import select

from login_site.models import Client
from login_site.models import ClientGrant
from tests.conftest import basic
from tests.management.conftest import M2M
from tests.management.conftest import T1
from tests.management.conftest import T2
from tests.management.conftest import bearer
from tests.management.conftest import call
from tests.management.conftest import grant_management_api

THINGS = "https://api.example.test/"
SYSTEM = f"http://{T1}/api/v2/"
PARTNERS = ("partners", "partners-secret-0123456789abcdefghijk")


def grant_count(app) -> int:
    with app.extensions["login_site.sessionmaker"]() as db:
        return db.scalar(select(func.count()).select_from(ClientGrant))


def things_grant(api, token) -> dict:
    grants = call(api, "GET", f"/api/v2/client-grants?audience={THINGS}", token).get_json()
    assert len(grants) == 1
    return grants[0]


def client_credentials(api, credentials, audience=THINGS):
    """m2m authenticates with client_secret_basic, partners with client_secret_post."""
    data = {"grant_type": "client_credentials", "audience": audience}
    if credentials == M2M:
        return api.post("/oauth/token", base_url=f"http://{T1}", data=data, headers=basic(*M2M))
    client_id, secret = credentials
    data |= {"client_id": client_id, "client_secret": secret}
    return api.post("/oauth/token", base_url=f"http://{T1}", data=data)


def test_list_shows_client_ids_and_filters(api):
    token = api.token("read:client_grants")
    everything = call(api, "GET", "/api/v2/client-grants", token).get_json()
    assert {(g["client_id"], g["audience"]) for g in everything} == {
        ("m2m", THINGS),
        ("m2m", SYSTEM),
    }
    assert all(g["id"].startswith("cgr_") for g in everything)
    assert things_grant(api, token)["scope"] == ["read:things"]
    assert call(api, "GET", "/api/v2/client-grants?client_id=web", token).get_json() == []
    by_client = call(api, "GET", "/api/v2/client-grants?client_id=m2m", token).get_json()
    assert len(by_client) == 2
    paged = call(
        api, "GET", "/api/v2/client-grants?per_page=1&page=1&include_totals=true", token
    ).get_json()
    assert (paged["start"], paged["length"], paged["total"]) == (1, 1, 2)
    assert paged["client_grants"][0]["id"] == everything[1]["id"]


def test_a_created_grant_lets_the_client_get_tokens(app, api, backend):
    with app.extensions["login_site.sessionmaker"]() as db:  # partners may use the grant type
        client = db.execute(select(Client).where(Client.client_id == "partners")).scalar_one()
        client.grant_types = [*client.grant_types, "client_credentials"]
        db.commit()
    assert client_credentials(api, PARTNERS).status_code == 403
    token = api.token("create:client_grants", "read:client_grants")
    response = call(
        api,
        "POST",
        "/api/v2/client-grants",
        token,
        json={"client_id": "partners", "audience": THINGS, "scope": ["write:things"]},
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["client_id"], body["audience"], body["scope"]) == (
        "partners",
        THINGS,
        ["write:things"],
    )
    issued = client_credentials(api, PARTNERS)
    assert issued.status_code == 200, issued.get_json()
    assert issued.get_json()["scope"] == "write:things"


def test_one_grant_per_client_and_api(app, api, backend):
    token = api.token("create:client_grants")
    before = grant_count(app)
    response = call(
        api,
        "POST",
        "/api/v2/client-grants",
        token,
        json={"client_id": "m2m", "audience": THINGS, "scope": []},
    )
    assert response.status_code == 409
    assert response.get_json()["statusCode"] == 409
    assert grant_count(app) == before


def test_parallel_creations_give_one_grant_and_one_409(backend, live_server):
    """The unique (client, audience) constraint settles a race: no 500, one row."""
    import requests

    grant_management_api(live_server.app, "t1", "127.0.0.1:" + str(live_server.port), "m2m")
    base = live_server.api_url("t1", "")
    token = requests.post(
        f"{base}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "audience": f"{base}/api/v2/",
            "scope": "create:client_grants",
        },
        auth=M2M,
        timeout=10,
    ).json()["access_token"]
    statuses: list[int] = []
    start = threading.Barrier(6)

    def create() -> None:
        start.wait()
        response = requests.post(
            f"{base}/api/v2/client-grants",
            json={"client_id": "web", "audience": THINGS, "scope": ["read:things"]},
            headers=bearer(token),
            timeout=30,
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [201] + [409] * 5
    with live_server.app.extensions["login_site.sessionmaker"]() as db:
        web = db.execute(select(Client.id).where(Client.client_id == "web")).scalar_one()
        rows = db.scalar(
            select(func.count())
            .select_from(ClientGrant)
            .where(ClientGrant.client_pk == web, ClientGrant.audience == THINGS)
        )
    assert rows == 1


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({"client_id": "nope", "audience": THINGS, "scope": []}, 404, "inexistent_client"),
        ({"client_id": "t2web", "audience": THINGS, "scope": []}, 404, "inexistent_client"),
        (
            {"client_id": "web", "audience": "https://unknown.test/", "scope": []},
            404,
            "inexistent_resource_server",
        ),
        (
            {"client_id": "web", "audience": f"http://{T2}/api/v2/", "scope": []},
            404,
            "inexistent_resource_server",
        ),
        ({"client_id": "web", "audience": THINGS, "scope": ["delete:all"]}, 400, "invalid_body"),
        ({"client_id": "web", "audience": THINGS, "scope": "read:things"}, 400, "invalid_body"),
        ({"client_id": "web", "audience": THINGS}, 400, "invalid_body"),
        ({"client_id": 5, "audience": THINGS, "scope": []}, 400, "invalid_body"),
        ({"client_id": "web", "audience": THINGS, "scope": [], "id": "x"}, 400, "invalid_body"),
        ({"client_id": "web", "audience": THINGS, "scope": [], "extra": 1}, 400, "invalid_body"),
    ],
)
def test_client_and_api_must_exist_in_the_tenant(app, api, data, status, code):
    grant_management_api(app, "t2", T2, "t2web")
    before = grant_count(app)
    response = call(api, "POST", "/api/v2/client-grants", api.token(), json=data)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["errorCode"] == code
    assert grant_count(app) == before


def test_update_replaces_the_scope_only(api, backend):
    token = api.token("update:client_grants", "read:client_grants")
    grant = things_grant(api, token)
    response = call(
        api,
        "PATCH",
        f"/api/v2/client-grants/{grant['id']}",
        token,
        json={"scope": ["read:things", "write:things"]},
    )
    assert response.status_code == 200
    assert response.get_json()["scope"] == ["read:things", "write:things"]
    assert client_credentials(api, M2M).get_json()["scope"] == "read:things write:things"
    for field, value in (("audience", SYSTEM), ("client_id", "web"), ("id", "cgr_x")):
        refused = call(
            api, "PATCH", f"/api/v2/client-grants/{grant['id']}", token, json={field: value}
        )
        assert refused.status_code == 400
        assert f"'{field}'" in refused.get_json()["message"]
    undefined = call(
        api, "PATCH", f"/api/v2/client-grants/{grant['id']}", token, json={"scope": ["x:y"]}
    )
    assert undefined.status_code == 400
    assert things_grant(api, token)["scope"] == ["read:things", "write:things"]


def test_delete_stops_new_tokens(app, api, backend):
    token = api.token("delete:client_grants", "read:client_grants")
    grant = things_grant(api, token)
    assert call(api, "DELETE", f"/api/v2/client-grants/{grant['id']}", token).status_code == 204
    assert client_credentials(api, M2M).status_code == 403
    again = call(api, "DELETE", f"/api/v2/client-grants/{grant['id']}", token)
    assert again.status_code == 404
    assert again.get_json()["errorCode"] == "inexistent_client_grant"


def test_another_tenants_grant_is_404(app, api):
    grant_management_api(app, "t2", T2, "t2web")
    with app.extensions["login_site.sessionmaker"]() as db:
        other = db.execute(
            select(ClientGrant.id).where(ClientGrant.audience == f"http://{T2}/api/v2/")
        ).scalar_one()
    token = api.token()
    for method in ("PATCH", "DELETE"):
        response = call(api, method, f"/api/v2/client-grants/{other}", token, json={"scope": []})
        assert response.status_code == 404, method
    listed = call(api, "GET", f"/api/v2/client-grants?audience=http://{T2}/api/v2/", token)
    assert listed.get_json() == []
    with app.extensions["login_site.sessionmaker"]() as db:
        assert db.get(ClientGrant, other).scope


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/api/v2/client-grants", "read:client_grants"),
        ("POST", "/api/v2/client-grants", "create:client_grants"),
        ("PATCH", "/api/v2/client-grants/cgr_x", "update:client_grants"),
        ("DELETE", "/api/v2/client-grants/cgr_x", "delete:client_grants"),
    ],
)
def test_each_operation_needs_its_scope(api, method, path, scope):
    response = call(api, method, path, api.token("read:clients"), json={})
    assert response.status_code == 403
    assert response.get_json()["message"].endswith(scope)
