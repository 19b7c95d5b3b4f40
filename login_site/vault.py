"""Encryption at rest for secrets we must read back (client secrets, private keys,
upstream tokens). A keyring of Fernet keys, newest first, so keys can rotate:
new values use the first key, every key still decrypts (Kratos' cipher takes a list too).
"""

from __future__ import annotations

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
