"""Settings: defaults < instance/config.py < LOGIN_SITE_* environment variables.

This module is the only reader of the environment. Without configuration the
service runs on the embedded default: a SQLite file and generated secrets in the
instance folder (secrets written once, mode 0600, and reused).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from flask import Flask

ENV_PREFIX = "LOGIN_SITE"
SECRETS_FILE = "secrets.json"

DEFAULTS: dict[str, Any] = {
    # Storage
    "DATABASE_URL": None,  # default: sqlite:///<instance>/login_site.db
    "REDIS_URL": None,
    # Secrets (generated into instance/secrets.json when absent)
    "SECRET_KEY": None,
    "ENCRYPTION_KEYS": None,  # list of Fernet keys, newest first
    # Passwords: OWASP's argon2id floor (19 MiB, t=2, p=1)
    "ARGON2_MEMORY_COST_KIB": 19456,
    "ARGON2_TIME_COST": 2,
    "ARGON2_PARALLELISM": 1,
    # Lifetimes
    "CODE_TTL_SECONDS": 60,
    "RESET_TICKET_TTL_SECONDS": 3600,  # Auth0: 5 days by default; OWASP: short
    "VERIFY_TICKET_TTL_SECONDS": 86400,
    "LOGIN_TICKET_TTL_SECONDS": 60,
    "LOGIN_TRANSACTION_TTL_SECONDS": 3600,
    "ACCESS_TOKEN_TTL_SECONDS": 86400,
    "ID_TOKEN_TTL_SECONDS": 36000,
    "SESSION_LIFETIME_HOURS": 168,
    "SESSION_IDLE_HOURS": 72,
    # HTTP
    "PROXY_FIX_X_FOR": 0,  # number of trusted proxies; 0 = ignore X-Forwarded-*
    "PROXY_FIX_X_PROTO": 0,
    "PROXY_FIX_X_HOST": 0,
    "PROXY_FIX_X_PORT": 0,
    "SESSION_COOKIE_SECURE": False,
    "SESSION_COOKIE_NAME": "login_site_session",
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    "EVENT_LOG": "stderr",  # security event lines (events.py): "stderr" or "off"
    "LANGUAGES": ["en", "fr"],
    # Mail (mail.py): flask-mail's own settings. No server: mail stays queued in the outbox.
    "MAIL_SERVER": None,
    "MAIL_PORT": 25,
    "MAIL_USE_TLS": False,  # STARTTLS, certificate verified
    "MAIL_USE_SSL": False,  # implicit TLS (port 465)
    "MAIL_USERNAME": None,
    "MAIL_PASSWORD": None,
    "MAIL_DEFAULT_SENDER": None,  # required with a server; the tenant's name is shown
    "MAIL_SUPPRESS_SEND": False,  # flask-mail would suppress under TESTING; tests use aiosmtpd
    "MAIL_TIMEOUT_SECONDS": 10,  # per SMTP step
    # Brute-force protection (security/bruteforce.py). Auth0: 10 attempts per identifier
    # and IP (connection option max_attempts, 1-100 here too); blocks lift after 30 days.
    "BRUTE_FORCE_MAX_ATTEMPTS": 10,
    "BRUTE_FORCE_BLOCK_SECONDS": 30 * 86400,
    # Suspicious-IP throttling: failed logins from one IP across accounts, per tenant.
    # Auth0 allows 100, then one more per 864 s; ours is a fixed window.
    "SUSPICIOUS_IP_LIMIT": "100/hour",
    # Rate limits per endpoint class (security/ratelimit.py), limits-library strings;
    # "" turns a class off. Near Auth0's free tier (compat §0.7); burst == sustained here.
    "RATE_LIMIT_ENABLED": True,
    "RATE_LIMIT_KEY_PREFIX": "login_site",
    "RATE_LIMIT_TOKEN": "30/second",  # per IP and client_id; Auth0 30/30 per s
    "RATE_LIMIT_CO_AUTHENTICATE": "5/second",  # per IP; Auth0 5/5 per s
    "RATE_LIMIT_LOGIN": "5/second",  # hosted /login POST, per IP; Auth0 5/5 per s
    "RATE_LIMIT_SIGNUP": "50/minute",  # per IP; Auth0 suspicious-IP signups: 50/min
    "RATE_LIMIT_CHANGE_PASSWORD": "1/minute",  # per IP and email; Auth0 10 burst, 1/min
    "RATE_LIMIT_PASSWORDLESS_START": "50/hour",  # per IP; Auth0 50/h
    "RATE_LIMIT_USERINFO": "10/minute",  # per access token; Auth0 10 burst, 5/min per user
    "RATE_LIMIT_JWKS": "20/second",  # per IP; Auth0 20/20 per s
    "RATE_LIMIT_MANAGEMENT": "50/second",  # per bearer token; Auth0's paid tiers: 50/s
    # Calls to upstream identity providers (outbound.py, checklist UP-06): bounded waits, size
    # cap, no redirects. Hosts listed here may resolve to link-local or unspecified addresses.
    "UPSTREAM_CONNECT_TIMEOUT_SECONDS": 3.0,
    "UPSTREAM_READ_TIMEOUT_SECONDS": 5.0,  # also the deadline for the whole response
    "UPSTREAM_MAX_RESPONSE_BYTES": 1024 * 1024,
    "UPSTREAM_ALLOWED_HOSTS": [],
    "UPSTREAM_METADATA_TTL_SECONDS": 3600,  # discovery and JWKS, refetched once on unknown kid
}


def _generated_secrets(instance_path: Path) -> dict[str, Any]:
    """Secrets for the embedded default, created once and reused across restarts."""
    path = instance_path / SECRETS_FILE
    if path.exists():
        return json.loads(path.read_text())
    instance_path.mkdir(parents=True, exist_ok=True)
    data = {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    return data


def load_settings(app: Flask, overrides: dict[str, Any] | None = None) -> None:
    """Fill ``app.config`` in the documented order and check it."""
    app.config.update(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    # JSON-decoded values, e.g. LOGIN_SITE_ENCRYPTION_KEYS='["k1","k2"]'
    app.config.from_prefixed_env(ENV_PREFIX)
    if overrides:
        app.config.update(overrides)

    instance = Path(app.instance_path)
    if not app.config["SECRET_KEY"] or not app.config["ENCRYPTION_KEYS"]:
        generated = _generated_secrets(instance)
        for key in ("SECRET_KEY", "ENCRYPTION_KEYS"):
            if not app.config[key]:
                app.config[key] = generated[key]
    if isinstance(app.config["ENCRYPTION_KEYS"], str):
        app.config["ENCRYPTION_KEYS"] = [
            k.strip() for k in app.config["ENCRYPTION_KEYS"].split(",") if k.strip()
        ]
    if not app.config["DATABASE_URL"]:
        instance.mkdir(parents=True, exist_ok=True)
        app.config["DATABASE_URL"] = f"sqlite:///{instance / 'login_site.db'}"

    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["WTF_CSRF_TIME_LIMIT"] = None  # bound to the session instead
    # flask-wtf's HTTPS check wants a same-origin Referer, but our pages send
    # Referrer-Policy: no-referrer, so browsers send none and every form would fail over https.
    # The session-bound token and SameSite=Lax cookies are the CSRF defence (checklist LG-08).
    app.config["WTF_CSRF_SSL_STRICT"] = False
    app.config["BABEL_DEFAULT_LOCALE"] = "en"
    _check(app.config)


def _check(config: dict[str, Any]) -> None:
    if len(str(config["SECRET_KEY"])) < 32:
        raise RuntimeError("LOGIN_SITE_SECRET_KEY must be at least 32 characters")
    for key in config["ENCRYPTION_KEYS"]:
        Fernet(key)  # raises ValueError on a malformed key
    if config["ARGON2_MEMORY_COST_KIB"] < 19456 or config["ARGON2_TIME_COST"] < 2:
        if not config.get("TESTING"):
            raise RuntimeError("argon2 parameters below OWASP's floor (19 MiB, t=2)")
