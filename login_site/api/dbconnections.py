"""``/dbconnections/signup`` and ``/dbconnections/change_password`` (compat §10.1, §10.2).

Errors use Auth0's legacy shape ``{name, code, description, statusCode}``. Neither
endpoint reveals whether an account exists: an existing email gets the same answer as a
new sign-up (and its owner a mail), and a reset request always gets the same text.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import g
from flask import jsonify
from sqlalchemy import select

from login_site import accounts
from login_site import config_cache
from login_site import mail
from login_site import tickets
from login_site.api import body
from login_site.connections.database import SignupRejected
from login_site.connections.database import signup
from login_site.db import get_db
from login_site.events import event
from login_site.models import Client
from login_site.models import Connection
from login_site.models import User
from login_site.tenancy import absolute
from login_site.tenancy import current_tenant

bp = Blueprint("dbconnections", __name__)

RESET_ANSWER = "We've just sent you an email to reset your password."
USER_METADATA_MAX_KEYS = 10
USER_METADATA_MAX_NAME = 100
USER_METADATA_MAX_VALUE = 500
SIGNUP_FIELDS = ("given_name", "family_name", "name", "nickname", "picture")


class ApiError(Exception):
    def __init__(
        self,
        code: str,
        description: Any,
        status: int = 400,
        name: str = "BadRequestError",
        **extra: Any,
    ):
        super().__init__(code)
        self.code, self.description, self.status, self.name = code, description, status, name
        self.extra = extra


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    event("dbconnections", exc.code)
    response = jsonify(
        {
            "name": exc.name,
            "code": exc.code,
            "description": exc.description,
            "statusCode": exc.status,
            **exc.extra,
        }
    )
    response.status_code = exc.status
    response.headers["Cache-Control"] = "no-store"
    return response


def _read() -> dict[str, Any]:
    try:
        return body.read()
    except body.BadBody as exc:
        raise ApiError("invalid_body", str(exc)) from exc


def _client_and_connection(data: dict[str, Any]) -> tuple[Client, Connection]:
    db, tenant = get_db(), current_tenant()
    client_id = (
        body.text(data, "client_id", 128) if isinstance(data.get("client_id"), str) else None
    )
    if not client_id:
        raise ApiError("invalid_body", "Missing required property: client_id")
    client = config_cache.client(db, tenant, client_id)
    if client is None:
        raise ApiError("bad.client_id", "Unknown client.")
    g.cors_client_pk = client.id
    name = data.get("connection")
    if not isinstance(name, str) or not name:
        raise ApiError("invalid_body", "Missing required property: connection")
    conn = db.execute(
        select(Connection).where(Connection.tenant_id == tenant.id, Connection.name == name)
    ).scalar_one_or_none()
    if conn is None or client.id not in conn.enabled_client_ids:
        raise ApiError("bad.connection", "Connection does not exist or is not enabled.")
    if conn.strategy != "auth0":
        raise ApiError("bad.connection", "specified strategy does not support requested operation")
    return client, conn


def _user_metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or len(value) > USER_METADATA_MAX_KEYS
        or any(
            not isinstance(k, str)
            or len(k) > USER_METADATA_MAX_NAME
            or not isinstance(v, str)
            or len(v) > USER_METADATA_MAX_VALUE
            for k, v in value.items()
        )
    ):
        raise ApiError(
            "invalid_body",
            "user_metadata must be an object of at most 10 string "
            "properties (names up to 100, values up to 500 characters).",
        )
    return value


def _password_error(exc: SignupRejected) -> ApiError:
    if exc.name == "PasswordStrengthError" and exc.rules:
        rules = [
            {"message": r.message, "format": list(r.format), "code": r.code, "verified": False}
            for r in exc.rules
        ]
        description: Any = {"rules": rules, "verified": False}
        policy = "; ".join(r.message % r.format if r.format else r.message for r in exc.rules)
        return ApiError("invalid_password", description, name=exc.name, policy=policy)
    return ApiError("invalid_password", exc.message, name=exc.name)


@bp.post("/dbconnections/signup")
def signup_endpoint():
    data = _read()
    client, conn = _client_and_connection(data)
    db, tenant = get_db(), current_tenant()
    email = body.text(data, "email", 320) if isinstance(data.get("email"), str) else None
    password = data.get("password")
    if not email or not isinstance(password, str) or not password:
        raise ApiError("invalid_body", "Missing required property: email or password")
    username = data.get("username") if isinstance(data.get("username"), str) else None
    profile = {k: data[k] for k in SIGNUP_FIELDS if isinstance(data.get(k), str)}
    metadata = _user_metadata(data.get("user_metadata"))
    if metadata is not None:
        profile["user_metadata"] = metadata
    try:
        user = signup(
            db, tenant, conn, email=email, password=password, username=username, profile=profile
        )
    except SignupRejected as exc:
        db.rollback()
        if exc.code == "invalid_password":
            raise _password_error(exc) from exc
        raise ApiError(exc.code, exc.message) from exc
    except accounts.UserExists as exc:
        db.rollback()
        return _existing_signup(client, conn, email, username, profile, exc)
    send_verification_mail(user, client)
    db.commit()
    mail.deliver_after_commit()
    event(
        "signup", "success", user_id=user.user_id, connection=conn.name, client_id=client.client_id
    )
    return jsonify(_signup_body(user.user_id.split("|", 1)[1], user.email, username, profile))


def _signup_body(hex_id: str, email: str, username: str | None, profile: dict) -> dict:
    answer: dict[str, Any] = {"_id": hex_id, "email_verified": False, "email": email}
    if username:
        answer["username"] = username
    answer.update({k: v for k, v in profile.items() if k in SIGNUP_FIELDS})
    if "user_metadata" in profile:
        answer["user_metadata"] = profile["user_metadata"]
    return answer


def _existing_signup(client, conn, email, username, profile, exc):
    """No enumeration (SU-03): answer as for a new account and tell the owner by mail,
    unless the connection opts in to Auth0's ``user_exists`` answer."""
    db, tenant = get_db(), current_tenant()
    if (conn.options or {}).get("signup_reveals_existing"):
        raise ApiError("user_exists", "The user already exists.")
    owner = (
        db.execute(
            select(User).where(
                User.tenant_id == tenant.id, User.email == accounts.normalise_email(email)
            )
        )
        .scalars()
        .first()
    )
    if owner is not None:
        reset = tickets.issue(db, owner, "reset_password", client_pk=client.id)
        mail.enqueue(
            db,
            tenant,
            to=owner.email,
            template="already_registered",
            kind="already_registered",
            context={
                "reset_link": absolute(f"reset_password?ticket={reset}"),
                "application_name": client.name,
            },
        )
        db.commit()
        mail.deliver_after_commit()
    event("signup", "exists", connection=conn.name, client_id=client.client_id)
    return jsonify(
        _signup_body(secrets.token_hex(12), accounts.normalise_email(email), username, profile)
    )


def send_verification_mail(user: User, client: Client | None) -> None:
    """Queue a verification link (older ones die); the caller commits, then delivers."""
    raw = tickets.issue(
        get_db(),
        user,
        "verify_email",
        client_pk=client.id if client else None,
        lifetime_seconds=current_app.config["VERIFY_TICKET_TTL_SECONDS"],
    )
    tenant = current_tenant()
    mail.enqueue(
        get_db(),
        tenant,
        to=user.email,
        template="verify_email",
        kind="verify_email",
        context={
            "link": absolute(f"verify_email?ticket={raw}"),
            "application_name": client.name if client else tenant.friendly_name or tenant.name,
        },
    )


@bp.post("/dbconnections/change_password")
def change_password_endpoint():
    data = _read()
    client, conn = _client_and_connection(data)
    email = body.text(data, "email", 320) if isinstance(data.get("email"), str) else None
    if not email:
        raise ApiError("invalid_body", "Missing required property: email")
    send_reset_mail(conn, email, client)
    return Response(
        RESET_ANSWER,
        200,
        {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"},
    )


def send_reset_mail(conn: Connection, email: str, client: Client | None) -> None:
    """A reset link for an existing account of the connection; nothing otherwise.
    The answer never depends on which case it was (checklist PR-01)."""
    db, tenant = get_db(), current_tenant()
    credential = accounts.find_credential(db, conn, email) if "@" in email else None
    if credential is None or (conn.options or {}).get("disable_self_service_change_password"):
        event("change_password", "ignored", connection=conn.name)
        return
    user = credential.identity.user
    raw = tickets.issue(
        db,
        user,
        "reset_password",
        lifetime_seconds=current_app.config["RESET_TICKET_TTL_SECONDS"],
        client_pk=client.id if client else None,
    )
    mail.enqueue(
        db,
        tenant,
        to=user.email,
        template="reset_password",
        kind="reset_password",
        context={
            "link": absolute(f"reset_password?ticket={raw}"),
            "expires_minutes": current_app.config["RESET_TICKET_TTL_SECONDS"] // 60,
        },
    )
    db.commit()
    mail.deliver_after_commit()
    event("change_password", "sent", connection=conn.name, user_id=user.user_id)
