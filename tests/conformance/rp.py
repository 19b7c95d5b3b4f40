"""The relying party that the OpenID Foundation conformance suite plays, as plain functions.

It knows the OP only through discovery, the JWKS and HTTP responses, and checks what the
suite's conditions check (repo openid-certification/conformance-suite, package
``net.openid.conformance.condition.client``); each check names its condition. Where the
suite only warns, we assert when the fixtures let us; the module docstrings say so.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import secrets
import string
import threading
import time
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import quote_plus
from urllib.parse import urlencode
from urllib.parse import urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.conftest import ALICE
from tests.conftest import T1
from tests.conftest import WEB_SECRET
from tests.conftest import csrf_token
from tests.conftest import query_of

BASE = f"http://{T1}"
ISSUER = f"{BASE}/"
SKEW_SECONDS = 300  # the suite allows five minutes of clock skew
YEAR_1990 = 631152000
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class Registration:
    """A statically registered client, as the suite is configured with it."""

    client_id: str
    secret: str
    auth_method: str
    redirect_uri: str


WEB = Registration("web", WEB_SECRET, "client_secret_basic", "https://app.test/cb")
SDK_WEB = Registration(
    "sdk-web",
    "sdk-web-secret-0123456789abcdefghijklm",
    "client_secret_post",
    "http://127.0.0.1:8765/callback",
)
POST_LOGOUT_REDIRECT_URI = "https://app.test/bye"

# OIDC Core §5.4, as AbstractVerifyScopesReturnedInClaims lists them.
SCOPE_CLAIMS: dict[str, frozenset[str]] = {
    "openid": frozenset({"sub"}),
    "profile": frozenset(
        {
            "name",
            "given_name",
            "family_name",
            "middle_name",
            "nickname",
            "preferred_username",
            "profile",
            "picture",
            "website",
            "gender",
            "birthdate",
            "zoneinfo",
            "locale",
            "updated_at",
        }
    ),
    "email": frozenset({"email", "email_verified"}),
    "address": frozenset({"address"}),
    "phone": frozenset({"phone_number", "phone_number_verified"}),
    "offline_access": frozenset(),
}
# EnsureIdTokenDoesNotContainNonRequestedClaims: claims an ID token may carry unrequested.
ID_TOKEN_CLAIMS = frozenset(
    {
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "acr",
        "amr",
        "azp",
        "at_hash",
        "c_hash",
        "s_hash",
        "nbf",
        "jti",
        "sid",
    }
)
# CheckForUnexpectedParametersInErrorResponseFromAuthorizationEndpoint
ERROR_RESPONSE_PARAMS = frozenset(
    {"error", "error_description", "error_uri", "state", "session_state", "iss"}
)
# CheckErrorFromAuthorizationEndpointIsOneThatRequiredAUserInterface (OIDC Core §3.1.2.6)
USER_INTERFACE_ERRORS = frozenset(
    {"interaction_required", "login_required", "account_selection_required", "consent_required"}
)
# RFC 6749 §4.1.2.1 / §5.2 error_description charset, without the TAB/CR/LF the suite warns on
# (ValidateErrorDescriptionFrom*ResponseError, CheckErrorDescription*ContainsCRLFTAB).
ERROR_DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")
VSCHAR = re.compile(r"[\x20-\x7e]+")  # RFC 6749 Appendix A.12, A.17
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
STRING_CLAIMS = frozenset(
    {
        "sub",
        "name",
        "given_name",
        "family_name",
        "middle_name",
        "nickname",
        "preferred_username",
        "profile",
        "picture",
        "website",
        "email",
        "gender",
        "zoneinfo",
        "locale",
        "phone_number",
    }
)
BOOLEAN_CLAIMS = frozenset({"email_verified", "phone_number_verified"})
BIRTHDATE = re.compile(r"\d{4}(-\d{2}-\d{2})?")


# --- values the suite generates ---------------------------------------------------------------


def random_state(length: int = 10) -> str:
    """CreateRandomStateValue: alphanumerics; long values end in ``-._~`` (JWT-like states)."""
    alphabet = string.ascii_letters + string.digits
    if length > 10:
        return "".join(secrets.choice(alphabet) for _ in range(length - 4)) + "-._~"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def random_nonce() -> str:
    return random_state(10)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def shannon_bits(value: str) -> float:
    """AbstractEnsureMinimumEntropy: Shannon entropy per character times length."""
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values()) * total


def half_hash(value: str) -> str:
    """``at_hash`` for RS256 (OIDC Core §3.1.3.6), computed on our side."""
    return b64url(hashlib.sha256(value.encode("ascii")).digest()[:16])


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """SerializeRequestObjectWithNullAlgorithm / ChangeIdTokenToAlgNone."""
    header = b64url(json.dumps({"alg": "none"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


def jose_header(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[0]))


def jose_payload(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[1]))


# --- discovery and keys -----------------------------------------------------------------------


def at(url: str) -> dict[str, str]:
    """Request arguments for an absolute URL taken from the OP's metadata."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return {"path": path, "base_url": f"{parts.scheme}://{parts.netloc}"}


def discovery(browser, base: str = BASE) -> dict[str, Any]:
    """GetDynamicServerConfiguration + CheckDiscEndpointIssuer."""
    response = browser.get("/.well-known/openid-configuration", base_url=base)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    metadata = response.json
    assert metadata["issuer"] == f"{base}/"
    return metadata


def check_jwks(jwks: dict[str, Any]) -> None:
    """ValidateJwksSequence, CheckServerKeysIsValid, CheckForKeyIdInServerJWKs,
    CheckDistinctKeyIdValueInServerJWKs (plus RSA >= 2048 bits, checklist JW-05)."""
    keys = jwks["keys"]
    assert isinstance(keys, list) and keys
    kids = [key.get("kid") for key in keys]
    assert all(isinstance(kid, str) and kid for kid in kids), kids
    assert len(set(kids)) == len(kids), kids
    for key in keys:
        assert key["kty"] == "RSA", key
        assert not PRIVATE_JWK_MEMBERS & set(key), sorted(key)
        assert key.get("use", "sig") == "sig"
        assert key.get("alg", "RS256") == "RS256"
        assert len(b64url_decode(key["n"])) * 8 >= 2048
        RSAKey.import_key(key)


def server_jwks(browser, metadata: dict[str, Any]) -> dict[str, Any]:
    """FetchServerKeys."""
    response = browser.get(**at(metadata["jwks_uri"]))
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    jwks = response.json
    check_jwks(jwks)
    return jwks


# --- authorization endpoint -------------------------------------------------------------------


def authorization_request(
    reg: Registration = WEB, *, scope: str = "openid", state_length: int = 10, **extra
) -> dict[str, str]:
    """CreateAuthorizationEndpointRequestFromClientInformation + state + nonce; ``None``
    removes a parameter."""
    request: dict[str, Any] = {
        "client_id": reg.client_id,
        "redirect_uri": reg.redirect_uri,
        "response_type": "code",
        "scope": scope,
        "state": random_state(state_length),
        "nonce": random_nonce(),
    }
    request.update(extra)
    return {k: v for k, v in request.items() if v is not None}


def send_authorization(browser, request: dict[str, str], *, method="GET", reverse=False):
    """BuildPlainRedirectToAuthorizationEndpoint (optionally ...ReorderedParams), or a POST."""
    endpoint = at(discovery(browser)["authorization_endpoint"])
    if method == "POST":
        return browser.post(endpoint["path"], base_url=endpoint["base_url"], data=request)
    pairs = sorted(request.items(), reverse=True) if reverse else list(request.items())
    return browser.get(f"{endpoint['path']}?{urlencode(pairs)}", base_url=endpoint["base_url"])


def login_page(browser, response):
    """The OP showed its login UI: a redirect to the hosted page, which renders a form."""
    assert response.status_code == 302, (response.status_code, response.headers.get("Location"))
    location = response.headers["Location"]
    parts = urlsplit(location)
    assert parts.netloc in ("", T1) and parts.path == "/login", location
    page = browser.get(location, base_url=BASE)
    assert page.status_code == 200 and page.mimetype == "text/html"
    return page


def log_in(browser, response, user: tuple[str, str] = ALICE):
    """The user signs in on the page the OP sent the browser to; returns the OP's answer."""
    page = login_page(browser, response)
    return browser.post(
        "/login",
        base_url=BASE,
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "state": query_of(response.headers["Location"])["state"],
            "connection": "db",
            "action": "login",
            "username": user[0],
            "password": user[1],
        },
    )


def callback_params(response, redirect_uri: str) -> dict[str, str]:
    """The browser arrives at ``redirect_uri`` (query mode): same scheme, host and path,
    the registered query kept (CheckMatchingCallbackParameters), nothing in a fragment."""
    assert response.status_code in (302, 303), (
        response.status_code,
        response.headers.get("Location"),
        response.get_data(as_text=True)[:300],
    )
    got = urlsplit(response.headers["Location"])
    want = urlsplit(redirect_uri)
    assert (got.scheme, got.netloc, got.path) == (want.scheme, want.netloc, want.path), got
    assert not got.fragment
    pairs = parse_qsl(got.query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), names
    params = dict(pairs)
    for name, value in parse_qsl(want.query, keep_blank_values=True):
        assert params.get(name) == value, (name, params)
    return params


def success_params(response, request: dict[str, str], issuer: str = ISSUER) -> dict[str, str]:
    """CheckIfAuthorizationEndpointError, CheckStateInAuthorizationResponse,
    ValidateIssIfPresentInAuthorizationResponse (RFC 9207: we always send it),
    EnsureMinimumAuthorizationCodeLength/Entropy."""
    params = callback_params(response, request["redirect_uri"])
    assert "error" not in params, params
    assert params.get("state") == request.get("state")
    assert params["iss"] == issuer
    code = params["code"]
    assert len(code.encode()) * 8 >= 128
    assert shannon_bits(code) > 96
    return params


def error_params(
    response, request: dict[str, str], errors: frozenset[str] | set[str], issuer: str = ISSUER
) -> dict[str, str]:
    """performGenericAuthorizationEndpointErrorResponseValidation."""
    params = callback_params(response, request["redirect_uri"])
    assert params.get("error") in errors, params
    assert params.get("state") == request.get("state")
    assert params["iss"] == issuer
    assert "code" not in params and "access_token" not in params and "id_token" not in params
    registered = {name for name, _ in parse_qsl(urlsplit(request["redirect_uri"]).query)}
    assert set(params) <= ERROR_RESPONSE_PARAMS | registered, sorted(params)
    if "error_description" in params:
        assert ERROR_DESCRIPTION.fullmatch(params["error_description"]), params
    if "error_uri" in params:
        assert urlsplit(params["error_uri"]).scheme in ("http", "https")
    return params


def error_page(response, status: int = 400) -> str:
    """The OP showed an error page instead of redirecting (the suite's screenshot
    placeholders): the status, a readable HTML page, no ``Location``, no leaks (§0.3)."""
    assert response.status_code == status, (response.status_code, response.headers)
    assert "Location" not in response.headers, response.headers["Location"]
    assert response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    for leak in ("Traceback", "sqlalchemy", 'File "/', WEB_SECRET):
        assert leak not in body
    return body


# --- token endpoint ---------------------------------------------------------------------------


def token_request(browser, reg: Registration, data: dict[str, str]):
    """CallTokenEndpointAndReturnFullResponse with the client's authentication method
    (AddBasicAuthClientSecretToRequest form-encodes id and secret, RFC 6749 §2.3.1)."""
    endpoint = at(discovery(browser)["token_endpoint"])
    body = dict(data)
    headers = {}
    if reg.auth_method == "client_secret_basic":
        pair = f"{quote_plus(reg.client_id)}:{quote_plus(reg.secret)}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        body.update(client_id=reg.client_id, client_secret=reg.secret)
    return browser.post(endpoint["path"], base_url=endpoint["base_url"], data=body, headers=headers)


def redeem_code(browser, reg: Registration, code: str, redirect_uri: str, **extra):
    """CreateTokenEndpointRequestForAuthorizationCodeGrant."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    return token_request(browser, reg, {**data, **extra})


def refresh(browser, reg: Registration, refresh_token: str, scope: str | None = None):
    """CreateRefreshTokenRequest (+ AddScopeToTokenEndpointRequest)."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope is not None:
        data["scope"] = scope
    return token_request(browser, reg, data)


def no_store(response) -> bool:
    """CheckTokenEndpointCacheHeaders (RFC 6749 §5.1)."""
    values = [part.strip() for part in response.headers.get("Cache-Control", "").split(",")]
    return "no-store" in values


def token_success(response) -> dict[str, Any]:
    """CheckTokenEndpointHttpStatus200, CheckTokenEndpointReturnedJsonContentType,
    CheckTokenEndpointCacheHeaders (and Pragma, TK-12), CheckTokenTypeIsBearer,
    EnsureMinimumAccessTokenEntropy, EnsureAccessTokenContainsAllowedCharactersOnly,
    ValidateExpiresIn, EnsureRefreshTokenContainsAllowedCharactersOnly,
    EnsureMinimumRefreshTokenLength/Entropy."""
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    assert no_store(response), response.headers.get("Cache-Control")
    assert response.headers.get("Pragma") == "no-cache"
    body = response.json
    assert body["token_type"].lower() == "bearer"
    access = body["access_token"]
    assert VSCHAR.fullmatch(access) and shannon_bits(access) > 96
    expires_in = body["expires_in"]
    assert isinstance(expires_in, int) and not isinstance(expires_in, bool) and expires_in > 0
    if "refresh_token" in body:
        rt = body["refresh_token"]
        assert VSCHAR.fullmatch(rt) and len(rt.encode()) * 8 >= 128 and shannon_bits(rt) > 96
    return body


def token_error(response, error: str = "invalid_grant", status: int = 400) -> dict[str, Any]:
    """CheckTokenEndpointHttpStatus400, CheckTokenEndpointReturnedJsonContentType,
    CheckErrorFromTokenEndpointResponseErrorInvalidGrant, ValidateErrorDescription...,
    ValidateErrorUriFromTokenEndpointResponseError."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    assert no_store(response)
    body = response.json
    assert body["error"] == error, body
    if "error_description" in body:
        assert ERROR_DESCRIPTION.fullmatch(body["error_description"]), body
    if "error_uri" in body:
        assert urlsplit(body["error_uri"]).scheme in ("http", "https")
    assert "access_token" not in body and "id_token" not in body and "refresh_token" not in body
    return body


# --- ID tokens and claims ---------------------------------------------------------------------


def scope_claims(scope: str) -> frozenset[str]:
    names: set[str] = {"sub"}
    for value in scope.split():
        names |= SCOPE_CLAIMS.get(value, frozenset())
    return frozenset(names)


def check_standard_claims(claims: dict[str, Any]) -> None:
    """ValidateIdTokenStandardClaims / ValidateUserInfoStandardClaims (OIDC Core §5.1)
    and EnsureIdTokenUpdatedAtValid / EnsureUserInfoUpdatedAtValid."""
    now = time.time()
    for name, value in claims.items():
        if name in ID_TOKEN_CLAIMS - {"sub"}:
            continue
        if name in STRING_CLAIMS:
            assert isinstance(value, str) and value.strip() and value.lower() != "null", name
        elif name in BOOLEAN_CLAIMS:
            assert isinstance(value, bool), (name, value)
        elif name == "updated_at":
            # OIDC Core §5.1: "its value is a JSON number representing the number of
            # seconds from 1970-01-01T00:00:00Z".
            assert isinstance(value, int | float) and not isinstance(value, bool), (name, value)
            assert YEAR_1990 <= value <= now + SKEW_SECONDS, (name, value)
        elif name == "birthdate":
            assert isinstance(value, str) and BIRTHDATE.fullmatch(value), (name, value)
        elif name == "address":
            assert isinstance(value, dict) and value, (name, value)
            for part in value.values():
                assert isinstance(part, str) and part.strip(), (name, value)


def validate_id_token(
    browser,
    token: str,
    reg: Registration,
    request: dict[str, str],
    *,
    access_token: str | None = None,
    check_nonce: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """PerformStandardIdTokenChecks (ValidateIdToken, ValidateIdTokenStandardClaims,
    ValidateIdTokenNonce, ValidateIdTokenSignature, CheckForSubjectInIdToken,
    EnsureIdTokenUpdatedAtValid), EnsureIdTokenContainsKid, EnsureIdTokenSignatureIsRS256,
    ValidateAtHash and EnsureIdTokenDoesNotContainNonRequestedClaims."""
    metadata = discovery(browser)
    jwks = server_jwks(browser, metadata)
    header = jose_header(token)
    assert header["alg"] == "RS256", header
    assert header.get("kid"), header
    matching = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
    assert len(matching) == 1, (header["kid"], [key["kid"] for key in jwks["keys"]])
    claims = jwt.decode(token, RSAKey.import_key(matching[0]), algorithms=["RS256"]).claims
    now = time.time()
    assert claims["iss"] == metadata["issuer"]
    aud = claims["aud"]
    if isinstance(aud, list):
        assert reg.client_id in aud
        if len(aud) > 1:
            assert claims.get("azp") == reg.client_id
    else:
        assert aud == reg.client_id
    if "azp" in claims:
        assert claims["azp"] == reg.client_id
    for name in ("exp", "iat"):
        assert isinstance(claims[name], int) and not isinstance(claims[name], bool), name
    assert now - SKEW_SECONDS < claims["exp"] < now + 50 * 365 * 86400
    assert claims["exp"] > claims["iat"]
    assert now - SKEW_SECONDS <= claims["iat"] <= now + SKEW_SECONDS
    if "auth_time" in claims:
        assert isinstance(claims["auth_time"], int)
        assert now - 365 * 86400 < claims["auth_time"] <= now + SKEW_SECONDS
    if "max_age" in request:
        assert "auth_time" in claims  # CheckIdTokenAuthTimeClaimPresentDueToMaxAge
    if "acr" in claims:
        assert isinstance(claims["acr"], str) and claims["acr"]
    if check_nonce:
        if request.get("nonce") is None:
            assert "nonce" not in claims
        else:
            assert claims["nonce"] == request["nonce"]
    sub = claims["sub"]
    assert isinstance(sub, str) and 0 < len(sub) <= 255
    assert all(0x20 <= ord(c) < 0x7F for c in sub), sub
    if access_token is not None:
        assert claims["at_hash"] == half_hash(access_token)
    check_standard_claims(claims)
    unrequested = set(claims) - ID_TOKEN_CLAIMS - scope_claims(request["scope"])
    assert not unrequested, unrequested
    return header, claims


# --- userinfo ---------------------------------------------------------------------------------


def call_userinfo(browser, access_token: str, style: str = "get"):
    """CallUserInfoEndpoint (GET or POST with the header) or ...WithBearerTokenInBody."""
    endpoint = at(discovery(browser)["userinfo_endpoint"])
    bearer = {"Authorization": f"Bearer {access_token}"}
    if style == "get":
        return browser.get(**endpoint, headers=bearer)
    if style == "post-header":
        return browser.post(**endpoint, headers=bearer)
    assert style == "post-body"
    return browser.post(**endpoint, data={"access_token": access_token})


def check_userinfo(response, id_claims: dict[str, Any], scope: str) -> dict[str, Any]:
    """EnsureHttpStatusCodeIs200, EnsureContentTypeJson, ValidateUserInfoStandardClaims,
    EnsureUserInfoContainsSub, EnsureUserInfoUpdatedAtValid,
    VerifyUserInfoAndIdTokenInTokenEndpointSameSub; and nothing beyond the scope."""
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    info = response.json
    assert info["sub"] == id_claims["sub"]
    check_standard_claims(info)
    assert set(info) <= scope_claims(scope), sorted(set(info) - scope_claims(scope))
    return info


# --- a whole authorization code flow ----------------------------------------------------------


@dataclass
class Flow:
    request: dict[str, str]
    callback: dict[str, str]
    tokens: dict[str, Any]
    header: dict[str, Any]
    claims: dict[str, Any]


def finish_flow(
    browser,
    reg: Registration,
    request: dict[str, str],
    response,
    *,
    code_verifier: str | None = None,
) -> Flow:
    """From the authorization response to validated tokens."""
    callback = success_params(response, request)
    extra = {"code_verifier": code_verifier} if code_verifier else {}
    tokens = token_success(
        redeem_code(browser, reg, callback["code"], request["redirect_uri"], **extra)
    )
    header, claims = validate_id_token(
        browser, tokens["id_token"], reg, request, access_token=tokens["access_token"]
    )
    return Flow(request, callback, tokens, header, claims)


def code_flow(
    browser,
    reg: Registration = WEB,
    *,
    expect_login: bool = True,
    expect_consent: bool = False,
    method: str = "GET",
    reverse: bool = False,
    code_verifier: str | None = None,
    **params,
) -> Flow:
    """AbstractOIDCCServerTest's happy path. The OP must show its login page when
    ``expect_login`` and its consent page when ``expect_consent``, and no UI otherwise."""
    request = authorization_request(reg, **params)
    response = send_authorization(browser, request, method=method, reverse=reverse)
    if expect_login:
        response = log_in(browser, response)
    if expect_consent:
        response = give_consent(browser, response)
    return finish_flow(browser, reg, request, response, code_verifier=code_verifier)


def prompt_none(browser, reg: Registration = WEB, **params):
    """A silent authorization request (AddPromptNoneToAuthorizationEndpointRequest)."""
    request = authorization_request(reg, prompt="none", **params)
    return request, send_authorization(browser, request)


# --- RP-initiated logout ----------------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str]
    submit: tuple[str, str] | None = None

    def data(self) -> dict[str, str]:
        """What the browser sends when the form's first named button is pressed."""
        return {**self.fields, **dict([self.submit] if self.submit else [])}


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            action = attributes.get("action", "")
            self._current = Form(action, attributes.get("method", "get").lower(), {})
            self.forms.append(self._current)
            return
        if self._current is None or tag not in ("input", "button", "textarea"):
            return
        name = attributes.get("name")
        kind = attributes.get("type", "submit" if tag == "button" else "text").lower()
        if not name:
            return
        if kind == "submit":
            self._current.submit = self._current.submit or (name, attributes.get("value", ""))
        elif kind not in ("checkbox", "radio") or "checked" in attributes:
            self._current.fields[name] = attributes.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def forms_of(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def follow_on_op(browser, response, limit: int = 5):
    """Follow redirects that stay on the OP (to a confirmation or logged-out page);
    stop at the first one that leaves it."""
    for _ in range(limit):
        location = response.headers.get("Location")
        if response.status_code not in REDIRECT_STATUSES or not location:
            return response
        if urlsplit(location).netloc not in ("", T1):
            return response
        response = browser.get(location, base_url=BASE)
    return response


def end_session(browser, **params):
    """BuildRedirectToEndSessionEndpoint: the browser goes to the discovered
    ``end_session_endpoint`` (compat §6/§7: ``{issuer}oidc/logout``)."""
    metadata = discovery(browser)
    endpoint = metadata.get("end_session_endpoint")
    assert endpoint == f"{metadata['issuer']}oidc/logout", endpoint
    response = browser.get(**at(endpoint), query_string=params)
    return follow_on_op(browser, response)


def press_first_button(browser, page):
    """The user presses the first button of the page's first POST form."""
    posts = [form for form in forms_of(page.get_data(as_text=True)) if form.method == "post"]
    assert posts, page.get_data(as_text=True)[:500]
    form = posts[0]
    parts = urlsplit(form.action or page.request.path)
    assert parts.netloc in ("", T1), form.action
    return browser.post(parts.path or page.request.path, base_url=BASE, data=form.data())


def give_consent(browser, response):
    """The OP asks for consent on a page of its own; the user allows (its first button)."""
    page = follow_on_op(browser, response)
    assert page.status_code == 200 and page.mimetype == "text/html", (
        page.status_code,
        page.headers.get("Location"),
    )
    return press_first_button(browser, page)


def confirm_if_asked(browser, response):
    """When the OP asks the user to confirm the logout (RPL §2; compat §6 without a hint
    matching the session), the user confirms, as the suite's tester would; the answer is
    followed while it stays on the OP."""
    if response.status_code != 200:
        return response
    posts = [form for form in forms_of(response.get_data(as_text=True)) if form.method == "post"]
    if not posts:
        return response
    return follow_on_op(browser, press_first_button(browser, response))


def stays_on_op(response) -> str:
    """The OP must not redirect back: an error page (400) or a page of its own (200)."""
    location = response.headers.get("Location")
    assert location is None, f"redirected to {location}"
    assert response.status_code in (200, 400), response.status_code
    assert response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    assert "Traceback" not in body
    return body


# --- a request_uri host that must never be contacted -----------------------------------------


class RequestObjectHost:
    """Serves one request object on loopback (AbstractOIDCCRequestUriServerTest's
    ``handleRequestUriRequest``) and counts fetches (checklist AZ-16: never fetched)."""

    def __init__(self, request_object: str):
        self.fetches = 0
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                host.fetches += 1
                body = request_object.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/oauth-authz-req+jwt")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/request.jwt"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RequestObjectHost:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
