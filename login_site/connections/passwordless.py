"""The ``email`` and ``sms`` strategies: one-time codes (and magic links by email).

Both follow the connection contract (STYLE §2). The identifier is the user's email address
(normalised: NFC, lower case) or phone number (E.164, checked with ``phonenumbers``). A
user is created at the first successful login unless ``options.disable_signup``; the user
id is ``email|<24 hex>`` or ``sms|<24 hex>`` (compat §12.1), with one identity in the
connection. Codes live in :mod:`login_site.otp`; SMS go out through :mod:`login_site.sms`.

Email codes and magic links are a single factor (NIST SP 800-63B forbids email as an
out-of-band authenticator): whoever reads the mailbox can log in (checklist PL-08).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

import phonenumbers
from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select

from login_site import accounts
from login_site import mail
from login_site import otp
from login_site import sms
from login_site.connections.base import Button
from login_site.connections.base import InvalidOptions
from login_site.connections.base import LoginFailed
from login_site.connections.base import Profile
from login_site.connections.base import Step
from login_site.db import get_db
from login_site.events import event
from login_site.i18n import N_
from login_site.models import Client
from login_site.models import Connection
from login_site.models import Identity
from login_site.models import LoginTransaction
from login_site.models import Tenant
from login_site.models import User

E164 = re.compile(r"^\+[0-9]{1,15}$")
E164_PATTERN_TEXT = N_("String does not match pattern: ^\\+[0-9]{1,15}$")  # Auth0's words
# Typed on the hosted page between digits; the API takes strict E.164 only (compat §10.3).
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
# Number types that cost the sender (premium, shared cost) or reach no person.
_REFUSED_TYPES = {
    phonenumbers.PhoneNumberType.PREMIUM_RATE,
    phonenumbers.PhoneNumberType.SHARED_COST,
    phonenumbers.PhoneNumberType.UAN,
    phonenumbers.PhoneNumberType.VOICEMAIL,
}
MAX_EMAIL_BODY_LENGTH = 100_000
# Templates in templates/mail/ and the context each needs (added to mail.TEMPLATES when the
# passwordless blueprint is registered).
MAIL_TEMPLATES = {
    "passwordless_code": frozenset({"code", "expires_minutes"}),
    "passwordless_link": frozenset({"link", "expires_minutes"}),
}
_BOOL_OPTIONS = ("disable_signup", "brute_force_protection")
# A wrong, expired or used code (compat §2.1: text unconfirmed; Lock's "Wrong {cred} or
# verification code").
WRONG_CODE = {
    "email": "Wrong email or verification code.",
    "sms": "Wrong phone number or verification code.",
}


class BadIdentifier(ValueError):
    """A malformed or refused email address or phone number: Auth0's error code
    (``bad.email``, ``bad.phone_number``) and a readable text."""

    def __init__(self, code: str, description: str):
        super().__init__(description)
        self.code = code
        self.description = description


class _Passwordless:
    name: ClassVar[str]
    identifier_field: ClassVar[str]
    label: ClassVar[str]

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        opts = dict(options or {})
        for key in _BOOL_OPTIONS:
            if key in opts and not isinstance(opts[key], bool):
                raise InvalidOptions(f"options.{key} must be true or false")
        problem = otp.check_options(opts) or self._check(opts)
        if problem:
            raise InvalidOptions(problem)
        auth_params = opts.get("authParams")
        if auth_params is not None and not isinstance(auth_params, dict):
            raise InvalidOptions("options.authParams must be an object")
        return opts

    def _check(self, opts: dict[str, Any]) -> str | None:
        return None

    def button(self, conn: Connection) -> Button:
        return Button(label=conn.display_name or self.label, kind="code_form")

    def begin(self, conn: Connection, tx: LoginTransaction) -> Step:
        # The identifier form of this connection alone (the login page shows it inline).
        return Step(
            kind="render", template="login/passwordless_code.html", context={"screen": "start"}
        )

    def complete(
        self, conn: Connection, tx: LoginTransaction | None, data: Mapping[str, str]
    ) -> Profile:
        """Redeem ``data["code"]`` for ``data["identifier"]`` within the hosted login
        transaction ``tx``; :class:`LoginFailed` (``code_wrong``, ``code_dead``, ``blocked``,
        ``signup_disabled``) on any doubt."""
        if tx is None:
            raise LoginFailed("code_dead")
        user = authenticate(
            get_db(),
            conn,
            data.get("identifier") or "",
            data.get("code") or "",
            client_pk=tx.client_pk,
            tx_id=tx.id,
        )
        identity = next(i for i in user.identities if i.connection_id == conn.id)
        return self.profile(conn, claims(user, identity))

    def profile(self, conn: Connection, raw: Mapping[str, Any]) -> Profile:
        return Profile(
            user_id=raw["user_id"],
            email=raw.get("email"),
            email_verified=bool(raw.get("email_verified")),
            phone_number=raw.get("phone_number"),
            name=raw.get("name"),
            nickname=raw.get("nickname"),
            picture=raw.get("picture"),
            raw=dict(raw),
        )

    def refresh(self, conn: Connection, identity: Identity) -> Profile | None:
        return None  # nothing upstream: the mailbox or phone is the only source

    def normalise(self, conn: Connection, value: str, *, lenient: bool = False) -> str:
        raise NotImplementedError


class EmailStrategy(_Passwordless):
    name: ClassVar[str] = "email"
    identifier_field: ClassVar[str] = "email"
    label: ClassVar[str] = "Email"

    def _check(self, opts: dict[str, Any]) -> str | None:
        email = opts.get("email")
        if email is None:
            return None
        if not isinstance(email, dict):
            return "options.email must be an object"
        for key in ("from", "subject", "body", "syntax"):
            if email.get(key) is not None and not isinstance(email[key], str):
                return f"options.email.{key} must be a string"
        if email.get("syntax") not in (None, "liquid"):
            return "options.email.syntax must be liquid"
        if len(email.get("body") or "") > MAX_EMAIL_BODY_LENGTH:
            return f"options.email.body: at most {MAX_EMAIL_BODY_LENGTH} characters"
        return None

    def normalise(self, conn: Connection, value: str, *, lenient: bool = False) -> str:
        value = (value or "").strip()
        if not value:
            raise BadIdentifier("bad.email", N_("Missing required property: email"))
        if not accounts.valid_email(value):
            raise BadIdentifier("bad.email", N_("The email is invalid"))
        return accounts.normalise_email(value)


class SmsStrategy(_Passwordless):
    name: ClassVar[str] = "sms"
    identifier_field: ClassVar[str] = "phone_number"
    label: ClassVar[str] = "SMS"

    def _check(self, opts: dict[str, Any]) -> str | None:
        problem = sms.check_options(opts)
        if problem:
            return problem
        countries = opts.get("allowed_countries")
        if countries is not None and (
            not isinstance(countries, list)
            or not all(isinstance(c, str) and _COUNTRY.match(c) for c in countries)
        ):
            return "options.allowed_countries must be a list of ISO 3166 codes such as 'US'"
        return None

    def normalise(self, conn: Connection, value: str, *, lenient: bool = False) -> str:
        """E.164 (compat §10.3's pattern), a number ``phonenumbers`` knows to be valid, in
        a country the connection allows, and not a premium-rate or non-geographic number
        (SMS pumping, checklist PL-04, PL-05)."""
        raw = (value or "").strip()
        if lenient:
            raw = _PHONE_SEPARATORS.sub("", raw)
        if not raw:
            raise BadIdentifier("bad.phone_number", N_("Missing required property: phone_number"))
        if not E164.match(raw):
            raise BadIdentifier("bad.phone_number", E164_PATTERN_TEXT)
        try:
            number = phonenumbers.parse(raw, None)
        except phonenumbers.NumberParseException:
            raise BadIdentifier("bad.phone_number", N_("The phone number is invalid")) from None
        if not phonenumbers.is_valid_number(number):
            raise BadIdentifier("bad.phone_number", N_("The phone number is invalid"))
        region = phonenumbers.region_code_for_number(number)
        if (
            region in (None, phonenumbers.UNKNOWN_REGION, "001")
            or phonenumbers.number_type(number) in _REFUSED_TYPES
        ):
            raise BadIdentifier(
                "bad.phone_number", N_("Text messages to this kind of number are not allowed")
            )
        allowed = (conn.options or {}).get("allowed_countries")
        if allowed and region not in allowed:
            raise BadIdentifier(
                "bad.phone_number", N_("Text messages to this country are not allowed")
            )
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


STRATEGIES: dict[str, _Passwordless] = {"email": EmailStrategy(), "sms": SmsStrategy()}


def strategy_for(conn: Connection) -> _Passwordless:
    return STRATEGIES[conn.strategy]


def find_connection(db, tenant: Tenant, client: Client, name: str) -> Connection | None:
    """The connection ``name``; failing that, for the name ``email`` or ``sms``, the one
    connection of that strategy enabled for the client. Auth0 names passwordless
    connections after their strategy and the SDKs send those names (auth0-python's
    ``Passwordless.email`` always says ``connection: "email"``)."""
    conn = db.execute(
        select(Connection).where(Connection.tenant_id == tenant.id, Connection.name == name)
    ).scalar_one_or_none()
    if conn is not None or name not in STRATEGIES:
        return conn
    candidates = [
        c
        for c in db.execute(
            select(Connection).where(Connection.tenant_id == tenant.id, Connection.strategy == name)
        ).scalars()
        if client.id in c.enabled_client_ids
    ]
    return candidates[0] if len(candidates) == 1 else None


# --- logging in -----------------------------------------------------------------------------


def authenticate(
    db,
    conn: Connection,
    identifier: str,
    secret: str,
    *,
    client_pk: str,
    tx_id: str | None = None,
) -> User:
    """Spend the code (or link token) and return its user, created at the first login
    unless sign-up is disabled. :class:`LoginFailed` on any doubt."""
    tenant = db.get(Tenant, conn.tenant_id)
    try:
        otp.redeem(db, tenant, conn, identifier, secret, client_pk=client_pk, tx_id=tx_id)
    except otp.CodeRejected as exc:
        raise LoginFailed("code_dead" if exc.dead else "code_wrong") from None
    user = accounts.find_passwordless_user(db, conn, identifier)
    if user is None:
        if (conn.options or {}).get("disable_signup"):
            raise LoginFailed("signup_disabled")
        try:
            user = accounts.create_passwordless_user(db, tenant, conn, identifier)
            db.commit()
            event("signup", "success", user_id=user.user_id, connection=conn.name)
        except accounts.UserExists:
            db.rollback()
            user = accounts.find_passwordless_user(db, conn, identifier)
            if user is None:  # pragma: no cover - the winner's row is committed
                raise LoginFailed("code_dead") from None
    if user.blocked:
        raise LoginFailed("blocked")
    return user


def claims(user: User, identity: Identity) -> dict[str, Any]:
    return {
        "user_id": identity.user_id,
        "email": user.email,
        "email_verified": user.email_verified,
        "phone_number": user.phone_number,
        "phone_verified": user.phone_verified,
        "name": user.name,
        "nickname": user.nickname,
        "picture": user.picture,
    }


# --- sending --------------------------------------------------------------------------------


def send(
    db,
    tenant: Tenant,
    conn: Connection,
    client: Client,
    identifier: str,
    *,
    send: str,
    link_for: Callable[[str], str],
    tx_id: str | None = None,
    auth_params: dict[str, Any] | None = None,
) -> None:
    """Issue a code or magic link for ``identifier`` (already normalised) and deliver it.

    The answer does not depend on whether a user exists (checklist PL-07): with sign-up
    disabled an unknown identifier gets nothing, silently. Raises
    :class:`otp.SendLimited` before anything is written, and :class:`sms.SmsFailed` when
    Twilio refused (the code then dies, unless the message may have gone out)."""
    otp.check_send_limits(tenant, conn, identifier)
    if (conn.options or {}).get("disable_signup") and (
        accounts.find_passwordless_user(db, conn, identifier) is None
    ):
        db.commit()  # the counters; nothing else
        event("passwordless", "unknown_identifier", connection=conn.name)
        return
    row, secret = otp.issue(
        db, tenant, conn, client, identifier, send=send, tx_id=tx_id, auth_params=auth_params
    )
    minutes = max(1, otp.ttl_seconds(conn) // 60)
    if conn.strategy == "email":
        _enqueue_mail(db, tenant, conn, client, identifier, send, secret, link_for, minutes)
        db.commit()
        mail.deliver_after_commit()
    else:
        db.commit()
        body = sms.message_text(conn.options or {}, secret, client.name)
        try:
            sms.send(sms.TwilioSettings.from_options(conn.options or {}), identifier, body)
        except sms.SmsFailed as exc:
            if not exc.maybe_sent:
                otp.kill(db, row)
            raise
    event("passwordless", "sent", connection=conn.name, client_id=client.client_id, send=send)


def _enqueue_mail(db, tenant, conn, client, identifier, send, secret, link_for, minutes) -> None:
    if send == "link":
        template, context = "passwordless_link", {"link": link_for(secret)}
    else:
        template, context = "passwordless_code", {"code": secret}
    context.update(expires_minutes=minutes, application_name=client.name)
    row = mail.enqueue(db, tenant, to=identifier, template=template, context=context, kind=template)
    custom = (conn.options or {}).get("email") or {}
    if custom.get("body") or custom.get("subject"):
        # The tenant's own template (Auth0's liquid variables), rendered in a sandbox.
        values = {
            "code": context.get("code", ""),
            "link": context.get("link", ""),
            "application": {"name": client.name},
            "connection": {"name": conn.name},
        }
        try:
            if custom.get("subject"):
                subject = _SANDBOX_TEXT.from_string(custom["subject"]).render(values)
                row.subject = " ".join(subject.split())[:500] or row.subject
            if custom.get("body"):
                row.body_html = _SANDBOX.from_string(custom["body"]).render(values)
        except TemplateError as exc:
            event("passwordless", "template_error", connection=conn.name, error=type(exc).__name__)


_SANDBOX = SandboxedEnvironment(autoescape=True)
_SANDBOX_TEXT = SandboxedEnvironment(autoescape=False)  # the subject: one header line
