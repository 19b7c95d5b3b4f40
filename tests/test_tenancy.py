"""Tenants by host: checklist MG-01, MG-02."""

import pytest
import sqlalchemy as sa

from login_site import tenancy
from login_site.db import get_db
from login_site.models import Tenant
from login_site.models import TenantHost
from login_site.tenancy import current_tenant
from tests.conftest import T1
from tests.conftest import T2
from tests.conftest import login_code
from tests.conftest import redeem
from tests.conftest import start_login
from tests.conftest import submit_login


@pytest.mark.parametrize(
    "path", ["/.well-known/openid-configuration", "/authorize", "/login", "/.well-known/jwks.json"]
)
def test_unknown_host_is_a_plain_404(client, path):
    response = client.get(path, base_url="http://unknown.localhost")
    assert response.status_code == 404
    assert "demo" not in response.get_data(as_text=True).lower()


def test_host_matching_ignores_case(client):
    response = client.get("/.well-known/openid-configuration", base_url="http://T1.TEST")
    assert response.status_code == 200
    assert response.json["issuer"] == "http://t1.test/"


def test_each_tenant_has_its_own_keys(client):
    one = client.get("/.well-known/jwks.json", base_url=f"http://{T1}").json
    two = client.get("/.well-known/jwks.json", base_url=f"http://{T2}").json
    assert {k["kid"] for k in one["keys"]}.isdisjoint({k["kid"] for k in two["keys"]})


def test_access_token_of_one_tenant_is_rejected_by_the_other(client):
    access = redeem(client, login_code(client)).json["access_token"]
    response = client.get(
        "/userinfo", base_url=f"http://{T2}", headers={"Authorization": f"Bearer {access}"}
    )
    assert response.status_code == 401


def test_code_of_one_tenant_cannot_be_redeemed_at_the_other(client):
    code = login_code(client)
    response = redeem(client, code, host=T2)
    assert response.status_code in (400, 401)


def test_same_email_in_two_tenants_are_two_users_with_their_own_passwords(client):
    # alice exists in both tenants with different passwords.
    page, state = start_login(client, T2, client_id="t2web")
    response = submit_login(
        client, page, state, "alice@example.test", "correct horse battery Staple1", host=T2
    )
    assert response.status_code == 400
    assert "Wrong email or password." in response.get_data(as_text=True)
    response = submit_login(client, page, state, "alice@example.test", "alice-in-t2", host=T2)
    assert response.status_code == 302


def test_session_of_one_tenant_does_not_log_in_at_the_other(client):
    login_code(client)
    response = client.get(
        "/authorize",
        base_url=f"http://{T2}",
        query_string={
            "client_id": "t2web",
            "redirect_uri": "https://app.test/cb",
            "response_type": "code",
            "scope": "openid",
            "prompt": "none",
            "state": "s",
        },
    )
    assert "error=login_required" in response.headers["Location"]


# --- the tenant cache (docs/architecture.md, Performance) -----------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reads_of(app, make_request, *tables: str) -> int:
    """SELECTs from any of these tables while ``make_request`` runs."""
    seen: list[str] = []
    froms = tuple(f"FROM {table}{end}" for table in tables for end in (" ", "\n"))

    def record(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT") and any(f in statement for f in froms):
            seen.append(statement)

    engine = app.extensions["login_site.engine"]
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        make_request()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return len(seen)


def tenant_reads(app, make_request) -> int:
    return reads_of(app, make_request, "tenants", "tenant_hosts")


def discovery(client, host: str = T1):
    return client.get("/.well-known/openid-configuration", base_url=f"http://{host}")


@pytest.fixture
def clock(app):
    clock = Clock()
    app.extensions[tenancy.CACHE].clock = clock
    return clock


def test_a_worker_reads_a_tenant_once_per_cache_period(backend, app, client, clock):
    assert tenant_reads(app, lambda: discovery(client)) == 1
    assert tenant_reads(app, lambda: discovery(client)) == 0
    assert tenant_reads(app, lambda: redeem(client, login_code(client))) == 0
    clock.now += tenancy.TENANT_CACHE_SECONDS + 0.01
    assert tenant_reads(app, lambda: discovery(client)) == 1


def test_a_host_removed_by_this_process_stops_answering_at_once(backend, app, client, clock, db):
    assert discovery(client).status_code == 200
    db.delete(db.get(TenantHost, T1))
    db.commit()
    assert discovery(client).status_code == 404


def test_a_bulk_change_by_this_process_is_seen_at_once(backend, app, client, clock, db):
    assert discovery(client).status_code == 200
    db.execute(sa.update(TenantHost).where(TenantHost.host == T1).values(host="moved.test"))
    db.commit()
    assert discovery(client).status_code == 404
    assert discovery(client, "moved.test").status_code == 200


def test_a_change_by_another_process_is_seen_after_the_cache_period(backend, app, client, clock):
    assert discovery(client).status_code == 200
    # Another worker's write: the same database, none of this process's sessions.
    other = sa.create_engine(app.extensions["login_site.engine"].url)
    try:
        with other.begin() as conn:
            conn.execute(sa.delete(TenantHost).where(TenantHost.host == T1))
    finally:
        other.dispose()
    assert discovery(client).status_code == 200  # within the period: as read
    clock.now += tenancy.TENANT_CACHE_SECONDS + 0.01
    assert discovery(client).status_code == 404


def test_unknown_hosts_are_never_cached(app, client, clock):
    for i in range(20):
        assert discovery(client, f"unknown{i}.localhost").status_code == 404
    assert discovery(client).status_code == 200
    assert set(app.extensions[tenancy.CACHE]._entries) == {T1}


def test_a_cached_tenant_is_a_live_row_of_the_request(backend, app, client, clock):
    """Its relationships load, its settings are its own copy, and changes to it are saved."""
    assert discovery(client).status_code == 200
    with app.test_request_context("/authorize", base_url=f"http://{T1}"):
        app.preprocess_request()
        assert T1 in {h.host for h in current_tenant().hosts}
        current_tenant().settings["scribbled"] = True  # in place, not saved
    with app.test_request_context("/authorize", base_url=f"http://{T1}"):
        assert tenant_reads(app, app.preprocess_request) == 0
        tenant = current_tenant()
        assert "scribbled" not in tenant.settings
        tenant.friendly_name = "Renamed"
        tenant_id = tenant.id
        get_db().commit()
    with app.test_request_context("/authorize", base_url=f"http://{T1}"):
        assert tenant_reads(app, app.preprocess_request) == 1
        assert current_tenant().friendly_name == "Renamed"
    with app.extensions["login_site.sessionmaker"]() as session:
        assert session.get(Tenant, tenant_id).friendly_name == "Renamed"
