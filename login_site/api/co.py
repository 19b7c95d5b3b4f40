"""Cross-origin authentication (compat §8): ``POST /co/authenticate`` checks credentials
sent from an application's own page and answers a ``login_ticket``, which the browser then
redeems once at ``/authorize``. The ticket is bound to the client, the calling origin and
this browser: by an HttpOnly cookie, or, where the browser withholds third-party cookies,
by the ``co_verifier`` that the application's cross-origin verification page hands over.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import g
from flask import jsonify
from flask import render_template
from flask import request
from sqlalchemy import select
from sqlalchemy import update

from login_site import config_cache
from login_site.api import body
from login_site.connections import passwordless
from login_site.connections.base import LoginFailed
from login_site.connections.database import authenticate as database_authenticate
from login_site.db import get_db
from login_site.db import utcnow
from login_site.errors import AccessDenied
from login_site.events import event
from login_site.models import Client
from login_site.models import Connection
from login_site.models import CrossOriginTicket
from login_site.models import User
from login_site.models.ids import new_secret
from login_site.oauth.authorize import origin_of
from login_site.security.secrets import same
from login_site.security.secrets import sha256_hex
from login_site.tenancy import current_tenant

bp = Blueprint("co", __name__)

COOKIE = "login_site_co"
PASSWORD_REALM = "http://auth0.com/oauth/grant-type/password-realm"  # noqa: S105 - a URI
PASSWORDLESS_OTP = "http://auth0.com/oauth/grant-type/passwordless/otp"
CREDENTIAL_TYPES = {
    PASSWORD_REALM: "realm",
    "password": "default",
    "http://auth0.com/credential-type/password": "default",
    PASSWORDLESS_OTP: "otp",
}
FIELDS = {"client_id", "credential_type", "username", "password", "realm", "otp"}
WRONG_FIELDS = (
    "Invalid request body. All and only of client_id, credential_type, username, "
    "otp, realm are required."
)


def _error(error: str, description: str, status: int) -> Response:
    event("co_authenticate", error)
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/co/authenticate")
def authenticate():
    try:
        data = body.read()
    except body.BadBody as exc:
        return _error("invalid_request", str(exc), 400)
    if set(data) - FIELDS or not {"client_id", "credential_type", "username"} <= set(data):
        return _error("invalid_request", WRONG_FIELDS, 400)
    mode = CREDENTIAL_TYPES.get(data["credential_type"])
    if mode is None:
        return _error("unsupported_credential_type", "Unknown credential type parameter.", 400)
    db, tenant = get_db(), current_tenant()
    client = config_cache.client(db, tenant, str(data["client_id"]))
    if client is None:
        return _error("invalid_request", "Unknown client.", 400)
    g.cors_client_pk = client.id
    if not (client.extra or {}).get("cross_origin_authentication"):
        return _error("unauthorized_client", "Cross origin login not allowed.", 401)
    origin = request.headers.get("Origin", "")
    if origin not in set(client.allowed_origins or []) | set(client.web_origins or []):
        return Response(
            f"Origin {origin[:200]} is not allowed.",
            403,
            {"Content-Type": "text/plain; charset=utf-8"},
        )
    secret_field = "otp" if mode == "otp" else "password"
    if not isinstance(data.get(secret_field), str) or not isinstance(data["username"], str):
        return _error("invalid_request", WRONG_FIELDS, 400)
    if mode == "otp":
        return _passwordless(client, origin, data)
    realm = data.get("realm") if mode == "realm" else tenant.setting("default_directory")
    conn = db.execute(
        select(Connection).where(
            Connection.tenant_id == tenant.id, Connection.name == str(realm or "")
        )
    ).scalar_one_or_none()
    if conn is None or conn.strategy != "auth0" or client.id not in conn.enabled_client_ids:
        return _error("invalid_request", f"Unknown realm {str(realm)[:100]}.", 400)
    try:
        user = database_authenticate(
            db, conn, data["username"], data["password"], ip=request.remote_addr
        )
    except LoginFailed as failure:
        db.commit()  # failure counters
        if failure.reason == "blocked":
            return _error("blocked_user", "Blocked user", 403)
        if failure.reason == "too_many_attempts":
            return _error(
                "too_many_attempts",
                "Your account has been blocked after multiple consecutive login attempts.",
                429,
            )
        return _error("access_denied", "Wrong email or password.", 403)
    return _ticket(client, user, conn.name, origin)


def _passwordless(client: Client, origin: str, data: dict) -> Response:
    """auth0.js's passwordless login: the code from /passwordless/start, then a ticket."""
    db = get_db()
    conn = passwordless.find_connection(db, current_tenant(), client, str(data.get("realm") or ""))
    if conn is None or client.id not in conn.enabled_client_ids:
        return _error("invalid_request", f"Unknown realm {str(data.get('realm'))[:100]}.", 400)
    try:
        identifier = passwordless.strategy_for(conn).normalise(conn, data["username"])
        user = passwordless.authenticate(
            db, conn, identifier, data["otp"][:200], client_pk=client.id
        )
    except passwordless.BadIdentifier:
        return _error("access_denied", passwordless.WRONG_CODE[conn.strategy], 403)
    except LoginFailed as failure:
        db.rollback()
        if failure.reason == "blocked":
            return _error("blocked_user", "Blocked user", 403)
        return _error("access_denied", passwordless.WRONG_CODE[conn.strategy], 403)
    return _ticket(client, user, conn.name, origin)


def _ticket(client: Client, user: User, connection: str, origin: str) -> Response:
    db, tenant = get_db(), current_tenant()
    ticket, verifier, co_id, binding = new_secret(), new_secret(), new_secret(16), new_secret()
    now = utcnow()
    db.add(
        CrossOriginTicket(
            ticket_hash=sha256_hex(ticket),
            tenant_id=tenant.id,
            client_pk=client.id,
            user_pk=user.id,
            connection=connection,
            origin=origin,
            co_id=co_id,
            verifier_hash=sha256_hex(verifier),
            browser_hash=sha256_hex(binding),
            created_at=now,
            expires_at=now + timedelta(seconds=current_app.config["LOGIN_TICKET_TTL_SECONDS"]),
        )
    )
    db.commit()
    event("co_authenticate", "success", client_id=client.client_id, user_id=user.user_id)
    response = jsonify(login_ticket=ticket, co_verifier=verifier, co_id=co_id)
    response.headers["Cache-Control"] = "no-store"
    secure = request.is_secure
    response.set_cookie(
        COOKIE,
        binding,
        max_age=current_app.config["LOGIN_TICKET_TTL_SECONDS"],
        httponly=True,
        secure=secure,
        samesite="None" if secure else "Lax",
        path="/",
    )
    return response


def find_ticket(raw: str | None, client: Client, redirect_uri: str) -> CrossOriginTicket:
    row = get_db().get(CrossOriginTicket, sha256_hex(raw)) if raw and len(raw) < 200 else None
    return find_ticket_row(row, client, redirect_uri)


def find_ticket_row(
    row: CrossOriginTicket | None, client: Client, redirect_uri: str
) -> CrossOriginTicket:
    if (
        row is None
        or row.tenant_id != current_tenant().id
        or row.client_pk != client.id
        or row.used_at is not None
        or row.expires_at <= utcnow()
        or row.origin != origin_of(redirect_uri)
    ):
        raise AccessDenied("Invalid or expired login ticket.")
    return row


def cookie_binds(row: CrossOriginTicket) -> bool:
    binding = request.cookies.get(COOKIE)
    return bool(binding) and same(row.browser_hash, sha256_hex(binding))


def verifier_binds(row: CrossOriginTicket, verifier: str | None) -> bool:
    return bool(verifier) and same(row.verifier_hash, sha256_hex(verifier))


def spend(row: CrossOriginTicket) -> User:
    """Redeem once: a conditional UPDATE decides between parallel redemptions."""
    db = get_db()
    spent = db.execute(
        update(CrossOriginTicket)
        .where(
            CrossOriginTicket.ticket_hash == row.ticket_hash, CrossOriginTicket.used_at.is_(None)
        )
        .values(used_at=utcnow())
    )
    db.commit()
    user = db.get(User, row.user_pk)
    if spent.rowcount != 1 or user is None or user.blocked:
        raise AccessDenied("Invalid or expired login ticket.")
    return user


def verification_page(row: CrossOriginTicket, client: Client, tx_id: str):
    """The page that asks the application's verification page for the ``co_verifier``."""
    location = (client.extra or {}).get("cross_origin_loc")
    if not location:
        raise AccessDenied("Cross-origin verification is not configured for this client.")
    g.csp_frame_src = origin_of(location)
    return render_template(
        "login/co_verify.html",
        tenant=current_tenant(),
        frame=location,
        frame_origin=origin_of(location),
        co_id=row.co_id,
        state=tx_id,
    )
