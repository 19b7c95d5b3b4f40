"""The embeddable widget's files (``/lock/1/lock.js``, ``/lock/1/lock.css``) and Lock's
client configuration script ``GET /client/{client_id}.js`` (compat §11.1).

The configuration lists only the connections enabled for the client whose strategy is
implemented here, exactly what the hosted login page offers (``pages.offers``). It is built
from an allow-list of public keys: connection options also hold upstream secrets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Blueprint
from flask import Response
from flask import abort
from flask import send_file
from sqlalchemy.orm import Session

from login_site import config_cache
from login_site import passwords
from login_site.db import get_db
from login_site.login import pages
from login_site.login.views import DEFAULT_PRIMARY
from login_site.login.views import HEX_COLOUR
from login_site.models import Client
from login_site.models import Connection
from login_site.models import Tenant
from login_site.tenancy import absolute
from login_site.tenancy import current_tenant

bp = Blueprint("lock", __name__)

WIDGET_DIR = Path(__file__).resolve().parents[2] / "static" / "lock"
WIDGET_MAJOR = "1"  # the URL's version; lock.js declares the full one (LoginSiteLock.version)
WIDGET_FILES = {
    "lock.js": "text/javascript; charset=utf-8",
    "lock.css": "text/css; charset=utf-8",
}
# A major-version URL must pick up fixes, so a day, then revalidation by ETag.
WIDGET_CACHE_SECONDS = 86400
WIDGET_STALE_SECONDS = 604800
CLIENT_SCRIPT_TYPE = "application/x-javascript; charset=utf-8"
# Characters escaped in the JSON so the script stays inert text wherever it is pasted.
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


@bp.get(f"/lock/{WIDGET_MAJOR}/<name>")
def widget_file(name: str):
    mimetype = WIDGET_FILES.get(name)
    if mimetype is None:
        abort(404)
    response = send_file(WIDGET_DIR / name, mimetype=mimetype, conditional=True, etag=True)
    response.headers["Cache-Control"] = (
        f"public, max-age={WIDGET_CACHE_SECONDS}, stale-while-revalidate={WIDGET_STALE_SECONDS}"
    )
    # Public, credential-free files: loadable with <script crossorigin integrity=…> (SRI)
    # and as a module from any page.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@bp.get("/client/<client_id>.js")
def client_script(client_id: str):
    db, tenant = get_db(), current_tenant()
    client = config_cache.client(db, tenant, client_id)
    headers = {"Content-Type": CLIENT_SCRIPT_TYPE, "Cache-Control": "no-cache"}
    if client is None:
        return Response("/* unknown client */\n", 404, headers)
    body = f"Auth0.setClient({script_json(client_configuration(db, tenant, client))});\n"
    return Response(body, 200, headers)


def script_json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), sort_keys=False)
    for char, escaped in _SCRIPT_ESCAPES.items():
        text = text.replace(char, escaped)
    return text


def client_configuration(db: Session, tenant: Tenant, client: Client) -> dict[str, Any]:
    """What Lock (and our widget) may know of a client: public facts only."""
    strategies: dict[str, list[dict[str, Any]]] = {}
    for offer in pages.offers(db, tenant, client):
        entry = connection_entry(offer.connection, offer.kind)
        strategies.setdefault(offer.connection.strategy, []).append(entry)
    return {
        "id": client.client_id,
        "tenant": tenant.name,
        "subscription": "oss",
        "authorize": absolute("authorize"),
        "callback": next(iter(client.callbacks or []), ""),
        "hasAllowedOrigins": bool(client.allowed_origins or client.web_origins),
        "strategies": [{"name": name, "connections": conns} for name, conns in strategies.items()],
        # login_site additions, ignored by Lock: what the widget shows in its header.
        "name": client.name,
        "tenant_name": tenant.friendly_name or tenant.name,
        "branding": _branding(tenant),
    }


def connection_entry(conn: Connection, kind: str) -> dict[str, Any]:
    options = conn.options or {}
    entry: dict[str, Any] = {"name": conn.name}
    if conn.display_name:
        entry["display_name"] = conn.display_name
    if kind == "database":
        entry.update(
            {
                "passwordPolicy": options.get("passwordPolicy") or "none",
                "showSignup": not options.get("disable_signup"),
                "showForgot": not options.get("disable_self_service_change_password"),
                "requires_username": bool(options.get("requires_username")),
                # Ours: the policy's rules, so the widget's hints never disagree with the
                # server's check (codes and formats as in the signup error's description).
                "passwordRules": [
                    {"code": rule.code, "format": list(rule.format)}
                    for rule in passwords.policy_rules(options, "")
                ],
            }
        )
        complexity = options.get("password_complexity_options")
        if isinstance(complexity, dict) and isinstance(complexity.get("min_length"), int):
            entry["password_complexity_options"] = {"min_length": complexity["min_length"]}
        validation = options.get("validation")
        validation = validation.get("username") if isinstance(validation, dict) else None
        if isinstance(validation, dict):
            entry["validation"] = {
                "username": {k: v for k, v in validation.items() if k in ("min", "max")}
            }
    elif kind == "enterprise":
        if isinstance(options.get("domain"), str):
            entry["domain"] = options["domain"]
        aliases = options.get("domain_aliases")
        if isinstance(aliases, list):
            entry["domain_aliases"] = [a for a in aliases if isinstance(a, str)]
    return entry


def _branding(tenant: Tenant) -> dict[str, str]:
    branding = tenant.setting("branding") or {}
    primary = (branding.get("colors") or {}).get("primary") or ""
    result = {"primary_color": primary if HEX_COLOUR.match(primary) else DEFAULT_PRIMARY}
    logo = branding.get("logo_url")
    if isinstance(logo, str) and logo.startswith(("https://", "http://")):
        result["logo_url"] = logo
    return result
