"""Mail to users: rendered per tenant into an outbox, delivered over SMTP by flask-mail.

How delivery works:

1. ``enqueue`` renders ``templates/mail/<template>.txt`` and ``.html`` with the tenant's
   branding and adds a ``MailOutbox`` row to the caller's session without committing, so a
   mail exists if and only if the change it announces is committed.
2. Right after its commit, request code calls ``deliver_after_commit()`` (the rows this
   request enqueued) or ``deliver_after_commit(row)``. A background thread makes one
   attempt, so the response never waits for SMTP, its timing does not tell whether a mail
   was sent (checklist PR-01), and an SMTP outage never reaches the request.
3. ``login-site worker`` calls ``deliver`` every few seconds (``--once``: a single pass) and
   sends everything due: rows never tried, and failed rows whose backoff has passed. The
   backoff doubles from ``BACKOFF_BASE_SECONDS`` up to ``BACKOFF_CAP_SECONDS``, and a mail is
   retried until it is sent. Run the worker beside the web processes.

Each row is claimed by a conditional UPDATE (unsent, due, and not claimed or its claim run
out), checked by rowcount, before it is sent; then it is marked sent. Two workers therefore
never both send a row, and a row whose sender died is retried when its claim expires
(``CLAIM_SECONDS``). SMTP leaves one duplicate possible: a crash or a lost reply between
the server accepting the message and our marking it sent.

Without ``LOGIN_SITE_MAIL_SERVER`` mail is not configured. Mail then stays queued, and a
warning says so. Logs name outbox ids and kinds. They never contain addresses, links or
bodies.
"""

from __future__ import annotations

import json
import logging
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Iterable
from collections.abc import Mapping
from datetime import datetime
from datetime import timedelta
from email.utils import formataddr
from email.utils import make_msgid
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

import flask_mail
from flask import Flask
from flask import current_app
from flask import g
from flask import has_app_context
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from login_site.db import utcnow
from login_site.events import event
from login_site.models import MailOutbox
from login_site.models import Tenant

log = logging.getLogger("login_site.mail")

BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600
# Far longer than one SMTP exchange (each step bounded by MAIL_TIMEOUT_SECONDS): a claim
# must not run out while its holder is still sending.
CLAIM_SECONDS = 300
BATCH_SIZE = 100
WORKER_INTERVAL_SECONDS = 10.0

# Template name -> the context keys it needs. Templates also read ``brand`` (set here).
TEMPLATES: dict[str, frozenset[str]] = {
    "verify_email": frozenset({"link"}),  # optional: application_name
    "reset_password": frozenset({"link", "expires_minutes"}),
    "already_registered": frozenset(),  # optional: login_link, reset_link
    "blocked_account": frozenset({"ip", "unblock_link"}),  # optional: reset_link
    "password_changed": frozenset(),  # optional: reset_link
}

_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")
_BLANK_LINES = re.compile(r"\n{3,}")

_mail = flask_mail.Mail()
_PENDING = "mail_outbox_ids"  # on g: rows enqueued in this request


# --- setup ----------------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    """flask-mail with its own ``MAIL_*`` settings, checked at startup."""
    config = app.config
    if config.get("MAIL_SERVER"):
        if not config.get("MAIL_DEFAULT_SENDER"):
            raise RuntimeError("LOGIN_SITE_MAIL_SERVER needs LOGIN_SITE_MAIL_DEFAULT_SENDER")
        if config.get("MAIL_USE_TLS") and config.get("MAIL_USE_SSL"):
            raise RuntimeError("set LOGIN_SITE_MAIL_USE_TLS or LOGIN_SITE_MAIL_USE_SSL, not both")
    _mail.init_app(app)


def configured(app: Flask) -> bool:
    return bool(app.config.get("MAIL_SERVER"))


# --- rendering and queueing -----------------------------------------------------------------


def enqueue(
    db: Session,
    tenant: Tenant,
    *,
    to: str,
    template: str,
    context: Mapping[str, Any],
    kind: str,
) -> MailOutbox:
    """Render ``template`` for ``tenant`` and add it to the outbox in ``db``, uncommitted.

    The caller commits in the transaction of the change the mail announces, then calls
    ``deliver_after_commit``. Raises ``ValueError`` for an unknown template, missing
    context or a recipient that is not one plain address.
    """
    recipient = to.strip()
    if len(recipient) > 320 or not _ADDRESS.match(recipient):
        raise ValueError("the recipient must be one plain email address")
    subject, text, html = render(tenant, template, context)
    row = MailOutbox(
        tenant_id=tenant.id,
        recipient=recipient,
        subject=subject,
        body_text=text,
        body_html=html,
        kind=kind,
    )
    db.add(row)
    db.flush()
    if has_app_context():
        g.setdefault(_PENDING, []).append(row.id)  # for deliver_after_commit()
    event("mail", "queued", outbox_id=row.id, kind=kind)
    return row


def render(tenant: Tenant, template: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(subject, text, html)``: the subject is the text template's ``subject`` block."""
    needed = TEMPLATES.get(template)
    if needed is None:
        raise ValueError(f"unknown mail template {template!r}")
    missing = needed - context.keys()
    if missing:
        raise ValueError(f"mail template {template!r} needs {sorted(missing)}")
    values = {**context, "brand": branding(tenant)}
    env = current_app.jinja_env
    text_template = env.get_template(f"mail/{template}.txt")
    subject_block = text_template.blocks["subject"](text_template.new_context(values))
    # One line: a header never carries a line break from a tenant name or context.
    subject = " ".join("".join(subject_block).split())[:500]
    text = _tidy(text_template.render(values))
    # .html templates are autoescaped (Flask's jinja environment); .txt ones are not.
    html = env.get_template(f"mail/{template}.html").render({**values, "subject": subject})
    return subject, text, html


def branding(tenant: Tenant) -> dict[str, str | None]:
    """The tenant's name, colour, logo and support address, each checked before use."""
    # Imported here: the login views import this module to send mail.
    from login_site.login.views import DEFAULT_PRIMARY
    from login_site.login.views import HEX_COLOUR

    settings = tenant.setting("branding") or {}
    primary = str((settings.get("colors") or {}).get("primary") or "")
    logo_url = str(settings.get("logo_url") or "")
    support = str(tenant.setting("support_email") or "").strip()
    return {
        "name": " ".join((tenant.friendly_name or tenant.name).split()),
        "primary": primary if HEX_COLOUR.match(primary) else DEFAULT_PRIMARY,
        # The only remote image a mail may load; https only.
        "logo_url": logo_url if _is_https_url(logo_url) else None,
        "support_email": support if _ADDRESS.match(support) else None,
    }


def _is_https_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme == "https" and bool(parts.netloc) and not any(c.isspace() for c in value)


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)) + "\n"


# --- delivery -------------------------------------------------------------------------------


def backoff_seconds(attempts: int) -> int:
    """Delay before the next try after ``attempts`` failed ones: 30 s, 60 s, ... up to 1 h."""
    return min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS)


def deliver(
    app: Flask,
    ids: Iterable[int] | None = None,
    *,
    now: datetime | None = None,
    limit: int = BATCH_SIZE,
) -> int:
    """Send the due outbox rows (only those in ``ids`` when given); return how many were sent.

    Each row is claimed before it is sent and marked sent after; a failure counts the
    attempt, records the error class and schedules the next try. When the server cannot be
    reached the pass stops, leaving the other rows for the next one. ``now`` replaces the
    clock (tests). Database errors propagate; SMTP errors do not.
    """
    wanted = None if ids is None else list(ids)
    if wanted == []:
        return 0
    with app.app_context():
        with app.extensions["login_site.sessionmaker"]() as db:
            query = select(MailOutbox.id).where(*_due(now or utcnow()))
            if wanted is not None:
                query = query.where(MailOutbox.id.in_(wanted))
            candidates = db.scalars(
                query.order_by(MailOutbox.next_attempt_at, MailOutbox.id).limit(limit)
            ).all()
            db.commit()  # end the read before the claims (SQLite's locks)
            if not candidates:
                return 0
            if not configured(app):
                _warn_not_configured(len(candidates))
                return 0
            return _send_claimed(app, db, candidates, now)


def deliver_after_commit(
    *outbox: MailOutbox | int, app: Flask | None = None
) -> threading.Thread | None:
    """Try the just-committed ``outbox`` rows (or ids) now, in a background thread; with
    no arguments, the rows ``enqueue`` added in this request (or app context).

    Rows of a rolled-back transaction do not exist and are skipped. Returns the started
    thread (join it to wait), or ``None`` when there is nothing to do. It never raises for
    a delivery problem: what it cannot send stays queued for ``login-site worker``.
    """
    app = app or current_app._get_current_object()
    if outbox:
        ids = [item if isinstance(item, int) else item.id for item in outbox]
    else:
        ids = g.pop(_PENDING, []) if has_app_context() else []
    if not ids:
        return None
    if not configured(app):
        _warn_not_configured(len(ids))
        return None
    thread = threading.Thread(
        target=_deliver_quietly, args=(app, ids), name="mail-after-commit", daemon=True
    )
    thread.start()
    return thread


def work(
    app: Flask, *, interval_seconds: float = WORKER_INTERVAL_SECONDS, once: bool = False
) -> int:
    """``login-site worker``: deliver what is due every ``interval_seconds``.

    With ``once``, a single pass whose errors propagate; returns the number of mails sent.
    Otherwise it runs until interrupted and survives database and SMTP outages.
    """
    sent = 0
    while True:
        try:
            sent += deliver(app)
        except Exception as exc:
            if once:
                raise
            # The class only: database errors quote their parameters (addresses, bodies).
            _warn("worker_error", error=type(exc).__name__)
        if once:
            return sent
        time.sleep(interval_seconds)


def _due(now: datetime) -> tuple:
    return (
        MailOutbox.sent_at.is_(None),
        MailOutbox.next_attempt_at <= now,
        or_(MailOutbox.claimed_until.is_(None), MailOutbox.claimed_until < now),
    )


def _send_claimed(app: Flask, db: Session, candidates: list[int], now: datetime | None) -> int:
    sent = 0
    connection: _Connection | None = None
    try:
        for outbox_id in candidates:
            row = _claim(db, outbox_id, now or utcnow())
            if row is None:
                continue  # another worker has it, or it is no longer due
            connecting = False
            try:
                message = _message(app, db, row)
                db.commit()  # no transaction stays open while SMTP talks
                if connection is None:
                    connecting = True
                    connection = _Connection(app.extensions["mail"]).__enter__()
                    connecting = False
                connection.send(message)
            except Exception as exc:
                _record_failure(db, row, exc, now or utcnow())
                connection = _close(connection)
                if connecting:
                    break  # the server is unreachable: the other rows wait for the next pass
                continue
            _mark_sent(db, row, now or utcnow())
            sent += 1
    finally:
        _close(connection)
    return sent


def _claim(db: Session, outbox_id: int, now: datetime) -> MailOutbox | None:
    result = db.execute(
        update(MailOutbox)
        .where(MailOutbox.id == outbox_id, *_due(now))
        .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
        .execution_options(synchronize_session=False)
    )
    db.commit()
    if result.rowcount != 1:
        return None
    return db.get(MailOutbox, outbox_id, populate_existing=True)


def _mark_sent(db: Session, row: MailOutbox, now: datetime) -> None:
    db.execute(
        update(MailOutbox)
        .where(MailOutbox.id == row.id, MailOutbox.sent_at.is_(None))
        .values(sent_at=now, claimed_until=None, attempts=row.attempts + 1, last_error=None)
        .execution_options(synchronize_session=False)
    )
    db.commit()
    event("mail", "sent", outbox_id=row.id, kind=row.kind, attempts=row.attempts + 1)


def _record_failure(db: Session, row: MailOutbox, exc: BaseException, now: datetime) -> None:
    outbox_id, kind, attempts, claim = row.id, row.kind, row.attempts + 1, row.claimed_until
    delay = backoff_seconds(attempts)
    error = _error_text(exc)
    db.rollback()
    # Only while the claim is still ours: past it, another worker may be sending the row.
    db.execute(
        update(MailOutbox)
        .where(
            MailOutbox.id == outbox_id,
            MailOutbox.sent_at.is_(None),
            MailOutbox.claimed_until == claim,
        )
        .values(
            attempts=attempts,
            next_attempt_at=now + timedelta(seconds=delay),
            claimed_until=None,
            last_error=error,
        )
        .execution_options(synchronize_session=False)
    )
    db.commit()
    _warn(
        "retry",
        outbox_id=outbox_id,
        kind=kind,
        attempts=attempts,
        error=error,
        retry_in_seconds=delay,
    )


def _error_text(exc: BaseException) -> str:
    """The error class and SMTP code or errno: servers' messages may quote the recipient."""
    code = getattr(exc, "smtp_code", None) or getattr(exc, "errno", None)
    return f"{type(exc).__name__} {code}" if code else type(exc).__name__


def _message(app: Flask, db: Session, row: MailOutbox) -> flask_mail.Message:
    tenant = db.get(Tenant, row.tenant_id) if row.tenant_id else None
    brand = branding(tenant) if tenant is not None else None
    default = app.config["MAIL_DEFAULT_SENDER"]
    name, address = default if isinstance(default, list | tuple) else parseaddr(default)
    message = flask_mail.Message(
        subject=row.subject,
        recipients=[row.recipient],
        body=row.body_text,
        html=row.body_html or None,
        sender=formataddr((brand["name"] if brand else name, address)),
        reply_to=brand["support_email"] if brand else None,
    )
    # make_msgid() alone asks DNS for this host's name on every message.
    message.msgId = make_msgid(domain=address.rpartition("@")[2] or None)
    return message


def _close(connection: _Connection | None) -> None:
    if connection is not None and connection.host is not None:
        try:
            connection.host.quit()
        except (smtplib.SMTPException, OSError):
            connection.host.close()
    return None


def _deliver_quietly(app: Flask, ids: list[int]) -> None:
    try:
        deliver(app, ids)
    except Exception as exc:
        _warn("after_commit_error", error=type(exc).__name__, outbox_ids=ids)


def _warn_not_configured(queued: int) -> None:
    _warn("not_configured", queued=queued, hint="set LOGIN_SITE_MAIL_SERVER; mail stays queued")


def _warn(outcome: str, **fields: object) -> None:
    log.warning(json.dumps({"event": "mail", "outcome": outcome, **fields}, sort_keys=True))


class _Connection(flask_mail.Connection):
    """flask-mail's connection with a timeout and certificate checks. smtplib's defaults
    wait forever and run STARTTLS without verifying the server, which would hand
    ``MAIL_PASSWORD`` to anyone on the path. No ``MAIL_DEBUG`` output: smtplib's debug
    prints recipients and bodies."""

    def configure_host(self) -> smtplib.SMTP:
        state = self.mail
        timeout = float(current_app.config["MAIL_TIMEOUT_SECONDS"])
        context = ssl.create_default_context()
        host: smtplib.SMTP
        if state.use_ssl:
            host = smtplib.SMTP_SSL(state.server, state.port, timeout=timeout, context=context)
        else:
            host = smtplib.SMTP(state.server, state.port, timeout=timeout)
        if state.use_tls:
            host.starttls(context=context)
        if state.username and state.password:
            # from_prefixed_env decodes JSON: a numeric password arrives as an int.
            host.login(str(state.username), str(state.password))
        return host
