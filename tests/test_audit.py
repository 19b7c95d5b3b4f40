"""Security events kept in the database (checklist LOG-01, LOG-02, MG-09), on both engines."""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner

from login_site import audit
from login_site import migrate
from login_site.cli import main
from login_site.db import Base
from login_site.events import event
from login_site.models import SecurityEvent
from login_site.models import Tenant
from tests.conftest import ALICE
from tests.conftest import T1
from tests.conftest import WEB_SECRET
from tests.conftest import basic
from tests.conftest import login_code
from tests.conftest import redeem
from tests.conftest import start_login
from tests.conftest import submit_login
from tests.management.conftest import M2M
from tests.management.conftest import bearer
from tests.management.conftest import grant_management_api


def rows(app, **where) -> list[SecurityEvent]:
    with app.extensions["login_site.sessionmaker"]() as db:
        query = sa.select(SecurityEvent).order_by(SecurityEvent.id)
        for key, value in where.items():
            query = query.where(getattr(SecurityEvent, key) == value)
        return list(db.scalars(query))


def tenant_id(app, name: str = "t1") -> str:
    with app.extensions["login_site.sessionmaker"]() as db:
        return db.scalar(sa.select(Tenant.id).where(Tenant.name == name))


def table_text(app) -> str:
    """Every stored value of every event, as one string to search for secrets."""
    with app.extensions["login_site.engine"].connect() as conn:
        return json.dumps(
            [list(r) for r in conn.execute(sa.select(SecurityEvent.__table__))], default=str
        )


def test_the_migration_creates_the_table_the_model_describes(backend, app):
    with app.extensions["login_site.engine"].connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = [d for d in compare_metadata(context, Base.metadata) if "security_events" in str(d)]
    assert diffs == []


def test_failed_and_successful_logins_leave_rows_with_their_fields(backend, app, client):
    before = datetime.now(UTC)
    page, state = start_login(client)
    failed = submit_login(client, page, state, ALICE[0], "a-wrong-Password-1")
    assert failed.status_code == 400
    login_code(client)
    logins = rows(app, name="login")
    assert [r.outcome for r in logins] == ["failure", "success"]
    failure, success = logins
    for row in logins:
        assert row.tenant_id == tenant_id(app)
        assert row.client_id == "web"
        assert row.connection == "db"
        assert row.ip == "127.0.0.1"
        assert row.request_id
        assert row.time.tzinfo is not None
        assert before - timedelta(seconds=1) <= row.time <= datetime.now(UTC)
    assert failure.details == {"reason": "invalid_user_password"}
    assert success.user_id.startswith("auth0|")
    assert failure.time <= success.time


def test_no_secret_reaches_the_table(backend, app, client):
    page, state = start_login(client)
    submit_login(client, page, state, ALICE[0], "a-wrong-Password-1")
    code = login_code(client)
    tokens = redeem(client, code).json
    assert redeem(client, code).status_code == 400  # a replayed code is an event too
    client.post(
        "/dbconnections/change_password",
        base_url=f"http://{T1}",
        json={"client_id": "web", "email": ALICE[0], "connection": "db"},
    )
    cookie = client.get_cookie("login_site_session", domain="t1.test").value
    assert {(r.name, r.outcome) for r in rows(app)} >= {
        ("login", "failure"),
        ("login", "success"),
        ("token", "invalid_grant"),
        ("change_password", "sent"),
    }
    text = table_text(app)
    for secret in (
        ALICE[1],
        "a-wrong-Password-1",
        code,
        tokens["access_token"],
        tokens["id_token"],
        tokens.get("refresh_token") or tokens["access_token"],
        WEB_SECRET,
        cookie,
        state,
        ALICE[0],
    ):
        assert secret not in text


def test_a_management_client_update_is_audited_with_actor_action_target_and_time(backend, app):
    grant_management_api(app, "t1", T1, "m2m")
    api = app.test_client()
    token = api.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        data={
            "grant_type": "client_credentials",
            "audience": f"http://{T1}/api/v2/",
            "scope": "update:clients",
        },
        headers=basic(*M2M),
    ).get_json()["access_token"]
    before = datetime.now(UTC)
    response = api.patch(
        "/api/v2/clients/partners",
        base_url=f"http://{T1}",
        headers=bearer(token),
        json={"description": "audited"},
    )
    assert response.status_code == 200
    (row,) = rows(app, name="management.client_updated")
    assert row.actor == "client:m2m"
    assert row.target == "client:partners"
    assert row.outcome == "success"
    assert row.tenant_id == tenant_id(app)
    assert before - timedelta(seconds=1) <= row.time <= datetime.now(UTC)
    assert row.time.utcoffset() == timedelta(0)
    assert token not in table_text(app)


def test_client_credentials_tokens_are_not_stored(backend, app):
    grant_management_api(app, "t1", T1, "m2m")
    response = app.test_client().post(
        "/oauth/token",
        base_url=f"http://{T1}",
        data={"grant_type": "client_credentials", "audience": f"http://{T1}/api/v2/"},
        headers=basic(*M2M),
    )
    assert response.status_code == 200
    assert rows(app) == []


def test_a_wrong_client_secret_at_the_token_endpoint_is_stored(app):
    response = app.test_client().post(
        "/oauth/token",
        base_url=f"http://{T1}",
        data={"grant_type": "client_credentials"},
        headers=basic("m2m", "not-the-secret-0123456789abcdefghijk"),
    )
    assert response.status_code == 401
    (row,) = rows(app, name="token")
    assert row.outcome == "invalid_client"
    assert row.details == {"grant_type": "client_credentials"}
    assert "not-the-secret" not in table_text(app)


def test_an_unknown_host_stores_nothing(app):
    assert app.test_client().get("/login", base_url="http://nowhere.test").status_code == 404
    assert rows(app) == []


@pytest.mark.parametrize(
    ("name", "outcome", "fields", "kept"),
    [
        ("login", "failure", {}, True),
        ("login", "success", {}, True),
        ("signup", "success", {}, True),
        ("brute_force", "blocked", {}, True),
        ("brute_force", "unblocked", {}, True),
        ("change_password", "success", {}, True),
        ("reset_password", "success", {}, True),
        ("management.client_updated", "success", {}, True),
        ("dashboard.user_blocked", "success", {}, True),
        ("token", "invalid_grant", {"grant_type": "authorization_code"}, True),
        ("token", "issued", {"grant_type": "client_credentials"}, False),
        ("token", "issued", {"grant_type": "authorization_code"}, False),
        ("token", "issued", {"grant_type": "refresh_token"}, False),
        (
            "token",
            "issued",
            {"grant_type": "http://auth0.com/oauth/grant-type/password-realm"},
            True,
        ),
        (
            "token",
            "issued",
            {
                "grant_type": "urn:auth0:params:oauth:grant-type:token-exchange:"
                "federated-connection-access-token"
            },
            True,
        ),
        ("passwordless", "verify_failed", {}, True),
        ("passwordless", "sent", {}, False),
        ("mail", "sent", {}, False),
        ("sms", "sent", {}, False),
        ("rate_limit", "exceeded", {}, False),
        ("request_rejected", "page", {}, False),
    ],
)
def test_the_allow_list_decides_what_is_stored(name, outcome, fields, kept):
    assert audit.persisted(name, outcome, fields) is kept


def test_secret_looking_fields_and_control_characters_never_reach_details():
    row = audit.make_row(
        "ten_1",
        "login",
        "failure\r\nFAKE success",
        {
            "reason": "wrong_password\nlogin success",
            "password": "hunter2",
            "code": "abc",
            "refresh_token": "rt",
            "email": "a@example.test",
            "client_secret": "s",
            "id_token_hint": "x",
            "connection": "db",
            "failures": 3,
        },
    )
    assert row["details"] == {"reason": "wrong_password login success", "failures": 3}
    assert row["outcome"] == "failure  FAKE success"
    assert row["connection"] == "db"


def test_an_event_outside_a_request_is_written_at_once(backend, app):
    with app.app_context():
        event("dashboard.import_applied", "success", tenant_id=tenant_id(app), actor="cli")
        event("login", "success")  # no tenant outside a request: only logged
    (row,) = rows(app)
    assert (row.name, row.actor, row.ip) == ("dashboard.import_applied", "cli", None)


def test_prune_deletes_only_old_events(backend, app, monkeypatch):
    tid = tenant_id(app)
    now = datetime.now(UTC)
    audit.write(
        app.extensions["login_site.engine"],
        [
            audit.make_row(tid, "login", "success", {}, time=now - timedelta(days=40)),
            audit.make_row(tid, "login", "failure", {}, time=now - timedelta(days=1)),
        ],
    )
    with app.extensions["login_site.sessionmaker"]() as db:
        assert audit.prune(db, 30) == 1
        db.commit()
    assert [r.outcome for r in rows(app)] == ["failure"]


def test_events_prune_command(app, monkeypatch):
    tid = tenant_id(app)
    old = datetime.now(UTC) - timedelta(days=10)
    audit.write(
        app.extensions["login_site.engine"], [audit.make_row(tid, "login", "success", {}, time=old)]
    )
    monkeypatch.setenv("LOGIN_SITE_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("LOGIN_SITE_SECRET_KEY", app.config["SECRET_KEY"])
    monkeypatch.setenv("LOGIN_SITE_ENCRYPTION_KEYS", json.dumps(app.config["ENCRYPTION_KEYS"]))
    result = CliRunner().invoke(main, ["events", "prune", "--days", "7"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "1 event(s) deleted" in result.output
    assert rows(app) == []


def test_the_logs_query_filters_pages_and_stays_in_its_tenant(backend, app):
    t1, t2 = tenant_id(app, "t1"), tenant_id(app, "t2")
    now = datetime.now(UTC)
    audit.write(
        app.extensions["login_site.engine"],
        [
            audit.make_row(
                t1, "login", "failure", {"user_id": f"auth0|{i}"}, time=now - timedelta(minutes=i)
            )
            for i in range(5)
        ]
        + [audit.make_row(t1, "signup", "success", {"connection": "db"}, time=now)]
        + [audit.make_row(t2, "login", "failure", {}, time=now)],
    )
    with app.extensions["login_site.sessionmaker"]() as db:
        page, total = audit.search(db, t1, audit.EventFilter(name="login"), page=0, per_page=2)
        assert total == 5
        assert [r.user_id for r in page] == ["auth0|0", "auth0|1"]
        page, _ = audit.search(db, t1, audit.EventFilter(name="login"), page=2, per_page=2)
        assert [r.user_id for r in page] == ["auth0|4"]
        _, total = audit.search(
            db, t1, audit.EventFilter(since=now - timedelta(minutes=2, seconds=30))
        )
        assert total == 4  # three logins and the sign-up
        _, total = audit.search(db, t1, audit.EventFilter(connection="db", outcome="success"))
        assert total == 1
        assert [r.user_id for r in audit.for_user(db, t1, "auth0|3")] == ["auth0|3"]
        assert audit.event_names(db, t1) == ["login", "signup"]


def test_migration_0007_goes_down_and_up_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url, "0007")
    engine = sa.create_engine(url)
    assert "security_events" in sa.inspect(engine).get_table_names()
    migrate.downgrade(url, "0006")
    assert "security_events" not in sa.inspect(engine).get_table_names()
    migrate.upgrade(url, "0007")
    columns = {c["name"] for c in sa.inspect(engine).get_columns("security_events")}
    assert {"tenant_id", "time", "name", "outcome", "actor", "target", "details"} <= columns
    engine.dispose()


def test_an_event_naming_another_tenant_is_filed_under_it(backend, app):
    with app.extensions["login_site.sessionmaker"]() as db:
        t1 = db.scalar(sa.select(Tenant).where(Tenant.name == "t1"))
        db.expunge(t1)
    with app.test_request_context("/", base_url=f"http://{T1}"):
        from flask import g

        g.tenant = t1
        event("dashboard.client_updated", "success", tenant="t2", actor="auth0|admin")
        event("dashboard.client_updated", "failure", tenant="no-such-tenant")
        event("login", "success", user_id="auth0|x")
    # Written when the request's context ends, in one statement.
    stored = {(r.name, r.outcome): r.tenant_id for r in rows(app)}
    assert stored == {
        ("dashboard.client_updated", "success"): tenant_id(app, "t2"),
        ("login", "success"): tenant_id(app, "t1"),
    }
