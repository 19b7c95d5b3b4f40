"""Page language: ``ui_locales`` of the login transaction, then ``Accept-Language``."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask import current_app
from flask import g
from flask import request
from flask_babel import Babel
from flask_babel import get_locale

TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"


def N_(message: str) -> str:  # noqa: N802 - the conventional gettext marker
    """Mark a message for extraction; it is translated where it is shown."""
    return message


def select_locale() -> str:
    supported = current_app.config["LANGUAGES"]
    for tag in (getattr(g, "ui_locales", None) or "").split():
        base = tag.split("-")[0].lower()
        if base in supported:
            return base
    return request.accept_languages.best_match(supported) or supported[0]


def init_app(app: Flask) -> None:
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS_DIR)
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["get_locale"] = get_locale
