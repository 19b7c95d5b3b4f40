"""Password-change tickets through the Management API: a single-use link to the hosted reset
page (:mod:`login_site.tickets`), handed to the caller instead of mailed to the user."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from login_site import accounts
from login_site import tickets
from login_site.management import body
from login_site.management import clients
from login_site.management import connections
from login_site.management import users
from login_site.management.errors import invalid_body
from login_site.management.errors import not_found
from login_site.models import DatabaseCredential
from login_site.models import Identity
from login_site.models import Tenant
from login_site.models import User
from login_site.urls import redirect_uri_problem

PASSWORD_CHANGE_FIELDS = {
    "user_id",
    "email",
    "connection_id",
    "client_id",
    "result_url",
    "ttl_sec",
    "mark_email_as_verified",
    "includeEmailInRedirect",
}
MAX_TTL_SECONDS = 432000  # Auth0's default; ours is shorter (RESET_TICKET_TTL_SECONDS)


def _has_password(db: Session, user: User) -> bool:
    return (
        db.execute(
            select(DatabaseCredential.identity_id)
            .join(Identity, Identity.id == DatabaseCredential.identity_id)
            .where(Identity.user_pk == user.id)
        ).first()
        is not None
    )


def _ttl(data: dict, default: int) -> int:
    if "ttl_sec" not in data:
        return default
    ttl = data["ttl_sec"]
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 <= ttl <= MAX_TTL_SECONDS:
        raise invalid_body(f"'ttl_sec' must be an integer from 0 to {MAX_TTL_SECONDS}")
    return ttl or default  # 0: the default (Auth0)


def _user(db: Session, tenant: Tenant, data: dict) -> User:
    """``user_id``, or ``email`` + ``connection_id`` of a database connection."""
    if "user_id" in data:
        if "email" in data or "connection_id" in data:
            raise invalid_body("give 'user_id' or 'email' and 'connection_id', not both")
        return users.find(db, tenant, body.string(data, "user_id", empty=False))
    if "email" not in data or "connection_id" not in data:
        raise invalid_body("missing required property 'user_id' (or 'email' and 'connection_id')")
    email = body.string(data, "email", limit=320, empty=False)
    conn = connections.find(db, tenant, body.string(data, "connection_id", empty=False))
    if conn.strategy != "auth0":
        raise invalid_body("'connection_id' must be a database connection")
    credential = accounts.find_credential(db, conn, email) if "@" in email else None
    if credential is None:
        raise not_found("user")
    return credential.identity.user


def password_change(
    db: Session, tenant: Tenant, data: dict, *, default_ttl_seconds: int
) -> tuple[User, str]:
    """The user and the raw ticket (older reset tickets of the user die); the caller commits.

    The reset page marks the email verified only with ``mark_email_as_verified`` (whoever
    gets a handed-out link has not proved the mailbox) and then goes to ``result_url``.
    """
    body.reject_unknown(data, PASSWORD_CHANGE_FIELDS)
    flags = {
        key: body.boolean(data, key) if key in data else False
        for key in ("mark_email_as_verified", "includeEmailInRedirect")
    }
    result_url = None
    if "result_url" in data:
        result_url = body.string(data, "result_url", limit=2000)
        if problem := redirect_uri_problem(result_url):
            raise invalid_body(f"'result_url' {problem}")
    ttl = _ttl(data, default_ttl_seconds)
    client = (
        clients.find(db, tenant, body.string(data, "client_id", empty=False))
        if "client_id" in data
        else None
    )
    user = _user(db, tenant, data)
    if not user.email or not _has_password(db, user):
        raise invalid_body("the user has no password (no database connection identity)")
    raw = tickets.issue(
        db,
        user,
        "reset_password",
        lifetime_seconds=ttl,
        client_pk=client.id if client else None,
        marks_email_verified=flags["mark_email_as_verified"],
        result_url=result_url,
        result_with_email=flags["includeEmailInRedirect"],
    )
    db.flush()
    return user, raw
