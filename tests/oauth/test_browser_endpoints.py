"""CORS, RP-initiated logout, consent, id_token_hint and key rotation (§1.A, §1.C, §1.E, §2.10)."""

import base64
import json

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwk import OctKey
from joserfc.jwk import RSAKey

from login_site.models import Consent
from tests.conftest import T1
from tests.conftest import count
from tests.conftest import csrf_token
from tests.conftest import login_code
from tests.conftest import query_of
from tests.conftest import redeem
from tests.conftest import start_login
from tests.conftest import submit_login

SPA_ORIGIN = "http://localhost:38123"


def tokens(client, **params):
    return redeem(client, login_code(client, **params)).json


# --- CORS ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/userinfo"])
def test_preflight_is_answered_for_a_registered_origin(client, path):
    response = client.options(
        path,
        base_url=f"http://{T1}",
        headers={
            "Origin": SPA_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "auth0-client, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert "auth0-client" in response.headers["Access-Control-Allow-Headers"]
    assert "Origin" in response.headers["Vary"]


@pytest.mark.parametrize(
    "origin",
    ["https://evil.test", "http://localhost:38199", "null", "http://localhost:38123.evil.test"],
)
def test_other_origins_get_no_cors_headers(client, origin):
    response = client.options(
        "/oauth/token",
        base_url=f"http://{T1}",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in response.headers


def test_actual_response_names_only_the_clients_own_origin(client):
    data = {
        "grant_type": "authorization_code",
        "code": "x",
        "client_id": "sdk-spa",
        "redirect_uri": "http://localhost:38123/callback",
        "code_verifier": "a" * 43,
    }
    ours = client.post(
        "/oauth/token", base_url=f"http://{T1}", data=data, headers={"Origin": SPA_ORIGIN}
    )
    assert ours.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    # spa's origin is registered for another client only: no CORS for sdk-spa's request.
    other = client.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        data=data,
        headers={"Origin": "http://127.0.0.1:8765"},
    )
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_never_uses_a_wildcard(client):
    response = client.options(
        "/userinfo",
        base_url=f"http://{T1}",
        headers={"Origin": SPA_ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert response.headers["Access-Control-Allow-Origin"] != "*"


# --- RP-initiated logout ------------------------------------------------------------------


def oidc_logout(client, **params):
    return client.get("/oidc/logout", base_url=f"http://{T1}", query_string=params)


def authorize(client, **params) -> str:
    """``Location`` of /authorize for client ``web`` (or ``params``' client) on T1."""
    query = {
        "client_id": "web",
        "redirect_uri": "https://app.test/cb",
        "response_type": "code",
        "scope": "openid",
        "state": "s",
        **params,
    }
    return client.get("/authorize", base_url=f"http://{T1}", query_string=query).headers["Location"]


def prompt_none(client, **params) -> str:
    return authorize(client, prompt="none", **params)


def test_logout_with_a_valid_hint_redirects_with_state(client):
    id_token = tokens(client)["id_token"]
    response = oidc_logout(
        client, id_token_hint=id_token, state="xyz", post_logout_redirect_uri="https://app.test/bye"
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "https://app.test/bye?state=xyz"
    assert "error=login_required" in prompt_none(client)


@pytest.mark.parametrize(
    "uri", ["https://evil.test/", "https://app.test/bye?foo=bar", "https://app.test/bye/"]
)
def test_logout_never_redirects_to_an_unregistered_uri(client, uri):
    id_token = tokens(client)["id_token"]
    response = oidc_logout(client, id_token_hint=id_token, post_logout_redirect_uri=uri)
    assert response.status_code == 400 and "Location" not in response.headers


def forged(client, kind: str, claims: dict) -> str:
    if kind == "none":
        header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
        return f"{header.decode()}.{body.decode()}."
    if kind == "hs256":
        public = client.get("/.well-known/jwks.json", base_url=f"http://{T1}").json["keys"][0]
        key = OctKey.import_key(json.dumps(public).encode())
        return jwt.encode({"alg": "HS256"}, claims, key)
    attacker = RSAKey.generate_key(2048)
    header = {"alg": "RS256", "jwk": attacker.as_dict(private=False)}
    return jwt.encode(header, claims, attacker)


@pytest.mark.parametrize("kind", ["none", "hs256", "jwk-header"])
def test_forged_hints_never_redirect(client, kind):
    id_token = tokens(client)["id_token"]
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json", base_url=f"http://{T1}").json)
    claims = jwt.decode(id_token, keys, algorithms=["RS256"]).claims
    response = oidc_logout(
        client,
        id_token_hint=forged(client, kind, claims),
        post_logout_redirect_uri="https://app.test/bye",
    )
    assert response.status_code == 400 and "Location" not in response.headers


def test_logout_without_hint_asks_first_and_never_redirects(client):
    login_code(client)
    page = oidc_logout(client, post_logout_redirect_uri="https://app.test/bye", client_id="web")
    assert page.status_code == 200 and "Location" not in page.headers
    html = page.get_data(as_text=True)
    assert 'name="confirm"' in html
    assert "code=" in prompt_none(client)  # still logged in until confirmed
    no_csrf = client.post("/oidc/logout", base_url=f"http://{T1}", data={"confirm": "yes"})
    assert no_csrf.status_code == 400
    done = client.post(
        "/oidc/logout",
        base_url=f"http://{T1}",
        data={
            "confirm": "yes",
            "csrf_token": csrf_token(html),
            "client_id": "web",
            "post_logout_redirect_uri": "https://app.test/bye",
        },
    )
    assert done.status_code == 200 and "Location" not in done.headers
    assert "error=login_required" in prompt_none(client)


def test_client_id_must_match_the_hint(client):
    id_token = tokens(client)["id_token"]
    response = oidc_logout(client, id_token_hint=id_token, client_id="partners")
    assert response.status_code == 400


def test_logout_with_no_params_and_no_session_shows_the_page(client):
    response = oidc_logout(client)
    assert response.status_code == 200 and "Location" not in response.headers


def test_oversized_hint_is_rejected_quickly(client):
    response = oidc_logout(client, id_token_hint="a" * 200_000)
    assert response.status_code in (400, 414)


# --- id_token_hint at /authorize ----------------------------------------------------------


def test_id_token_hint_with_prompt_none_returns_a_code_for_the_same_user(client):
    id_token = tokens(client)["id_token"]
    response = authorize(client, prompt="none", id_token_hint=id_token)
    assert "code" in query_of(response)


def test_hint_for_another_user_is_login_required(app, client):
    other = app.test_client()
    page, state = start_login(other)
    done = submit_login(other, page, state, "carol@example.test", "Carol-password-1")
    carol = redeem(other, query_of(done.headers["Location"])["code"]).json["id_token"]
    login_code(client)
    response = authorize(client, prompt="none", id_token_hint=carol)
    assert query_of(response)["error"] == "login_required"


def test_invalid_hint_is_invalid_request(client):
    response = authorize(client, id_token_hint="not.a.jwt")
    assert query_of(response)["error"] == "invalid_request"


# --- consent ------------------------------------------------------------------------------

THIRD = {"client_id": "third-party", "redirect_uri": "https://third.test/cb"}


def consent_page(client):
    page, state = start_login(client, **THIRD)
    done = submit_login(client, page, state, "alice@example.test", "correct horse battery Staple1")
    assert done.status_code == 302 and done.headers["Location"].startswith("/consent?")
    return client.get(done.headers["Location"], base_url=f"http://{T1}"), state


def decide(client, page, state, decision):
    return client.post(
        "/consent",
        base_url=f"http://{T1}",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "state": state,
            "decision": decision,
        },
    )


def test_third_party_client_asks_for_consent_and_remembers_it(app, client):
    page, state = consent_page(client)
    html = page.get_data(as_text=True)
    assert "Read your email address" in html and 'value="allow"' in html
    assert page.headers["X-Frame-Options"] == "DENY"
    response = decide(client, page, state, "allow")
    assert "code" in query_of(response.headers["Location"])
    assert count(app, Consent) == 1
    again = authorize(client, **THIRD, scope="openid profile email", prompt="none")
    assert "code" in query_of(again)


def test_denied_consent_is_access_denied_with_state(app, client):
    page, state = consent_page(client)
    response = decide(client, page, state, "deny")
    query = query_of(response.headers["Location"])
    assert query["error"] == "access_denied" and query["state"] == "st-123"
    assert count(app, Consent) == 0


def test_consent_without_csrf_is_refused(app, client):
    page, state = consent_page(client)
    response = client.post(
        "/consent", base_url=f"http://{T1}", data={"state": state, "decision": "allow"}
    )
    assert response.status_code == 400 and count(app, Consent) == 0


def test_prompt_none_needing_consent_is_consent_required(client):
    login_code(client)
    response = authorize(client, **THIRD, prompt="none")
    assert query_of(response)["error"] == "consent_required"


def test_first_party_client_skips_consent_unless_prompted(client):
    login_code(client)
    response = authorize(client, prompt="consent")
    assert response.startswith("/consent?")


# --- key rotation -------------------------------------------------------------------------


def test_rotation_signs_with_the_new_key_and_keeps_the_old_one_published(app, client):
    before = tokens(client)["id_token"]
    old_kid = jwt.decode(
        before,
        KeySet.import_key_set(client.get("/.well-known/jwks.json", base_url=f"http://{T1}").json),
        algorithms=["RS256"],
    ).header["kid"]
    with app.app_context():
        from login_site.db import session_scope
        from login_site.models import Tenant
        from login_site.oauth.keys import rotate
        from login_site.vault import keyring

        with session_scope(app) as db:
            rotate(db, db.query(Tenant).filter_by(name="t1").one(), keyring())
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json", base_url=f"http://{T1}").json)
    code = query_of(prompt_none(client))["code"]
    after = redeem(client, code).json["id_token"]
    new_kid = jwt.decode(after, keys, algorithms=["RS256"]).header["kid"]
    assert new_kid != old_kid
    jwt.decode(before, keys, algorithms=["RS256"])  # the old token still verifies
    assert {k["kid"] for k in keys.as_dict()["keys"]} >= {old_kid, new_kid}


def test_refresh_and_userinfo_answer_with_no_store(client):
    body = tokens(client, scope="openid")
    info = client.get(
        "/userinfo",
        base_url=f"http://{T1}",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert info.headers["Cache-Control"] == "no-store"


def test_previous_keys_are_retired_once_their_tokens_have_expired(app, client):
    from datetime import timedelta

    from login_site.db import session_scope
    from login_site.models import SigningKey
    from login_site.models import Tenant
    from login_site.oauth.keys import rotate
    from login_site.vault import keyring

    with app.app_context(), session_scope(app) as db:
        tenant = db.query(Tenant).filter_by(name="t1").one()
        first = rotate(db, tenant, keyring(), keep_seconds=3600)
        for key in db.query(SigningKey).filter_by(state="previous"):
            key.rotated_at -= timedelta(hours=2)
        rotate(db, tenant, keyring(), keep_seconds=3600)
        states = {k.kid: k.state for k in db.query(SigningKey).filter_by(tenant_id=tenant.id)}
    assert states[first.kid] == "previous" and list(states.values()).count("revoked") == 1
    published = {
        k["kid"] for k in client.get("/.well-known/jwks.json", base_url=f"http://{T1}").json["keys"]
    }
    assert published == {kid for kid, state in states.items() if state != "revoked"}
