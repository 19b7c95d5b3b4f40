"""The application factory: a short list of ``setup`` calls, each in its own module."""

from __future__ import annotations

from collections.abc import Callable
from inspect import CO_COROUTINE
from pathlib import Path
from types import FunctionType
from typing import Any

from flask import Flask
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from login_site import config_cache
from login_site import cookie_session
from login_site import db
from login_site import events
from login_site import i18n
from login_site import mail
from login_site import tenancy
from login_site.config import load_settings
from login_site.connections.base import setup_strategies
from login_site.errors import error_page
from login_site.errors import register_error_handlers
from login_site.i18n import N_
from login_site.login import flow
from login_site.oauth import fastpath
from login_site.oauth import keys
from login_site.oauth.server import setup_oauth
from login_site.security import bruteforce
from login_site.security import cors
from login_site.security import headers
from login_site.security import ratelimit

ROOT = Path(__file__).resolve().parent.parent
csrf = CSRFProtect()
login_manager = LoginManager()


class LoginSiteFlask(Flask):
    def ensure_sync(self, func: Callable) -> Callable:
        """Flask asks ``inspect.iscoroutinefunction`` about every hook and view it calls, a
        dozen times per request here; a plain function that is not ``async`` is answered
        without it, anything else as Flask would."""
        if (
            type(func) is FunctionType
            and not func.__code__.co_flags & CO_COROUTINE
            and not hasattr(func, "_is_coroutine_marker")  # inspect.markcoroutinefunction
        ):
            return func
        return super().ensure_sync(func)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = LoginSiteFlask(
        __name__,
        instance_path=str((config or {}).get("INSTANCE_PATH") or ROOT / "instance"),
        instance_relative_config=True,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    load_settings(app, config)
    events.init_app(app)
    db.init_app(app)
    mail.init_app(app)
    tenancy.init_app(app)
    config_cache.init_app(app)
    cors.init_app(app)
    i18n.init_app(app)
    headers.init_app(app)
    ratelimit.init_app(app)
    bruteforce.init_app(app)
    _setup_login(app)
    setup_strategies()
    setup_oauth(app)
    register_error_handlers(app)
    _register_blueprints(app)
    keys.init_app(app)
    fastpath.init_app(app)
    _setup_proxy(app)  # outermost: every layer sees the forwarded scheme and host
    return app


def _setup_proxy(app: Flask) -> None:
    """``X-Forwarded-*`` is trusted only for as many proxies as configured."""
    counts = {
        k: int(app.config[f"PROXY_FIX_X_{k.upper()}"]) for k in ("for", "proto", "host", "port")
    }
    if any(counts.values()):
        app.wsgi_app = ProxyFix(
            app.wsgi_app,
            x_for=counts["for"],
            x_proto=counts["proto"],
            x_host=counts["host"],
            x_port=counts["port"],
        )


def _setup_login(app: Flask) -> None:
    cookie_session.init_app(app)
    csrf.init_app(app)
    login_manager.init_app(app)

    login_manager.user_loader(flow.load_user)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        return error_page(
            N_("Your session expired"),
            N_("The form was too old or came from another page. Go back, reload and try again."),
            400,
        )


def _register_blueprints(app: Flask) -> None:
    from login_site.api.co import bp as co_bp
    from login_site.api.dbconnections import bp as dbconnections_bp
    from login_site.api.lock import bp as lock_bp
    from login_site.api.passwordless import bp as passwordless_bp
    from login_site.api.passwordless import pages as passwordless_pages_bp
    from login_site.dashboard.views import bp as dashboard_bp
    from login_site.login.selfservice import bp as selfservice_bp
    from login_site.login.upstream import bp as upstream_bp
    from login_site.login.views import bp as login_bp
    from login_site.management.views import register as register_management
    from login_site.oauth.views import bp as oauth_bp

    app.register_blueprint(login_bp)
    app.register_blueprint(selfservice_bp)
    app.register_blueprint(upstream_bp)
    # Providers answering with response_mode=form_post (Apple, OIDC) post cross-site; the
    # state bound to this browser's session protects the callback (checklist UP-01).
    csrf.exempt("login_site.login.upstream.callback")
    app.register_blueprint(dbconnections_bp)
    app.register_blueprint(co_bp)
    app.register_blueprint(lock_bp)  # GET only: the widget's files and client script
    csrf.exempt(co_bp)
    csrf.exempt(dbconnections_bp)  # a JSON API for other origins: CORS-checked, no cookies
    app.register_blueprint(passwordless_bp)
    csrf.exempt(passwordless_bp)  # JSON API; its hosted-page forms are in passwordless_pages
    app.register_blueprint(passwordless_pages_bp)
    app.register_blueprint(dashboard_bp)  # admin tenant hosts only; forms CSRF-checked
    app.register_blueprint(oauth_bp)
    csrf.exempt(oauth_bp)
    # /authorize accepts a cross-site POST by design (OIDC Core §3.1.2.1).
    csrf.exempt("login_site.login.views.authorize_endpoint")
    csrf.exempt(register_management(app))  # /api/v2: bearer tokens only, no cookies or CORS

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}
