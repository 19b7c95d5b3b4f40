"""Hot paths stay lean: SQL statements per token exchange (issue 4, Performance)."""

import sqlalchemy as sa

from tests.conftest import T1
from tests.conftest import basic
from tests.conftest import login_code
from tests.conftest import redeem

M2M = ("m2m", "m2m-secret-0123456789abcdefghijklmnop")


class StatementCounter:
    def __init__(self, engine):
        self.engine = engine
        self.statements: list[str] = []

    def __enter__(self):
        sa.event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc):
        sa.event.remove(self.engine, "before_cursor_execute", self._count)

    def _count(self, conn, cursor, statement, *args):
        if not statement.lstrip().upper().startswith(("PRAGMA", "SAVEPOINT", "RELEASE")):
            self.statements.append(statement.split()[0].upper())


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
    # tenant, client, client grant, API; the signer is cached
    # after the first exchange (keys.signer): no writes.
    assert len(counter.statements) <= 4, counter.statements
    assert "INSERT" not in counter.statements and "UPDATE" not in counter.statements


def test_authorization_code_exchange_statement_budget(app, client):
    code = login_code(client)
    with StatementCounter(app.extensions["login_site.engine"]) as counter:
        assert redeem(client, code).status_code == 200
    # tenant, client, spend and read the code (UPDATE ... RETURNING), user, key, token row.
    assert len(counter.statements) <= 6, counter.statements
