"""Auth0's "use my own database" for database connections, declared instead of scripted.

A connection with ``enabledDatabaseCustomization`` and a ``custom_database`` mapping
checks passwords against a table in an existing SQL database. With ``import_mode``
(Auth0's "import users to Auth0") a successful login copies the user into our store
with the password rehashed to our argon2id; the external database is not asked about
that user again. Without it, every login asks the external database and only a
profile is kept here, with a credential that no password matches (never a copy of
the external hash).

We never run code from the tenant: the table, its columns and the hash scheme are
data. Queries are SQLAlchemy Core, parameterised, over names that passed
:data:`IDENTIFIER`; the external database is opened read-only where the driver
allows it. The URL may hold a password, so it is never logged or put in a message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2 import extract_parameters
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError
from flask import current_app
from sqlalchemy.engine import URL
from sqlalchemy.engine import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.exc import NoSuchModuleError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from login_site import accounts
from login_site import passwords
from login_site.connections.base import InvalidOptions
from login_site.events import event
from login_site.models import Connection
from login_site.models import DatabaseCredential
from login_site.models import Tenant
from login_site.vault import reveal

HASH_SCHEMES = ("bcrypt", "argon2", "pbkdf2-sha256", "auto")
# Logical column -> required. Only these keys may appear under ``columns``.
COLUMNS = {
    "id": True,
    "email": True,
    "password_hash": True,
    "username": False,
    "email_verified": False,
    "name": False,
    "nickname": False,
    "given_name": False,
    "family_name": False,
    "picture": False,
}
OPTION_KEYS = ("url", "table", "schema", "columns", "hash_scheme")
# Plain SQL identifiers only: no quoting tricks, no dots (the schema is its own key).
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

CONNECT_TIMEOUT_SECONDS = 5
STATEMENT_TIMEOUT_SECONDS = 5
# Costs beyond these in a legacy row would tie up a worker; such a row cannot log in.
BCRYPT_MAX_COST = 16
BCRYPT_MAX_PASSWORD_BYTES = 72  # what every bcrypt implementation hashed
ARGON2_MAX_MEMORY_KIB = 262_144
ARGON2_MAX_TIME_COST = 16
ARGON2_MAX_PARALLELISM = 16
PBKDF2_MAX_ITERATIONS = 5_000_000

_TRUE_STRINGS = ("1", "t", "true", "y", "yes")


# --- options ------------------------------------------------------------------------------


def check_options(options: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidOptions` naming the key (``options.custom_database.table``)."""
    settings = options.get("custom_database")
    if settings is None:
        if options.get("enabledDatabaseCustomization"):
            raise InvalidOptions(
                "options.custom_database: required when enabledDatabaseCustomization is true "
                "(scripts are not run; give url, table and columns)"
            )
        return
    where = "options.custom_database"
    if not isinstance(settings, dict):
        raise InvalidOptions(f"{where}: must be an object")
    for key in settings:
        if key not in OPTION_KEYS:
            raise InvalidOptions(f"{where}.{key}: unknown key (expected {', '.join(OPTION_KEYS)})")
    _check_url(settings.get("url"), f"{where}.url")
    _check_identifier(settings.get("table"), f"{where}.table")
    if settings.get("schema") is not None:
        _check_identifier(settings["schema"], f"{where}.schema")
    columns = settings.get("columns")
    if not isinstance(columns, dict):
        raise InvalidOptions(f"{where}.columns: required, an object of column names")
    for key, value in columns.items():
        if key not in COLUMNS:
            raise InvalidOptions(
                f"{where}.columns.{key}: unknown column (expected {', '.join(COLUMNS)})"
            )
        _check_identifier(value, f"{where}.columns.{key}")
    for key, required in COLUMNS.items():
        if required and key not in columns:
            raise InvalidOptions(f"{where}.columns.{key}: required")
    scheme = settings.get("hash_scheme", "auto")
    if scheme not in HASH_SCHEMES:
        raise InvalidOptions(f"{where}.hash_scheme: must be one of {', '.join(HASH_SCHEMES)}")


def _check_identifier(value: Any, where: str) -> None:
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise InvalidOptions(
            f"{where}: must be a plain SQL name (letters, digits and _, not starting with a digit)"
        )


def _check_url(value: Any, where: str) -> None:
    # The URL may carry a password: messages describe it, never repeat it.
    if not isinstance(value, str) or not value:
        raise InvalidOptions(f"{where}: required, a SQLAlchemy database URL")
    try:
        url = _url(value)
        dialect = url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise InvalidOptions(f"{where}: not a SQLAlchemy URL of a known database") from exc
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise InvalidOptions(
            f"{where}: the driver for {url.drivername} is not installed on this server"
        ) from exc
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise InvalidOptions(f"{where}: a SQLite URL needs a file path")


# --- when the external database is asked ----------------------------------------------------


def enabled(conn: Connection) -> bool:
    options = conn.options or {}
    return bool(options.get("enabledDatabaseCustomization") and options.get("custom_database"))


def consulted(conn: Connection, credential: DatabaseCredential | None) -> bool:
    """True when a login must go to the external database: nobody here yet, or a user
    kept without import (whose password lives only there)."""
    if not enabled(conn):
        return False
    return credential is None or _is_live(credential)


def _is_live(credential: DatabaseCredential) -> bool:
    return (credential.identity.profile_data or {}).get("custom_database") == "live"


def authenticate(
    db: Session,
    conn: Connection,
    identifier: str,
    password: str,
    credential: DatabaseCredential | None,
) -> tuple[DatabaseCredential | None, bool] | None:
    """``(credential, ok)`` after checking the external hash, or ``None`` when the
    external database does not know the identifier (or cannot answer): the caller then
    runs its usual (dummy) verification, so every attempt costs one verification.

    On success with ``import_mode`` the returned credential is a new local one holding
    our argon2id hash of ``password``; without it, the user kept here (created on the
    first login) with a credential that no password matches.
    """
    settings = conn.options["custom_database"]
    row = _find_row(conn, settings, identifier)
    if row is None:
        return None
    ok = verify_hash(settings.get("hash_scheme", "auto"), row.password_hash, password)
    if not ok:
        return None, False
    if credential is not None and credential.identity.profile_data.get("legacy_id") != row.id:
        # The email now belongs to another external user: never cross the two accounts.
        event("custom_database", "mismatch", connection=conn.name)
        return None, False
    import_mode = bool(conn.options.get("import_mode"))
    if credential is None:
        credential = _create_user(db, conn, row, password, import_mode)
        return credential, credential is not None
    if import_mode:
        # A user kept without import, and import is now on: migrate it.
        credential.password_hash = passwords.hash_password(password)
        credential.identity.profile_data = {"legacy_id": row.id, "custom_database": "imported"}
        _copy_profile(credential.identity.user, row)
        event(
            "custom_database",
            "imported",
            user_id=credential.identity.user.user_id,
            connection=conn.name,
        )
        return credential, True
    _copy_profile(credential.identity.user, row)
    if passwords.needs_rehash(credential.password_hash):
        # Keep our caller's rehash step from storing this password here.
        credential.password_hash = _unusable_hash()
    return credential, True


def knows(conn: Connection, identifier: str) -> bool:
    """Whether the external database holds this email or username (Auth0 runs its Get
    User script at sign-up for this): a sign-up must not take a legacy user's address
    before that user's first login has imported it."""
    if not enabled(conn) or not identifier.strip():
        return False
    return _find_row(conn, conn.options["custom_database"], identifier.strip()) is not None


@dataclass(frozen=True)
class ExternalRow:
    id: str
    email: str
    password_hash: str
    fields: dict[str, Any]


def _find_row(conn: Connection, settings: Mapping[str, Any], identifier: str) -> ExternalRow | None:
    columns = settings["columns"]
    if "@" in identifier:
        logical, key = "email", accounts.normalise_email(identifier)
        normalise = accounts.normalise_email
    elif "username" in columns:
        logical, key = "username", accounts.normalise_username(identifier)
        normalise = accounts.normalise_username
    else:
        return None
    table = sa.table(
        settings["table"],
        *(sa.column(name) for name in columns.values()),
        schema=settings.get("schema"),
    )
    query = (
        sa.select(*(table.c[name].label(field) for field, name in columns.items()))
        .where(sa.func.lower(table.c[columns[logical]]) == key)
        .limit(2)
    )
    try:
        with engine_for(conn).connect() as external:
            rows = external.execute(query).mappings().fetchmany(2)
    except (SQLAlchemyError, ImportError, OSError) as exc:
        # The message may hold the host or user of the URL: only the class is logged.
        event("custom_database", "error", connection=conn.name, error=type(exc).__name__)
        return None
    # SQL lower() may fold differently from ours (SQLite only folds ASCII): check again.
    rows = [r for r in rows if isinstance(r[logical], str) and normalise(r[logical]) == key]
    if len(rows) != 1:
        if rows:
            event("custom_database", "ambiguous", connection=conn.name)
        return None
    found = rows[0]
    if found["id"] is None or not isinstance(found["email"], str):
        return None
    if not isinstance(found["password_hash"], str):
        return None
    return ExternalRow(
        id=str(found["id"]),
        email=found["email"],
        password_hash=found["password_hash"],
        fields={k: v for k, v in found.items() if k not in ("id", "email", "password_hash")},
    )


def _create_user(
    db: Session, conn: Connection, row: ExternalRow, password: str, import_mode: bool
) -> DatabaseCredential | None:
    if not accounts.valid_email(row.email.strip()):
        event("custom_database", "invalid_email", connection=conn.name)
        return None
    fields = row.fields
    username = fields.get("username")
    if not isinstance(username, str) or not username.strip() or "@" in username:
        username = None
    data = accounts.SignupData(
        email=row.email,
        username=username.strip()[:128] if username else None,
        password_hash=passwords.hash_password(password) if import_mode else _unusable_hash(),
        email_verified=_as_bool(fields.get("email_verified")),
        **{k: _text(fields.get(k)) for k in ("name", "nickname", "given_name", "family_name")},
        picture=_text(fields.get("picture"), 2048),
    )
    tenant = db.get(Tenant, conn.tenant_id)
    try:
        user = accounts.create_database_user(db, tenant, conn, data)
    except accounts.UserExists:
        # A parallel first login imported it already, or the email or username is
        # taken by someone else here: never attach the external account to them.
        return _already_imported(db, conn, row, password)
    identity = next(i for i in user.identities if i.connection_id == conn.id)
    identity.profile_data = {
        "legacy_id": row.id,
        "custom_database": "imported" if import_mode else "live",
    }
    event(
        "custom_database",
        "imported" if import_mode else "linked",
        user_id=user.user_id,
        connection=conn.name,
    )
    return accounts.find_credential(db, conn, row.email)


def _already_imported(
    db: Session, conn: Connection, row: ExternalRow, password: str
) -> DatabaseCredential | None:
    credential = accounts.find_credential(db, conn, row.email)
    if credential is None or credential.identity.profile_data.get("legacy_id") != row.id:
        event("custom_database", "conflict", connection=conn.name)
        return None
    if _is_live(credential) or passwords.verify_password(credential.password_hash, password):
        return credential
    return None


def _copy_profile(user, row: ExternalRow) -> None:
    """The external database stays the source of these fields for users kept without import."""
    fields = row.fields
    if "email_verified" in fields:
        user.email_verified = _as_bool(fields["email_verified"])
    for key in ("name", "nickname", "given_name", "family_name"):
        if key in fields and _text(fields[key]):
            setattr(user, key, _text(fields[key]))


def _unusable_hash() -> str:
    """A valid argon2id hash of a secret nobody knows: no password ever matches it."""
    return passwords.hash_password(secrets.token_urlsafe(32))


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_STRINGS
    return bool(value)


def _text(value: Any, limit: int = 255) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:limit] or None


# --- engines --------------------------------------------------------------------------------

_ENGINES_LOCK = threading.Lock()


def engine_for(conn: Connection) -> Engine:
    """One engine per connection, kept while its URL is unchanged (the cache key is a
    digest of the stored URL, so an edited connection gets a new engine at once)."""
    url = reveal(conn.options["custom_database"]["url"])
    digest = hashlib.sha256(json.dumps(url).encode()).hexdigest()
    engines = current_app.extensions.setdefault("login_site.custom_database_engines", {})
    with _ENGINES_LOCK:
        cached = engines.get(conn.id)
        if cached is not None and cached[0] == digest:
            return cached[1]
        engine = _make_engine(url)
        engines[conn.id] = (digest, engine)
    if cached is not None:
        cached[1].dispose()
    return engine


def dispose_engines(app) -> None:
    """Close every external pool of ``app`` (tests, shutdown)."""
    engines = app.extensions.get("login_site.custom_database_engines") or {}
    with _ENGINES_LOCK:
        items = list(engines.values())
        engines.clear()
    for _digest, engine in items:
        engine.dispose()


def _url(value: str) -> URL:
    url = make_url(value)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")  # our driver, as in login_site.db
    return url


def _make_engine(value: str) -> Engine:
    url = _url(value)
    backend = url.get_backend_name()
    if backend == "sqlite":
        # Opened read-only through a URI: a wrong path fails instead of creating a file.
        uri = Path(url.database).expanduser().resolve().as_uri() + "?mode=ro"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(
                uri, uri=True, timeout=CONNECT_TIMEOUT_SECONDS, check_same_thread=False
            )

        return sa.create_engine("sqlite://", creator=connect, poolclass=NullPool)
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        connect_args = {
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "options": (
                f"-c statement_timeout={STATEMENT_TIMEOUT_SECONDS * 1000} "
                "-c default_transaction_read_only=on"
            ),
        }
    elif backend in ("mysql", "mariadb"):
        connect_args = {
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "read_timeout": STATEMENT_TIMEOUT_SECONDS,
        }
    return sa.create_engine(
        url,
        connect_args=connect_args,
        pool_size=2,
        max_overflow=4,
        pool_timeout=CONNECT_TIMEOUT_SECONDS,
        pool_recycle=1800,
        pool_pre_ping=True,
    )


# --- legacy hashes --------------------------------------------------------------------------

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
_ARGON2_PREFIXES = ("$argon2id$", "$argon2i$")


def scheme_of(stored: str) -> str | None:
    """The scheme of a stored hash from its format, or ``None`` when unknown."""
    if stored.startswith(_BCRYPT_PREFIXES):
        return "bcrypt"
    if stored.startswith(_ARGON2_PREFIXES):
        return "argon2"
    if stored.startswith(("pbkdf2:sha256:", "$pbkdf2-sha256$")):
        return "pbkdf2-sha256"
    return None


def verify_hash(scheme: str, stored: str, password: str) -> bool:
    """Check ``password`` against a legacy hash. Any doubt (unknown or malformed
    format, a scheme other than the configured one, absurd costs) is ``False``."""
    detected = scheme_of(stored)
    if detected is None or (scheme != "auto" and scheme != detected):
        return False
    secret = password.encode("utf-8")
    try:
        if detected == "bcrypt":
            return _verify_bcrypt(stored, secret)
        if detected == "argon2":
            return _verify_argon2(stored, secret)
        if stored.startswith("$pbkdf2-sha256$"):
            return _verify_passlib_pbkdf2(stored, secret)
        return _verify_werkzeug_pbkdf2(stored, secret)
    except (ValueError, TypeError, binascii.Error, InvalidHashError, VerificationError):
        return False


def _verify_bcrypt(stored: str, secret: bytes) -> bool:
    cost = int(stored[4:6])
    if cost > BCRYPT_MAX_COST:
        return False
    # $2y$ (PHP) is the same algorithm as $2b$. Legacy systems hashed only the first
    # 72 bytes, so a longer password is checked the way it was set; the rehash after
    # import keeps the whole password.
    normalised = "$2b$" + stored[4:] if stored.startswith("$2y$") else stored
    return bcrypt.checkpw(secret[:BCRYPT_MAX_PASSWORD_BYTES], normalised.encode("ascii"))


def _verify_argon2(stored: str, secret: bytes) -> bool:
    params = extract_parameters(stored)
    if (
        params.memory_cost > ARGON2_MAX_MEMORY_KIB
        or params.time_cost > ARGON2_MAX_TIME_COST
        or params.parallelism > ARGON2_MAX_PARALLELISM
    ):
        return False
    # verify() takes the type and costs from the hash itself.
    return PasswordHasher().verify(stored, secret)


def _verify_werkzeug_pbkdf2(stored: str, secret: bytes) -> bool:
    # werkzeug.security: "pbkdf2:sha256:<iterations>$<salt>$<hex>", salt used as text.
    method, salt, expected = stored.split("$")
    _, _, iterations = method.split(":")
    rounds = _rounds(iterations)
    derived = hashlib.pbkdf2_hmac("sha256", secret, salt.encode("utf-8"), rounds)
    return hmac.compare_digest(derived.hex().encode(), expected.lower().encode())


def _verify_passlib_pbkdf2(stored: str, secret: bytes) -> bool:
    # passlib.hash.pbkdf2_sha256: "$pbkdf2-sha256$<rounds>$<ab64 salt>$<ab64 checksum>".
    _, _, rounds, salt, expected = stored.split("$")
    checksum = _ab64_decode(expected)
    if len(checksum) != 32:
        return False
    derived = hashlib.pbkdf2_hmac("sha256", secret, _ab64_decode(salt), _rounds(rounds))
    return hmac.compare_digest(derived, checksum)


def _rounds(value: str) -> int:
    if not value.isdigit():
        raise ValueError("iterations")
    rounds = int(value)
    if not 1 <= rounds <= PBKDF2_MAX_ITERATIONS:
        raise ValueError("iterations")
    return rounds


def _ab64_decode(value: str) -> bytes:
    """passlib's adapted base64: ``.`` for ``+``, no padding."""
    data = value.replace(".", "+")
    return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
