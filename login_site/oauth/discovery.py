"""OpenID Provider metadata (Discovery 1.0 §3, RFC 8414), per tenant issuer.

The document depends on the issuer alone, so its bytes are made once per issuer. Most
requests for it are answered in front of Flask (``oauth/fastpath.py``).
"""

from __future__ import annotations

import json
from functools import lru_cache

from login_site.oauth.tokens import SCOPE_CLAIMS

PATH = "/.well-known/openid-configuration"
CACHE_CONTROL = "public, max-age=300"


# Keyed by the issuer string: nothing stored can make it stale. Only tenants' hosts get
# this far (others are answered 404 first), and at most 1024 issuers are kept.
@lru_cache(maxsize=1024)
def document(issuer: str) -> bytes:
    """The metadata as served: compact JSON, keys sorted, a final newline (as ``jsonify``)."""
    body = json.dumps(openid_configuration(issuer), sort_keys=True, separators=(",", ":"))
    return f"{body}\n".encode()


def openid_configuration(issuer: str) -> dict:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}authorize",
        "token_endpoint": f"{issuer}oauth/token",
        "userinfo_endpoint": f"{issuer}userinfo",
        "jwks_uri": f"{issuer}.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}oauth/revoke",
        "end_session_endpoint": f"{issuer}oidc/logout",
        "scopes_supported": [
            "openid",
            "profile",
            "offline_access",
            "email",
            "phone",
            "name",
            "given_name",
            "family_name",
            "nickname",
            "email_verified",
            "picture",
        ],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post", "web_message"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "password",
            "http://auth0.com/oauth/grant-type/password-realm",
            "http://auth0.com/oauth/grant-type/passwordless/otp",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": sorted(
            {"aud", "auth_time", "exp", "iat", "iss", "sub", "nonce", "sid", "at_hash", "azp"}
            | {c for names in SCOPE_CLAIMS.values() for c in names}
        ),
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "claims_parameter_supported": False,
    }
