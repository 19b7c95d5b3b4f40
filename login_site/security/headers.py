"""Security headers on every response (checklist SE-04, LG-10, LG-11, SE-07)."""

from __future__ import annotations

import secrets

from flask import Flask
from flask import g
from flask import request

# Every response carries these unless its view set its own value; HSTS only over https.
ALWAYS = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"))
_ALWAYS_HTTPS = (*ALWAYS, ("Strict-Transport-Security", "max-age=31536000"))


def always(scheme: str) -> tuple[tuple[str, str], ...]:
    """The headers every response of a request with this URL scheme carries."""
    return _ALWAYS_HTTPS if scheme == "https" else ALWAYS


def csp_nonce() -> str:
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def init_app(app: Flask) -> None:
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def _headers(response):
        headers = response.headers
        present = {name.lower() for name, _value in headers}
        for name, value in always(request.scheme):
            if name.lower() not in present:
                headers.add(name, value)
        if response.mimetype == "text/html":
            framing = headers.get("Content-Security-Policy", "frame-ancestors 'none'")
            frames = f"frame-src {g.csp_frame_src}; " if g.get("csp_frame_src") else ""
            headers["Content-Security-Policy"] = (
                "default-src 'self'; img-src 'self' data: https:; "
                f"script-src 'self' 'nonce-{csp_nonce()}'; style-src 'self'; {frames}"
                "object-src 'none'; base-uri 'none'; " + framing
            )
            if "frame-ancestors 'none'" in framing:
                headers.setdefault("X-Frame-Options", "DENY")
            headers.setdefault("Cache-Control", "no-store")
        return response
