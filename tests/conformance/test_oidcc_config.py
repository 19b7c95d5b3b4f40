"""OpenID Foundation Config OP plan (``oidcc-config-certification-test-plan``, checklist A.2):
its one module, ``oidcc-discovery-endpoint-verification``."""

import re
from urllib.parse import urlsplit

from tests.conformance.rp import BASE
from tests.conformance.rp import discovery
from tests.conformance.rp import server_jwks

# OIDC Discovery 1.0 §3, RFC 8414 §2, RFC 7009/7662/9126/9207/9449, RP-Initiated Logout,
# front/back-channel logout, and Auth0's own keys (CheckForUnexpectedParametersInServerMetadata).
KNOWN_METADATA = frozenset(
    {
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "registration_endpoint",
        "scopes_supported",
        "response_types_supported",
        "response_modes_supported",
        "grant_types_supported",
        "acr_values_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "id_token_encryption_alg_values_supported",
        "id_token_encryption_enc_values_supported",
        "userinfo_signing_alg_values_supported",
        "userinfo_encryption_alg_values_supported",
        "userinfo_encryption_enc_values_supported",
        "request_object_signing_alg_values_supported",
        "request_object_encryption_alg_values_supported",
        "request_object_encryption_enc_values_supported",
        "token_endpoint_auth_methods_supported",
        "token_endpoint_auth_signing_alg_values_supported",
        "display_values_supported",
        "claim_types_supported",
        "claims_supported",
        "service_documentation",
        "claims_locales_supported",
        "ui_locales_supported",
        "claims_parameter_supported",
        "request_parameter_supported",
        "request_uri_parameter_supported",
        "require_request_uri_registration",
        "op_policy_uri",
        "op_tos_uri",
        "revocation_endpoint",
        "revocation_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_signing_alg_values_supported",
        "introspection_endpoint",
        "introspection_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_signing_alg_values_supported",
        "code_challenge_methods_supported",
        "authorization_response_iss_parameter_supported",
        "end_session_endpoint",
        "check_session_iframe",
        "frontchannel_logout_supported",
        "frontchannel_logout_session_supported",
        "backchannel_logout_supported",
        "backchannel_logout_session_supported",
        "device_authorization_endpoint",
        "mfa_challenge_endpoint",
        "pushed_authorization_request_endpoint",
        "require_pushed_authorization_requests",
        "dpop_signing_alg_values_supported",
        "mtls_endpoint_aliases",
        "tls_client_certificate_bound_access_tokens",
        "signed_metadata",
    }
)
OIDC_RESPONSE_TYPES = frozenset(
    {"code", "code id_token", "id_token", "id_token token", "code id_token token", "code token"}
)
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*")  # BCP 47, loosely
BOOLEAN_KEYS = (
    "claims_parameter_supported",
    "request_parameter_supported",
    "request_uri_parameter_supported",
    "require_request_uri_registration",
    "authorization_response_iss_parameter_supported",
    "frontchannel_logout_supported",
    "frontchannel_logout_session_supported",
    "backchannel_logout_supported",
    "backchannel_logout_session_supported",
)


def endpoint_urls(metadata: dict) -> dict[str, str]:
    return {
        k: v for k, v in metadata.items() if k.endswith("_endpoint") or k in ("jwks_uri", "issuer")
    }


def test_oidcc_discovery_endpoint_verification(client):
    """oidcc-discovery-endpoint-verification: the document is JSON at 200 and its issuer
    is where it was fetched from (exactly, compat §0.1); required members present and
    well-typed (ValidateServerMetadataAgainstSchema); an OIDC response type, ``public``
    subjects and RS256 listed; authorization, token and UserInfo endpoints and the JWKS
    URI absolute and under the issuer; the JWKS valid; ``openid`` in ``scopes_supported``
    and every scope a valid scope-token; locales well-formed; ``code_challenge_methods``
    an array; only known members. CheckDiscEndpointAllEndpointsAreHttps: fetched over
    https (the issuer follows the request's scheme, compat §0.1), every URL is https. Per
    tenant: T2 has its own issuer (checklist OI-01)."""
    response = client.get("/.well-known/openid-configuration", base_url=BASE)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    metadata = response.json
    issuer = metadata["issuer"]
    assert issuer == f"{BASE}/"
    parts = urlsplit(issuer)
    assert parts.scheme in ("http", "https") and parts.netloc and not parts.query
    assert not parts.fragment

    assert set(metadata) <= KNOWN_METADATA, sorted(set(metadata) - KNOWN_METADATA)
    for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert isinstance(metadata[key], str) and metadata[key].startswith(issuer), key
    assert "registration_endpoint" not in metadata
    for key, value in metadata.items():
        if key.endswith("_supported") and key not in BOOLEAN_KEYS:
            assert isinstance(value, list) and value, key
            assert all(isinstance(item, str) and item for item in value), key
    for key in BOOLEAN_KEYS:
        if key in metadata:
            assert isinstance(metadata[key], bool), key

    assert set(metadata["response_types_supported"]) & OIDC_RESPONSE_TYPES
    assert {"public", "pairwise"} & set(metadata["subject_types_supported"])
    assert "RS256" in metadata["id_token_signing_alg_values_supported"]
    assert "openid" in metadata["scopes_supported"]
    assert all(SCOPE_TOKEN.fullmatch(scope) for scope in metadata["scopes_supported"])
    for key in ("ui_locales_supported", "claims_locales_supported"):
        assert all(LANGUAGE_TAG.fullmatch(tag) for tag in metadata.get(key, []))
    assert metadata["grant_types_supported"]
    assert isinstance(metadata["code_challenge_methods_supported"], list)
    assert isinstance(metadata["claims_supported"], list)
    assert isinstance(metadata["request_parameter_supported"], bool)
    assert isinstance(metadata["request_uri_parameter_supported"], bool)
    server_jwks(client, metadata)

    secure = discovery(client, "https://t1.test")
    for key, url in endpoint_urls(secure).items():
        assert urlsplit(url).scheme == "https", (key, url)

    other = discovery(client, "http://t2.test")
    assert other["issuer"] == "http://t2.test/" != issuer
