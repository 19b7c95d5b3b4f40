"""Reading dashboard forms into the Management services' input, and their errors back
onto form fields. The rules themselves stay in the services; this only translates."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import MultiDict

from login_site.management.errors import ManagementError

MAX_LINES = 100
# "Payload validation error: 'callbacks[2]' must not contain a fragment"
_PAYLOAD = re.compile(r"^Payload validation error: '([A-Za-z_]+)(?:\[(\d+)\])?([^']*)' (.+)$")


@dataclass(frozen=True)
class FieldError(Exception):
    """A message for one form field (``field`` is the input's name)."""

    field: str
    message: str

    def __str__(self) -> str:
        return self.message


def lines(value: str | None) -> list[str]:
    """A textarea of URLs, one per line (commas also separate, as in Auth0's dashboard)."""
    items = []
    for line in (value or "").replace(",", "\n").splitlines():
        if line.strip():
            items.append(line.strip())
    return items[: MAX_LINES + 1]


def checked(form: MultiDict, name: str) -> bool:
    return form.get(name) in ("on", "true", "1", "yes")


def integer(form: MultiDict, name: str, low: int, high: int) -> int | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise FieldError(name, f"Enter a whole number from {low} to {high}.")
    return int(raw)


def json_object(form: MultiDict, name: str) -> dict[str, Any]:
    raw = (form.get(name) or "").strip() or "{}"
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FieldError(
            name, f"Not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}."
        ) from exc
    except (ValueError, RecursionError) as exc:  # e.g. nested too deeply
        raise FieldError(name, "Not valid JSON.") from exc
    if not isinstance(value, dict):
        raise FieldError(name, "Enter a JSON object: { … }.")
    return value


def field_error(exc: ManagementError, fallback: str, renames: dict[str, str] | None = None):
    """The service's error on the field it names (``'callbacks[1]'`` → ``callbacks``,
    "Line 2: …"), else on ``fallback``."""
    match = _PAYLOAD.match(exc.message)
    if match is None:
        return FieldError(fallback, exc.message)
    key, index, rest, text = match.groups()
    field = (renames or {}).get(key, key)
    if index is not None and not rest:
        return FieldError(field, f"Line {int(index) + 1}: {text}.")
    if rest:
        return FieldError(field, f"{key}{'[' + index + ']' if index else ''}{rest}: {text}.")
    return FieldError(field, f"{text[:1].upper()}{text[1:]}.")
