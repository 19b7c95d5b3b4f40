"""The session cookie (``cookie_session.py``): Flask's own cookie, built with less work."""

from __future__ import annotations

from flask.sessions import SecureCookieSessionInterface

from login_site.cookie_session import CookieSessionInterface
from tests.conftest import T1

COOKIE = "login_site_session"


def signed(app, data: dict) -> str:
    """A session cookie value as the app sets it."""
    with app.test_request_context(base_url=f"http://{T1}"):
        session = app.session_interface.open_session(app, app.request_class({}))
        session.update(data)
        response = app.response_class()
        app.session_interface.save_session(app, session, response)
    return response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]


def opened(app, value: str, interface=None) -> dict:
    interface = interface or app.session_interface
    request = app.request_class({"HTTP_COOKIE": f"{COOKIE}={value}"})
    return dict(interface.open_session(app, request))


def test_the_app_uses_it(app):
    assert isinstance(app.session_interface, CookieSessionInterface)


def test_a_request_without_the_cookie_gets_none_and_varies_by_cookie(client):
    response = client.get("/healthz")
    assert "Set-Cookie" not in response.headers
    assert response.headers["Vary"] == "Cookie"


def test_its_cookies_are_flasks_cookies(app):
    value = signed(app, {"a": 1})
    assert opened(app, value, SecureCookieSessionInterface()) == {"a": 1}
    assert opened(app, value) == {"a": 1}


def test_a_cookie_signed_with_a_replaced_key_holds_only_while_that_key_is_a_fallback(app):
    value = signed(app, {"a": 1})
    old = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "another-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
    assert opened(app, value) == {}
    app.config["SECRET_KEY_FALLBACKS"] = [old]
    assert opened(app, value) == {"a": 1}
    app.config["SECRET_KEY_FALLBACKS"] = []
    assert opened(app, value) == {}


def test_emptying_a_session_still_deletes_its_cookie(app):
    value = signed(app, {"a": 1})
    with app.test_request_context(base_url=f"http://{T1}"):
        session = app.session_interface.open_session(
            app, app.request_class({"HTTP_COOKIE": f"{COOKIE}={value}"})
        )
        session.clear()
        response = app.response_class()
        app.session_interface.save_session(app, session, response)
    assert response.headers["Set-Cookie"].startswith(f"{COOKIE}=;")
    assert response.headers["Vary"] == "Cookie"
