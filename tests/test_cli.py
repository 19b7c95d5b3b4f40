"""The ``login-site`` command: schema, import, export, key rotation."""

import json

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
    assert states == ["current", "previous"]
