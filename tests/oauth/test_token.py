"""/oauth/token for the authorization-code grant: checklist §1.B, §1.C, §1.E."""

import base64
import json
import time

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from login_site.models import AccessToken
from login_site.models import User
from tests.conftest import T1
from tests.conftest import T2
from tests.conftest import WEB_SECRET
from tests.conftest import basic
from tests.conftest import count
from tests.conftest import login_code
from tests.conftest import pkce_pair
from tests.conftest import query_of
from tests.conftest import redeem

ISSUER = f"http://{T1}/"


def assert_token_error(response, status, error):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.json["error"] == error
    assert response.json["error_description"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def verify_id_token(client, token: str, host: str = T1):
    keys = KeySet.import_key_set(
        client.get("/.well-known/jwks.json", base_url=f"http://{host}").json
    )
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    return decoded.header, decoded.claims


def test_code_exchange_returns_a_valid_rs256_id_token(client):
    code = login_code(client)
    response = redeem(client, code)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    header, claims = verify_id_token(client, body["id_token"])
    assert header["alg"] == "RS256" and header["kid"]
    assert claims["iss"] == ISSUER
    assert claims["aud"] == "web" and claims["azp"] == "web"
    assert claims["nonce"] == "n-456"
    assert claims["sub"].startswith("auth0|") and len(claims["sub"]) == 30
    assert isinstance(claims["iat"], int) and claims["exp"] > claims["iat"]
    assert isinstance(claims["auth_time"], int) and claims["auth_time"] <= claims["iat"]
    assert claims["email"] == "alice@example.test" and claims["email_verified"] is True
    assert claims["name"] == "Alice Example" and claims["sid"]
    from login_site.oauth.tokens import half_hash

    assert claims["at_hash"] == half_hash(body["access_token"])


def test_code_cannot_be_redeemed_twice_and_replay_revokes_its_tokens(backend, app, client):
    code = login_code(client)
    first = redeem(client, code)
    assert first.status_code == 200
    assert_token_error(redeem(client, code), 400, "invalid_grant")
    info = client.get(
        "/userinfo",
        base_url=f"http://{T1}",
        headers={"Authorization": f"Bearer {first.json['access_token']}"},
    )
    assert info.status_code == 401


@pytest.mark.parametrize("wrong", ["redirect_uri", "code_verifier"])
def test_a_redemption_that_fails_its_checks_still_spends_the_code(backend, app, client, wrong):
    verifier, challenge = pkce_pair()
    code = login_code(client, code_challenge=challenge, code_challenge_method="S256")
    bad = {"redirect_uri": "https://app.test/cb2", "code_verifier": pkce_pair()[0]}[wrong]
    response = redeem(client, code, **{"code_verifier": verifier, wrong: bad})
    assert_token_error(response, 400, "invalid_grant")
    assert_token_error(redeem(client, code, code_verifier=verifier), 400, "invalid_grant")
    assert count(app, AccessToken) == 0


def test_code_of_a_user_blocked_meanwhile_is_refused_and_spent(backend, app, client):
    code = login_code(client)
    with app.extensions["login_site.sessionmaker"]() as db:
        db.query(User).filter_by(email="alice@example.test").update({"blocked": True})
        db.commit()
    assert_token_error(redeem(client, code), 400, "invalid_grant")
    with app.extensions["login_site.sessionmaker"]() as db:
        db.query(User).filter_by(email="alice@example.test").update({"blocked": False})
        db.commit()
    assert_token_error(redeem(client, code), 400, "invalid_grant")
    assert count(app, AccessToken) == 0


def test_expired_code_is_invalid(app, client):
    app.config["CODE_TTL_SECONDS"] = 1
    code = login_code(client)
    time.sleep(1.2)
    assert_token_error(redeem(client, code), 400, "invalid_grant")


def test_code_is_bound_to_its_client(client):
    code = login_code(client)
    response = redeem(
        client,
        code,
        headers=basic("partners", "partners-secret-0123456789abcdefghijk"),
        redirect_uri="https://app.test/cb",
    )
    assert_token_error(response, 400, "invalid_grant")


@pytest.mark.parametrize("redirect_uri", ["https://app.test/cb/", None, "https://app.test/cb2"])
def test_redirect_uri_must_be_identical(client, redirect_uri):
    code = login_code(client)
    data = {"grant_type": "authorization_code", "code": code}
    if redirect_uri:
        data["redirect_uri"] = redirect_uri
    response = client.post("/oauth/token", base_url=f"http://{T1}", data=data, headers=basic())
    assert_token_error(response, 400, "invalid_grant")


def test_wrong_secret_with_basic_is_401_with_www_authenticate(app, client):
    code = login_code(client)
    response = redeem(client, code, headers=basic("web", "wrong"))
    assert_token_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert count(app, AccessToken) == 0


def test_wrong_secret_in_body_is_401(client):
    code = login_code(client)
    response = redeem(client, code, headers={}, client_id="web", client_secret="wrong")
    assert_token_error(response, 401, "invalid_client")


def test_secret_in_body_works_for_a_confidential_client(client):
    code = login_code(client)
    response = redeem(client, code, headers={}, client_id="web", client_secret=WEB_SECRET)
    assert response.status_code == 200


def test_secret_in_both_places_is_rejected(client):
    code = login_code(client)
    response = redeem(client, code, client_id="web", client_secret=WEB_SECRET)
    assert_token_error(response, 401, "invalid_client")


def test_secret_in_query_string_is_rejected(client):
    code = login_code(client)
    response = client.post(
        f"/oauth/token?client_secret={WEB_SECRET}",
        base_url=f"http://{T1}",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "https://app.test/cb",
            "client_id": "web",
        },
    )
    assert response.status_code in (400, 401)


@pytest.mark.parametrize(
    "header", ["Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode(), "Basic "]
)
def test_malformed_basic_auth_is_401_not_500(client, header):
    response = client.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        headers={"Authorization": header},
        data={
            "grant_type": "authorization_code",
            "code": "x",
            "redirect_uri": "https://app.test/cb",
        },
    )
    assert_token_error(response, 401, "invalid_client")


def test_confidential_client_without_secret_is_rejected(client):
    code = login_code(client)
    response = redeem(client, code, headers={}, client_id="web")
    assert_token_error(response, 401, "invalid_client")


def spa_code(client, challenge):
    return login_code(
        client,
        client_id="spa",
        redirect_uri="http://127.0.0.1:8765/cb",
        code_challenge=challenge,
        code_challenge_method="S256",
    )


def test_public_client_redeems_with_the_right_verifier(client):
    verifier, challenge = pkce_pair()
    code = spa_code(client, challenge)
    response = redeem(
        client,
        code,
        headers={},
        client_id="spa",
        code_verifier=verifier,
        redirect_uri="http://127.0.0.1:8765/cb",
    )
    assert response.status_code == 200, response.json


def test_wrong_code_verifier_is_invalid_grant(client):
    _, challenge = pkce_pair()
    other, _ = pkce_pair()
    code = spa_code(client, challenge)
    response = redeem(
        client,
        code,
        headers={},
        client_id="spa",
        code_verifier=other,
        redirect_uri="http://127.0.0.1:8765/cb",
    )
    assert_token_error(response, 400, "invalid_grant")


def test_public_client_without_verifier_is_rejected(client):
    _, challenge = pkce_pair()
    code = spa_code(client, challenge)
    response = redeem(
        client, code, headers={}, client_id="spa", redirect_uri="http://127.0.0.1:8765/cb"
    )
    assert response.status_code == 400 and response.json["error"] in (
        "invalid_request",
        "invalid_grant",
    )


@pytest.mark.parametrize("verifier", ["a" * 42, "a" * 129, "+" * 50])
def test_malformed_verifier_is_rejected(client, verifier):
    _, challenge = pkce_pair()
    code = spa_code(client, challenge)
    response = redeem(
        client,
        code,
        headers={},
        client_id="spa",
        code_verifier=verifier,
        redirect_uri="http://127.0.0.1:8765/cb",
    )
    assert response.status_code == 400
    assert response.json["error"] in ("invalid_request", "invalid_grant")


def test_verifier_for_a_code_without_challenge_is_a_downgrade(client):
    code = login_code(client)
    verifier, _ = pkce_pair()
    assert_token_error(redeem(client, code, code_verifier=verifier), 400, "invalid_grant")


def test_unknown_grant_type_is_unsupported(client):
    response = client.post(
        "/oauth/token", base_url=f"http://{T1}", headers=basic(), data={"grant_type": "foo"}
    )
    assert_token_error(response, 400, "unsupported_grant_type")


def test_grant_not_enabled_for_client_is_rejected(client):
    response = client.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        headers=basic("m2m", "m2m-secret-0123456789abcdefghijklmnop"),
        data={
            "grant_type": "authorization_code",
            "code": "x",
            "redirect_uri": "https://app.test/cb",
        },
    )
    assert_token_error(response, 400, "unauthorized_client")


def test_json_body_is_accepted_like_a_form(client):
    code = login_code(client)
    response = client.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        json={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "https://app.test/cb",
            "client_id": "web",
            "client_secret": WEB_SECRET,
            "audience": None,
            "scope": "",
        },
    )
    assert response.status_code == 200, response.json


@pytest.mark.parametrize(
    "body,content_type",
    [
        (b"{not json", "application/json"),
        (b"[1,2]", "application/json"),
        (b'{"code": {"a": 1}}', "application/json"),
        (b"\xff\xfe\xfd", "application/x-www-form-urlencoded"),
        (b"", None),
    ],
)
def test_garbage_bodies_are_clean_400s(client, body, content_type):
    headers = basic()
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/oauth/token", base_url=f"http://{T1}", data=body, headers=headers)
    assert 400 <= response.status_code < 500
    assert "error" in response.json


def test_oversized_body_is_413(client):
    response = client.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        headers=basic(),
        data={"grant_type": "authorization_code", "code": "x" * (2 * 1024 * 1024)},
    )
    assert response.status_code == 413


def test_duplicate_parameter_is_invalid_request(client):
    response = client.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        headers=basic(),
        data="grant_type=authorization_code&code=a&code=b",
        content_type="application/x-www-form-urlencoded",
    )
    assert_token_error(response, 400, "invalid_request")


def test_get_on_token_endpoint_is_405(client):
    response = client.get("/oauth/token", base_url=f"http://{T1}")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


def test_codes_and_tokens_are_long_random_and_unique(client):
    login_code(client)
    codes = set()
    for _ in range(5):
        response = client.get(
            "/authorize",
            base_url=f"http://{T1}",
            query_string={
                "client_id": "web",
                "redirect_uri": "https://app.test/cb",
                "response_type": "code",
                "scope": "openid",
                "prompt": "none",
            },
        )
        codes.add(query_of(response.headers["Location"])["code"])
    assert len(codes) == 5 and all(len(c) >= 43 for c in codes)


# --- userinfo and JWKS --------------------------------------------------------------------


def tokens(client):
    return redeem(client, login_code(client)).json


def test_userinfo_accepts_header_and_form_body(client):
    access = tokens(client)["access_token"]
    by_header = client.get(
        "/userinfo", base_url=f"http://{T1}", headers={"Authorization": f"Bearer {access}"}
    )
    by_post = client.post(
        "/userinfo", base_url=f"http://{T1}", headers={"Authorization": f"Bearer {access}"}
    )
    by_body = client.post("/userinfo", base_url=f"http://{T1}", data={"access_token": access})
    assert by_header.json == by_post.json == by_body.json
    assert by_header.json["sub"].startswith("auth0|")


def test_userinfo_claims_follow_the_scope(client):
    code = login_code(client, scope="openid email")
    access = redeem(client, code).json["access_token"]
    info = client.get(
        "/userinfo", base_url=f"http://{T1}", headers={"Authorization": f"Bearer {access}"}
    ).json
    assert set(info) == {"sub", "email", "email_verified"}


@pytest.mark.parametrize("token", ["nope", "id_token"])
def test_userinfo_rejects_bad_tokens_with_bearer_challenge(client, token):
    if token == "id_token":
        token = tokens(client)["id_token"]
    response = client.get(
        "/userinfo", base_url=f"http://{T1}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_userinfo_without_token_is_401(client):
    assert client.get("/userinfo", base_url=f"http://{T1}").status_code == 401


def test_jwks_has_only_public_rsa_members(client):
    keys = client.get("/.well-known/jwks.json", base_url=f"http://{T1}").json["keys"]
    assert keys
    kids = [k["kid"] for k in keys]
    assert len(kids) == len(set(kids))
    for key in keys:
        assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)
        modulus = base64.urlsafe_b64decode(key["n"] + "==")
        assert len(modulus) * 8 >= 2048


def test_discovery_matches_the_host_and_advertises_only_what_is_safe(client):
    one = client.get("/.well-known/openid-configuration", base_url=f"http://{T1}").json
    two = client.get("/.well-known/openid-configuration", base_url=f"http://{T2}").json
    assert one["issuer"] == ISSUER and two["issuer"] == f"http://{T2}/"
    assert one["code_challenge_methods_supported"] == ["S256"]
    assert one["response_types_supported"] == ["code"]
    assert "none" not in one["id_token_signing_alg_values_supported"]
    assert one["authorization_response_iss_parameter_supported"] is True
    assert one["jwks_uri"] == f"{ISSUER}.well-known/jwks.json"


def test_id_tokens_verify_with_an_independent_library(live_server):
    """authlib's OIDC client (an RP library) validates our ID token end to end."""
    from authlib.integrations.requests_client import OAuth2Session

    base = live_server.api_url("t1")
    session = requests.Session()
    verifier, challenge = pkce_pair()
    first = session.get(
        base + "authorize",
        params={
            "client_id": "spa",
            "redirect_uri": "http://127.0.0.1:8765/cb",
            "response_type": "code",
            "scope": "openid email",
            "state": "s",
            "nonce": "n1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        allow_redirects=False,
    )
    page = session.get(base + first.headers["Location"].lstrip("/"))
    from tests.conftest import csrf_token

    state = query_of(first.headers["Location"])["state"]
    done = session.post(
        base + "login",
        allow_redirects=False,
        data={
            "csrf_token": csrf_token(page.text),
            "state": state,
            "connection": "db",
            "action": "login",
            "username": "alice@example.test",
            "password": "correct horse battery Staple1",
        },
    )
    code = query_of(done.headers["Location"])["code"]
    metadata = requests.get(base + ".well-known/openid-configuration", timeout=10).json()
    rp = OAuth2Session(
        "spa", token_endpoint_auth_method="none", redirect_uri="http://127.0.0.1:8765/cb"
    )
    token = rp.fetch_token(metadata["token_endpoint"], code=code, code_verifier=verifier)
    from authlib.oidc.core import CodeIDToken

    keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    decoded = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    claims = decoded.claims
    checked = CodeIDToken(
        claims,
        decoded.header,
        {
            "iss": {"essential": True, "value": metadata["issuer"]},
            "aud": {"essential": True, "value": "spa"},
            "nonce": {"essential": True, "value": "n1"},
        },
        {"access_token": token["access_token"]},
    )
    checked.validate()
    assert json.loads(json.dumps(claims))["email"] == "alice@example.test"
