"""refresh_token, client_credentials, password(-realm), revocation: checklist §1.B, §1.D."""

import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from login_site.models import RefreshToken
from tests.conftest import T1
from tests.conftest import T2
from tests.conftest import basic
from tests.conftest import count
from tests.conftest import login_code
from tests.conftest import query_of
from tests.conftest import redeem
from tests.conftest import start_login
from tests.conftest import submit_login

SDK_WEB = ("sdk-web", "sdk-web-secret-0123456789abcdefghijklm")
M2M = ("m2m", "m2m-secret-0123456789abcdefghijklmnop")
API = "https://api.example.test/"


def post(client, host=T1, headers=None, **data):
    return client.post("/oauth/token", base_url=f"http://{host}", data=data, headers=headers or {})


def sdk_tokens(client, scope="openid profile email offline_access", **extra):
    code = login_code(
        client,
        client_id="sdk-web",
        redirect_uri="http://127.0.0.1:8765/callback",
        scope=scope,
        **extra,
    )
    response = redeem(
        client, code, headers=basic(*SDK_WEB), redirect_uri="http://127.0.0.1:8765/callback"
    )
    assert response.status_code == 200, response.json
    return response.json


def refresh(client, token, creds=SDK_WEB, **extra):
    return post(
        client, headers=basic(*creds), grant_type="refresh_token", refresh_token=token, **extra
    )


def jwks(client, host=T1):
    return KeySet.import_key_set(
        client.get("/.well-known/jwks.json", base_url=f"http://{host}").json
    )


# --- refresh tokens -----------------------------------------------------------------------


def test_refresh_token_only_with_offline_access(app, client):
    assert "refresh_token" not in sdk_tokens(client, scope="openid email")
    assert "refresh_token" in sdk_tokens(app.test_client())


def test_client_without_refresh_grant_gets_no_refresh_token(client):
    page, state = start_login(
        client,
        scope="openid offline_access",
        client_id="partners",
        redirect_uri="https://partners.test/cb",
    )
    done = submit_login(client, page, state, "pat", "Partner1pass", connection="partners-db")
    code = query_of(done.headers["Location"])["code"]
    body = redeem(
        client,
        code,
        headers=basic("partners", "partners-secret-0123456789abcdefghijk"),
        redirect_uri="https://partners.test/cb",
    ).json
    assert body["access_token"] and "refresh_token" not in body


def test_refresh_rotates_and_the_old_token_stops_working(backend, client):
    first = sdk_tokens(client)["refresh_token"]
    response = refresh(client, first)
    assert response.status_code == 200
    second = response.json["refresh_token"]
    assert second != first and response.json["id_token"]
    assert refresh(client, first).json["error"] == "invalid_grant"


def test_reuse_of_a_rotated_token_revokes_the_family_and_its_access_tokens(backend, client):
    tokens = sdk_tokens(client)
    rotated = refresh(client, tokens["refresh_token"]).json
    reuse = refresh(client, tokens["refresh_token"])
    assert reuse.status_code == 400 and reuse.json["error_description"] == (
        "Unknown or invalid refresh token."
    )
    assert refresh(client, rotated["refresh_token"]).json["error"] == "invalid_grant"
    info = client.get(
        "/userinfo",
        base_url=f"http://{T1}",
        headers={"Authorization": f"Bearer {rotated['access_token']}"},
    )
    assert info.status_code == 401


def test_refresh_token_is_bound_to_its_client(backend, client):
    token = sdk_tokens(client)["refresh_token"]
    assert refresh(client, token, creds=("web", "web-secret-0123456789abcdefghijklmnop")).json[
        "error"
    ] in ("invalid_grant", "unauthorized_client")
    assert refresh(client, token).status_code == 200  # the other client's attempt spent nothing


def test_refresh_cannot_widen_scope(backend, client):
    token = sdk_tokens(client, scope="openid offline_access")["refresh_token"]
    response = refresh(client, token, scope="openid offline_access email")
    assert response.status_code == 400 and response.json["error"] == "invalid_scope"
    narrowed = refresh(client, token, scope="openid")
    assert narrowed.status_code == 200 and narrowed.json["scope"] == "openid"


def test_idle_lifetime_is_enforced(backend, app, client):
    token = sdk_tokens(client)["refresh_token"]
    with app.extensions["login_site.sessionmaker"]() as db:
        from datetime import timedelta

        from login_site.db import utcnow

        for row in db.query(RefreshToken).all():
            row.idle_expires_at = utcnow() - timedelta(seconds=1)
        db.commit()
    assert refresh(client, token).json["error"] == "invalid_grant"


def test_overlap_window_allows_the_just_rotated_token(backend, app, client):
    with app.extensions["login_site.sessionmaker"]() as db:
        from login_site.models import Client

        sdk = db.query(Client).filter_by(client_id="sdk-web").one()
        sdk.extra = {**sdk.extra, "refresh_token": {"rotation_type": "rotating", "leeway": 30}}
        db.commit()
    first = sdk_tokens(client)["refresh_token"]
    assert refresh(client, first).status_code == 200
    assert refresh(client, first).status_code == 200  # inside the overlap window


def test_non_rotating_refresh_token_stays_valid(backend, app, client):
    with app.extensions["login_site.sessionmaker"]() as db:
        from login_site.models import Client

        sdk = db.query(Client).filter_by(client_id="sdk-web").one()
        sdk.extra = {**sdk.extra, "refresh_token": {"rotation_type": "non-rotating"}}
        db.commit()
    token = sdk_tokens(client)["refresh_token"]
    for _ in range(2):
        response = refresh(client, token)
        assert response.status_code == 200 and "refresh_token" not in response.json


def test_code_replay_revokes_the_refresh_token_it_produced(backend, client):
    code = login_code(
        client,
        client_id="sdk-web",
        redirect_uri="http://127.0.0.1:8765/callback",
        scope="openid offline_access",
    )
    body = redeem(
        client, code, headers=basic(*SDK_WEB), redirect_uri="http://127.0.0.1:8765/callback"
    ).json
    redeem(client, code, headers=basic(*SDK_WEB), redirect_uri="http://127.0.0.1:8765/callback")
    assert refresh(client, body["refresh_token"]).json["error"] == "invalid_grant"


def test_refresh_tokens_are_stored_hashed(app, client):
    token = sdk_tokens(client)["refresh_token"]
    with app.extensions["login_site.sessionmaker"]() as db:
        hashes = [r.token_hash for r in db.query(RefreshToken).all()]
    assert token not in hashes and len(hashes) == count(app, RefreshToken)


def test_blocked_user_cannot_refresh(backend, app, client):
    token = sdk_tokens(client)["refresh_token"]
    with app.extensions["login_site.sessionmaker"]() as db:
        from login_site.models import User

        db.query(User).filter_by(email="alice@example.test").update({"blocked": True})
        db.commit()
    response = refresh(client, token)
    assert response.status_code == 400 and "user is blocked" in response.json["error_description"]
    with app.extensions["login_site.sessionmaker"]() as db:
        db.query(User).filter_by(email="alice@example.test").update({"blocked": False})
        db.commit()
    assert refresh(client, token).json["error"] == "invalid_grant"  # the family was revoked


# --- client credentials -------------------------------------------------------------------


def test_client_credentials_issue_an_rfc9068_jwt_for_the_granted_api(client):
    response = post(client, headers=basic(*M2M), grant_type="client_credentials", audience=API)
    assert response.status_code == 200, response.json
    body = response.json
    assert "refresh_token" not in body and "id_token" not in body
    decoded = jwt.decode(body["access_token"], jwks(client), algorithms=["RS256"])
    assert decoded.header["typ"] == "at+jwt"
    claims = decoded.claims
    assert claims["aud"] == [API] and claims["sub"] == "m2m@clients"
    assert claims["client_id"] == "m2m" and claims["gty"] == "client-credentials"
    assert claims["scope"] == "read:things" and claims["jti"]
    assert claims["exp"] - claims["iat"] == 86400


def test_client_credentials_scopes_are_limited_to_the_grant(client):
    response = post(
        client,
        headers=basic(*M2M),
        grant_type="client_credentials",
        audience=API,
        scope="read:things write:things",
    )
    assert response.status_code == 403 and response.json["error"] == "access_denied"


def test_client_credentials_need_a_client_grant(client):
    response = post(
        client, headers=basic(*M2M), grant_type="client_credentials", audience="https://other.test/"
    )
    assert response.status_code == 403 and response.json["error"] == "access_denied"
    assert "client-grant" in response.json["error_description"]


def test_client_credentials_need_an_audience(client):
    response = post(client, headers=basic(*M2M), grant_type="client_credentials")
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


def test_client_credentials_only_for_clients_allowed_the_grant(client):
    response = post(client, headers=basic(), grant_type="client_credentials", audience=API)
    assert response.status_code == 400 and response.json["error"] == "unauthorized_client"


def test_public_client_cannot_use_client_credentials(client):
    response = post(client, grant_type="client_credentials", client_id="spa", audience=API)
    assert response.status_code == 401 and response.json["error"] == "invalid_client"


def test_machine_token_is_not_accepted_at_userinfo(client):
    token = post(client, headers=basic(*M2M), grant_type="client_credentials", audience=API).json[
        "access_token"
    ]
    response = client.get(
        "/userinfo", base_url=f"http://{T1}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401


def test_other_tenant_rejects_the_client(client):
    response = post(
        client, host=T2, headers=basic(*M2M), grant_type="client_credentials", audience=API
    )
    assert response.status_code == 401


# --- password and password-realm ----------------------------------------------------------

REALM = "http://auth0.com/oauth/grant-type/password-realm"


def password(client, creds=SDK_WEB, **data):
    return post(client, headers=basic(*creds), **data)


def test_password_realm_returns_tokens(client):
    response = password(
        client,
        grant_type=REALM,
        realm="db",
        username="alice@example.test",
        password="correct horse battery Staple1",
        scope="openid email",
    )
    assert response.status_code == 200, response.json
    assert response.json["id_token"] and response.json["scope"] == "openid email"


def test_plain_password_grant_uses_the_default_directory(client):
    response = password(
        client,
        grant_type="password",
        username="alice@example.test",
        password="correct horse battery Staple1",
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "username,secret",
    [
        ("alice@example.test", "wrong"),
        ("nobody@example.test", "wrong"),
        ("blocked@example.test", "wrong"),
    ],
)
def test_password_failures_are_identical(client, username, secret):
    response = password(client, grant_type=REALM, realm="db", username=username, password=secret)
    assert response.status_code == 400
    assert response.json == {
        "error": "invalid_grant",
        "error_description": "Wrong email or password.",
    }


def test_blocked_user_with_right_password_is_told_so(client):
    response = password(
        client,
        grant_type=REALM,
        realm="db",
        username="blocked@example.test",
        password="Blocked-password-1",
    )
    assert response.status_code == 401 and response.json["error_description"] == "user is blocked"


def test_password_grant_is_off_unless_listed(client):
    response = password(
        client,
        creds=("web", "web-secret-0123456789abcdefghijklmnop"),
        grant_type="password",
        username="alice@example.test",
        password="correct horse battery Staple1",
    )
    assert response.status_code == 400 and response.json["error"] == "unauthorized_client"


@pytest.mark.parametrize(
    "realm,description",
    [
        ("nope", "the connection was not found"),
        ("closed-db", "the connection was disabled"),
        ("corp-saml", "the connection was disabled"),
    ],
)
def test_realm_must_be_an_enabled_database(client, realm, description):
    response = password(
        client,
        grant_type=REALM,
        realm=realm,
        username="alice@example.test",
        password="correct horse battery Staple1",
    )
    assert response.status_code == 400 and response.json["error_description"] == description


# --- revocation ---------------------------------------------------------------------------


def revoke(client, token, creds=SDK_WEB):
    return client.post(
        "/oauth/revoke", base_url=f"http://{T1}", headers=basic(*creds), data={"token": token}
    )


def test_revoking_a_refresh_token_kills_its_family(backend, client):
    tokens = sdk_tokens(client)
    rotated = refresh(client, tokens["refresh_token"]).json["refresh_token"]
    response = revoke(client, rotated)
    assert response.status_code == 200 and response.get_data() == b""
    assert refresh(client, rotated).json["error"] == "invalid_grant"


def test_revoking_unknown_or_foreign_tokens_is_200_and_harmless(client):
    token = sdk_tokens(client)["refresh_token"]
    assert revoke(client, "bogus").status_code == 200
    assert (
        revoke(client, token, creds=("web", "web-secret-0123456789abcdefghijklmnop")).status_code
        == 200
    )
    assert refresh(client, token).status_code == 200


def test_revocation_needs_client_authentication(client):
    response = client.post("/oauth/revoke", base_url=f"http://{T1}", data={"token": "x"})
    assert response.status_code == 401 and response.json["error"] == "invalid_client"
    response = client.post("/oauth/revoke", base_url=f"http://{T1}", headers=basic(*SDK_WEB))
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


def test_revoking_an_access_token_stops_userinfo(client):
    access = sdk_tokens(client)["access_token"]
    revoke(client, access)
    response = client.get(
        "/userinfo", base_url=f"http://{T1}", headers={"Authorization": f"Bearer {access}"}
    )
    assert response.status_code == 401


def test_token_expiry_times_are_integers(client):
    body = sdk_tokens(client)
    assert isinstance(body["expires_in"], int)
    claims = jwt.decode(body["id_token"], jwks(client), algorithms=["RS256"]).claims
    assert claims["exp"] > time.time()


def test_user_access_token_for_an_api_keeps_only_known_scopes(client):
    code = login_code(client, audience=API, scope="openid read:things delete:everything bogus")
    body = redeem(client, code).json
    assert body["scope"] == "openid read:things"
    claims = jwt.decode(body["access_token"], jwks(client), algorithms=["RS256"]).claims
    assert (
        claims["aud"] == [API, f"http://{T1}/userinfo"] and claims["scope"] == "openid read:things"
    )
    info = client.get(
        "/userinfo",
        base_url=f"http://{T1}",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert info.status_code == 200
