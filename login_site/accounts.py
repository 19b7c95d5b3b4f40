"""Create, find and update users: the only writer of ``users`` and ``identities``."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from login_site.db import utcnow
from login_site.models import Connection
from login_site.models import DatabaseCredential
from login_site.models import Identity
from login_site.models import PasswordHistory
from login_site.models import PasswordlessIdentity
from login_site.models import Tenant
from login_site.models import User

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_USERNAME = re.compile(r"^[A-Za-z0-9_+\-.!#$'^`~@]{1,128}$")
USERNAME_MIN_LENGTH = 1
USERNAME_MAX_LENGTH = 15


class UserExists(Exception):
    """The email or username is taken in this connection."""


class InvalidField(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def normalise_email(value: str) -> str:
    """Storage and lookup key: NFC, lower-case. No compatibility folding, so
    look-alikes (dotless ı, long ſ) stay distinct from the ASCII address."""
    return unicodedata.normalize("NFC", value.strip()).lower()


def normalise_username(value: str) -> str:
    return unicodedata.normalize("NFC", value.strip()).lower()


def valid_email(value: str) -> bool:
    if len(value) > 320 or not _EMAIL.match(value):
        return False
    domain = value.rsplit("@", 1)[1]
    return "." in domain.strip(".") or domain == "localhost"


def valid_username(value: str, options: dict[str, Any]) -> bool:
    limits = ((options.get("validation") or {}).get("username")) or {}
    low = int(limits.get("min", USERNAME_MIN_LENGTH))
    high = int(limits.get("max", USERNAME_MAX_LENGTH))
    return bool(_USERNAME.match(value)) and low <= len(value) <= high and "@" not in value


def new_database_user_id() -> str:
    return secrets.token_hex(12)  # Auth0's 24 hex characters


def gravatar_url(email: str) -> str:
    digest = hashlib.md5(email.encode(), usedforsecurity=False).hexdigest()
    return f"https://s.gravatar.com/avatar/{digest}?s=480&r=pg&d=identicon"


def find_credential(db: Session, conn: Connection, identifier: str) -> DatabaseCredential | None:
    """A database login by email or (if the connection uses them) username."""
    key = identifier.strip()
    if not key:
        return None
    if "@" in key:
        where = DatabaseCredential.email_key == normalise_email(key)
    else:
        where = DatabaseCredential.username_key == normalise_username(key)
    return db.execute(
        select(DatabaseCredential).where(DatabaseCredential.connection_id == conn.id, where)
    ).scalar_one_or_none()


@dataclass
class SignupData:
    email: str
    password_hash: str
    username: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    name: str | None = None
    nickname: str | None = None
    picture: str | None = None
    email_verified: bool = False
    user_metadata: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None
    blocked: bool = False


def create_database_user(db: Session, tenant: Tenant, conn: Connection, data: SignupData) -> User:
    """Insert user, identity and credential in one transaction.

    The unique keys on the credential settle concurrent sign-ups: the loser's
    insert fails and :class:`UserExists` is raised with nothing written.
    """
    email = normalise_email(data.email)
    hex_id = new_database_user_id()
    user = User(
        tenant_id=tenant.id,
        user_id=f"auth0|{hex_id}",
        email=email,
        email_verified=data.email_verified,
        username=data.username,
        name=data.name or email,
        nickname=data.nickname or email.split("@", 1)[0],
        given_name=data.given_name,
        family_name=data.family_name,
        picture=data.picture or gravatar_url(email),
        user_metadata=data.user_metadata or {},
        app_metadata=data.app_metadata or {},
        blocked=data.blocked,
    )
    identity = Identity(
        tenant_id=tenant.id,
        connection_id=conn.id,
        provider="auth0",
        user_id=hex_id,
        is_social=False,
    )
    user.identities.append(identity)
    credential = DatabaseCredential(
        connection_id=conn.id,
        email_key=email,
        username_key=normalise_username(data.username) if data.username else None,
        password_hash=data.password_hash,
    )
    try:
        with db.begin_nested():
            db.add(user)
            db.flush()
            credential.identity_id = identity.id
            db.add(credential)
            db.flush()
    except IntegrityError as exc:
        raise UserExists(email) from exc
    return user


def find_passwordless_user(db: Session, conn: Connection, identifier: str) -> User | None:
    """The user whose ``email``/``sms`` identity in ``conn`` owns this normalised email
    address or E.164 number."""
    return db.execute(
        select(User)
        .join(Identity, Identity.user_pk == User.id)
        .join(PasswordlessIdentity, PasswordlessIdentity.identity_id == Identity.id)
        .where(
            PasswordlessIdentity.connection_id == conn.id,
            PasswordlessIdentity.identifier == identifier,
        )
    ).scalar_one_or_none()


def create_passwordless_user(
    db: Session, tenant: Tenant, conn: Connection, identifier: str
) -> User:
    """A user ``email|<24 hex>`` or ``sms|<24 hex>`` (compat §12.1) whose one identity owns
    ``identifier`` (a normalised email address, or an E.164 number for ``sms``), verified:
    a code sent there was just redeemed. Two first logins of one identifier race on the
    unique key: the loser gets :class:`UserExists` with nothing written."""
    hex_id = new_database_user_id()
    sms = conn.strategy == "sms"
    user = User(
        tenant_id=tenant.id,
        user_id=f"{conn.strategy}|{hex_id}",
        email=None if sms else identifier,
        email_verified=not sms,
        phone_number=identifier if sms else None,
        phone_verified=sms,
        name=identifier,
        nickname=identifier if sms else identifier.split("@", 1)[0],
        picture=None if sms else gravatar_url(identifier),
        user_metadata={},
        app_metadata={},
    )
    identity = Identity(
        tenant_id=tenant.id,
        connection_id=conn.id,
        provider=conn.strategy,
        user_id=hex_id,
        is_social=False,
    )
    user.identities.append(identity)
    try:
        with db.begin_nested():
            db.add(user)
            db.flush()
            db.add(
                PasswordlessIdentity(
                    identity_id=identity.id, connection_id=conn.id, identifier=identifier
                )
            )
            db.flush()
    except IntegrityError as exc:
        raise UserExists(identifier) from exc
    return user


def user_for_identity(db: Session, conn: Connection, upstream_id: str) -> User | None:
    return db.execute(
        select(User)
        .join(Identity, Identity.user_pk == User.id)
        .where(Identity.connection_id == conn.id, Identity.user_id == upstream_id)
    ).scalar_one_or_none()


def credential_of(db: Session, conn: Connection, user: User) -> DatabaseCredential | None:
    return db.execute(
        select(DatabaseCredential)
        .join(Identity, Identity.id == DatabaseCredential.identity_id)
        .where(Identity.user_pk == user.id, DatabaseCredential.connection_id == conn.id)
    ).scalar_one_or_none()


def password_history(db: Session, credential: DatabaseCredential, limit: int) -> list[str]:
    rows = db.execute(
        select(PasswordHistory.password_hash)
        .where(PasswordHistory.identity_id == credential.identity_id)
        .order_by(PasswordHistory.created_at.desc(), PasswordHistory.id.desc())
        .limit(limit)
    ).scalars()
    return list(rows)


def remember_password(db: Session, credential: DatabaseCredential, size: int) -> None:
    """Keep the current hash in the history, and only the newest ``size`` of them."""
    db.add(
        PasswordHistory(identity_id=credential.identity_id, password_hash=credential.password_hash)
    )
    db.flush()
    keep = (
        select(PasswordHistory.id)
        .where(PasswordHistory.identity_id == credential.identity_id)
        .order_by(PasswordHistory.created_at.desc(), PasswordHistory.id.desc())
        .limit(size)
    )
    db.execute(
        delete(PasswordHistory).where(
            PasswordHistory.identity_id == credential.identity_id,
            PasswordHistory.id.not_in(keep.scalar_subquery()),
        )
    )


def record_login(user: User, ip: str | None) -> None:
    user.logins_count = (user.logins_count or 0) + 1
    user.last_login = utcnow()
    user.last_ip = ip


def get_user(db: Session, tenant_id: str, user_pk: int) -> User | None:
    user = db.get(User, user_pk)
    if user is None or user.tenant_id != tenant_id:
        return None
    return user
