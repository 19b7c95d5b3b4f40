"""Configuration as code (shared/compat/tenant-config.md)."""

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from login_site import migrate
from login_site import tenant_config
from login_site.connections.base import get_strategy
from login_site.models import Client
from login_site.models import Connection
from login_site.models import Tenant
from login_site.models import User
from tests.conftest import make_app

COMPAT = Path(__file__).resolve().parents[2] / "shared" / "compat" / "tenant-config.md"
SECRETS = {
    "DEMO_WEB_CLIENT_SECRET": "w" * 40,
    "DEMO_M2M_CLIENT_SECRET": "m" * 40,
    "TWILIO_ACCOUNT_SID": "AC00",
    "TWILIO_AUTH_TOKEN": "tok",
    "TWILIO_API_BASE": "http://127.0.0.1:9",
    "GOOGLE_CLIENT_ID": "gid",
    "GOOGLE_CLIENT_SECRET": "gsecret",
    "ACME_OIDC_CLIENT_SECRET": "acme",
    "DEMO_ALICE_PASSWORD": "Demo-Alice-Pass1",
}


def compat_example(title: str) -> str:
    text = COMPAT.read_text()
    section = text.split(title, 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def empty_app(backend, request, tmp_path):
    if backend == "postgresql":
        from tests.conftest import _truncate

        app = make_app(request.getfixturevalue("pg_database"), tmp_path)
        _truncate(app)
    else:
        url = f"sqlite:///{tmp_path / 'c.db'}"
        migrate.upgrade(url)
        app = make_app(url, tmp_path)
    yield app
    app.extensions["login_site.engine"].dispose()


def rows(app, model):
    with app.extensions["login_site.sessionmaker"]() as db:
        return list(db.scalars(sa.select(model)))


def test_compat_demo_example_imports_and_reimport_changes_nothing(empty_app):
    text = compat_example("## Example: demo tenant")
    report = tenant_config.import_text(empty_app, text, keywords=SECRETS)
    assert "created tenant demo" in report.lines()
    notes = " ".join(report.notes)
    for name, strategy in (
        ("email", "email"),
        ("sms", "sms"),
        ("google-oauth2", "google-oauth2"),
        ("acme-oidc", "oidc"),
    ):
        noted = f"connection {name}: strategy {strategy} is stored but not available yet" in notes
        assert noted == (get_strategy(strategy) is None), name
    again = tenant_config.import_text(empty_app, text, keywords=SECRETS)
    assert not again.changed, again.lines()
    assert {c.name for c in rows(empty_app, Connection)} >= {
        "Username-Password-Authentication",
        "acme-oidc",
    }


def test_fabrikam_tenants_import_side_by_side(empty_app):
    text = COMPAT.read_text()
    blocks = re.findall(
        r"```yaml\n(.*?)```", text.split("## Example: two isolated tenants")[1], re.S
    )
    keywords = {
        k: "x" * 10
        for k in (
            "FABRIKAM_LDAP_BIND_PASSWORD",
            "FABRIKAM_GOOGLE_CLIENT_ID",
            "FABRIKAM_GOOGLE_CLIENT_SECRET",
            "FB_APP_ID",
            "FB_APP_SECRET",
            "LINKEDIN_CLIENT_ID",
            "LINKEDIN_CLIENT_SECRET",
        )
    }
    for block in blocks:
        tenant_config.import_text(empty_app, block, keywords=keywords)
    assert {t.name for t in rows(empty_app, Tenant)} == {"fabrikam-internal", "fabrikam-public"}


def minimal(**overrides) -> str:
    doc = {
        "tenant": {"name": "mini", "hosts": ["mini.test"]},
        "clients": [
            {
                "name": "app",
                "callbacks": ["https://app.test/cb"],
                "grant_types": ["authorization_code"],
            }
        ],
        "databases": [
            {"name": "db", "enabled_clients": ["app"], "options": {"passwordPolicy": "good"}}
        ],
    }
    for key, value in overrides.items():
        doc[key] = value
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"tenant": {"hosts": ["x.test"]}}, "tenant.name"),
        (
            {"clients": [{"name": "app", "callbacks": ["https://a.test/cb#x"]}]},
            "clients[0].callbacks[0]",
        ),
        (
            {"clients": [{"name": "app", "callbacks": ["https://*.a.test/cb"]}]},
            "clients[0].callbacks[0]",
        ),
        (
            {"clients": [{"name": "app", "callbacks": ["javascript:alert(1)"]}]},
            "clients[0].callbacks[0]",
        ),
        (
            {"clients": [{"name": "app", "callbacks": ["http://a.test/cb"]}]},
            "clients[0].callbacks[0]",
        ),
        ({"clients": [{"name": "app", "client_secret": "short"}]}, "clients[0].client_secret"),
        ({"clients": [{"name": "app", "grant_types": ["magic"]}]}, "clients[0].grant_types[0]"),
        (
            {"databases": [{"name": "db", "enabled_clients": ["ghost"]}]},
            "databases[0].enabled_clients[0]",
        ),
        (
            {"databases": [{"name": "db", "options": {"passwordPolicy": "huge"}}]},
            "databases[0].options.passwordPolicy",
        ),
        ({"connections": [{"name": "c", "strategy": "nonsense"}]}, "connections[0].strategy"),
        (
            {"users": [{"email": "a@example.test", "password": "x", "connection": "db"}]},
            "users[0].password",
        ),
        (
            {
                "users": [
                    {"email": "a@example.test", "password": "Good-Pass1", "connection": "nope"}
                ]
            },
            "users[0].connection",
        ),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_files_name_the_key_and_change_nothing(empty_app, overrides, message):
    text = minimal(**overrides)
    with pytest.raises(tenant_config.ConfigError) as excinfo:
        tenant_config.import_text(empty_app, text)
    assert message in str(excinfo.value)
    assert rows(empty_app, Tenant) == []


def test_failure_late_in_apply_rolls_everything_back(empty_app):
    tenant_config.import_text(empty_app, minimal())
    other = minimal(tenant={"name": "other", "hosts": ["mini.test"]})  # host taken
    with pytest.raises(tenant_config.ConfigError, match="tenant.hosts"):
        tenant_config.import_text(empty_app, other)
    assert [t.name for t in rows(empty_app, Tenant)] == ["mini"]


def test_keywords_replace_and_unresolved_hash_keyword_is_an_error(empty_app):
    text = minimal().replace("mini.test", "##MINI_HOST##")
    with pytest.raises(tenant_config.ConfigError, match="MINI_HOST"):
        tenant_config.import_text(empty_app, text)
    tenant_config.import_text(empty_app, text, keywords={"MINI_HOST": "mini.test"})
    text = minimal().replace("- https://app.test/cb", "- '@@CALLBACK@@'")
    report = tenant_config.import_text(
        empty_app, text.replace("mini", "mini2"), keywords={"CALLBACK": "https://app.test/other"}
    )
    assert report.created
    assert "@@password@@" in tenant_config.replace_keywords("t: '@@password@@'", {"X": 1})


def test_environment_wins_over_keyword_file(tmp_path):
    path = tmp_path / "k.json"
    path.write_text('{"A_B": "file", "C": "file"}')
    values = tenant_config.keyword_values(path, {"A_B": "env", "lower": "skip"})
    assert values == {"A_B": "env", "C": "file"}


def test_dry_run_changes_nothing(empty_app):
    report = tenant_config.import_text(empty_app, minimal(), dry_run=True)
    assert report.created and rows(empty_app, Tenant) == []


def test_objects_missing_from_the_file_survive_unless_allow_delete(empty_app):
    tenant_config.import_text(empty_app, minimal())
    smaller = minimal(databases=[])
    tenant_config.import_text(empty_app, smaller)
    assert [c.name for c in rows(empty_app, Connection)] == ["db"]
    tenant_config.import_text(empty_app, smaller, allow_delete=True)
    assert rows(empty_app, Connection) == []


def test_export_round_trips_and_hides_secrets(empty_app):
    text = compat_example("## Example: demo tenant")
    tenant_config.import_text(empty_app, text, keywords=SECRETS)
    exported = tenant_config.export_yaml(empty_app, "demo")
    assert "w" * 40 not in exported and "##DEMO_WEB_APP_CLIENT_SECRET##" in exported
    assert "password" not in exported.split("users:")[1]
    assert "client_id: demo-web-app" not in exported
    with_ids = tenant_config.export_yaml(empty_app, "demo", export_ids=True, export_secrets=True)
    assert "client_id: demo-web-app" in with_ids and "w" * 40 in with_ids
    # Exported with secrets and ids (plus the seed password), it imports as "no change".
    doc = yaml.safe_load(with_ids)
    doc["users"][0]["password"] = SECRETS["DEMO_ALICE_PASSWORD"]
    again = tenant_config.import_text(empty_app, yaml.safe_dump(doc))
    assert not again.changed, again.lines()


def test_seed_user_password_is_hashed(empty_app):
    text = minimal(
        users=[{"email": "u@example.test", "password": "Good-Pass1", "connection": "db"}]
    )
    tenant_config.import_text(empty_app, text)
    assert [u.email for u in rows(empty_app, User)] == ["u@example.test"]
    clients = rows(empty_app, Client)
    assert clients[0].client_secret_enc  # generated for a confidential client


def test_connection_secrets_are_encrypted_at_rest_and_revealed_only_on_request(empty_app):
    text = compat_example("## Example: demo tenant")
    tenant_config.import_text(
        empty_app, text, keywords={**SECRETS, "TWILIO_AUTH_TOKEN": "tw-secret"}
    )
    engine = empty_app.extensions["login_site.engine"]
    with engine.connect() as conn:
        stored = " ".join(
            str(row[0]) for row in conn.execute(sa.text("SELECT options FROM connections"))
        )
    assert "tw-secret" not in stored and "gsecret" not in stored and "$encrypted" in stored
    hidden = tenant_config.export_yaml(empty_app, "demo")
    assert "tw-secret" not in hidden and "##SMS_TWILIO_TOKEN##" in hidden
    shown = tenant_config.export_yaml(empty_app, "demo", export_secrets=True)
    assert "twilio_token: tw-secret" in shown
    again = tenant_config.import_text(
        empty_app, text, keywords={**SECRETS, "TWILIO_AUTH_TOKEN": "tw-secret"}
    )
    assert not again.changed
    rotated = tenant_config.import_text(
        empty_app, text, keywords={**SECRETS, "TWILIO_AUTH_TOKEN": "tw-new"}
    )
    assert "updated connection sms" in rotated.lines()


def test_the_admin_flag_is_neither_exported_nor_lost_on_import(empty_app):
    """The admin tenant's flag comes from `login-site admin create`, not from files."""
    text = compat_example("## Example: demo tenant")
    tenant_config.import_text(empty_app, text, keywords=SECRETS)
    with empty_app.extensions["login_site.sessionmaker"]() as db:
        tenant = db.scalars(sa.select(Tenant).where(Tenant.name == "demo")).one()
        tenant.settings = {**tenant.settings, "admin": True}
        db.commit()
    exported = yaml.safe_load(tenant_config.export_yaml(empty_app, "demo", export_secrets=True))
    assert "admin" not in exported["tenant"]
    exported.pop("users", None)  # exported without passwords
    tenant_config.import_text(empty_app, yaml.safe_dump(exported))
    (tenant,) = [t for t in rows(empty_app, Tenant) if t.name == "demo"]
    assert tenant.settings["admin"] is True
