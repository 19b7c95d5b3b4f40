"""Reading and checking Management API JSON: bodies, paging, field types."""

from __future__ import annotations

import json
from typing import Any

from login_site.management.errors import invalid_body
from login_site.management.errors import invalid_query

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 100


def json_body(raw: bytes, mimetype: str, *, kind: type = dict) -> Any:
    if mimetype != "application/json":
        raise invalid_body("the body must be JSON (Content-Type: application/json)")
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise invalid_body("the body is not valid JSON") from exc
    if not isinstance(data, kind):
        raise invalid_body(f"the body must be a JSON {'object' if kind is dict else 'array'}")
    if has_nul(data):
        raise invalid_body("strings must not contain NUL characters")
    return data


def has_nul(data: Any) -> bool:
    """Whether a NUL character is in any string or key of ``data`` (PostgreSQL text cannot
    hold one: without this check it is a 500 instead of a 400). Iterative: the depth is
    whatever ``json.loads`` accepted."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def reject_unknown(
    data: dict, allowed: set[str], read_only: set[str] = frozenset(), *, prefix: str = ""
) -> None:
    for key in data:
        if key in read_only:
            raise invalid_body(f"'{prefix}{key[:60]}' cannot be set")
        if key not in allowed:
            raise invalid_body(f"additional property '{prefix}{key[:60]}' is not allowed")


def string(data: dict, key: str, *, limit: int = 255, empty: bool = True) -> str:
    value = data[key]
    if not isinstance(value, str) or len(value) > limit or (not empty and not value.strip()):
        raise invalid_body(f"'{key}' must be a string of at most {limit} characters")
    return value


def boolean(data: dict, key: str) -> bool:
    if not isinstance(data[key], bool):
        raise invalid_body(f"'{key}' must be a boolean")
    return data[key]


def string_list(data: dict, key: str, *, limit: int = 100) -> list[str]:
    value = data[key]
    if not isinstance(value, list) or len(value) > limit:
        raise invalid_body(f"'{key}' must be an array of at most {limit} strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or len(item) > 2000:
            raise invalid_body(f"'{key}[{i}]' must be a string")
    return list(value)


def obj(data: dict, key: str) -> dict:
    if not isinstance(data[key], dict):
        raise invalid_body(f"'{key}' must be an object")
    return data[key]


def _int(args, key: str, default: int) -> int:
    raw = args.get(key)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise invalid_query(f"'{key}' must be a non-negative integer")
    return int(raw)


def paging(args) -> tuple[int, int, bool]:
    """``page`` (0-based), ``per_page`` (capped at MAX_PER_PAGE), ``include_totals``."""
    page = _int(args, "page", 0)
    per_page = min(_int(args, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE) or DEFAULT_PER_PAGE
    totals = args.get("include_totals", "false").lower()
    if totals not in ("true", "false"):
        raise invalid_query("'include_totals' must be true or false")
    return page, per_page, totals == "true"


def page_of(items: list, total: int, page: int, per_page: int, totals: bool, name: str):
    if not totals:
        return items
    return {
        "start": page * per_page,
        "limit": per_page,
        "length": len(items),
        "total": total,
        name: items,
    }
