"""Auth0's own Python SDK, auth0-python 6.8.0, unchanged against the live server.

The SDK always sends JSON with ``client_secret`` in the body and ``null`` for unset
fields (compat §0.2, §0.3); these tests hold login_site to compat §2 (``/oauth/token``),
§3 (``/oauth/revoke``) and §4 (``/userinfo``) as the SDK sees them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urljoin

import pytest
import requests
from auth0.authentication import GetToken
from auth0.authentication import RevokeToken
from auth0.authentication import Users
from auth0.authentication.exceptions import Auth0Error
from auth0.authentication.token_verifier import AsymmetricSignatureVerifier
from auth0.authentication.token_verifier import TokenVerifier
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import ALICE
from tests.conftest import csrf_token
from tests.conftest import pkce_pair
from tests.conftest import query_of

WEB_CLIENT = "sdk-web"
WEB_SECRET = "sdk-web-secret-0123456789abcdefghijklm"
WEB_CALLBACK = "http://127.0.0.1:8765/callback"
SPA_CLIENT = "spa"
SPA_CALLBACK = "http://127.0.0.1:8765/cb"
M2M_CLIENT = "m2m"
M2M_SECRET = "m2m-secret-0123456789abcdefghijklmnop"
API = "https://api.example.test/"
OFFLINE_SCOPE = "openid profile email offline_access"
HTTP_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Tenant:
    """Tenant t1 as an application configures the SDK for it."""

    domain: str
    issuer: str

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}.well-known/jwks.json"

    def get_token(self, client_id: str, client_secret: str | None = None) -> GetToken:
        return GetToken(self.domain, client_id, client_secret=client_secret, protocol="http")

    def verify_id_token(self, token: str, audience: str, nonce: str | None) -> dict:
        verifier = TokenVerifier(
            signature_verifier=AsymmetricSignatureVerifier(jwks_url=self.jwks_url),
            issuer=self.issuer,
            audience=audience,
        )
        return verifier.verify(token, nonce=nonce)


@pytest.fixture
def tenant(live_server) -> Tenant:
    return Tenant(domain=f"127.0.0.1:{live_server.port}", issuer=live_server.api_url("t1"))


def hosted_login(tenant: Tenant, client_id: str, redirect_uri: str, **params: str) -> str:
    """Browser-like hosted login as alice (compat §1.1); returns the authorization code."""
    base = tenant.issuer
    state = secrets.token_urlsafe(12)
    browser = requests.Session()
    started = browser.get(
        urljoin(base, "/authorize"),
        params={
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "openid profile email",
            "state": state,
            **params,
        },
        allow_redirects=False,
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert started.status_code == 302, started.text[:500]
    login_url = urljoin(base, started.headers["Location"])
    page = browser.get(login_url, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS)
    assert page.status_code == 200, page.text[:500]
    submitted = browser.post(
        urljoin(base, "/login"),
        data={
            "csrf_token": csrf_token(page.text),
            "state": query_of(login_url)["state"],
            "connection": "db",
            "action": "login",
            "username": ALICE[0],
            "password": ALICE[1],
        },
        allow_redirects=False,
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert submitted.status_code == 302, submitted.text[:800]
    location = submitted.headers["Location"]
    assert location.startswith(redirect_uri + "?"), location
    answer = query_of(location)
    assert answer["state"] == state
    assert answer["iss"] == tenant.issuer
    return answer["code"]


def web_tokens(tenant: Tenant, scope: str = OFFLINE_SCOPE) -> dict:
    """Tokens for alice at ``sdk-web`` through the code flow and the SDK."""
    code = hosted_login(tenant, WEB_CLIENT, WEB_CALLBACK, scope=scope, nonce="n-web")
    return tenant.get_token(WEB_CLIENT, WEB_SECRET).authorization_code(code, WEB_CALLBACK)


def assert_sdk_error(raised: pytest.ExceptionInfo, status: int, error: str) -> None:
    assert raised.value.status_code == status, str(raised.value)
    assert raised.value.error_code == error, str(raised.value)
    assert raised.value.message, "error_description is empty"


# --- GetToken.authorization_code -------------------------------------------------------------


def test_authorization_code_exchange_yields_an_id_token_the_sdk_verifies(tenant):
    nonce = secrets.token_urlsafe(16)
    code = hosted_login(tenant, WEB_CLIENT, WEB_CALLBACK, nonce=nonce)

    tokens = tenant.get_token(WEB_CLIENT, WEB_SECRET).authorization_code(code, WEB_CALLBACK)

    assert tokens["token_type"] == "Bearer"
    assert tokens["access_token"] and tokens["expires_in"] > 0
    claims = tenant.verify_id_token(tokens["id_token"], WEB_CLIENT, nonce)
    assert claims["iss"] == tenant.issuer and claims["iss"].endswith("/")
    assert claims["sub"].startswith("auth0|")
    assert claims["email"] == ALICE[0]


# --- GetToken.authorization_code_pkce --------------------------------------------------------


def test_authorization_code_pkce_exchange_works_for_a_public_client(tenant):
    verifier, challenge = pkce_pair()
    nonce = secrets.token_urlsafe(16)
    code = hosted_login(
        tenant,
        SPA_CLIENT,
        SPA_CALLBACK,
        nonce=nonce,
        code_challenge=challenge,
        code_challenge_method="S256",
    )

    tokens = tenant.get_token(SPA_CLIENT).authorization_code_pkce(verifier, code, SPA_CALLBACK)

    assert tokens["token_type"] == "Bearer" and tokens["access_token"]
    claims = tenant.verify_id_token(tokens["id_token"], SPA_CLIENT, nonce)
    assert claims["aud"] == SPA_CLIENT


def test_authorization_code_pkce_with_a_wrong_verifier_raises_invalid_grant(tenant):
    _, challenge = pkce_pair()
    other_verifier, _ = pkce_pair()
    code = hosted_login(
        tenant,
        SPA_CLIENT,
        SPA_CALLBACK,
        nonce="n-spa",
        code_challenge=challenge,
        code_challenge_method="S256",
    )

    with pytest.raises(Auth0Error) as raised:
        tenant.get_token(SPA_CLIENT).authorization_code_pkce(other_verifier, code, SPA_CALLBACK)

    assert_sdk_error(raised, 400, "invalid_grant")  # RFC 6749 §5.2 (Auth0 answers 403)


# --- GetToken.client_credentials -------------------------------------------------------------


def test_client_credentials_returns_an_api_jwt_signed_with_the_tenant_key(tenant):
    tokens = tenant.get_token(M2M_CLIENT, M2M_SECRET).client_credentials(API)

    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    assert tokens["scope"] == "read:things"
    assert "id_token" not in tokens and "refresh_token" not in tokens
    jwks = requests.get(tenant.jwks_url, timeout=HTTP_TIMEOUT_SECONDS).json()
    decoded = jwt.decode(tokens["access_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
    claims = decoded.claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": tenant.issuer},
        exp={"essential": True},
        iat={"essential": True},
    ).validate(claims)
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert audiences == [API]
    assert claims["scope"] == "read:things"
    assert claims["gty"] == "client-credentials"
    assert claims["sub"] == "m2m@clients"
    assert claims["azp"] == M2M_CLIENT


def test_client_credentials_with_a_wrong_secret_raises_invalid_client(tenant):
    sdk = tenant.get_token(M2M_CLIENT, "wrong-secret-0123456789abcdefghijklmnop")

    with pytest.raises(Auth0Error) as raised:
        sdk.client_credentials(API)

    assert_sdk_error(raised, 401, "invalid_client")


def test_client_credentials_for_an_audience_without_a_client_grant_raises_access_denied(tenant):
    sdk = tenant.get_token(M2M_CLIENT, M2M_SECRET)

    with pytest.raises(Auth0Error) as raised:
        sdk.client_credentials("https://no-grant.example.test/")

    assert_sdk_error(raised, 403, "access_denied")


# --- GetToken.login (password-realm) ---------------------------------------------------------


def test_password_realm_login_returns_tokens_for_the_database_user(tenant):
    tokens = tenant.get_token(WEB_CLIENT, WEB_SECRET).login(
        ALICE[0], ALICE[1], scope="openid profile email", realm="db"
    )

    assert tokens["token_type"] == "Bearer" and tokens["access_token"]
    claims = tenant.verify_id_token(tokens["id_token"], WEB_CLIENT, nonce=None)
    assert claims["email"] == ALICE[0]
    assert claims["sub"].startswith("auth0|")


def test_password_realm_login_with_a_wrong_password_raises_invalid_grant(tenant):
    sdk = tenant.get_token(WEB_CLIENT, WEB_SECRET)

    with pytest.raises(Auth0Error) as raised:
        sdk.login(ALICE[0], "not alice's password", scope="openid", realm="db")

    assert_sdk_error(raised, 400, "invalid_grant")
    assert raised.value.message == "Wrong email or password."


# --- GetToken.refresh_token ------------------------------------------------------------------


def test_refresh_token_rotates_and_reusing_a_rotated_one_revokes_the_family(tenant):
    first = web_tokens(tenant)
    assert first.get("refresh_token"), f"no refresh token for offline_access: {sorted(first)}"
    sdk = tenant.get_token(WEB_CLIENT, WEB_SECRET)

    second = sdk.refresh_token(first["refresh_token"])  # sends "scope": "" (compat §0.2)

    assert second["access_token"] and second["access_token"] != first["access_token"]
    assert second["id_token"]
    assert second["refresh_token"] and second["refresh_token"] != first["refresh_token"]
    with pytest.raises(Auth0Error) as reused:
        sdk.refresh_token(first["refresh_token"])
    assert_sdk_error(reused, 400, "invalid_grant")
    with pytest.raises(Auth0Error) as newest:
        sdk.refresh_token(second["refresh_token"])
    assert_sdk_error(newest, 400, "invalid_grant")


# --- RevokeToken.revoke_refresh_token --------------------------------------------------------


def test_revoked_refresh_token_can_no_longer_be_used(tenant):
    refresh_token = web_tokens(tenant).get("refresh_token")
    assert refresh_token, "no refresh token for offline_access"
    revoker = RevokeToken(tenant.domain, WEB_CLIENT, client_secret=WEB_SECRET, protocol="http")

    assert revoker.revoke_refresh_token(refresh_token) == ""  # 200 with an empty body (§3)

    with pytest.raises(Auth0Error) as raised:
        tenant.get_token(WEB_CLIENT, WEB_SECRET).refresh_token(refresh_token)
    assert_sdk_error(raised, 400, "invalid_grant")


# --- Users.userinfo --------------------------------------------------------------------------


def test_userinfo_returns_alices_subject_and_email(tenant):
    tokens = web_tokens(tenant, scope="openid profile email")
    id_claims = tenant.verify_id_token(tokens["id_token"], WEB_CLIENT, "n-web")

    profile = Users(tenant.domain, protocol="http").userinfo(tokens["access_token"])

    assert profile["sub"] == id_claims["sub"]
    assert profile["email"] == ALICE[0]
    assert profile["email_verified"] is True
    assert profile["name"] == "Alice Example"
