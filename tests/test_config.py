"""Settings: embedded default with generated secrets, then LOGIN_SITE_* variables."""

import json
import stat

import pytest

from login_site.app import create_app


def test_embedded_default_generates_secrets_once_with_mode_0600(tmp_path, monkeypatch):
    for name in ("LOGIN_SITE_SECRET_KEY", "LOGIN_SITE_ENCRYPTION_KEYS", "LOGIN_SITE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    first = create_app({"INSTANCE_PATH": str(tmp_path)})
    path = tmp_path / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert first.config["ENCRYPTION_KEYS"] == json.loads(path.read_text())["ENCRYPTION_KEYS"]
    assert first.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'login_site.db'}"


def test_environment_overrides_the_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGIN_SITE_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    monkeypatch.setenv("LOGIN_SITE_SECRET_KEY", "s" * 40)
    monkeypatch.setenv("LOGIN_SITE_CODE_TTL_SECONDS", "30")
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["DATABASE_URL"].endswith("other.db")
    assert app.config["SECRET_KEY"] == "s" * 40
    assert app.config["CODE_TTL_SECONDS"] == 30


def test_short_secret_key_stops_startup(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGIN_SITE_SECRET_KEY", "short")
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"INSTANCE_PATH": str(tmp_path)})


def test_weak_argon2_parameters_stop_startup(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGIN_SITE_ARGON2_MEMORY_COST_KIB", "1024")
    with pytest.raises(RuntimeError, match="argon2"):
        create_app({"INSTANCE_PATH": str(tmp_path)})


def test_forwarded_headers_are_ignored_unless_configured(tmp_path):
    from login_site import migrate

    url = f"sqlite:///{tmp_path / 'p.db'}"
    migrate.upgrade(url)
    for trusted, expected in ((0, "http://t1.test/"), (1, "https://t1.test/")):
        app = create_app(
            {"INSTANCE_PATH": str(tmp_path), "DATABASE_URL": url, "PROXY_FIX_X_PROTO": trusted}
        )
        from login_site import tenant_config

        tenant_config.import_text(app, "tenant: {name: t1, hosts: [t1.test]}\n")
        response = app.test_client().get(
            "/.well-known/openid-configuration",
            base_url="http://t1.test",
            headers={"X-Forwarded-Proto": "https"},
        )
        assert response.json["issuer"] == expected
        app.extensions["login_site.engine"].dispose()
