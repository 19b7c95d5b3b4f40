"""Security headers on every response (``security/headers.py``)."""

from __future__ import annotations

from tests.conftest import T1


def test_every_response_gets_the_security_headers_and_https_ones_hsts(client):
    plain = client.get("/healthz", base_url=f"http://{T1}")
    secure = client.get("/healthz", base_url=f"https://{T1}")
    for response in (plain, secure):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Strict-Transport-Security" not in plain.headers
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_a_view_keeps_its_own_values(app):
    own = {"Referrer-Policy": "same-origin", "x-content-type-options": "nosniff"}
    app.add_url_rule("/own-headers", "own_headers", lambda: ("ok", 200, own))
    response = app.test_client().get("/own-headers", base_url=f"https://{T1}")
    assert response.headers.getlist("Referrer-Policy") == ["same-origin"]
    assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"]
    assert response.headers.getlist("Strict-Transport-Security") == ["max-age=31536000"]
