"""Request bodies of the Authentication API: JSON or form, ``null``/``""`` = absent."""

from __future__ import annotations

import json
from typing import Any

from flask import request


class BadBody(ValueError):
    """The body could not be read; the message says why."""


def read() -> dict[str, Any]:
    if request.is_json:
        try:
            data = json.loads(request.get_data() or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise BadBody("The request body is not valid JSON.") from exc
        if not isinstance(data, dict):
            raise BadBody("The request body must be a JSON object.")
        return {k: v for k, v in data.items() if v is not None and v != ""}
    data = {}
    for key in request.form:
        values = request.form.getlist(key)
        if len(values) > 1:
            raise BadBody(f"The {key[:40]} parameter was sent more than once.")
        if values[0] != "":
            data[key] = values[0]
    return data


def text(data: dict[str, Any], key: str, limit: int = 1000) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise BadBody(f"Invalid value for {key}.")
    return value
