"""Encryption at rest for secrets we must read back (client secrets, private keys,
upstream tokens). A keyring of Fernet keys, newest first, so keys can rotate:
new values use the first key, every key still decrypts (Kratos' cipher takes a list too).
"""

from __future__ import annotations

import json

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from cryptography.fernet import MultiFernet
from flask import current_app


class Keyring:
    def __init__(self, keys: list[str]):
        if not keys:
            raise ValueError("the keyring needs at least one key")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("value was not encrypted by any key of this keyring") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt under the newest key."""
        return self._fernet.rotate(token.encode()).decode()


def keyring() -> Keyring:
    ring = current_app.extensions.get("login_site.keyring")
    if ring is None:
        ring = Keyring(current_app.config["ENCRYPTION_KEYS"])
        current_app.extensions["login_site.keyring"] = ring
    return ring


# --- secrets inside connection options ------------------------------------------------------

# Option paths whose values are secrets: kept encrypted in the database, revealed only where
# they are used (the upstream call), exported as placeholders unless asked for.
SECRET_OPTION_PATHS: tuple[tuple[str, ...], ...] = (
    ("client_secret",),
    ("twilio_sid",),
    ("twilio_token",),
    ("bind_password",),
    ("signing_key",),
    ("api_key",),
    ("secret",),
    ("app_secret",),  # Sign in with Apple: the team's private key
    ("custom_database", "url"),
)
SEALED = "$encrypted"


def _get(options: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(options, dict):
            return None
        options = options.get(key)
    return options


def _put(options: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        options = options[key]
    options[path[-1]] = value


def reveal(value):
    """The plaintext of a sealed option value (unsealed values pass through)."""
    if isinstance(value, dict) and set(value) == {SEALED}:
        return keyring().decrypt(value[SEALED])
    return value


def seal_options(options: dict, previous: dict | None, ring: Keyring) -> dict:
    """A copy of ``options`` with every secret encrypted. A secret that did not change keeps
    its stored ciphertext, so importing the same file twice changes nothing."""
    sealed = json.loads(json.dumps(options))
    for path in SECRET_OPTION_PATHS:
        value = _get(sealed, path)
        if not isinstance(value, str) or not value:
            continue
        before = _get(previous or {}, path)
        if isinstance(before, dict) and set(before) == {SEALED}:
            try:
                if ring.decrypt(before[SEALED]) == value:
                    _put(sealed, path, before)
                    continue
            except ValueError:
                pass
        _put(sealed, path, {SEALED: ring.encrypt(value)})
    return sealed


def reveal_options(options: dict) -> dict:
    revealed = json.loads(json.dumps(options or {}))
    for path in SECRET_OPTION_PATHS:
        value = _get(revealed, path)
        if value is not None:
            _put(revealed, path, reveal(value))
    return revealed


def secret_paths_present(options: dict) -> list[tuple[str, ...]]:
    return [p for p in SECRET_OPTION_PATHS if _get(options or {}, p)]
