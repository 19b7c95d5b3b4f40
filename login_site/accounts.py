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
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm import joinedload

from login_site import sessions
from login_site.db import utcnow
from login_site.models import AccessToken
from login_site.models import AuthorizationCode
from login_site.models import Connection
from login_site.models import Consent
from login_site.models import CrossOriginTicket
from login_site.models import DatabaseCredential
from login_site.models import Identity
from login_site.models import LoginAttempt
from login_site.models import LoginSession
from login_site.models import PasswordHistory
from login_site.models import PasswordlessCode
from login_site.models import PasswordlessIdentity
from login_site.models import RefreshToken
from login_site.models import Tenant
from login_site.models import User
from login_site.models import UserTicket
from login_site.oauth import refresh

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
    # The identity comes joined (the relationship's default), and its user with it: the
    # callers go on to the user (a login checks ``blocked``), so no second round trip.
    return db.execute(
        select(DatabaseCredential)
        .where(DatabaseCredential.connection_id == conn.id, where)
        .options(joinedload(DatabaseCredential.identity).joinedload(Identity.user))
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


# --- administration: change, block, link, unlink, delete (Management API) ----------------

# The root attributes a linked identity keeps as ``profileData`` (compat §12.3), and that an
# unlinked identity takes back as its own user's profile.
PROFILE_SNAPSHOT_FIELDS = (
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
)
# Set directly by an administrator once validated; email, username, phone number and
# ``blocked`` have their own functions because logins depend on them.
ADMIN_SETTABLE_FIELDS = frozenset(
    {
        "email_verified",
        "phone_verified",
        "name",
        "nickname",
        "given_name",
        "family_name",
        "picture",
        "user_metadata",
        "app_metadata",
    }
)


class LinkRefused(ValueError):
    """Linking or unlinking is not possible (same user, main identity, changed meanwhile)."""


def main_identity(user: User) -> Identity | None:
    """The identity whose ``provider|user_id`` is the user's own id."""
    for identity in user.identities:
        if f"{identity.provider}|{identity.user_id}" == user.user_id:
            return identity
    return None


def update_profile(user: User, changes: dict[str, Any]) -> None:
    """Root attributes and metadata, already validated by the caller."""
    for key, value in changes.items():
        if key not in ADMIN_SETTABLE_FIELDS:
            raise ValueError(key)
        setattr(user, key, value)


def _login_keys(db: Session, user: User, values: dict) -> None:
    """Write ``values`` on the user, then re-key the main identity's login (credential or
    passwordless identifier); a key another login owns raises :class:`UserExists`."""
    main = main_identity(user)
    try:
        with db.begin_nested():
            for key, value in values.items():
                setattr(user, key, value)
            if main is not None and "email" in values:
                db.execute(
                    update(DatabaseCredential)
                    .where(DatabaseCredential.identity_id == main.id)
                    .values(email_key=values["email"])
                )
            if main is not None and "username" in values:
                db.execute(
                    update(DatabaseCredential)
                    .where(DatabaseCredential.identity_id == main.id)
                    .values(username_key=normalise_username(values["username"]))
                )
            identifier = {"email": values.get("email"), "sms": values.get("phone_number")}.get(
                main.provider if main is not None else ""
            )
            if identifier is not None:
                db.execute(
                    update(PasswordlessIdentity)
                    .where(PasswordlessIdentity.identity_id == main.id)
                    .values(identifier=identifier)
                )
            db.flush()
    except IntegrityError as exc:
        raise UserExists(next(iter(values.values()))) from exc


def change_email(db: Session, user: User, email: str, *, verified: bool = False) -> None:
    """A new address, also the login key of the main identity; not verified unless said."""
    _login_keys(db, user, {"email": normalise_email(email), "email_verified": verified})


def change_username(db: Session, user: User, username: str) -> None:
    _login_keys(db, user, {"username": username})


def change_phone_number(db: Session, user: User, phone_number: str) -> None:
    """A new number (E.164, checked by the caller), also the login of an ``sms`` user."""
    _login_keys(db, user, {"phone_number": phone_number})


def block_user(db: Session, user: User) -> None:
    """No more logins, and the sessions and refresh tokens already out end now."""
    user.blocked = True
    sessions.revoke_all_for_user(db, user.id)
    refresh.revoke_for_user(db, user.id)


def unblock_user(user: User) -> None:
    user.blocked = False


def _forget_grants(db: Session, user_pk: int) -> None:
    """Every session, code, token, consent and ticket of the user: deleted, not revoked,
    because the user row they belong to goes too."""
    for model in (
        AccessToken,
        RefreshToken,
        AuthorizationCode,
        CrossOriginTicket,
        LoginSession,
        Consent,
        UserTicket,
    ):
        db.execute(delete(model).where(model.user_pk == user_pk))


def _drop_user_row(db: Session, user: User) -> None:
    # Identities were moved or deleted with statements: reload the (now empty) collection
    # so the ORM's delete-orphan cascade sees what is really there.
    db.expire(user, ["identities"])
    db.delete(user)
    db.flush()


def delete_user(db: Session, user: User) -> None:
    """The user and everything of theirs, in the caller's transaction: identities,
    credentials, password history, passwordless identifiers and codes, brute-force
    counters, sessions, codes, tokens, consents and tickets (upstream tokens go with their
    identities by the foreign key)."""
    from login_site.security.bruteforce import identifier_key

    identity_ids = [i.id for i in user.identities]
    _forget_grants(db, user.id)
    if identity_ids:
        for credential in db.execute(
            select(DatabaseCredential).where(DatabaseCredential.identity_id.in_(identity_ids))
        ).scalars():
            keys = [identifier_key(k) for k in (credential.email_key, credential.username_key) if k]
            if keys:
                db.execute(
                    delete(LoginAttempt).where(
                        LoginAttempt.connection_id == credential.connection_id,
                        LoginAttempt.identifier_key.in_(keys),
                    )
                )
        for owned in db.execute(
            select(PasswordlessIdentity).where(PasswordlessIdentity.identity_id.in_(identity_ids))
        ).scalars():
            db.execute(
                delete(PasswordlessCode).where(
                    PasswordlessCode.connection_id == owned.connection_id,
                    PasswordlessCode.identifier == owned.identifier,
                )
            )
        for model in (PasswordHistory, DatabaseCredential, PasswordlessIdentity):
            db.execute(delete(model).where(model.identity_id.in_(identity_ids)))
        db.execute(delete(Identity).where(Identity.id.in_(identity_ids)))
    _drop_user_row(db, user)


def link_identity(db: Session, primary: User, secondary: User) -> None:
    """Account linking: every identity of ``secondary`` moves to ``primary`` (its main
    identity keeps the secondary's profile as ``profileData``), then the secondary user
    and its sessions, tokens and tickets go. Credentials follow their identities, so the
    secondary's logins now sign in as ``primary``."""
    if primary.id == secondary.id or primary.tenant_id != secondary.tenant_id:
        raise LinkRefused("a user cannot be linked to itself")
    identity_ids = [i.id for i in secondary.identities]
    main = main_identity(secondary)
    if main is not None:
        # Kept over what the identity already holds (an upstream provider's raw profile).
        main.profile_data = {
            **(main.profile_data or {}),
            **{
                k: getattr(secondary, k)
                for k in PROFILE_SNAPSHOT_FIELDS
                if getattr(secondary, k) is not None
            },
        }
        db.flush()
    moved = db.execute(
        update(Identity)
        .where(Identity.id.in_(identity_ids), Identity.user_pk == secondary.id)
        .values(user_pk=primary.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not identity_ids or moved != len(identity_ids):
        # Linked, unlinked or deleted by someone else meanwhile: the caller rolls back.
        raise LinkRefused("the secondary user changed meanwhile")
    _forget_grants(db, secondary.id)
    _drop_user_row(db, secondary)
    db.expire(primary, ["identities"])


def _end_sessions_through(db: Session, user: User, connection_name: str) -> None:
    """Sessions (and their refresh tokens) the user started by logging in with
    ``connection_name``: that login no longer leads to this user."""
    sids = list(
        db.execute(
            select(LoginSession.sid).where(
                LoginSession.user_pk == user.id,
                LoginSession.connection == connection_name,
                LoginSession.revoked_at.is_(None),
            )
        ).scalars()
    )
    if not sids:
        return
    db.execute(update(LoginSession).where(LoginSession.sid.in_(sids)).values(revoked_at=utcnow()))
    families = db.execute(
        select(RefreshToken.family_id)
        .where(RefreshToken.user_pk == user.id, RefreshToken.session_sid.in_(sids))
        .distinct()
    ).scalars()
    for family_id in list(families):
        refresh.revoke_family(db, family_id)


# Longest value a standalone user takes from ``profileData`` (the users columns' sizes).
_SNAPSHOT_LIMITS = {"email": 320, "phone_number": 32, "username": 128, "picture": 2000}


def _standalone_profile(data: dict[str, Any]) -> dict[str, Any]:
    """Root attributes from ``profileData``, which may be an upstream provider's raw
    profile: booleans only as booleans, text only as clean text that fits its column."""
    out: dict[str, Any] = {}
    for key in PROFILE_SNAPSHOT_FIELDS:
        value = data.get(key)
        if key.endswith("_verified"):
            if isinstance(value, bool):
                out[key] = value
        elif (
            isinstance(value, str)
            and value.strip()
            and len(value) <= _SNAPSHOT_LIMITS.get(key, 255)
            and not any(ord(c) < 32 or ord(c) == 127 for c in value)
        ):
            out[key] = value
    if "email" in out:
        if valid_email(out["email"]):
            out["email"] = normalise_email(out["email"])
        else:
            del out["email"]
    if "email" not in out:
        out.pop("email_verified", None)
    if "phone_number" not in out:
        out.pop("phone_verified", None)
    return out


def unlink_identity(db: Session, primary: User, provider: str, user_id: str) -> User | None:
    """Split a linked identity off ``primary`` into a standalone user ``provider|user_id``
    with the profile it had (``profileData``). ``None`` if ``primary`` has no such
    identity; :class:`LinkRefused` for the main identity."""
    identity = next(
        (i for i in primary.identities if i.provider == provider and i.user_id == user_id), None
    )
    if identity is None:
        return None
    if identity is main_identity(primary):
        raise LinkRefused("the main identity of a user cannot be unlinked")
    profile = _standalone_profile(identity.profile_data or {})
    email = profile.get("email")
    standalone = User(
        tenant_id=primary.tenant_id,
        user_id=f"{provider}|{user_id}",
        **profile,
        user_metadata={},
        app_metadata={},
    )
    if not standalone.name:
        standalone.name = email or profile.get("phone_number") or user_id
    if not standalone.nickname:
        standalone.nickname = email.split("@", 1)[0] if email else standalone.name
    try:
        with db.begin_nested():
            db.add(standalone)
            db.flush()
            moved = db.execute(
                update(Identity)
                .where(Identity.id == identity.id, Identity.user_pk == primary.id)
                .values(user_pk=standalone.id)
                .execution_options(synchronize_session=False)
            ).rowcount
            if moved != 1:
                raise LinkRefused("the identity changed meanwhile")
    except IntegrityError as exc:
        raise UserExists(standalone.user_id) from exc
    connection = db.get(Connection, identity.connection_id)
    if connection is not None:
        _end_sessions_through(db, primary, connection.name)
    db.expire(primary, ["identities"])
    db.expire(identity)
    return standalone


# --- users from upstream identity providers (social, custom OAuth2, OIDC) -------------------

# Refreshed from the provider at each login unless the connection says otherwise
# (``set_user_root_attributes``, compat §5.2); email too, so the profile stays the source's.
UPSTREAM_SYNCED_FIELDS = ("email", "email_verified", "name", "nickname", "given_name")
UPSTREAM_SYNCED_FIELDS += ("family_name", "picture")
MAX_RAW_PROFILE_CHARS = 32_000


@dataclass(frozen=True)
class UpstreamKey:
    """Where an upstream account lives: ``provider`` and the identity's ``user_id``; the
    user id of a new user is ``provider|user_id`` (``github|12345``, ``oidc|corp|sub``)."""

    provider: str
    identity_user_id: str

    @property
    def user_id(self) -> str:
        return f"{self.provider}|{self.identity_user_id}"


def upstream_key(conn: Connection, upstream_id: str, *, is_social: bool) -> UpstreamKey:
    """Social presets keep the provider's id (Auth0's ``google-oauth2|…``); custom OAuth2
    and enterprise connections add the connection name, so the same ``sub`` at two
    providers makes two users (checklist SC-18)."""
    if is_social and conn.strategy != "oauth2":
        return UpstreamKey(conn.strategy, upstream_id)
    return UpstreamKey(conn.strategy, f"{conn.name}|{upstream_id}")


def find_upstream_identity(db: Session, conn: Connection, key: UpstreamKey) -> Identity | None:
    return db.execute(
        select(Identity).where(
            Identity.connection_id == conn.id, Identity.user_id == key.identity_user_id
        )
    ).scalar_one_or_none()


def _raw_profile(raw: dict[str, Any]) -> dict[str, Any]:
    """The provider's profile as kept on the identity (``profileData``), size-capped."""
    import json

    text = json.dumps(raw, default=str)
    return raw if len(text) <= MAX_RAW_PROFILE_CHARS else {"truncated": True}


def _profile_values(profile: Any) -> dict[str, Any]:
    email = profile.email
    values = {
        "email": email,
        "email_verified": bool(email) and profile.email_verified,
        "name": profile.name or email or profile.nickname or profile.user_id,
        "nickname": profile.nickname or (email.split("@", 1)[0] if email else profile.name),
        "given_name": profile.given_name,
        "family_name": profile.family_name,
        "picture": profile.picture or (gravatar_url(email) if email else None),
    }
    return values


def sync_upstream_profile(
    user: User, identity: Identity, profile: Any, mode: str = "on_each_login"
) -> None:
    """After a login through ``identity``: keep the provider's profile on the identity and,
    for the user's main identity with ``on_each_login``, refresh the root attributes."""
    identity.profile_data = _raw_profile(dict(profile.raw))
    if mode != "on_each_login" or main_identity(user) is not identity:
        return
    for key, value in _profile_values(profile).items():
        if getattr(user, key) != value:
            setattr(user, key, value)


def create_upstream_user(
    db: Session, tenant: Tenant, conn: Connection, key: UpstreamKey, profile: Any, is_social: bool
) -> User:
    """A new user whose main identity is this upstream account. Two first logins racing
    on the same account: the loser gets :class:`UserExists` with nothing written."""
    values = _profile_values(profile)
    if values["email"] is not None:
        values["email"] = normalise_email(values["email"])
    user = User(
        tenant_id=tenant.id,
        user_id=key.user_id,
        username=profile.username,
        phone_number=profile.phone_number,
        user_metadata={},
        app_metadata={},
        **values,
    )
    user.identities.append(_upstream_identity(tenant.id, conn, key, profile, is_social))
    _add_once(db, user, key)
    return user


def _upstream_identity(
    tenant_id: str, conn: Connection, key: UpstreamKey, profile: Any, is_social: bool
) -> Identity:
    return Identity(
        tenant_id=tenant_id,
        connection_id=conn.id,
        provider=key.provider,
        user_id=key.identity_user_id,
        is_social=is_social,
        profile_data=_raw_profile(dict(profile.raw)),
    )


def _add_once(db: Session, row: User | Identity, key: UpstreamKey) -> None:
    """Insert ``row``; :class:`UserExists` (nothing written) when the account is taken."""
    try:
        with db.begin_nested():
            db.add(row)
            db.flush()
    except IntegrityError as exc:
        raise UserExists(key.user_id) from exc


def add_upstream_identity(
    db: Session, user: User, conn: Connection, key: UpstreamKey, profile: Any, is_social: bool
) -> Identity:
    """Link an upstream account the person just proved to ``user`` (who proved theirs)."""
    identity = _upstream_identity(user.tenant_id, conn, key, profile, is_social)
    identity.user_pk = user.id
    _add_once(db, identity, key)
    db.expire(user, ["identities"])
    return identity


def verified_email_owner(db: Session, tenant: Tenant, email: str | None) -> User | None:
    """The one user of the tenant whose *verified* address is ``email`` (a linking
    candidate); ``None`` when there is none or several."""
    if not email:
        return None
    owners = (
        db.execute(
            select(User)
            .where(
                User.tenant_id == tenant.id,
                User.email == normalise_email(email),
                User.email_verified.is_(True),
            )
            .limit(2)
        )
        .scalars()
        .all()
    )
    return owners[0] if len(owners) == 1 else None
