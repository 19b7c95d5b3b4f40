"""``login-site demo``: the shipped demo tenant imports cleanly, and the demo application
logs alice in through the real login_site over loopback HTTP."""

from __future__ import annotations

import stat
import threading
from contextlib import contextmanager
from urllib.parse import urljoin

import pytest
import requests
from werkzeug.serving import make_server

from login_site import migrate
from login_site import passwords
from login_site import tenant_config
from login_site.connections.base import get_strategy
from login_site.demo import DEMO_EMAIL
from login_site.demo import SECRETS_FILE
from login_site.demo import demo_yaml
from login_site.demo import generate_secrets
from login_site.demo import load_secrets
from login_site.demo import seed_demo
from login_site.demo.rp import create_rp
from tests.conftest import csrf_token
from tests.conftest import make_app
from tests.conftest import query_of

TIMEOUT = 10


@pytest.fixture
def demo_app(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    migrate.upgrade(url)
    app = make_app(url, tmp_path)
    yield app
    app.extensions["login_site.engine"].dispose()


DEMO_CONNECTIONS = (
    ("email", "email"),
    ("sms", "sms"),
    ("google-oauth2", "google-oauth2"),
    ("acme-oidc", "oidc"),
)


def test_demo_yaml_imports_cleanly_twice(demo_app):
    keywords = generate_secrets()
    first = tenant_config.import_text(demo_app, demo_yaml(), keywords=keywords)
    assert "created tenant demo" in first.lines()
    assert "created user alice@example.test (Username-Password-Authentication)" in first.lines()
    for name, strategy in DEMO_CONNECTIONS:
        noted = any(
            line.startswith(f"connection {name}:") and "not available yet" in line
            for line in first.notes
        )
        assert noted == (get_strategy(strategy) is None), name
    second = tenant_config.import_text(demo_app, demo_yaml(), keywords=keywords)
    assert not second.changed, second.lines()


def test_demo_secrets_are_private_and_reused(tmp_path):
    first = load_secrets(tmp_path)
    assert stat.S_IMODE((tmp_path / SECRETS_FILE).stat().st_mode) == 0o600
    assert load_secrets(tmp_path) == first
    assert len(first["DEMO_WEB_CLIENT_SECRET"]) >= 32
    assert len(first["DEMO_M2M_CLIENT_SECRET"]) >= 32
    assert not passwords.policy_errors({"passwordPolicy": "good"}, first["DEMO_ALICE_PASSWORD"])


def test_demo_yaml_moves_hosts_and_demo_app_urls_to_other_ports():
    text = demo_yaml(5100, 8800)
    assert "hosts: [localhost:5100, 127.0.0.1:5100]" in text
    assert "callbacks: [http://localhost:8800/callback]" in text
    assert ":5000" not in text and ":8765" not in text
    assert "http://localhost:3000/callback" in text  # the SPA's URLs are not ours to move


@contextmanager
def serving(*servers):
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(5)


def test_demo_app_logs_alice_in_through_login_site(demo_app):
    # Bind both ports first: the tenant hosts and the demo app's callback depend on them.
    # Each server's app is set once the other port is known.
    as_server = make_server("127.0.0.1", 0, demo_app, threaded=True)
    rp_server = make_server("127.0.0.1", 0, demo_app, threaded=True)
    port, rp_port = as_server.server_port, rp_server.server_port
    keywords = generate_secrets()
    seed_demo(demo_app, keywords, port, rp_port)
    rp_base = f"http://localhost:{rp_port}"
    rp_server.app = create_rp(
        issuer=f"http://localhost:{port}/",
        client_secret=keywords["DEMO_WEB_CLIENT_SECRET"],
        rp_base=rp_base,
    )

    with serving(as_server, rp_server), requests.Session() as browser:
        home = browser.get(f"{rp_base}/", timeout=TIMEOUT)
        assert "Log in" in home.text

        to_authorize = browser.get(f"{rp_base}/login", allow_redirects=False, timeout=TIMEOUT)
        assert to_authorize.status_code == 302
        authorize_url = to_authorize.headers["Location"]
        assert authorize_url.startswith(f"http://localhost:{port}/authorize?")
        params = query_of(authorize_url)
        assert params["client_id"] == "demo-web-app"
        assert params["redirect_uri"] == f"{rp_base}/callback"
        assert params["code_challenge_method"] == "S256"
        assert params["nonce"]

        to_login = browser.get(authorize_url, allow_redirects=False, timeout=TIMEOUT)
        assert to_login.status_code == 302, to_login.text[:500]
        login_url = urljoin(authorize_url, to_login.headers["Location"])
        page = browser.get(login_url, timeout=TIMEOUT)
        assert page.status_code == 200
        submitted = browser.post(
            urljoin(login_url, "/login"),
            data={
                "csrf_token": csrf_token(page.text),
                "state": query_of(login_url)["state"],
                "connection": "Username-Password-Authentication",
                "action": "login",
                "username": DEMO_EMAIL,
                "password": keywords["DEMO_ALICE_PASSWORD"],
            },
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        assert submitted.status_code == 302, submitted.text[:800]
        callback_url = submitted.headers["Location"]
        assert callback_url.startswith(f"{rp_base}/callback?")
        assert "code" in query_of(callback_url)

        back_home = browser.get(callback_url, allow_redirects=False, timeout=TIMEOUT)
        assert back_home.status_code == 302, back_home.text[:800]
        cookie = browser.cookies.get("demo_rp_session")
        assert cookie and len(cookie) < 4000  # what browsers keep of one cookie
        signed_in = browser.get(f"{rp_base}/", timeout=TIMEOUT)
        assert signed_in.status_code == 200
        assert DEMO_EMAIL in signed_in.text
        assert 'id="id-token-claims"' in signed_in.text
        assert f"&#34;iss&#34;: &#34;http://localhost:{port}/&#34;" in signed_in.text
        assert 'id="userinfo"' in signed_in.text
        assert "Log out" in signed_in.text

        logout = browser.get(f"{rp_base}/logout", allow_redirects=False, timeout=TIMEOUT)
        assert logout.headers["Location"] == (
            f"http://localhost:{port}/v2/logout?client_id=demo-web-app"
            f"&returnTo=http%3A%2F%2Flocalhost%3A{rp_port}%2F"
        )
        back = browser.get(logout.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
        assert back.status_code == 302
        assert back.headers["Location"] == f"{rp_base}/"
        assert "Log in" in browser.get(f"{rp_base}/", timeout=TIMEOUT).text


def test_the_demo_login_page_offers_no_provider_it_cannot_reach(demo_app):
    """The social/enterprise examples carry placeholder client ids: listed, not offered."""
    from sqlalchemy import select

    from login_site.login import pages
    from login_site.models import Client
    from login_site.models import Tenant

    tenant_config.import_text(demo_app, demo_yaml(), keywords=generate_secrets())
    with demo_app.app_context(), demo_app.extensions["login_site.sessionmaker"]() as db:
        tenant = db.execute(select(Tenant).where(Tenant.name == "demo")).scalar_one()
        for client in db.execute(select(Client).where(Client.tenant_id == tenant.id)).scalars():
            kinds = {o.kind for o in pages.offers(db, tenant, client)}
            assert not kinds & {"social", "enterprise"}, client.name
