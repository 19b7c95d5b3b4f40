"""Dashboard: the selected tenant's security events (:mod:`login_site.audit`), newest first,
with filters (event, outcome, user, connection, time range in UTC) and pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime

from flask import render_template
from flask import request
from flask_babel import gettext as _

from login_site import audit
from login_site.dashboard.auth import acting
from login_site.dashboard.auth import require_admin
from login_site.dashboard.views import bp
from login_site.db import get_db

PER_PAGE = 50
MAX_PAGE = 10_000
MAX_FILTER_CHARS = 255
# <input type="datetime-local"> sends minutes, and seconds when they were typed.
TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")
FILTER_FIELDS = ("event", "outcome", "user", "connection", "since", "until")


@dataclass(frozen=True)
class LogQuery:
    """The logs page's query string, read: a filter, a page, and the fields it rejected."""

    where: audit.EventFilter
    page: int
    errors: dict[str, str]


def parse_time(value: str) -> datetime | None:
    """A UTC time from the filter form; ``None`` if it is not one."""
    for pattern in TIME_FORMATS:
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def read_query(args) -> LogQuery:
    """Parse the filters; invalid ones are reported, not applied."""
    errors: dict[str, str] = {}
    times: dict[str, datetime | None] = {}
    for key in ("since", "until"):
        raw = (args.get(key) or "").strip()
        times[key] = parse_time(raw) if raw else None
        if raw and times[key] is None:
            errors[key] = _("Enter a date and time such as 2026-01-31T13:45.")
    if times["since"] and times["until"] and times["since"] >= times["until"]:
        errors["until"] = _("The end must come after the start.")
    raw_page = args.get("page") or "0"
    page = int(raw_page) if raw_page.isdigit() and len(raw_page) < 6 else 0
    where = audit.EventFilter(
        **{
            key: (args.get(field) or "").strip()[:MAX_FILTER_CHARS]
            for key, field in (
                ("name", "event"),
                ("outcome", "outcome"),
                ("user_id", "user"),
                ("connection", "connection"),
            )
        },
        since=times["since"] if "since" not in errors else None,
        until=times["until"] if "until" not in errors else None,
    )
    return LogQuery(where=where, page=min(page, MAX_PAGE), errors=errors)


@bp.get("/logs")
@require_admin
def logs():
    tenant = acting().tenant
    db = get_db()
    query = read_query(request.args)
    rows, total = audit.search(db, tenant.id, query.where, query.page, PER_PAGE)
    filters = {k: request.args[k] for k in FILTER_FIELDS if request.args.get(k)}
    return (
        render_template(
            "dashboard/logs/list.html",
            events=rows,
            total=total,
            page=query.page,
            has_next=(query.page + 1) * PER_PAGE < total,
            names=audit.event_names(db, tenant.id),
            outcomes=audit.event_outcomes(db, tenant.id),
            args=request.args,
            filters=filters,
            errors=query.errors,
        ),
        400 if query.errors else 200,
    )
