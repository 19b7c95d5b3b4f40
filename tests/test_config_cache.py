"""Each worker's copy of clients, APIs, client grants and enabled connections, keyed by
``tenants.config_version`` (login_site/config_cache.py; docs/architecture.md, Performance)."""

import pytest
import sqlalchemy as sa

from login_site import config_cache
from login_site import tenancy
from login_site.models import Client
from login_site.models import ClientGrant
from login_site.models import Connection
from login_site.models import ConnectionClient
from login_site.models import Tenant
from login_site.vault import keyring
from tests.conftest import T1
from tests.conftest import basic
from tests.conftest import make_app
from tests.conftest import start_login
from tests.test_tenancy import Clock
from tests.test_tenancy import reads_of

M2M_SECRET = "m2m-secret-0123456789abcdefghijklmnop"
NEW_SECRET = "m2m-rotated-secret-0123456789abcdefghij"
API = "https://api.example.test/"


def machine_token(client, secret=M2M_SECRET):
    return client.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        headers=basic("m2m", secret),
        data={"grant_type": "client_credentials", "audience": API},
    )


def config_reads(app, make_request) -> int:
    """SELECTs on the configuration tables while ``make_request`` runs."""
    return reads_of(app, make_request, "clients", "resource_servers", "client_grants")


@pytest.fixture
def clock(app):
    clock = Clock()
    app.extensions[tenancy.CACHE].clock = clock
    return clock


def rotate_secret(app, secret: str) -> None:
    with app.app_context(), app.extensions["login_site.sessionmaker"]() as session:
        m2m = session.scalars(sa.select(Client).where(Client.client_id == "m2m")).one()
        m2m.client_secret_enc = keyring().encrypt(secret)
        session.commit()


def versions(app) -> dict[str, int]:
    with app.extensions["login_site.sessionmaker"]() as session:
        return dict(session.execute(sa.select(Tenant.name, Tenant.config_version)).all())


def test_a_machine_token_reads_its_configuration_once_per_version(backend, app, client, clock):
    assert config_reads(app, lambda: machine_token(client)) == 3  # client, grant, API
    for _ in range(3):
        assert config_reads(app, lambda: machine_token(client).status_code) == 0
    clock.now += tenancy.TENANT_CACHE_SECONDS + 0.01  # the tenant is read again: same version
    assert config_reads(app, lambda: machine_token(client)) == 0


def test_a_secret_rotated_by_this_worker_is_refused_at_once(backend, app, client, clock):
    assert machine_token(client).status_code == 200
    before = versions(app)
    rotate_secret(app, NEW_SECRET)
    assert versions(app)["t1"] == before["t1"] + 1
    assert versions(app)["t2"] == before["t2"]  # only the tenant that changed
    assert machine_token(client).status_code == 401
    assert machine_token(client, NEW_SECRET).status_code == 200


def test_a_change_by_another_worker_is_seen_once_the_tenant_is_read_again(
    backend, app, client, clock, tmp_path
):
    assert machine_token(client).status_code == 200
    other = make_app(app.config["DATABASE_URL"], tmp_path / "other")  # another worker
    try:
        rotate_secret(other, NEW_SECRET)
    finally:
        other.extensions["login_site.engine"].dispose()
    # Bounded by the tenant cache period, as every other configuration change.
    assert machine_token(client).status_code == 200
    clock.now += tenancy.TENANT_CACHE_SECONDS + 0.01
    assert machine_token(client).status_code == 401
    assert machine_token(client, NEW_SECRET).status_code == 200


def test_a_bulk_statement_on_a_configuration_table_bumps_every_tenant(backend, app, client, db):
    assert machine_token(client).status_code == 200
    before = versions(app)
    db.execute(sa.delete(ClientGrant).where(ClientGrant.audience == API))
    db.commit()
    after = versions(app)
    assert all(after[name] == before[name] + 1 for name in before)
    assert machine_token(client).status_code == 403


def test_deleting_a_client_is_seen_at_once(backend, app, client, db):
    assert machine_token(client).status_code == 200
    db.delete(db.scalars(sa.select(Client).where(Client.client_id == "m2m")).one())
    db.commit()
    assert machine_token(client).status_code == 401


def test_unknown_client_ids_are_never_cached(app, client):
    for i in range(20):
        response = client.post(
            "/oauth/token",
            base_url=f"http://{T1}",
            headers=basic(f"nobody{i}", "x" * 32),
            data={"grant_type": "client_credentials", "audience": API},
        )
        assert response.status_code == 401
    assert machine_token(client).status_code == 200
    keys = set(app.extensions[config_cache.EXTENSION]._entries)
    assert not any(key[0] == "client" and key[2].startswith("nobody") for key in keys)


def test_the_cache_is_bounded(app, client):
    app.extensions[config_cache.EXTENSION].max_entries = 2
    for _ in range(3):
        assert machine_token(client).status_code == 200  # three entries: client, grant, API
        assert len(app.extensions[config_cache.EXTENSION]._entries) <= 2


def test_every_lookup_gets_its_own_copy(app, client):
    assert machine_token(client).status_code == 200
    with app.test_request_context("/", base_url=f"http://{T1}"):
        app.preprocess_request()
        first = config_cache.client(None, tenancy.current_tenant(), "m2m")
        first.grant_types.append("password")  # in place, never saved
        first.extra["scribbled"] = True
        second = config_cache.client(None, tenancy.current_tenant(), "m2m")
        assert "password" not in second.grant_types
        assert "scribbled" not in second.extra
        assert first is not second


def login_page(client) -> str:
    page, _state = start_login(client)  # the client "web" of t1
    assert page.status_code == 200
    return page.get_data(as_text=True)


def connection_reads(app, make_request) -> int:
    return reads_of(app, make_request, "connections", "connection_clients")


def t1_ids(session, connection: str, client_id: str) -> tuple[str, str]:
    """(Connection.id, Client.id) of t1's connection and client."""
    t1 = session.scalars(sa.select(Tenant).where(Tenant.name == "t1")).one()
    conn = session.scalars(
        sa.select(Connection).where(Connection.tenant_id == t1.id, Connection.name == connection)
    ).one()
    app_client = session.scalars(
        sa.select(Client).where(Client.tenant_id == t1.id, Client.client_id == client_id)
    ).one()
    return conn.id, app_client.id


def test_the_login_page_reads_the_enabled_connections_once_per_version(backend, app, client):
    assert connection_reads(app, lambda: login_page(client)) == 1
    for _ in range(2):
        assert connection_reads(app, lambda: login_page(client)) == 0


def test_enabling_and_disabling_a_connection_is_seen_at_once(backend, app, client, db):
    """As the Management API and ``login-site import`` do it: the connection's list."""
    assert "widget-email" not in login_page(client)
    conn_id, web_pk = t1_ids(db, "widget-email", "web")
    before = versions(app)
    conn = db.get(Connection, conn_id)
    conn.enabled = [*conn.enabled, ConnectionClient(connection_id=conn_id, client_pk=web_pk)]
    db.commit()
    assert versions(app) == {**before, "t1": before["t1"] + 1}  # only the tenant that changed
    assert "widget-email" in login_page(client)
    conn.enabled = [row for row in conn.enabled if row.client_pk != web_pk]
    db.commit()
    assert "widget-email" not in login_page(client)


def test_a_link_row_written_without_its_connection_bumps_every_tenant(backend, app, client, db):
    """A ``connection_clients`` row names no tenant: without its connection at hand, or in a
    bulk statement, every tenant's copies go."""
    conn_id, web_pk = t1_ids(db, "widget-email", "web")
    assert "widget-email" not in login_page(client)
    db.expunge_all()
    before = versions(app)
    db.add(ConnectionClient(connection_id=conn_id, client_pk=web_pk))
    db.commit()
    assert all(versions(app)[name] == before[name] + 1 for name in before)
    assert "widget-email" in login_page(client)
    db.execute(sa.delete(ConnectionClient).where(ConnectionClient.client_pk == web_pk))
    db.commit()
    assert "widget-email" not in login_page(client)
    assert "No sign-in method is enabled for this application" in login_page(client)
