"""The application object (``app.py``)."""

from __future__ import annotations


def test_plain_hooks_and_views_are_called_as_they_are(app):
    def view():
        return "ok"

    assert app.ensure_sync(view) is view


def test_async_views_are_left_to_flask(app, monkeypatch):
    async def view():
        return "ok"

    monkeypatch.setattr(app, "async_to_sync", lambda func: ("wrapped", func))
    assert app.ensure_sync(view) == ("wrapped", view)
