"""Bearer tokens for /api/v2: only this tenant's client_credentials tokens for its
Management API audience, with the endpoint's scope (management-api.md §1)."""

from __future__ import annotations

import base64
import json
import time

from login_site.management import auth
from login_site.management.errors import ManagementError
from tests.management.conftest import T1
from tests.management.conftest import T2
from tests.management.conftest import T2WEB
from tests.management.conftest import bearer
from tests.management.conftest import grant_management_api


def get(api, path="/api/v2/clients", headers=None, host=T1):
    return api.get(path, base_url=f"http://{host}", headers=headers or {})


def assert_auth0_error(response, status, code):
    body = response.get_json()
    assert response.status_code == status
    assert body["statusCode"] == status
    assert body["errorCode"] == code
    assert body["error"] and body["message"]


def test_missing_token_is_401_with_a_bearer_challenge(api):
    response = get(api)
    assert_auth0_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_only_the_authorization_header_is_accepted(api):
    token = api.token("read:clients")
    assert get(api, f"/api/v2/clients?access_token={token}").status_code == 401
    basic_header = {"Authorization": "Basic " + base64.b64encode(b"m2m:x").decode()}
    assert get(api, headers=basic_header).status_code == 401


def test_tampered_token_is_401(api):
    token = api.token("read:clients")
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "read:clients delete:clients"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = get(api, headers=bearer(f"{head}.{forged}.{signature}"))
    assert_auth0_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unsigned_token_is_401(api):
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {
        "iss": f"http://{T1}/",
        "aud": f"http://{T1}/api/v2/",
        "azp": "m2m",
        "gty": "client-credentials",
        "scope": "read:clients",
        "exp": int(time.time()) + 600,
    }
    token = part({"alg": "none", "typ": "JWT"}) + "." + part(claims) + "."
    assert get(api, headers=bearer(token)).status_code == 401


def test_token_for_another_api_is_401(api):
    response = api.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        data={"grant_type": "client_credentials", "audience": "https://api.example.test/"},
        headers={
            "Authorization": "Basic "
            + base64.b64encode(b"m2m:m2m-secret-0123456789abcdefghijklmnop").decode()
        },
    )
    assert response.status_code == 200
    assert get(api, headers=bearer(response.get_json()["access_token"])).status_code == 401


def test_another_tenants_token_is_401(app, api):
    grant_management_api(app, "t2", T2, "t2web")
    t2_token = api.token("read:clients", host=T2, credentials=T2WEB)
    assert get(api, host=T2, headers=bearer(t2_token)).status_code == 200
    assert_auth0_error(get(api, headers=bearer(t2_token)), 401, "invalid_token")


def test_missing_scope_is_403_naming_the_expected_scope(api):
    token = api.token("read:connections")
    response = get(api, headers=bearer(token))
    assert_auth0_error(response, 403, "insufficient_scope")
    assert response.get_json()["message"] == "Insufficient scope, expected any of: read:clients"


def test_expired_token_is_refused(app, api):
    token = api.token("read:clients")
    with app.test_request_context("/", base_url=f"http://{T1}"):
        db = app.extensions["login_site.sessionmaker"]()
        from login_site.tenancy import tenant_for_host

        tenant = tenant_for_host(db, T1)
        issuer = f"http://{T1}/"
        assert auth.verify(db, tenant.id, token, issuer).client_id == "m2m"
        try:
            auth.verify(db, tenant.id, token, issuer, now=time.time() + 90000)
        except ManagementError as exc:
            assert exc.status == 401
        else:
            raise AssertionError("an expired token was accepted")
        db.close()


def test_a_deleted_clients_tokens_stop_working(api):
    token = api.token()
    response = api.delete("/api/v2/clients/m2m", base_url=f"http://{T1}", headers=bearer(token))
    assert response.status_code == 204
    assert get(api, headers=bearer(token)).status_code == 401
