"""Selected OpenID Foundation Dynamic OP modules (``OIDCCDynamicTestPlan``, checklist A.3):
redirect URI rules and signing-key rotation.

The suite runs these against a dynamically registered client; we have no registration
endpoint, so the client is ``web`` from the fixture file, which registers what the suite
would: two (here three) redirect URIs, one of them with a query (``https://app.test/q?x=1``).
Registration itself (``oidcc-redirect-uri-regfrag``) is the configuration import.
"""

import pytest
import sqlalchemy as sa

from login_site.cli import main
from login_site.models import AuthorizationCode
from login_site.models import Client
from login_site.models import LoginTransaction
from login_site.models import Tenant
from login_site.tenant_config import ConfigError
from login_site.tenant_config import import_text
from tests.conformance.rp import WEB
from tests.conformance.rp import Registration
from tests.conformance.rp import authorization_request
from tests.conformance.rp import call_userinfo
from tests.conformance.rp import check_userinfo
from tests.conformance.rp import code_flow
from tests.conformance.rp import discovery
from tests.conformance.rp import error_page
from tests.conformance.rp import send_authorization
from tests.conformance.rp import server_jwks
from tests.conformance.rp import validate_id_token
from tests.conftest import count

WEB_WITH_QUERY = Registration(WEB.client_id, WEB.secret, WEB.auth_method, "https://app.test/q?x=1")
REGISTRATION = """
tenant: {name: regfrag, hosts: [regfrag.test]}
clients:
  - name: rp
    client_id: regfrag-rp
    client_secret: "regfrag-secret-0123456789abcdefghijklmn"
    app_type: regular_web
    callbacks: ["CALLBACK"]
    grant_types: [authorization_code]
"""


def nothing_stored(app) -> None:
    assert count(app, LoginTransaction) == 0
    assert count(app, AuthorizationCode) == 0


def test_oidcc_ensure_redirect_uri_in_authorization_request(app, client):
    """oidcc-ensure-redirect-uri-in-authorization-request: the client has several redirect
    URIs and the request names none: an error page (400, no redirect, nothing stored),
    never a default (OIDC Core §3.1.2.1, checklist AZ-03)."""
    with app.extensions["login_site.sessionmaker"]() as db:
        web = db.scalar(
            sa.select(Client)
            .join(Tenant, Tenant.id == Client.tenant_id)
            .where(Tenant.name == "t1", Client.client_id == WEB.client_id)
        )
        assert len(web.callbacks) > 1
    request = authorization_request(redirect_uri=None)
    assert "redirect_uri" not in request
    error_page(send_authorization(client, request))
    nothing_stored(app)


def test_oidcc_redirect_uri_query_OK(client):
    """oidcc-redirect-uri-query-OK: the registered ``https://app.test/q?x=1``, sent as is,
    completes: the callback keeps ``x=1`` next to code, state and ``iss``, and the code is
    redeemed with the same redirect URI."""
    flow = code_flow(client, WEB_WITH_QUERY)
    assert flow.callback["x"] == "1"
    check_userinfo(call_userinfo(client, flow.tokens["access_token"]), flow.claims, "openid")


def test_oidcc_redirect_uri_query_mismatch(app, client):
    """oidcc-redirect-uri-query-mismatch: the registered URI's query replaced (the suite's
    ``?foo=bar``, and the checklist's ``?x=2``): an error page, no redirect, nothing
    stored (AZ-04)."""
    for redirect_uri in ("https://app.test/q?foo=bar", "https://app.test/q?x=2"):
        request = authorization_request(redirect_uri=redirect_uri)
        error_page(send_authorization(client, request))
    nothing_stored(app)


def test_oidcc_redirect_uri_query_added(app, client):
    """oidcc-redirect-uri-query-added: ``?foo=bar`` added to a registered URI that has no
    query: an error page, no redirect, nothing stored (AZ-04)."""
    request = authorization_request(redirect_uri="https://app.test/cb?foo=bar")
    error_page(send_authorization(client, request))
    nothing_stored(app)


def test_oidcc_redirect_uri_regfrag(app):
    """oidcc-redirect-uri-regfrag, as the equivalent property. The module asks the dynamic
    registration endpoint to register a redirect URI with a fragment and expects a 400; we
    have no such endpoint (deliberately), clients are registered by importing configuration,
    so: ``import_text`` raises ConfigError naming the callback and the fragment, and writes
    nothing. The same file without the fragment imports (RFC 6749 §3.1.2, checklist AZ-05)."""
    with pytest.raises(ConfigError, match=r"callbacks\[0\].*fragment"):
        import_text(app, REGISTRATION.replace("CALLBACK", "https://rp.test/cb#fragment"))
    with app.extensions["login_site.sessionmaker"]() as db:
        assert db.scalar(sa.select(Client).where(Client.client_id == "regfrag-rp")) is None
        assert db.scalar(sa.select(Tenant).where(Tenant.name == "regfrag")) is None

    import_text(app, REGISTRATION.replace("CALLBACK", "https://rp.test/cb"))
    with app.extensions["login_site.sessionmaker"]() as db:
        created = db.scalar(sa.select(Client).where(Client.client_id == "regfrag-rp"))
        assert created is not None and created.callbacks == ["https://rp.test/cb"]


def test_oidcc_server_rotate_keys(app, client):
    """oidcc-server-rotate-keys: the JWKS before and after ``login-site keys rotate``
    (the operator's command) are valid; the new one has a new key and keeps the old ones.
    Beyond the suite (checklist F9): new ID tokens use another key, the one the JWKS
    already published as the next key before the rotation (Auth0's model: relying parties
    holding the old JWKS verify them without a refetch), and the ID and access tokens issued
    before the rotation still verify and work."""
    metadata = discovery(client)
    before_jwks = server_jwks(client, metadata)
    before = code_flow(client)
    assert before.header["kid"] in {key["kid"] for key in before_jwks["keys"]}

    result = app.test_cli_runner().invoke(main, ["keys", "rotate", "--tenant", "t1"])
    assert result.exit_code == 0, result.output

    after_jwks = server_jwks(client, metadata)
    old = {key["kid"]: key for key in before_jwks["keys"]}
    new = {key["kid"]: key for key in after_jwks["keys"]}
    added = set(new) - set(old)
    assert added  # VerifyNewJwksHasNewSigningKey
    assert all(new.get(kid) == key for kid, key in old.items())  # ...StillHasOldSigningKey
    assert {new[kid]["n"] for kid in added}.isdisjoint({key["n"] for key in old.values()})

    after = code_flow(client, expect_login=False)
    assert after.header["kid"] != before.header["kid"]
    assert after.header["kid"] in old
    validate_id_token(
        client,
        before.tokens["id_token"],
        WEB,
        before.request,
        access_token=before.tokens["access_token"],
    )
    response = call_userinfo(client, before.tokens["access_token"])
    check_userinfo(response, before.claims, "openid")
