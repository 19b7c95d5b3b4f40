"""The HTTP server's own ceiling: a bare WSGI app that answers every request with the same
JSON document of a discovery document's size, served by gunicorn with the repository's
``gunicorn.conf.py``. No Flask, no tenant, no database: whatever rows a, b and d reach
beyond it would have to come from a faster HTTP layer, not from login_site's code.

    gunicorn -c gunicorn.conf.py -w N bench.hello:app      # from the repository root
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Iterable

BODY_BYTES = 1500  # about the size of a discovery document (row a)

_ISSUER = "http://127.0.0.1/"
_DOCUMENT = {
    "issuer": _ISSUER,
    "authorization_endpoint": f"{_ISSUER}authorize",
    "token_endpoint": f"{_ISSUER}oauth/token",
    "userinfo_endpoint": f"{_ISSUER}userinfo",
    "jwks_uri": f"{_ISSUER}.well-known/jwks.json",
    "response_types_supported": ["code"],
    "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
    "subject_types_supported": ["public"],
    "id_token_signing_alg_values_supported": ["RS256"],
    "code_challenge_methods_supported": ["S256"],
    "scopes_supported": ["openid", "profile", "email", "offline_access"],
}


def _body(size: int) -> bytes:
    """The document, padded with one filler claim to exactly ``size`` bytes."""
    document = {**_DOCUMENT, "padding": ""}
    short = size - len(json.dumps(document, separators=(",", ":")).encode())
    if short < 0:
        raise ValueError(f"a body of {size} bytes cannot hold the document")
    document["padding"] = "x" * short
    return json.dumps(document, separators=(",", ":")).encode()


BODY = _body(BODY_BYTES)
_HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response("200 OK", _HEADERS)
    return [BODY]
