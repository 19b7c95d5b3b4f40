"""Management API jobs (management-api.md §7): verification mails and user exports.

A verification job is one mail in the outbox (:mod:`login_site.mail`): ``pending`` until
the outbox row is sent, then ``completed``; nothing is kept in process memory. An export is
written at once, within ``MAX_EXPORT_USERS`` users, and kept on the job row for
``EXPORT_TTL_SECONDS``; it is served only to bearers with ``read:users``, then dropped.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime
from datetime import timedelta
from typing import Any

from flask import g
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm import selectinload

from login_site import mail
from login_site.api.dbconnections import send_verification_mail
from login_site.db import utcnow
from login_site.management import body
from login_site.management import clients
from login_site.management import connections
from login_site.management import users
from login_site.management.errors import ManagementError
from login_site.management.errors import invalid_body
from login_site.models import Connection
from login_site.models import Identity
from login_site.models import MailOutbox
from login_site.models import Tenant
from login_site.models import User
from login_site.models.job import Job

EXPORT_FORMATS = ("json", "csv")
EXPORT_TTL_SECONDS = 3600
MAX_EXPORT_USERS = 10000
MAX_EXPORT_FIELDS = 50
VERIFICATION_FIELDS = {"user_id", "client_id", "identity"}
EXPORT_REQUEST_FIELDS = {"connection_id", "format", "fields", "limit"}


def iso_time(value: datetime) -> str:
    """Auth0's timestamps: ``2024-01-31T12:00:00.000Z``."""
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# What an export can contain: the normalised profile's fields (never credentials or
# upstream tokens; ``multifactor`` is not kept here).
EXPORTABLE = tuple(name for name in users.PROFILE_FIELDS if name != "multifactor")
# Without ``fields``: the profile, not the metadata (data minimisation).
DEFAULT_EXPORT_FIELDS = [
    name for name in EXPORTABLE if name not in ("user_metadata", "app_metadata", "last_ip")
]
# A cell a spreadsheet would run as a formula (OWASP "CSV Injection"); plain numbers such
# as phone numbers are left alone.
_FORMULA = re.compile(r"^[=+\-@\t\r]")
_NUMBER = re.compile(r"^[+-]?\d[\d.]*$")


# --- reading jobs ---------------------------------------------------------------------------


def find(db: Session, tenant: Tenant, job_id: str) -> Job:
    job = db.execute(
        select(Job).where(Job.tenant_id == tenant.id, Job.id == job_id)
    ).scalar_one_or_none()
    if job is None:
        raise ManagementError(404, "The job does not exist.", "inexistent_job")
    return job


def status(db: Session, job: Job) -> tuple[str, datetime | None]:
    """(status, completed_at): a verification job follows its outbox row."""
    if job.type != "verification_email":
        return job.status, job.completed_at
    if job.outbox_id is None:  # the outbox row is gone: only sent rows are ever removed
        return "completed", job.completed_at
    sent_at = db.scalar(select(MailOutbox.sent_at).where(MailOutbox.id == job.outbox_id))
    return ("completed", sent_at) if sent_at is not None else ("pending", None)


def available(job: Job, now: datetime | None = None) -> bool:
    """The export file can still be fetched."""
    return (
        job.type == "users_export"
        and job.export is not None
        and job.expires_at is not None
        and job.expires_at > (now or utcnow())
    )


def as_json(db: Session, job: Job, *, location: str | None = None) -> dict[str, Any]:
    state, completed_at = status(db, job)
    out: dict[str, Any] = {
        "id": job.id,
        "type": job.type,
        "status": state,
        "created_at": iso_time(job.created_at),
    }
    if completed_at is not None:
        out["completed_at"] = iso_time(completed_at)
    if job.type == "users_export":
        if job.connection_id:
            out["connection_id"] = job.connection_id
        out["format"] = job.format
        out["fields"] = job.fields
        if location is not None and available(job):
            out["location"] = location
    return out


# --- verification mails ---------------------------------------------------------------------


def _check_identity(user: User, data: dict) -> None:
    identity = body.obj(data, "identity")
    body.reject_unknown(identity, {"user_id", "provider"}, prefix="identity.")
    for key in ("user_id", "provider"):
        if not isinstance(identity.get(key), str):
            raise invalid_body(f"'identity.{key}' must be a string")
    if not any(
        i.user_id == identity["user_id"] and i.provider == identity["provider"]
        for i in user.identities
    ):
        raise invalid_body("'identity' is not an identity of the user")


def verification_email(db: Session, tenant: Tenant, data: dict) -> Job:
    """Queue a verification link for the user (older links die); the caller commits, then
    delivers (``mail.deliver_after_commit``)."""
    body.reject_unknown(data, VERIFICATION_FIELDS)
    if "user_id" not in data:
        raise invalid_body("missing required property 'user_id'")
    client = (
        clients.find(db, tenant, body.string(data, "client_id", empty=False))
        if "client_id" in data
        else None
    )
    user = users.find(db, tenant, body.string(data, "user_id", empty=False))
    if "identity" in data:
        _check_identity(user, data)
    if not user.email:
        raise invalid_body("the user has no email address")
    send_verification_mail(user, client)
    # The row mail.enqueue just added for this request (mail.deliver_after_commit's list).
    outbox_id = (g.get(mail._PENDING) or [None])[-1]
    job = Job(tenant_id=tenant.id, type="verification_email", outbox_id=outbox_id)
    db.add(job)
    db.flush()
    return job


# --- user exports ---------------------------------------------------------------------------


def _export_fields(data: dict) -> list[dict[str, str]]:
    if "fields" not in data:
        return [{"name": name} for name in DEFAULT_EXPORT_FIELDS]
    fields = data["fields"]
    if not isinstance(fields, list) or not 1 <= len(fields) <= MAX_EXPORT_FIELDS:
        raise invalid_body(f"'fields' must be an array of 1 to {MAX_EXPORT_FIELDS} objects")
    out = []
    for i, item in enumerate(fields):
        if not isinstance(item, dict):
            raise invalid_body(f"'fields[{i}]' must be an object")
        body.reject_unknown(item, {"name", "export_as"}, prefix=f"fields[{i}].")
        if item.get("name") not in EXPORTABLE:
            raise invalid_body(f"'fields[{i}].name' must be one of {', '.join(EXPORTABLE)}")
        field = {"name": item["name"]}
        if "export_as" in item:
            field["export_as"] = body.string(item, "export_as", limit=100, empty=False)
        out.append(field)
    return out


def _limit(data: dict) -> int:
    limit = data.get("limit", MAX_EXPORT_USERS)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_EXPORT_USERS:
        raise invalid_body(f"'limit' must be an integer from 1 to {MAX_EXPORT_USERS}")
    return limit


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True)
    text = str(value)
    if _FORMULA.match(text) and not _NUMBER.match(text):
        return "'" + text
    return text


def render_export(
    rows: list[User], fields: list[dict[str, str]], fmt: str, names: dict[str, str]
) -> str:
    """NDJSON (one object a line, as Auth0's ``json``) or CSV with a header line, of the
    users' normalised profiles (:func:`users.as_json`)."""
    columns = [(f.get("export_as") or f["name"], f["name"]) for f in fields]
    profiles = (users.as_json(user, names) for user in rows)
    out = io.StringIO()
    if fmt == "json":
        for profile in profiles:
            out.write(json.dumps({label: profile.get(name) for label, name in columns}) + "\n")
        return out.getvalue()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([_cell(label) for label, _ in columns])
    for profile in profiles:
        writer.writerow([_cell(profile.get(name)) for _, name in columns])
    return out.getvalue()


def _purge_expired(db: Session, tenant: Tenant, now: datetime) -> None:
    """Exports past their time are dropped (they hold personal data)."""
    db.execute(
        update(Job)
        .where(
            Job.tenant_id == tenant.id,
            Job.type == "users_export",
            Job.export.is_not(None),
            Job.expires_at <= now,
        )
        .values(export=None)
    )


def users_export(db: Session, tenant: Tenant, data: dict, *, now: datetime | None = None) -> Job:
    """Export the tenant's users (of one connection, if given) now; the caller commits."""
    body.reject_unknown(data, EXPORT_REQUEST_FIELDS)
    fmt = data.get("format", "csv")
    if fmt not in EXPORT_FORMATS:
        raise invalid_body("'format' must be json or csv")
    fields = _export_fields(data)
    limit = _limit(data)
    conn: Connection | None = None
    if "connection_id" in data:
        conn = connections.find(db, tenant, body.string(data, "connection_id", empty=False))
    now = now or utcnow()
    _purge_expired(db, tenant, now)
    query = select(User).where(User.tenant_id == tenant.id).order_by(User.id).limit(limit)
    if conn is not None:
        query = query.where(
            User.id.in_(select(Identity.user_pk).where(Identity.connection_id == conn.id))
        )
    rows = list(db.execute(query.options(selectinload(User.identities))).scalars())
    job = Job(
        tenant_id=tenant.id,
        type="users_export",
        status="completed",
        connection_id=conn.id if conn else None,
        format=fmt,
        fields=fields,
        export=render_export(rows, fields, fmt, users.connection_names(db, tenant)),
        created_at=now,
        completed_at=now,
        expires_at=now + timedelta(seconds=EXPORT_TTL_SECONDS),
    )
    db.add(job)
    db.flush()
    return job


def export_file(db: Session, tenant: Tenant, job_id: str) -> Job:
    """The export job whose file can still be fetched, else 404."""
    job = find(db, tenant, job_id)
    if not available(job):
        raise ManagementError(404, "The export does not exist or has expired.", "inexistent_export")
    return job
