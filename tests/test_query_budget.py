"""Hot paths stay lean: SQL statements per token exchange (issue 4, Performance)."""

from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from login_site import db
from login_site.models import Tenant
from tests.conftest import ALICE
from tests.conftest import T1
from tests.conftest import authorize_params
from tests.conftest import basic
from tests.conftest import login_code
from tests.conftest import query_of
from tests.conftest import redeem
from tests.conftest import start_login
from tests.conftest import submit_login

M2M = ("m2m", "m2m-secret-0123456789abcdefghijklmnop")


class StatementCounter:
    def __init__(self, engine):
        self.engine = engine
        self.statements: list[str] = []

        self.commits = 0

    def __enter__(self):
        sa.event.listen(self.engine, "before_cursor_execute", self._count)
        sa.event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *exc):
        sa.event.remove(self.engine, "before_cursor_execute", self._count)
        sa.event.remove(self.engine, "commit", self._commit)

    def _count(self, conn, cursor, statement, *args):
        if not statement.lstrip().upper().startswith(("PRAGMA", "SAVEPOINT", "RELEASE")):
            self.statements.append(statement.split()[0].upper())

    def _commit(self, conn):
        self.commits += 1


def test_client_credentials_exchange_statement_budget(app, client):
    client.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        headers=basic(*M2M),
        data={"grant_type": "client_credentials", "audience": "https://api.example.test/"},
    )
    with StatementCounter(app.extensions["login_site.engine"]) as counter:
        response = client.post(
            "/oauth/token",
            base_url=f"http://{T1}",
            headers=basic(*M2M),
            data={"grant_type": "client_credentials", "audience": "https://api.example.test/"},
        )
    assert response.status_code == 200
    # client, client grant, API; the tenant (tenancy.TenantCache) and the signer
    # (keys.signer) are cached after the first exchange: no writes.
    assert len(counter.statements) <= 3, counter.statements
    assert "INSERT" not in counter.statements and "UPDATE" not in counter.statements


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_authorization_code_exchange_statement_budget(backend, app, client):
    assert redeem(client, login_code(client)).status_code == 200
    code = code_from_session(client)
    with StatementCounter(app.extensions["login_site.engine"]) as counter:
        assert redeem(client, code).status_code == 200
    # The tenant, client and signer are cached. PostgreSQL spends the code and reads it with
    # its user in one UPDATE ... FROM ... RETURNING; SQLite's RETURNING cannot name the
    # joined table, so it reads the user next. Then the access token row.
    expected = {"postgresql": ["UPDATE", "INSERT"], "sqlite": ["UPDATE", "SELECT", "INSERT"]}
    assert counter.statements == expected[backend], counter.statements


def code_from_session(client) -> str:
    """Another code for the browser's live session: /authorize answers at once."""
    response = client.get("/authorize?" + urlencode(authorize_params()), base_url=f"http://{T1}")
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return query_of(response.headers["Location"])["code"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_authorize_with_a_session_statement_budget(backend, app, client):
    login_code(client)
    with StatementCounter(app.extensions["login_site.engine"]) as counter:
        code_from_session(client)
    # The tenant and client are cached: the session, then the code.
    assert counter.statements == ["SELECT", "INSERT"], counter.statements


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_password_login_statement_budget(backend, app, client):
    page, state = start_login(client)
    with StatementCounter(app.extensions["login_site.engine"]) as counter:
        response = submit_login(client, page, state, *ALICE)
    assert response.status_code == 302
    # The transaction, brute-force state, the credential with its identity and user (one
    # joined query; the enabled connections come from config_cache), then the writes: the
    # session, the user's login count, the transaction's end and the code in one commit, and
    # the security event in its own. The login view takes the user from the strategy: no
    # second lookup by identity.
    selects = [s for s in counter.statements if s == "SELECT"]
    assert len(selects) == 3, counter.statements
    assert len(counter.statements) <= 8, counter.statements
    assert counter.commits == 2, counter.statements


SDK_WEB = ("sdk-web", "sdk-web-secret-0123456789abcdefghijklm")
SDK_CALLBACK = "http://127.0.0.1:8765/callback"


def refresh_token_of(client) -> str:
    code = login_code(
        client,
        client_id="sdk-web",
        redirect_uri=SDK_CALLBACK,
        scope="openid offline_access",
        audience="https://api.example.test/",
    )
    response = redeem(client, code, headers=basic(*SDK_WEB), redirect_uri=SDK_CALLBACK)
    return response.json["refresh_token"]


def rotate(client, token: str):
    return client.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        headers=basic(*SDK_WEB),
        data={"grant_type": "refresh_token", "refresh_token": token},
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_refresh_token_rotation_statement_budget(backend, app, client):
    token = rotate(client, refresh_token_of(client)).json["refresh_token"]
    with StatementCounter(app.extensions["login_site.engine"]) as counter:
        assert rotate(client, token).status_code == 200
    # The client and the API are cached (config_cache). PostgreSQL spends the token, inserts
    # its successor and reads its user in one WITH statement; SQLite has no data-modifying
    # WITH, so it spends, inserts and reads one by one. Then the access token row.
    expected = {
        "postgresql": ["WITH", "INSERT"],
        "sqlite": ["UPDATE", "INSERT", "SELECT", "INSERT"],
    }
    assert counter.statements == expected[backend], counter.statements


# --- round trips on PostgreSQL (login_site/db.py) --------------------------------------------


class ProtocolTrace:
    """libpq's own trace of every connection the app opens from now on: what really went
    over the wire, BEGIN and ROLLBACK included (they never pass through SQLAlchemy)."""

    def __init__(self, app, path):
        self.engine = app.extensions["login_site.engine"]
        self.path = path
        self.file = path.open("ab")
        self.engine.dispose()  # every connection from now on is a new, traced one
        sa.event.listen(self.engine, "connect", self._trace)
        self.mark = 0

    def _trace(self, dbapi_conn, _record):
        dbapi_conn.pgconn.trace(self.file.fileno())

    def start(self) -> None:
        self.file.flush()
        self.mark = self.path.stat().st_size

    def commands(self) -> list[str]:
        """Statements sent since :meth:`start`, first word upper-cased."""
        self.file.flush()
        with self.path.open("rb") as fh:
            fh.seek(self.mark)
            lines = fh.read().decode(errors="replace").splitlines()
        out = []
        for line in lines:
            parts = line.split("\t")
            if len(parts) >= 5 and parts[1] == "F" and parts[3] in ("Query", "Parse"):
                text = parts[4].split('"', 1)[-1] if parts[3] == "Query" else parts[4]
                words = text.replace('"', " ").split()
                out.append(next((w.upper() for w in words if w.isalpha()), "?"))
        return out

    def close(self) -> None:
        sa.event.remove(self.engine, "connect", self._trace)
        self.engine.dispose()
        self.file.close()


@pytest.fixture
def trace(app, tmp_path):
    if app.extensions["login_site.engine"].dialect.name != "postgresql":
        pytest.fail("the protocol trace needs the postgresql backend")
    tracer = ProtocolTrace(app, tmp_path / "libpq.trace")
    yield tracer
    tracer.close()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_read_only_requests_open_no_transaction(backend, app, client, trace):
    # Without Redis the rate limiter counts in the database; these classes are off here.
    app.config.update(RATE_LIMIT_USERINFO="", RATE_LIMIT_JWKS="")
    access = redeem(client, login_code(client)).json["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    get = lambda path: client.get(path, base_url=f"http://{T1}", headers=bearer)  # noqa: E731
    for path in ("/.well-known/openid-configuration", "/userinfo", "/.well-known/jwks.json"):
        assert get(path).status_code == 200
    trace.start()
    assert get("/.well-known/openid-configuration").status_code == 200
    assert trace.commands() == []  # the tenant is cached: no round trip at all
    trace.start()
    assert get("/userinfo").status_code == 200
    assert trace.commands() == ["SELECT"]  # the token with its user: one round trip
    trace.start()
    assert get("/.well-known/jwks.json").status_code == 200
    assert trace.commands() == []  # kept under the tenant's config_version: no round trip


@pytest.mark.parametrize("backend", ["postgresql"])
def test_transactions_begin_right_before_a_write(backend, app, client, trace):
    app.config.update(RATE_LIMIT_TOKEN="")
    assert redeem(client, login_code(client)).status_code == 200  # the signer is cached now
    code = code_from_session(client)
    trace.start()
    assert redeem(client, code).status_code == 200
    # The code is spent (and read with its user) by one conditional UPDATE, committed with
    # the tokens it produced: a concurrent replay waits on its row lock, then revokes them.
    assert trace.commands() == ["BEGIN", "UPDATE", "INSERT", "COMMIT"], trace.commands()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_refresh_token_rotation_is_one_transaction_of_two_statements(backend, app, client, trace):
    app.config.update(RATE_LIMIT_TOKEN="")
    token = rotate(client, refresh_token_of(client)).json["refresh_token"]
    trace.start()
    assert rotate(client, token).status_code == 200
    # Spent, succeeded and read in one statement, committed with the access token: a failure
    # before the COMMIT leaves the presented token unspent.
    assert trace.commands() == ["BEGIN", "WITH", "INSERT", "COMMIT"], trace.commands()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_failed_request_rolls_its_writes_back(backend, app):
    """Reads outside a transaction, writes inside one: a rollback still undoes them all."""
    maker = app.extensions["login_site.sessionmaker"]
    with maker() as session:
        tenant = session.execute(sa.select(Tenant).where(Tenant.name == "t1")).scalar_one()
        tenant_id = tenant.id
        tenant.friendly_name = "never saved"
        session.flush()
        session.execute(sa.update(Tenant).where(Tenant.id == tenant_id).values(name="nope"))
        session.rollback()
    with maker() as session:
        stored = session.get(Tenant, tenant_id)
        assert (stored.name, stored.friendly_name) != ("nope", "never saved")
        assert stored.name == "t1"
    # The connection went back to the pool transactional again, for code outside sessions.
    with app.extensions["login_site.engine"].connect() as conn:
        assert conn.connection.dbapi_connection.autocommit is False


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_connection_lost_while_idle_is_replaced_before_use(backend, app, client, monkeypatch):
    """No pre-ping on every checkout (db.PING_AFTER_IDLE_SECONDS): a pooled connection idle
    for longer is pinged, and one the server closed meanwhile is replaced unseen."""
    engine = app.extensions["login_site.engine"]
    engine.dispose()
    with engine.connect() as conn:  # the pool's only connection, then idle
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    other = sa.create_engine(engine.url)
    try:
        with other.connect() as conn:
            assert conn.execute(sa.select(sa.func.pg_terminate_backend(pid))).scalar()
    finally:
        other.dispose()
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # as if idle for long
    response = client.get("/.well-known/jwks.json", base_url=f"http://{T1}")
    assert response.status_code == 200 and response.json["keys"]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
