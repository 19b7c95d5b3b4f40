"""The ``auth0`` strategy: email or username and password in the tenant's own store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from typing import ClassVar

from login_site import accounts
from login_site import passwords
from login_site.connections.base import Button
from login_site.connections.base import InvalidOptions
from login_site.connections.base import LoginFailed
from login_site.connections.base import Profile
from login_site.connections.base import Step
from login_site.db import get_db
from login_site.i18n import N_
from login_site.models import Connection
from login_site.models import Identity
from login_site.models import LoginTransaction
from login_site.models import User

_BOOL_OPTIONS = (
    "disable_signup",
    "requires_username",
    "brute_force_protection",
    "import_mode",
    "enabledDatabaseCustomization",
    "disable_self_service_change_password",
    "signup_reveals_existing",
)


class DatabaseStrategy:
    name: ClassVar[str] = "auth0"

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        opts = dict(options or {})
        level = opts.get("passwordPolicy")
        if level is not None and level not in passwords.POLICY_LEVELS:
            raise InvalidOptions(
                f"options.passwordPolicy must be one of {', '.join(passwords.POLICY_LEVELS)}"
            )
        complexity = opts.get("password_complexity_options")
        if complexity is not None:
            if not isinstance(complexity, dict):
                raise InvalidOptions("options.password_complexity_options must be an object")
            min_length = complexity.get("min_length")
            if min_length is not None and (
                not isinstance(min_length, int) or not 1 <= min_length <= 128
            ):
                raise InvalidOptions(
                    "options.password_complexity_options.min_length must be an integer 1-128"
                )
        for key in _BOOL_OPTIONS:
            if key in opts and not isinstance(opts[key], bool):
                raise InvalidOptions(f"options.{key} must be true or false")
        return opts

    def button(self, conn: Connection) -> Button:
        return Button(label=conn.display_name or conn.name, kind="password_form")

    def begin(self, conn: Connection, tx: LoginTransaction) -> Step:
        return Step(kind="form", template="login/login.html")

    def complete(
        self, conn: Connection, tx: LoginTransaction | None, data: Mapping[str, str]
    ) -> Profile:
        user = authenticate(get_db(), conn, data.get("username") or "", data.get("password") or "")
        identity = next(i for i in user.identities if i.connection_id == conn.id)
        return self.profile(conn, _user_claims(user, identity))

    def profile(self, conn: Connection, raw: Mapping[str, Any]) -> Profile:
        return Profile(
            user_id=raw["user_id"],
            email=raw.get("email"),
            email_verified=bool(raw.get("email_verified")),
            username=raw.get("username"),
            name=raw.get("name"),
            nickname=raw.get("nickname"),
            given_name=raw.get("given_name"),
            family_name=raw.get("family_name"),
            picture=raw.get("picture"),
            raw=dict(raw),
        )

    def refresh(self, conn: Connection, identity: Identity) -> Profile | None:
        # The tenant's own store is the source: nothing upstream to re-read.
        return None


def authenticate(db, conn: Connection, identifier: str, password: str) -> User:
    """The user for these credentials, or :class:`LoginFailed`. Always one argon2
    verification, also for unknown users (no timing oracle); the blocked check comes
    after the password, so a wrong password looks the same for every account."""
    identifier = identifier.strip()
    if passwords.too_long(password) or len(identifier) > 320:
        raise LoginFailed()
    credential = accounts.find_credential(db, conn, identifier) if identifier else None
    ok = passwords.verify_password(credential.password_hash if credential else None, password)
    if not ok or credential is None:
        raise LoginFailed()
    user = credential.identity.user
    if user.blocked:
        raise LoginFailed("blocked")
    if passwords.needs_rehash(credential.password_hash):
        credential.password_hash = passwords.hash_password(password)
    return user


def _user_claims(user: User, identity: Identity) -> dict[str, Any]:
    return {
        "user_id": identity.user_id,
        "email": user.email,
        "email_verified": user.email_verified,
        "username": user.username,
        "name": user.name,
        "nickname": user.nickname,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "picture": user.picture,
    }


class SignupRejected(Exception):
    """A readable reason the sign-up was refused (field errors, policy, disabled)."""

    def __init__(self, code: str, message: str, rules: list[passwords.Rule] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.rules = rules or []


def signup(
    db,
    tenant,
    conn: Connection,
    *,
    email: str,
    password: str,
    username: str | None = None,
    profile: Mapping[str, Any] | None = None,
) -> User:
    """Create a database user after the connection's checks; raises ``SignupRejected``
    or :class:`accounts.UserExists` (nothing written in either case)."""
    options = conn.options or {}
    if options.get("disable_signup"):
        raise SignupRejected("signup_disabled", N_("public signup is disabled"))
    email = (email or "").strip()
    if not accounts.valid_email(email):
        raise SignupRejected("bad.email", N_("Enter a valid email address."))
    if options.get("requires_username"):
        if not username or not accounts.valid_username(username, options):
            raise SignupRejected("bad.username", N_("Enter a valid username."))
    elif username:
        raise SignupRejected("bad.username", N_("This connection does not use usernames."))
    if passwords.too_long(password):
        raise SignupRejected("invalid_password", N_("The password is too long."))
    failed = passwords.policy_errors(options, password)
    if failed:
        raise SignupRejected("invalid_password", N_("The password is too weak."), failed)
    data = accounts.SignupData(
        email=email,
        username=username,
        password_hash=passwords.hash_password(password),
        **{k: v for k, v in (profile or {}).items() if k in _PROFILE_FIELDS},
    )
    return accounts.create_database_user(db, tenant, conn, data)


_PROFILE_FIELDS = ("given_name", "family_name", "name", "nickname", "picture", "user_metadata")
