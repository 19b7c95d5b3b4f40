"""Rules for URLs that clients register (callbacks, logout URLs, origins)."""

from __future__ import annotations

from urllib.parse import urlsplit

FORBIDDEN_SCHEMES = ("javascript", "data", "vbscript", "file")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")


def is_loopback(host: str) -> bool:
    host = host.lower()
    return host in LOOPBACK_HOSTS or host.endswith(".localhost") or host.startswith("127.")


def redirect_uri_problem(uri: str, *, app_type: str = "regular_web") -> str | None:
    """Why ``uri`` cannot be registered as a callback, or ``None`` (RFC 6749 §3.1.2,
    RFC 9700 §2.6): absolute, no fragment, no wildcard, no userinfo, https except on
    loopback, custom schemes only for native apps."""
    if not isinstance(uri, str) or not uri or len(uri) > 2000 or uri != uri.strip():
        return "must be an absolute URL"
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        return "must be an absolute URL"
    scheme = parts.scheme.lower()
    if not scheme:
        return "must be an absolute URL"
    if scheme in FORBIDDEN_SCHEMES:
        return f"the {scheme}: scheme is not allowed"
    if "#" in uri:
        return "must not contain a fragment"
    if "*" in uri:
        return "must not contain wildcards"
    if scheme in ("http", "https"):
        if not parts.hostname:
            return "must name a host"
        if "@" in parts.netloc:
            return "must not contain user information"
        if scheme == "http" and not is_loopback(parts.hostname):
            return "must use https (http is allowed on loopback hosts only)"
        return None
    if app_type != "native":
        return "custom schemes are allowed for native applications only"
    return None


def origin_problem(origin: str) -> str | None:
    """Why ``origin`` is not a ``scheme://host[:port]`` origin, or ``None``."""
    if not isinstance(origin, str):
        return "must be an origin"
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        return "must be an origin (scheme://host[:port])"
    if parts.query or parts.fragment or "*" in origin or "@" in parts.netloc:
        return "must be an origin (scheme://host[:port])"
    return None
