"""Single-use links mailed to users: email verification, password reset, unblock.

The token is 256 bits from the CSPRNG; only its hash is stored. A ticket is bound to
the user and (for verification and reset) to the email address it was sent to, expires,
and is spent by one conditional UPDATE, so two parallel submissions cannot both win.
Issuing a new ticket of a kind spends the user's older ones of that kind.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from login_site.db import utcnow
from login_site.models import User
from login_site.models import UserTicket
from login_site.models.ids import new_secret
from login_site.models.security import TICKET_KINDS
from login_site.security.secrets import sha256_hex

# Defaults; Auth0: verification links 5 days, reset links 5 days (configurable). Ours are
# shorter (checklist SU-05: <= 24 h; PR-02: about 1 h).
LIFETIME_SECONDS = {"verify_email": 86400, "reset_password": 3600, "unblock": 86400}


class TicketInvalid(Exception):
    """Unknown, spent, expired, or no longer matching the user's email."""


def issue(
    db: Session,
    user: User,
    kind: str,
    *,
    lifetime_seconds: int | None = None,
    client_pk: str | None = None,
    marks_email_verified: bool = True,
    result_url: str | None = None,
    result_with_email: bool = False,
) -> str:
    if kind not in TICKET_KINDS:
        raise ValueError(kind)
    now = utcnow()
    db.execute(
        update(UserTicket)
        .where(UserTicket.user_pk == user.id, UserTicket.kind == kind, UserTicket.used_at.is_(None))
        .values(used_at=now)
    )
    raw = new_secret()
    db.add(
        UserTicket(
            token_hash=sha256_hex(raw),
            tenant_id=user.tenant_id,
            user_pk=user.id,
            kind=kind,
            email=user.email,
            client_pk=client_pk,
            marks_email_verified=marks_email_verified,
            result_url=result_url,
            result_with_email=result_with_email,
            created_at=now,
            expires_at=now + timedelta(seconds=lifetime_seconds or LIFETIME_SECONDS[kind]),
        )
    )
    return raw


def peek(db: Session, tenant_id: str, raw: str | None, kind: str) -> UserTicket:
    """The live ticket for a GET (a page with a form); nothing is spent."""
    ticket = db.get(UserTicket, sha256_hex(raw)) if raw and len(raw) < 200 else None
    if (
        ticket is None
        or ticket.tenant_id != tenant_id
        or ticket.kind != kind
        or ticket.used_at is not None
        or ticket.expires_at <= utcnow()
    ):
        raise TicketInvalid()
    user = db.get(User, ticket.user_pk)
    if user is None or (ticket.email is not None and user.email != ticket.email):
        raise TicketInvalid()
    return ticket


def spend(db: Session, tenant_id: str, raw: str | None, kind: str) -> UserTicket:
    """Spend the ticket: exactly one caller wins; the caller commits."""
    ticket = peek(db, tenant_id, raw, kind)
    spent = db.execute(
        update(UserTicket)
        .where(
            UserTicket.token_hash == ticket.token_hash,
            UserTicket.used_at.is_(None),
            UserTicket.expires_at > utcnow(),
        )
        .values(used_at=utcnow())
    )
    if spent.rowcount != 1:
        raise TicketInvalid()
    return ticket


def was_used(db: Session, tenant_id: str, raw: str | None, kind: str) -> UserTicket | None:
    """The ticket if it exists and was spent (or replaced by a newer one), else None."""
    ticket = db.get(UserTicket, sha256_hex(raw)) if raw and len(raw) < 200 else None
    if ticket and ticket.tenant_id == tenant_id and ticket.kind == kind and ticket.used_at:
        return ticket
    return None
