"""Identifiers: CSPRNG, at least 128 bits where they are secrets."""

import secrets


def new_id(prefix: str = "") -> str:
    """Opaque object id such as ``con_…`` (not a secret)."""
    return f"{prefix}{secrets.token_hex(12)}"


def new_secret(nbytes: int = 32) -> str:
    """A bearer secret: codes, session ids, tokens (256 bits by default)."""
    return secrets.token_urlsafe(nbytes)
