"""The ``auth0`` strategy: email or username and password in the tenant's own store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from typing import ClassVar

from login_site import accounts
from login_site import passwords
from login_site.connections import custom_database
from login_site.connections.base import Button
from login_site.connections.base import InvalidOptions
from login_site.connections.base import LoginFailed
from login_site.connections.base import Profile
from login_site.connections.base import Step
from login_site.db import get_db
from login_site.db import utcnow
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
        custom_database.check_options(opts)
        return opts

    def button(self, conn: Connection) -> Button:
        return Button(label=conn.display_name or conn.name, kind="password_form")

    def begin(self, conn: Connection, tx: LoginTransaction) -> Step:
        return Step(kind="form", template="login/login.html")

    def complete(
        self, conn: Connection, tx: LoginTransaction | None, data: Mapping[str, str]
    ) -> Profile:
        identifier, password = data.get("username") or "", data.get("password") or ""
        identity = authenticated_identity(get_db(), conn, identifier, password)
        profile = self.profile(conn, _user_claims(identity.user, identity))
        profile.local_user = identity.user
        return profile

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


def authenticate(
    db, conn: Connection, identifier: str, password: str, *, ip: str | None = None
) -> User:
    """The user for these credentials (:func:`authenticated_identity`)."""
    return authenticated_identity(db, conn, identifier, password, ip=ip).user


def authenticated_identity(
    db, conn: Connection, identifier: str, password: str, *, ip: str | None = None
) -> Identity:
    """The user's identity of this connection for these credentials, with its user loaded,
    or :class:`LoginFailed`. Always one argon2
    verification, also for unknown users (no timing oracle); the blocked check comes
    after the password, so a wrong password looks the same for every account.
    Brute-force protection comes first: a blocked identifier and IP (``ip``: the
    client's address, by default the request's) fail with ``too_many_attempts``, also
    with the right password, and a throttled IP gets 429."""
    from login_site.security import bruteforce

    identifier = identifier.strip()
    if passwords.too_long(password) or len(identifier) > 320:
        raise LoginFailed()
    guard = bruteforce.check(db, conn, identifier, ip)
    credential = accounts.find_credential(db, conn, identifier) if identifier else None
    external = None
    if identifier and custom_database.consulted(conn, credential):
        # "Use my own database": the external hash, when that database knows the
        # identifier, is this attempt's one verification (and may import the user).
        external = custom_database.authenticate(db, conn, identifier, password, credential)
    if external is not None:
        credential, ok = external
    else:
        ok = passwords.verify_password(credential.password_hash if credential else None, password)
    if not ok or credential is None:
        bruteforce.record_failure(db, guard, credential.identity.user if credential else None)
        raise LoginFailed()
    user = credential.identity.user
    if user.blocked:
        raise LoginFailed("blocked")
    bruteforce.record_success(db, guard)
    if passwords.needs_rehash(credential.password_hash):
        credential.password_hash = passwords.hash_password(password)
    return credential.identity


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
    """A readable reason the sign-up or password change was refused (nothing written).

    ``code`` is Auth0's error code (``invalid_password``, ``bad.email``...), ``name``
    the Auth0 error name for password failures (``PasswordStrengthError``...)."""

    def __init__(
        self,
        code: str,
        message: str,
        rules: list[passwords.Rule] | None = None,
        name: str = "BadRequestError",
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.rules = rules or []
        self.name = name


def check_password(
    conn: Connection,
    tenant,
    password: str,
    *,
    personal: list[str],
    previous_hashes: list[str] = (),
) -> None:
    """Every password rule of the connection (Auth0's policy options), in Auth0's order."""
    options = conn.options or {}
    if passwords.too_long(password):
        raise SignupRejected(
            "invalid_password", N_("The password is too long."), name="PasswordStrengthError"
        )
    failed = passwords.policy_errors(options, password)
    if failed:
        raise SignupRejected(
            "invalid_password",
            N_("The password is too weak."),
            failed,
            name="PasswordStrengthError",
        )
    for violation in (
        passwords.dictionary_violation(options, password),
        passwords.personal_info_violation(
            options, password, [*personal, tenant.name, tenant.friendly_name or ""]
        ),
    ):
        if violation is not None:
            raise SignupRejected("invalid_password", violation.message, name=violation.name)
    if previous_hashes and passwords.reused(password, list(previous_hashes)):
        raise SignupRejected(
            "invalid_password", N_("Password has previously been used"), name="PasswordHistoryError"
        )


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
    profile = {k: v for k, v in (profile or {}).items() if k in PROFILE_FIELDS}
    personal = [email, username or "", *(str(profile.get(k) or "") for k in PERSONAL_FIELDS)]
    check_password(conn, tenant, password, personal=personal)
    if custom_database.enabled(conn) and custom_database.knows(conn, email):
        # The address belongs to a legacy user not imported yet (Auth0 runs Get User here).
        raise accounts.UserExists(accounts.normalise_email(email))
    data = accounts.SignupData(
        email=email, username=username, password_hash=passwords.hash_password(password), **profile
    )
    return accounts.create_database_user(db, tenant, conn, data)


def change_password(db, tenant, conn: Connection, user: User, password: str) -> None:
    """Set a new password after every policy rule (history included); remember the old
    hash, and end every session and refresh token of the user (checklist RT-07, PR-05)."""
    from login_site import sessions
    from login_site.oauth import refresh

    credential = accounts.credential_of(db, conn, user)
    if credential is None or custom_database.consulted(conn, credential):
        raise SignupRejected("bad.connection", N_("This account has no password here."))
    size = passwords.history_size(conn.options or {})
    previous = [credential.password_hash]
    if size:
        previous += accounts.password_history(db, credential, size - 1)
    personal = [
        user.email or "",
        user.username or "",
        user.name or "",
        user.given_name or "",
        user.family_name or "",
    ]
    check_password(
        conn, tenant, password, personal=personal, previous_hashes=previous if size else []
    )
    if size:
        accounts.remember_password(db, credential, size)
    credential.password_hash = passwords.hash_password(password)
    credential.password_changed_at = utcnow()
    sessions.revoke_all_for_user(db, user.id)
    refresh.revoke_for_user(db, user.id)


PROFILE_FIELDS = ("given_name", "family_name", "name", "nickname", "picture", "user_metadata")
PERSONAL_FIELDS = ("given_name", "family_name", "name", "nickname")
