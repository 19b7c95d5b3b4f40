"""Users through the Management API: plain functions over a session and a tenant.

``q`` is a small Lucene subset (management-api.md §6, [ls]): ``field:value`` and
``field:"quoted value"``, a ``*`` suffix for prefixes, ``AND``/``OR`` and parentheses, over
the fields in :data:`SEARCH_FIELDS` and ``user_metadata.*``/``app_metadata.*``. Text matches
ignore case; metadata values match as strings.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm import selectinload

from login_site import accounts
from login_site import passwords
from login_site.connections import custom_database
from login_site.connections import database
from login_site.connections import passwordless
from login_site.management import body
from login_site.management.errors import ManagementError
from login_site.management.errors import conflict
from login_site.management.errors import invalid_body
from login_site.management.errors import invalid_query
from login_site.management.errors import not_found
from login_site.models import Client
from login_site.models import Connection
from login_site.models import Identity
from login_site.models import Tenant
from login_site.models import User
from login_site.oauth.keys import MAX_JWT_LENGTH
from login_site.oauth.keys import verify_own_jwt

# Auth0 pages users 50 at a time at most, and only through the first 1000 results.
MAX_PER_PAGE = 50
MAX_SEARCH_RESULTS = 1000
MAX_QUERY_LENGTH = 1000
MAX_QUERY_TERMS = 20
MAX_METADATA_BYTES = 16 * 1024
EXISTS = "The user already exists."

# The normalised profile (auth0-authentication-api.md §12.3), in Auth0's order.
PROFILE_FIELDS = (
    "user_id",
    "email",
    "email_verified",
    "username",
    "phone_number",
    "phone_verified",
    "name",
    "nickname",
    "given_name",
    "family_name",
    "picture",
    "created_at",
    "updated_at",
    "last_login",
    "last_ip",
    "logins_count",
    "blocked",
    "app_metadata",
    "user_metadata",
    "multifactor",
    "identities",
)
ROOT_TEXT_FIELDS = ("given_name", "family_name", "name", "nickname")
METADATA_FIELDS = frozenset({"user_metadata", "app_metadata"})
CREATE_FIELDS = {
    "connection",
    "email",
    "phone_number",
    "username",
    "password",
    "email_verified",
    "verify_email",
    "phone_verified",
    "picture",
    "blocked",
    *ROOT_TEXT_FIELDS,
    *METADATA_FIELDS,
}
UPDATE_FIELDS = CREATE_FIELDS | {"verify_phone_number", "client_id"}
# Mass assignment (checklist MG-05, MA-08): these name the field in a 400.
READ_ONLY = {
    "user_id",
    "identities",
    "created_at",
    "updated_at",
    "last_login",
    "last_ip",
    "logins_count",
    "multifactor",
    "tenant",
    "_id",
}
CREATABLE_STRATEGIES = ("auth0", "email", "sms")
SORT_COLUMNS = {
    "email": User.email,
    "name": User.name,
    "nickname": User.nickname,
    "username": User.username,
    "user_id": User.user_id,
    "created_at": User.created_at,
    "updated_at": User.updated_at,
    "last_login": User.last_login,
    "logins_count": User.logins_count,
}
TEXT_SEARCH_COLUMNS = {
    "email": User.email,
    "name": User.name,
    "nickname": User.nickname,
    "username": User.username,
}
FLAG_SEARCH_COLUMNS = {"email_verified": User.email_verified, "blocked": User.blocked}
SEARCH_FIELDS = (*TEXT_SEARCH_COLUMNS, "user_id", "identities.connection", *FLAG_SEARCH_COLUMNS)
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_BARE_VALUE = re.compile(r"^[^\s()\"*?\\:{}\[\]^~!]+\*?$")
# Control characters (NUL above all, which PostgreSQL text refuses) are never valid here.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKENS = re.compile(r'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|([^\s()"]+))')


# --- output ---------------------------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def connection_names(db: Session, tenant: Tenant) -> dict[str, str]:
    """``Connection.id`` -> name, for showing identities."""
    return dict(
        db.execute(
            select(Connection.id, Connection.name).where(Connection.tenant_id == tenant.id)
        ).all()
    )


def identities_json(user: User, names: dict[str, str]) -> list[dict[str, Any]]:
    """The main identity first; ``profileData`` on linked ones only. Never upstream tokens
    nor internal ids."""
    main = accounts.main_identity(user)
    out = []
    for identity in sorted(user.identities, key=lambda i: (i is not main, i.created_at, i.id)):
        item: dict[str, Any] = {
            "connection": names.get(identity.connection_id),
            "provider": identity.provider,
            "user_id": identity.user_id,
            "isSocial": bool(identity.is_social),
        }
        if identity is not main and identity.profile_data:
            item["profileData"] = dict(identity.profile_data)
        out.append(item)
    return out


def as_json(
    user: User, names: dict[str, str], selection: tuple[frozenset[str], bool] | None = None
) -> dict[str, Any]:
    """The normalised profile; ``selection`` is ``(fields, include)`` from :func:`fields`."""
    full: dict[str, Any] = {
        "user_id": user.user_id,
        "email": user.email,
        "email_verified": bool(user.email_verified) if user.email else None,
        "username": user.username,
        "phone_number": user.phone_number,
        "phone_verified": bool(user.phone_verified) if user.phone_number else None,
        "name": user.name,
        "nickname": user.nickname,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "picture": user.picture,
        "created_at": _time(user.created_at),
        "updated_at": _time(user.updated_at),
        "last_login": _time(user.last_login),
        "last_ip": user.last_ip,
        "logins_count": user.logins_count or 0,
        "blocked": bool(user.blocked),
        "app_metadata": dict(user.app_metadata or {}),
        "user_metadata": dict(user.user_metadata or {}),
        "identities": identities_json(user, names),
    }
    out = {k: v for k, v in full.items() if v is not None}
    if selection is not None:
        chosen, include = selection
        out = {k: v for k, v in out.items() if (k in chosen) == include}
    return out


def fields(args) -> tuple[frozenset[str], bool] | None:
    """``fields=a,b`` and ``include_fields=true|false`` (management-api.md §2)."""
    include = args.get("include_fields", "true").lower()
    if include not in ("true", "false"):
        raise invalid_query("'include_fields' must be true or false")
    raw = args.get("fields")
    if not raw:
        return None
    if len(raw) > 1000:
        raise invalid_query("'fields' is too long")
    names = [name.strip() for name in raw.split(",") if name.strip()]
    for name in names:
        if name not in PROFILE_FIELDS:
            raise invalid_query(f"'fields' names an unknown field '{name[:60]}'")
    return frozenset(names), include == "true"


# --- finding --------------------------------------------------------------------------------


def find(db: Session, tenant: Tenant, user_id: str) -> User:
    user = None
    if len(user_id) <= 255 and not _CONTROL.search(user_id):
        user = db.execute(
            select(User).where(User.tenant_id == tenant.id, User.user_id == user_id)
        ).scalar_one_or_none()
    if user is None:
        raise not_found("user")
    return user


def by_email(db: Session, tenant: Tenant, email: str | None) -> list[User]:
    """Exact and case-insensitive, over every connection."""
    if not email or not email.strip():
        raise invalid_query("missing required property 'email'")
    if len(email) > 320 or _CONTROL.search(email):
        raise invalid_query("'email' is not an email address")
    return list(
        db.execute(
            select(User)
            .where(User.tenant_id == tenant.id, User.email == accounts.normalise_email(email))
            .order_by(User.created_at, User.id)
            .options(selectinload(User.identities))
        ).scalars()
    )


@dataclass(frozen=True)
class Search:
    page: int
    per_page: int
    totals: bool
    q: str | None = None
    connection: str | None = None
    sort: str | None = None


def search_args(args) -> Search:
    page, per_page, totals = body.paging(args)
    per_page = min(per_page, MAX_PER_PAGE)
    if (page + 1) * per_page > MAX_SEARCH_RESULTS:
        raise invalid_query(f"only the first {MAX_SEARCH_RESULTS} users can be paged through")
    connection = args.get("connection") or None
    if connection is not None and (len(connection) > 128 or _CONTROL.search(connection)):
        raise invalid_query("'connection' is not a connection name")
    engine = args.get("search_engine")
    if engine not in (None, "", "v2", "v3"):
        raise invalid_query("'search_engine' must be v3")
    return Search(
        page=page,
        per_page=per_page,
        totals=totals,
        q=args.get("q") or None,
        connection=connection,
        sort=args.get("sort") or None,
    )


def _order(sort: str | None) -> list:
    if sort is None:
        return [User.created_at, User.id]
    name, _, direction = sort.partition(":")
    column = SORT_COLUMNS.get(name)
    if column is None or direction not in ("1", "-1"):
        raise invalid_query(
            f"'sort' must be field:1 or field:-1 with a field among {', '.join(SORT_COLUMNS)}"
        )
    ordered = column.asc() if direction == "1" else column.desc()
    return [ordered.nulls_last(), User.id]


def _in_connection(tenant: Tenant, name: str, *, prefix: bool = False):
    match = Connection.name.startswith(name, autoescape=True) if prefix else Connection.name == name
    return User.id.in_(
        select(Identity.user_pk)
        .join(Connection, Connection.id == Identity.connection_id)
        .where(Connection.tenant_id == tenant.id, match)
    )


def listing(db: Session, tenant: Tenant, search: Search) -> tuple[list[User], int]:
    where = [User.tenant_id == tenant.id]
    if search.q:
        where.append(parse_query(tenant, search.q))
    if search.connection:
        where.append(_in_connection(tenant, search.connection))
    order = _order(search.sort)
    total = db.scalar(select(func.count()).select_from(User).where(*where)) or 0
    rows = db.execute(
        select(User)
        .where(*where)
        .order_by(*order)
        .offset(search.page * search.per_page)
        .limit(search.per_page)
        .options(selectinload(User.identities))
    ).scalars()
    return list(rows), total


# --- q: the Lucene subset -------------------------------------------------------------------


class _Query:
    """Recursive descent over the tokens: ``or := and (OR and)*``, ``and := atom (AND
    atom)*``, ``atom := ( or ) | field:value``. Anything else is a 400."""

    def __init__(self, tenant: Tenant, text: str):
        self.tenant = tenant
        self.tokens = self._tokenise(text)
        self.position = 0
        self.terms = 0

    @staticmethod
    def _tokenise(text: str) -> list[tuple[str, str]]:
        tokens, position = [], 0
        while position < len(text):
            if not text[position:].strip():
                break
            match = _TOKENS.match(text, position)
            if match is None or match.end() == position:
                raise invalid_query("'q' could not be parsed (unbalanced quotes?)")
            opening, closing, quoted, word = match.groups()
            if opening:
                tokens.append(("(", opening))
            elif closing:
                tokens.append((")", closing))
            elif quoted is not None:
                tokens.append(("quoted", re.sub(r"\\(.)", r"\1", quoted)))
            else:
                tokens.append(("word", word))
            position = match.end()
        return tokens

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _next(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise invalid_query("'q' ends too early")
        self.position += 1
        return token

    def parse(self):
        if not self.tokens:
            raise invalid_query("'q' is empty")
        condition = self._or(0)
        if self._peek() is not None:
            raise invalid_query(
                f"'q' has an unexpected '{self._peek()[1][:40]}' (join terms with AND or OR)"
            )
        return condition

    def _or(self, depth: int):
        parts = [self._and(depth)]
        while self._peek() == ("word", "OR"):
            self._next()
            parts.append(self._and(depth))
        return parts[0] if len(parts) == 1 else or_(*parts)

    def _and(self, depth: int):
        parts = [self._atom(depth)]
        while self._peek() == ("word", "AND"):
            self._next()
            parts.append(self._atom(depth))
        return parts[0] if len(parts) == 1 else and_(*parts)

    def _atom(self, depth: int):
        kind, text = self._next()
        if kind == "(":
            if depth >= 5:
                raise invalid_query("'q' nests parentheses too deeply")
            inner = self._or(depth + 1)
            if self._next()[0] != ")":
                raise invalid_query("'q' has an unclosed parenthesis")
            return inner
        if kind != "word" or text in ("AND", "OR", "NOT") or ":" not in text:
            raise invalid_query(f"'q' expects field:value, not '{text[:40]}'")
        self.terms += 1
        if self.terms > MAX_QUERY_TERMS:
            raise invalid_query(f"'q' has more than {MAX_QUERY_TERMS} terms")
        field, _, value = text.partition(":")
        if value:
            if not _BARE_VALUE.match(value):
                raise invalid_query(f"'q': quote the value of '{field[:40]}'")
            prefix = value.endswith("*")
            value = value.removesuffix("*")
        else:
            quoted = self._peek()
            if quoted is None or quoted[0] != "quoted":
                raise invalid_query(f"'q': '{field[:40]}' has no value")
            self._next()
            value, prefix = quoted[1], False
        if not value or len(value) > 320:
            raise invalid_query(f"'q': the value of '{field[:40]}' must be 1-320 characters")
        return self._condition(field, value, prefix)

    def _condition(self, field: str, value: str, prefix: bool):
        def text_match(column, wanted: str):
            if prefix:
                return column.startswith(wanted, autoescape=True)
            return column == wanted

        def folded_match(column, wanted: str):
            # SQLite's lower() folds ASCII only: the value as typed matches too.
            return or_(text_match(column, wanted), text_match(func.lower(column), wanted.lower()))

        if field == "email":
            return text_match(User.email, accounts.normalise_email(value))
        if field in TEXT_SEARCH_COLUMNS:
            return folded_match(TEXT_SEARCH_COLUMNS[field], value)
        if field == "user_id":
            return text_match(User.user_id, value)
        if field == "identities.connection":
            return _in_connection(self.tenant, value, prefix=prefix)
        if field in FLAG_SEARCH_COLUMNS:
            if prefix or value not in ("true", "false"):
                raise invalid_query(f"'q': '{field}' is true or false")
            column = FLAG_SEARCH_COLUMNS[field]
            return column.is_(True) if value == "true" else or_(column.is_(False), column.is_(None))
        root, _, path = field.partition(".")
        if root in METADATA_FIELDS and path:
            keys = path.split(".")
            if len(keys) > 3 or not all(_METADATA_KEY.match(k) for k in keys):
                raise invalid_query(f"'q': '{field[:60]}' is not a searchable metadata path")
            column = getattr(User, root)
            element = column[keys[0]] if len(keys) == 1 else column[tuple(keys)]
            return folded_match(element.as_string(), value)
        raise invalid_query(
            f"'q': '{field[:60]}' is not searchable; use one of {', '.join(SEARCH_FIELDS)}, "
            "user_metadata.*, app_metadata.*"
        )


def parse_query(tenant: Tenant, text: str):
    """The SQL condition for ``q``, or a 400 ``invalid_query_string``."""
    if len(text) > MAX_QUERY_LENGTH:
        raise invalid_query(f"'q' is longer than {MAX_QUERY_LENGTH} characters")
    if _CONTROL.search(text):
        raise invalid_query("'q' must not contain control characters")
    return _Query(tenant, text).parse()


# --- checking bodies ------------------------------------------------------------------------


def _text(data: dict, key: str, limit: int = 255) -> str:
    value = body.string(data, key, limit=limit, empty=False)
    if _CONTROL.search(value):
        raise invalid_body(f"'{key}' must not contain control characters")
    return value


def _email(data: dict) -> str:
    value = body.string(data, "email", limit=320).strip()
    if _CONTROL.search(value) or not accounts.valid_email(value):
        raise invalid_body("'email' is not a valid email address")
    return value


def _phone(data: dict, conn: Connection | None) -> str:
    value = body.string(data, "phone_number", limit=32)
    if conn is not None and conn.strategy == "sms":
        try:
            return passwordless.strategy_for(conn).normalise(conn, value)
        except passwordless.BadIdentifier as exc:
            raise invalid_body(f"'phone_number' {exc.description}") from exc
    if not passwordless.E164.match(value):
        raise invalid_body("'phone_number' must be an E.164 number such as +12025550123")
    return value


def _picture(data: dict) -> str:
    value = _text(data, "picture", limit=2000)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid_body("'picture' must be an http(s) URL")
    return value


def _metadata(data: dict, key: str) -> dict:
    value = body.obj(data, key)
    if len(json.dumps(value)) > MAX_METADATA_BYTES:
        raise invalid_body(f"'{key}' is larger than {MAX_METADATA_BYTES} bytes")
    for name in value:
        if not name or len(name) > 255:
            raise invalid_body(f"'{key}' keys must be 1-255 characters")
    return value


def merge_metadata(current: dict | None, patch: dict, key: str) -> dict:
    """One level deep: ``null`` removes a key; ``{}`` empties the whole object (Auth0)."""
    if not patch:
        return {}
    merged = dict(current or {})
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    if len(json.dumps(merged)) > MAX_METADATA_BYTES:
        raise invalid_body(f"'{key}' would be larger than {MAX_METADATA_BYTES} bytes")
    return merged


def _flags(data: dict, *keys: str) -> dict[str, bool]:
    return {key: body.boolean(data, key) for key in keys if key in data}


def _profile(data: dict) -> dict[str, Any]:
    """Root attributes and metadata of a POST or PATCH body, checked."""
    out: dict[str, Any] = {key: _text(data, key) for key in ROOT_TEXT_FIELDS if key in data}
    if "picture" in data:
        out["picture"] = _picture(data)
    for key in METADATA_FIELDS:
        if key in data:
            out[key] = _metadata(data, key)
    return out


def _connection(db: Session, tenant: Tenant, data: dict) -> Connection:
    if "connection" not in data:
        raise invalid_body("missing required property 'connection'")
    name = _text(data, "connection", limit=128)
    conn = db.execute(
        select(Connection).where(Connection.tenant_id == tenant.id, Connection.name == name)
    ).scalar_one_or_none()
    if conn is None:
        raise invalid_body("'connection' is not a connection of this tenant")
    return conn


def _password_problem(exc: database.SignupRejected) -> ManagementError:
    """Auth0's ``PasswordStrengthError: Password is too weak`` (management-api.md §6)."""
    text = exc.message.rstrip(".")
    if text.lower().startswith("the "):
        text = text[4:]
    text = text[:1].upper() + text[1:]
    return ManagementError(400, f"{exc.name}: {text}", "invalid_password")


def client_for(db: Session, tenant: Tenant, data: dict) -> Client | None:
    """The application named by ``client_id`` (verification mails say its name)."""
    if "client_id" not in data:
        return None
    client_id = _text(data, "client_id", limit=128)
    client = db.execute(
        select(Client).where(Client.tenant_id == tenant.id, Client.client_id == client_id)
    ).scalar_one_or_none()
    if client is None:
        raise invalid_body("'client_id' is not a client of this tenant")
    return client


# --- creating -------------------------------------------------------------------------------


def create(db: Session, tenant: Tenant, data: dict) -> tuple[User, bool]:
    """A database or passwordless user; returns it and whether to mail a verification
    link (``verify_email``; by default for unverified database users)."""
    body.reject_unknown(data, CREATE_FIELDS, READ_ONLY)
    conn = _connection(db, tenant, data)
    if conn.strategy not in CREATABLE_STRATEGIES:
        raise invalid_body(
            f"'connection' {conn.name[:64]!r} ({conn.strategy}) does not take users "
            "created here; use a database or passwordless connection"
        )
    flags = _flags(data, "email_verified", "verify_email", "phone_verified", "blocked")
    profile = _profile(data)
    email = _email(data) if "email" in data else None
    phone = _phone(data, conn) if "phone_number" in data else None
    if conn.strategy == "auth0":
        user = _create_database_user(db, tenant, conn, data, email, profile, flags)
    else:
        user = _create_passwordless_user(db, tenant, conn, data, email, phone, profile, flags)
    if phone is not None and conn.strategy != "sms":
        _change(accounts.change_phone_number, db, user, phone)
    if "phone_verified" in flags:
        accounts.update_profile(user, {"phone_verified": flags["phone_verified"]})
    if flags.get("blocked"):
        accounts.block_user(db, user)
    db.flush()
    verified = bool(user.email_verified)
    default = conn.strategy == "auth0" and not verified
    send = bool(user.email) and not verified and flags.get("verify_email", default)
    return user, send


def _change(change, db: Session, user: User, value: str, **kwargs) -> None:
    try:
        change(db, user, value, **kwargs)
    except accounts.UserExists as exc:
        raise conflict(EXISTS) from exc


def _create_database_user(
    db: Session,
    tenant: Tenant,
    conn: Connection,
    data: dict,
    email: str | None,
    profile: dict,
    flags: dict,
) -> User:
    """Through the database connection's own rules: email (and username when required),
    the password policy, a custom database that already knows the address. Sign-up being
    disabled only closes public sign-up, not the administrator's."""
    options = conn.options or {}
    if email is None:
        raise invalid_body("missing required property 'email'")
    if "password" not in data:
        raise invalid_body("missing required property 'password'")
    password = body.string(data, "password", limit=4096, empty=False)
    username = None
    if options.get("requires_username"):
        if "username" not in data:
            raise invalid_body("missing required property 'username'")
        username = _text(data, "username", limit=128)
        if not accounts.valid_username(username, options):
            raise invalid_body("'username' is not a valid username for this connection")
    elif "username" in data:
        raise invalid_body("'username' is not used by this connection")
    personal = [email, username or "", *(str(profile.get(k) or "") for k in ROOT_TEXT_FIELDS)]
    try:
        database.check_password(conn, tenant, password, personal=personal)
    except database.SignupRejected as exc:
        raise _password_problem(exc) from exc
    if custom_database.enabled(conn) and custom_database.knows(conn, email):
        raise conflict(EXISTS)
    signup = accounts.SignupData(
        email=email,
        username=username,
        password_hash=passwords.hash_password(password),
        email_verified=flags.get("email_verified", False),
        **profile,
    )
    try:
        return accounts.create_database_user(db, tenant, conn, signup)
    except accounts.UserExists as exc:
        raise conflict(EXISTS) from exc


def _create_passwordless_user(
    db: Session,
    tenant: Tenant,
    conn: Connection,
    data: dict,
    email: str | None,
    phone: str | None,
    profile: dict,
    flags: dict,
) -> User:
    """An ``email|…`` or ``sms|…`` user owning its address or number; verified only if
    the body says so (no code was redeemed)."""
    for key in ("password", "username"):
        if key in data:
            raise invalid_body(f"'{key}' is not used by passwordless connections")
    field = passwordless.strategy_for(conn).identifier_field
    identifier = email if field == "email" else phone
    if identifier is None:
        raise invalid_body(f"missing required property '{field}'")
    if field == "email":
        try:
            identifier = passwordless.strategy_for(conn).normalise(conn, identifier)
        except passwordless.BadIdentifier as exc:
            raise invalid_body(f"'email' {exc.description}") from exc
    try:
        user = accounts.create_passwordless_user(db, tenant, conn, identifier)
    except accounts.UserExists as exc:
        raise conflict(EXISTS) from exc
    if field == "email":
        accounts.update_profile(user, {"email_verified": flags.get("email_verified", False)})
    else:
        accounts.update_profile(user, {"phone_verified": flags.get("phone_verified", False)})
        if email is not None:
            _change(
                accounts.change_email, db, user, email, verified=flags.get("email_verified", False)
            )
    accounts.update_profile(user, profile)
    return user


# --- updating -------------------------------------------------------------------------------


def metadata_only(data: dict) -> bool:
    """What ``update:users_app_metadata`` alone may change."""
    return set(data) <= METADATA_FIELDS


def _target_connection(db: Session, user: User, data: dict) -> tuple[Connection, bool]:
    """The connection a password (or other login) change is for, and whether it is the
    main identity's."""
    main = accounts.main_identity(user)
    main_id = main.connection_id if main is not None else None
    if "connection" not in data:
        if main_id is None:
            raise invalid_body("this user has no main identity to change")
        return db.get(Connection, main_id), True
    name = _text(data, "connection", limit=128)
    for identity in user.identities:
        conn = db.get(Connection, identity.connection_id)
        if conn is not None and conn.name == name:
            return conn, identity.connection_id == main_id
    raise invalid_body("'connection' is not a connection of this user")


def update(db: Session, tenant: Tenant, user: User, data: dict) -> bool:
    """PATCH: the given properties replace the stored ones; metadata is merged one level.
    Everything is checked before anything is written. Returns whether to mail a
    verification link."""
    body.reject_unknown(data, UPDATE_FIELDS, READ_ONLY)
    flags = _flags(
        data, "email_verified", "verify_email", "phone_verified", "blocked", "verify_phone_number"
    )
    if flags.get("verify_phone_number"):
        raise invalid_body("'verify_phone_number' is not supported: no text is sent")
    profile = _profile(data)
    client_for(db, tenant, data)
    conn, is_main = _target_connection(db, user, data)
    logins = {"email", "username", "phone_number"} & set(data)
    if logins and not is_main:
        raise invalid_body(
            f"'{sorted(logins)[0]}' can only be changed on the main identity's connection"
        )
    email = _email(data) if "email" in data else None
    phone = _phone(data, conn) if "phone_number" in data else None
    username = None
    if "username" in data:
        username = _text(data, "username", limit=128)
        options = conn.options or {}
        if conn.strategy != "auth0" or not options.get("requires_username"):
            raise invalid_body("'username' is not used by this user's connection")
        if not accounts.valid_username(username, options):
            raise invalid_body("'username' is not a valid username for this connection")
    password = None
    if "password" in data:
        password = body.string(data, "password", limit=4096, empty=False)
        if conn.strategy != "auth0":
            raise invalid_body("'password' can only be set for a database connection")
    if email is not None and accounts.normalise_email(email) != user.email:
        _change(accounts.change_email, db, user, email, verified=flags.get("email_verified", False))
    elif "email_verified" in flags:
        accounts.update_profile(user, {"email_verified": flags["email_verified"]})
    if username is not None and username != user.username:
        _change(accounts.change_username, db, user, username)
    if phone is not None and phone != user.phone_number:
        _change(accounts.change_phone_number, db, user, phone)
    if "phone_verified" in flags:
        accounts.update_profile(user, {"phone_verified": flags["phone_verified"]})
    for key in METADATA_FIELDS & set(profile):
        profile[key] = merge_metadata(getattr(user, key), profile[key], key)
    accounts.update_profile(user, profile)
    if password is not None:
        # Policy, history, and every session and refresh token of the user revoked.
        try:
            database.change_password(db, tenant, conn, user, password)
        except database.SignupRejected as exc:
            raise _password_problem(exc) from exc
    if flags.get("blocked") is True and not user.blocked:
        accounts.block_user(db, user)
    elif flags.get("blocked") is False:
        accounts.unblock_user(user)
    db.flush()
    return bool(flags.get("verify_email")) and bool(user.email) and not user.email_verified


# --- linking --------------------------------------------------------------------------------


def _linked_user(db: Session, tenant: Tenant, data: dict, issuer: str) -> User:
    """The secondary user named by the body: ``link_with`` (an unexpired ID token this
    tenant issued) or ``provider`` + ``user_id`` (+ ``connection_id``)."""
    if "link_with" in data:
        for key in ("provider", "user_id", "connection_id"):
            if key in data:
                raise invalid_body(f"'{key}' cannot be combined with 'link_with'")
        token = body.string(data, "link_with", limit=MAX_JWT_LENGTH, empty=False)
        claims = verify_own_jwt(db, tenant.id, token, issuer)
        exp = claims.get("exp") if claims else None
        audience = claims.get("aud") if claims else None
        is_id_token = isinstance(audience, str) and (
            db.execute(
                select(Client.id).where(Client.tenant_id == tenant.id, Client.client_id == audience)
            ).first()
            is not None
        )
        if (
            not is_id_token
            or not isinstance(exp, int | float)
            or isinstance(exp, bool)
            or exp <= time.time()
        ):
            raise invalid_body("'link_with' must be an unexpired ID token issued by this tenant")
        secondary_id = claims.get("sub")
        field = "link_with"
    else:
        for key in ("provider", "user_id"):
            if key not in data:
                raise invalid_body(f"missing required property '{key}'")
        provider = _text(data, "provider", limit=64)
        secondary_id = f"{provider}|{_text(data, 'user_id')}"
        field = "user_id"
    secondary = None
    if isinstance(secondary_id, str) and len(secondary_id) <= 255:
        secondary = db.execute(
            select(User).where(User.tenant_id == tenant.id, User.user_id == secondary_id)
        ).scalar_one_or_none()
    if secondary is None:
        raise invalid_body(f"'{field}' does not name a user of this tenant")
    if "connection_id" in data:
        connection_id = _text(data, "connection_id", limit=40)
        main = accounts.main_identity(secondary)
        if main is None or main.connection_id != connection_id:
            raise invalid_body("'connection_id' is not the connection of that user")
    return secondary


def link(db: Session, tenant: Tenant, primary: User, data: dict, issuer: str) -> str:
    """Link the secondary user of ``data`` into ``primary``; returns the secondary's
    former user_id."""
    body.reject_unknown(data, {"provider", "user_id", "connection_id", "link_with"})
    secondary = _linked_user(db, tenant, data, issuer)
    if secondary.id == primary.id:
        raise invalid_body("a user cannot be linked to itself")
    former = secondary.user_id
    try:
        accounts.link_identity(db, primary, secondary)
    except accounts.LinkRefused as exc:
        raise conflict(f"The users could not be linked: {exc}.") from exc
    return former


def unlink(db: Session, primary: User, provider: str, user_id: str) -> User:
    """Split ``provider|user_id`` off ``primary``; returns the new standalone user."""
    try:
        standalone = accounts.unlink_identity(db, primary, provider, user_id)
    except accounts.LinkRefused as exc:
        raise ManagementError(400, f"Path validation error: {exc}.", "invalid_uri") from exc
    except accounts.UserExists as exc:
        raise conflict(EXISTS) from exc
    if standalone is None:
        raise not_found("identity")
    db.flush()
    return standalone
