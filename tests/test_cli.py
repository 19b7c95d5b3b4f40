"""The ``login-site`` command: schema, import, export, key rotation."""

import json
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.fernet import Fernet

from login_site.cli import main
from login_site.models import SigningKey

TENANT = """
tenant: {name: cli, hosts: [cli.test]}
clients:
  - name: app
    client_id: cli-app
    callbacks: ["https://app.test/cb"]
    grant_types: [authorization_code]
databases:
  - {name: db, enabled_clients: [app], options: {passwordPolicy: low}}
users:
  - {email: u@example.test, password: "##U_PASSWORD##", connection: db}
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGIN_SITE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("LOGIN_SITE_SECRET_KEY", "c" * 40)
    monkeypatch.setenv("LOGIN_SITE_ENCRYPTION_KEYS", json.dumps([Fernet.generate_key().decode()]))
    monkeypatch.setenv("U_PASSWORD", "secret-pw")
    (tmp_path / "tenant.yaml").write_text(TENANT)
    return tmp_path


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_db_upgrade_then_import_twice_then_export(env):
    assert run("db", "upgrade").exit_code == 0
    first = run("import", str(env / "tenant.yaml"))
    assert first.exit_code == 0 and "created tenant cli" in first.output
    second = run("import", str(env / "tenant.yaml"))
    assert "0 created, 0 updated" in second.output
    exported = run("export", "--tenant", "cli", "--export-ids")
    assert "client_id: cli-app" in exported.output and "secret-pw" not in exported.output


def test_invalid_file_exits_non_zero_with_the_key(env):
    (env / "bad.yaml").write_text("tenant: {name: cli, hosts: 5}\n")
    result = CliRunner().invoke(main, ["import", str(env / "bad.yaml")])
    assert result.exit_code == 1 and "tenant.hosts" in result.output


def test_keys_rotate_keeps_the_previous_key_published(env):
    run("import", str(env / "tenant.yaml"))
    result = run("keys", "rotate", "--tenant", "cli")
    assert result.exit_code == 0 and "new current key" in result.output
    engine = sa.create_engine(f"sqlite:///{env / 'cli.db'}")
    with engine.connect() as conn:
        states = sorted(conn.execute(sa.select(SigningKey.state)).scalars())
    engine.dispose()
    assert states == ["current", "next", "previous"]


def test_keys_rotate_keeps_a_previous_key_as_long_as_the_tenants_api_tokens_live(env):
    """A previous key is retired only once every token it may have signed has expired: the
    tenant's APIs issue access tokens for up to token_lifetime, longer than ID tokens."""
    api = "  - {name: Long, identifier: https://l.test/, token_lifetime: 200000}\n"
    (env / "tenant.yaml").write_text(f"{TENANT}resourceServers:\n{api}")
    assert run("db", "upgrade").exit_code == 0
    assert run("import", str(env / "tenant.yaml")).exit_code == 0
    assert run("keys", "rotate", "--tenant", "cli").exit_code == 0
    engine = sa.create_engine(f"sqlite:///{env / 'cli.db'}")
    previous = SigningKey.__table__.c.state == "previous"
    with engine.begin() as conn:
        # Rotated 2 days ago: past the ID and access token lifetimes, within the API's.
        conn.execute(
            SigningKey.__table__.update()
            .where(previous)
            .values(rotated_at=datetime.now(UTC) - timedelta(days=2))
        )
    assert run("keys", "rotate", "--tenant", "cli").exit_code == 0
    with engine.connect() as conn:
        states = sorted(conn.execute(sa.select(SigningKey.state)).scalars())
    engine.dispose()
    assert states == ["current", "next", "previous", "previous"]


M2M_TENANT = """
tenant: {name: ops, hosts: [ops.test, localhost:5999]}
clients:
  - name: robot
    client_id: robot
    client_secret: "robot-secret-0123456789abcdefghijklmnop"
    app_type: non_interactive
    token_endpoint_auth_method: client_secret_basic
    grant_types: [client_credentials]
"""


def test_management_authorize_lets_an_application_call_the_management_api(env):
    import base64

    from login_site.app import create_app

    (env / "ops.yaml").write_text(M2M_TENANT)
    assert run("import", str(env / "ops.yaml")).exit_code == 0
    result = run("management", "authorize", "--tenant", "ops", "--client", "robot")
    assert result.exit_code == 0, result.output
    assert "robot may call https://ops.test/api/v2/" in result.output
    assert "http://localhost:5999/api/v2/" in result.output  # loopback alias over http
    assert "http://ops.test/" not in result.output
    again = run("management", "authorize", "--tenant", "ops", "--client", "robot")
    assert again.exit_code == 0  # idempotent
    client = create_app().test_client()
    basic = base64.b64encode(b"robot:robot-secret-0123456789abcdefghijklmnop").decode()
    token = client.post(
        "/oauth/token",
        base_url="https://ops.test",
        headers={"Authorization": f"Basic {basic}"},
        data={"grant_type": "client_credentials", "audience": "https://ops.test/api/v2/"},
    )
    assert token.status_code == 200, token.get_data(as_text=True)
    listing = client.get(
        "/api/v2/clients",
        base_url="https://ops.test",
        headers={"Authorization": f"Bearer {token.get_json()['access_token']}"},
    )
    assert listing.status_code == 200 and listing.get_json()[0]["client_id"] == "robot"


def test_management_authorize_refuses_unknown_clients_and_scopes(env):
    (env / "ops.yaml").write_text(M2M_TENANT)
    run("import", str(env / "ops.yaml"))
    nobody = CliRunner().invoke(
        main, ["management", "authorize", "--tenant", "ops", "--client", "x"]
    )
    assert nobody.exit_code == 1 and "no application x" in nobody.output
    bad = CliRunner().invoke(
        main,
        ["management", "authorize", "--tenant", "ops", "--client", "robot", "--scope", "root:all"],
    )
    assert bad.exit_code == 1 and "unknown scopes: root:all" in bad.output
