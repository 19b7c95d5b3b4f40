"""The Management API's one error type and its Auth0 shape
``{"statusCode", "error", "message", "errorCode"}`` (management-api.md §2)."""

from __future__ import annotations

from flask import jsonify
from werkzeug.http import HTTP_STATUS_CODES


class ManagementError(Exception):
    def __init__(self, status: int, message: str, error_code: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.headers = headers or {}


def invalid_body(message: str) -> ManagementError:
    return ManagementError(400, f"Payload validation error: {message}", "invalid_body")


def invalid_query(message: str) -> ManagementError:
    return ManagementError(400, f"Query validation error: {message}", "invalid_query_string")


def not_found(kind: str) -> ManagementError:
    return ManagementError(404, f"The {kind} does not exist.", f"inexistent_{kind}")


def conflict(message: str) -> ManagementError:
    return ManagementError(409, message, "already_exists")


def response(exc: ManagementError):
    body = jsonify(
        statusCode=exc.status,
        error=HTTP_STATUS_CODES.get(exc.status, "Error"),
        message=exc.message,
        errorCode=exc.error_code,
    )
    return body, exc.status, exc.headers
