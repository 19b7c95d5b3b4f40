"""Security headers on every response (checklist SE-04, LG-10, LG-11, SE-07)."""

from __future__ import annotations

import secrets

from flask import Flask
from flask import g
from flask import request


def csp_nonce() -> str:
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def init_app(app: Flask) -> None:
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def _headers(response):
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
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
        if request.scheme == "https":
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response
