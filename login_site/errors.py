"""Errors are values with one mapping: OAuth JSON, a readable page, or a validated redirect.

Views raise; :func:`register_error_handlers` turns every error into a response. Nothing
else builds error bodies.
"""

from __future__ import annotations

import logging
import re

from authlib.oauth2 import OAuth2Error
from flask import Flask
from flask import jsonify
from flask import render_template
from flask import request
from werkzeug.exceptions import HTTPException

from login_site.events import event
from login_site.i18n import N_

log = logging.getLogger("login_site")

_UNSAFE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


def safe_description(text: str) -> str:
    """%x20-21 / %x23-5B / %x5D-7E only: no CR/LF/TAB, quote or backslash (RFC 6749 §5.2)."""
    return _UNSAFE.sub(" ", text)[:400]


class LoginSiteError(Exception):
    error = "server_error"
    status = 400
    description = "The request could not be processed."
    headers: dict[str, str] = {}

    def __init__(self, description: str | None = None, *, status: int | None = None):
        super().__init__(description or self.description)
        if description:
            self.description = description
        if status:
            self.status = status


class InvalidRequest(LoginSiteError):
    error = "invalid_request"


class InvalidClient(LoginSiteError):
    error = "invalid_client"
    status = 401


class InvalidGrant(LoginSiteError):
    error = "invalid_grant"


class UnauthorizedClient(LoginSiteError):
    error = "unauthorized_client"


class UnsupportedResponseType(LoginSiteError):
    error = "unsupported_response_type"


class InvalidScope(LoginSiteError):
    error = "invalid_scope"


class AccessDenied(LoginSiteError):
    error = "access_denied"
    status = 403


class LoginRequired(LoginSiteError):
    error = "login_required"


class ConsentRequired(LoginSiteError):
    error = "consent_required"


class RequestNotSupported(LoginSiteError):
    error = "request_not_supported"


class RequestUriNotSupported(LoginSiteError):
    error = "request_uri_not_supported"


class InvalidToken(LoginSiteError):
    error = "invalid_token"
    status = 401

    @property
    def headers(self) -> dict[str, str]:  # RFC 6750 §3
        return {"WWW-Authenticate": f'Bearer error="{self.error}"'}


class TemporarilyUnavailable(LoginSiteError):
    """A dependency (an upstream identity provider) did not answer in time (RFC 6749
    §4.1.2.1)."""

    error = "temporarily_unavailable"
    status = 503


class TooManyRequests(LoginSiteError):
    """A rate limit or suspicious-IP throttle (compat §0.7): Auth0's text for APIs,
    a readable one for pages."""

    error = "too_many_requests"
    status = 429
    description = (
        "Too many requests. Check the X-RateLimit-Limit, X-RateLimit-Remaining and "
        "X-RateLimit-Reset headers."
    )
    page_title = N_("Too many attempts")
    page_description = N_(
        "We received too many requests from your network. Wait a little and try again."
    )


class TooManyAttempts(LoginSiteError):
    """Brute-force protection blocked this identifier from this IP (compat §0.7)."""

    error = "too_many_attempts"
    status = 429
    description = "Your account has been blocked after multiple consecutive login attempts."


class PageError(LoginSiteError):
    """Shown as a readable page, never redirected: the client or redirect is not trusted."""

    def __init__(self, title: str, description: str, *, status: int = 400, error: str = ""):
        super().__init__(description, status=status)
        self.title = title
        self.error = error or "invalid_request"


JSON_PREFIXES = (
    "/oauth/",
    "/userinfo",
    "/.well-known/",
    "/api/",
    "/dbconnections",
    "/co/",
    "/passwordless/",
)


def wants_json() -> bool:
    if request.path.startswith(JSON_PREFIXES):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_page(title: str, description: str, status: int, error: str | None = None):
    """A readable page; ``error`` is a stable machine-readable key for tests and scripts."""
    body = render_template("errors/error.html", title=title, description=description, error=error)
    return body, status, {"Cache-Control": "no-store"}


def error_json(error: str, description: str, status: int, headers: dict | None = None):
    response = jsonify(error=error, error_description=safe_description(description))
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(PageError)
    def _page(exc: PageError):
        event("request_rejected", "page", error=exc.error, path=request.path)
        return error_page(exc.title, exc.description, exc.status, exc.error)

    @app.errorhandler(LoginSiteError)
    def _ours(exc: LoginSiteError):
        event("request_rejected", exc.error, path=request.path)
        if wants_json():
            return error_json(exc.error, exc.description, exc.status, exc.headers)
        title = getattr(exc, "page_title", exc.error.replace("_", " ").capitalize())
        return error_page(title, getattr(exc, "page_description", exc.description), exc.status)

    @app.errorhandler(OAuth2Error)
    def _authlib(exc: OAuth2Error):
        # Client authentication failures are always 401 (RFC 6749 §5.2, compat §2.2).
        status = 401 if exc.error == "invalid_client" else exc.status_code or 400
        event("request_rejected", exc.error, path=request.path)
        headers = dict(exc.get_headers())
        headers.pop("Content-Type", None)
        return error_json(exc.error, exc.get_error_description() or exc.error, status, headers)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        if status == 429:  # the rate limiter's 429 (security/ratelimit.py adds the headers)
            if wants_json():
                return error_json(TooManyRequests.error, TooManyRequests.description, 429)
            return error_page(TooManyRequests.page_title, TooManyRequests.page_description, 429)
        if wants_json():
            error = {
                404: "not_found",
                405: "method_not_allowed",
                413: "request_too_large",
                414: "request_too_large",
                431: "request_too_large",
            }.get(status, "invalid_request")
            response = error_json(error, exc.description or exc.name, status)
        else:
            response = error_page(exc.name, exc.description or exc.name, status)
        if status == 405 and getattr(exc, "valid_methods", None):
            if isinstance(response, tuple):
                body, code, headers = response
                headers["Allow"] = ", ".join(exc.valid_methods)
                return body, code, headers
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # Unexpected errors are logged server-side and answered generically.
        log.exception("unexpected error path=%s", request.path)
        if wants_json():
            return error_json("server_error", "Internal error.", 500)
        return error_page(N_("Something went wrong"), N_("Please try again in a moment."), 500)
