"""Hashing and comparing bearer secrets."""

from __future__ import annotations

import hashlib
import hmac


def sha256_hex(value: str) -> str:
    """Storage key for a high-entropy bearer value (codes, session ids, tokens)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    """Constant-time string comparison; ``None`` never matches."""
    if a is None or b is None:
        return False
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )
