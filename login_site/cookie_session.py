"""Flask's signed session cookie (the CSRF token, flask-login's user id) without its set-up
cost on the requests that carry none.

Flask's own interface builds an itsdangerous serializer on every request, even to open the
empty session of a request without the cookie, and works out seven cookie attributes before
it finds that an empty session has nothing to save. Most requests are such (token, userinfo,
discovery, JWKS: clients without cookies). Here the serializer is built once per set of
keys, and an empty, unmodified session is saved with only what Flask does for it: ``Vary:
Cookie`` when the session was read. Everything else is Flask's: the cookie's name, signature,
attributes, expiry and refresh.
"""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSession
from flask.sessions import SecureCookieSessionInterface
from flask.sessions import SessionMixin
from itsdangerous import URLSafeTimedSerializer
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response


class CookieSessionInterface(SecureCookieSessionInterface):
    def __init__(self) -> None:
        # (the keys it was built with, newest last; the serializer)
        self._serializer: tuple[tuple[str | bytes, ...], URLSafeTimedSerializer] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)
        cached = self._serializer
        if cached is not None and cached[0] == keys:
            return cached[1]
        serializer = super().get_signing_serializer(app)
        self._serializer = (keys, serializer)
        return serializer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not app.secret_key:
            return None  # Flask's null session, as its own interface answers
        if not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session and not session.modified:
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    app.session_interface = CookieSessionInterface()
