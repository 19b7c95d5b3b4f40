"""Passwordless login over HTTP: the Authentication API and the hosted-page screens.

``bp`` is the JSON API for applications (CSRF-exempt, CORS for ``/passwordless/start``):

- ``POST /passwordless/start`` (compat §10.3) sends a code or a magic link. Its answer is
  the same whether or not a user exists (checklist PL-07). Errors in the OAuth shape with
  Auth0's codes (``bad.connection``, ``bad.email``, ``bad.phone_number``, ``bad.authParams``,
  ``sms_provider_error``...).
- ``POST /passwordless/verify`` (compat §10.4) checks a code without spending it.

``pages`` holds the browser screens (CSRF-protected forms):

- ``POST /login/passwordless`` sends from the hosted login page, then ``GET`` shows "we
  sent you a code" (or "check your email" for a link), ``POST /login/passwordless/verify``
  takes the code. The code is bound to the login transaction, hence to this browser.
- ``GET /passwordless/verify_redirect`` (compat §10.4; magic links point here) never spends
  anything: it shows a confirm button, so mail scanners that fetch links (GET, HEAD) do not
  log anyone in (checklist PL-06). The ``POST`` spends the code and finishes the login.
  The one exception is auth0.js on our own page, which navigates here with the code right
  after ``/passwordless/verify``: a valid ``_csrf`` of this browser's session proves that,
  and the code is spent at once.

Which browser a magic link works in: a link asked for on the hosted page finishes only
the login transaction that asked, in the browser that asked (the transaction is bound to
it). Opened anywhere else (another browser, a private window, the phone's mail app) it
says so, spends nothing, and still works in the right browser. A link asked for through
the API (no transaction) carries the validated ``authParams`` and finishes in whichever
browser confirms it, as Auth0's do; the application's own ``state`` check then decides.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Blueprint
from flask import current_app
from flask import g
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_babel import gettext as _
from flask_wtf.csrf import validate_csrf
from werkzeug.datastructures import MultiDict
from wtforms import ValidationError

from login_site import accounts
from login_site import config_cache
from login_site import mail
from login_site import otp
from login_site import sms
from login_site.api import body
from login_site.connections.base import PASSWORDLESS_STRATEGIES
from login_site.connections.base import LoginFailed
from login_site.connections.passwordless import E164_PATTERN_TEXT
from login_site.connections.passwordless import MAIL_TEMPLATES
from login_site.connections.passwordless import WRONG_CODE
from login_site.connections.passwordless import BadIdentifier
from login_site.connections.passwordless import authenticate
from login_site.connections.passwordless import find_connection
from login_site.connections.passwordless import send as send_secret
from login_site.connections.passwordless import strategy_for
from login_site.db import get_db
from login_site.errors import LoginSiteError
from login_site.errors import PageError
from login_site.events import event
from login_site.i18n import N_
from login_site.login import pages as login_pages
from login_site.login import transaction
from login_site.login.views import finish_login
from login_site.models import Client
from login_site.models import Connection
from login_site.oauth import authorize
from login_site.oauth.authorize import AuthorizeRequest
from login_site.oauth.authorize import RedirectError
from login_site.security import ratelimit
from login_site.security.secrets import same
from login_site.tenancy import absolute
from login_site.tenancy import current_tenant
from login_site.tenancy import issuer
from login_site.vault import keyring

bp = Blueprint("passwordless", __name__)
pages = Blueprint("passwordless_pages", __name__)

START_FIELDS = {"client_id", "client_secret", "connection", "email", "phone_number", "send"}
START_FIELDS |= {"authParams", "state", "_csrf", "_intstate", "request_language"}
SENDS = ("code", "link")
# The transaction key holding what the hosted page sent: connection, identifier, send.
TX_KEY = "passwordless"
BAD_AUTH_PARAMS = "error in authParams - invalid type: string (expected object)"
# Texts of the hosted-page screens.
FRIENDLIER = {
    E164_PATTERN_TEXT: N_("Enter the number with its country code, for example +44 7700 900123.")
}
TOO_MANY = N_("Too many codes were requested. Wait a few minutes and try again.")
SMS_FAILED = {
    400: N_("We could not send a text message to this number. Check it and try again."),
    503: N_(
        "We could not send the text message right now. "
        "If it does not arrive, wait a minute and ask for a new code."
    ),
}
WRONG = N_("That code is not right. Check it and try again.")
DEAD = N_("This code has expired or was entered wrong too many times. Request a new code.")
LINK_INVALID = N_("This sign-in link has expired or was already used. Request a new one.")
OTHER_BROWSER = N_(
    "This sign-in link works only in the browser where you asked for it. Open it there, "
    "or go back to the application and start again."
)


class ApiError(LoginSiteError):
    """An answer of this API in the OAuth shape, with Auth0's error codes."""

    def __init__(self, error: str, description: str, status: int = 400, headers=None):
        super().__init__(description, status=status)
        self.error = error
        self.headers = headers or {}


@pages.errorhandler(RedirectError)
def _redirect_error(exc: RedirectError):
    event("authorize", exc.error.error, client_id=g.get("client_id"))
    return authorize.error_response(exc)


@bp.record_once
def _setup(state) -> None:
    # The mail templates this module sends (mail.render only knows registered ones).
    for name, needs in MAIL_TEMPLATES.items():
        mail.TEMPLATES.setdefault(name, needs)


# --- shared steps ---------------------------------------------------------------------------


def _client(data: dict[str, Any]) -> Client:
    client_id = data.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise ApiError("bad.client_id", "Missing required property: client_id")
    client = config_cache.client(get_db(), current_tenant(), client_id[:128])
    if client is None:
        raise ApiError("bad.client_id", "Unknown client.")
    g.cors_client_pk = client.id
    return client


def _connection(client: Client, name: Any) -> Connection:
    if not isinstance(name, str) or not name:
        raise ApiError("bad.connection", "Missing required property: connection")
    conn = find_connection(get_db(), current_tenant(), client, name[:128])
    if conn is None:
        raise ApiError("bad.connection", "Connection does not exist")
    if client.id not in conn.enabled_client_ids:
        raise ApiError("bad.connection", "Connection is disabled")
    if conn.strategy not in PASSWORDLESS_STRATEGIES:
        raise ApiError(
            "bad.connection",
            "Invalid connection strategy. It must either be a passwordless connection",
        )
    return conn


def _hosted_transaction(client: Client, state: Any):
    """The live login transaction of this browser named by ``state``, for this client."""
    if not isinstance(state, str) or not state:
        return None, None
    try:
        tx, areq = transaction.load(get_db(), current_tenant(), state)
    except PageError:
        return None, None
    if tx.client_pk != client.id:
        return None, None
    return tx, areq


def _client_authenticated(client: Client, data: dict[str, Any]) -> bool:
    """Confidential clients prove their secret (compat §10.3), in the body or Basic."""
    if client.is_public:
        return True
    secret = data.get("client_secret")
    if not isinstance(secret, str):
        header = request.authorization
        if header is None or header.type != "basic" or header.username != client.client_id:
            return False
        secret = header.password
    if not client.client_secret_enc or not secret:
        return False
    return same(keyring().decrypt(client.client_secret_enc), secret)


def _rate_limit_headers(exc: otp.SendLimited) -> dict[str, str]:
    """Headers of a 429 for a send limit (compat §0.7). Where the rate limiter also limits
    this path (``/passwordless/start``), it adds its own ``X-RateLimit-*`` headers to every
    answer and keeps the later of the two ``Retry-After``; ours would be duplicates."""
    window = exc.window_seconds
    headers = {"Retry-After": str(window)}
    if ratelimit.endpoint_class() is None or not current_app.config.get("RATE_LIMIT_ENABLED"):
        headers.update(
            {
                "X-RateLimit-Limit": str(exc.amount),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time()) + window),
            }
        )
    return headers


def _link_builder(conn: Connection, client: Client, identifier: str):
    def link_for(secret: str) -> str:
        field = strategy_for(conn).identifier_field
        path = url_for(
            "passwordless_pages.verify_redirect",
            client_id=client.client_id,
            connection=conn.name,
            verification_code=secret,
            **{field: identifier},
        )
        return absolute(path)

    return link_for


def _magic_link_request(client: Client, conn: Connection, auth_params: Any) -> dict[str, Any]:
    """The authorize request a magic link finishes: the connection's ``authParams``
    defaults, then the caller's, checked like ``/authorize`` (registered redirect URI,
    PKCE for public clients). Nothing is sent when it fails (checklist PW-16)."""
    merged = {**((conn.options or {}).get("authParams") or {}), **(auth_params or {})}
    params = {k: v for k, v in merged.items() if isinstance(v, str | int) and v != ""}
    params.setdefault("response_type", "code")
    params["client_id"] = client.client_id
    args = MultiDict({k: str(v) for k, v in params.items()})
    try:
        areq = authorize.parse(get_db(), current_tenant(), args, issuer())
    except PageError as exc:
        raise ApiError("bad.authParams", f"error in authParams - {exc.description}") from None
    except RedirectError as exc:
        raise ApiError("bad.authParams", f"error in authParams - {exc.error.description}") from None
    return areq.to_params()


# --- the API --------------------------------------------------------------------------------


@bp.post("/passwordless/start")
def start():
    try:
        data = body.read()
    except body.BadBody as exc:
        raise ApiError("bad.request", str(exc)) from None
    extra = sorted(set(data) - START_FIELDS)
    if extra:
        raise ApiError(
            "bad.request", f"the following properties are not allowed: {', '.join(extra)[:200]}"
        )
    db, tenant = get_db(), current_tenant()
    client = _client(data)
    raw_params = data.get("authParams")
    state = data.get("state")
    if not state and isinstance(raw_params, dict):
        state = raw_params.get("state")  # auth0.js on the hosted page: the transaction
    tx, _areq = _hosted_transaction(client, state)
    if tx is None and not _client_authenticated(client, data):
        raise ApiError("invalid_client", "Client authentication failed.", 401)
    conn = _connection(client, data.get("connection"))
    strategy = strategy_for(conn)
    send = data.get("send")
    if conn.strategy == "sms":
        if send not in (None, "code"):
            raise ApiError("bad.send", "SMS connections send codes only.")
        send = "code"
    elif send is None:
        send = "link"  # Auth0's default (compat §10.3)
    elif send not in SENDS:
        raise ApiError("bad.send", "send must be code or link.")
    value = data.get(strategy.identifier_field)
    try:
        identifier = strategy.normalise(conn, value if isinstance(value, str) else "")
    except BadIdentifier as exc:
        raise ApiError(exc.code, exc.description) from None
    auth_params = None
    if raw_params is not None and not isinstance(raw_params, dict):
        raise ApiError("bad.authParams", BAD_AUTH_PARAMS)
    if send == "link" and tx is None:
        auth_params = _magic_link_request(client, conn, raw_params)
    _send(
        db,
        tenant,
        conn,
        client,
        identifier,
        send,
        tx_id=tx.id if tx else None,
        auth_params=auth_params,
    )
    answer: dict[str, Any] = {"_id": secrets.token_hex(12)}
    if conn.strategy == "sms":
        answer["phone_number"] = identifier
    else:
        answer.update(email=identifier, email_verified=False)
    return jsonify(answer)


def _send(db, tenant, conn, client, identifier, send, *, tx_id=None, auth_params=None) -> None:
    try:
        send_secret(
            db,
            tenant,
            conn,
            client,
            identifier,
            send=send,
            tx_id=tx_id,
            auth_params=auth_params,
            link_for=_link_builder(conn, client, identifier),
        )
    except otp.SendLimited as exc:
        db.rollback()
        event("passwordless", "send_limited", connection=conn.name, scope=exc.scope)
        raise ApiError(
            "too_many_requests",
            "Too many codes were requested for this recipient. Wait before trying again.",
            429,
            _rate_limit_headers(exc),
        ) from None
    except sms.SmsFailed as exc:
        raise ApiError(exc.error, exc.description, exc.status) from None


@bp.post("/passwordless/verify")
def verify():
    """auth0.js ``passwordlessVerify``: is this code right? It stays unspent (compat §10.4)."""
    try:
        data = body.read()
    except body.BadBody as exc:
        raise ApiError("bad.request", str(exc)) from None
    db, tenant = get_db(), current_tenant()
    client = _client(data)
    conn = _connection(client, data.get("connection"))
    strategy = strategy_for(conn)
    value = data.get(strategy.identifier_field)
    code = data.get("verification_code")
    try:
        identifier = strategy.normalise(conn, value if isinstance(value, str) else "")
    except BadIdentifier as exc:
        raise ApiError(exc.code, exc.description) from None
    if not isinstance(code, str) or not code:
        raise ApiError("bad.request", "Missing required property: verification_code")
    try:
        otp.redeem(
            db,
            tenant,
            conn,
            identifier,
            code[:200],
            client_pk=client.id,
            consume=False,
            check_tx=False,  # nothing is spent or issued here
        )
    except otp.CodeRejected:
        event("passwordless", "verify_failed", connection=conn.name, client_id=client.client_id)
        raise ApiError("invalid_user_password", WRONG_CODE[conn.strategy], 403) from None
    return jsonify({})


@bp.post("/passwordless/challenge")
def challenge():
    """auth0.js asks whether a captcha is needed before sending; never here (compat §9)."""
    return jsonify({"required": False})


# --- the hosted page ------------------------------------------------------------------------


def _offered(tx, areq, name: str | None) -> Connection | None:
    db, tenant = get_db(), current_tenant()
    for offer in login_pages.offers(db, tenant, areq.client, only=areq.connection):
        if offer.connection.name == name and offer.connection.strategy in PASSWORDLESS_STRATEGIES:
            return offer.connection
    return None


def _screen(tx, areq, conn, screen: str, status: int = 200, **context):
    sent = (tx.params or {}).get(TX_KEY) or {}
    body_ = render_template(
        "login/passwordless_code.html",
        tenant=current_tenant(),
        client=areq.client,
        state=tx.id,
        connection=conn,
        screen=screen,
        identifier=context.pop("identifier", sent.get("identifier", "")),
        send=context.pop("send", sent.get("send", "code")),
        back=url_for("login.login_page", state=tx.id),
        **context,
    )
    return body_, status, {"Cache-Control": "no-store"}


@pages.post("/login/passwordless")
def page_start():
    db, tenant = get_db(), current_tenant()
    tx, areq = transaction.load(db, tenant, request.form.get("state"))
    g.ui_locales = areq.ui_locales
    conn = _offered(tx, areq, request.form.get("connection"))
    if conn is None:
        raise PageError(
            N_("Sign-in method not available"),
            N_("This sign-in method is not available for this application."),
        )
    strategy = strategy_for(conn)
    typed = request.form.get(strategy.identifier_field, "")
    send = request.form.get("send") if conn.strategy == "email" else "code"
    if send not in SENDS:
        send = "code"
    try:
        identifier = strategy.normalise(conn, typed, lenient=True)
    except BadIdentifier as exc:
        message = FRIENDLIER.get(exc.description, exc.description)
        return _screen(tx, areq, conn, "start", 400, identifier=typed, error=_(message))
    limit = current_app.config.get("RATE_LIMIT_PASSWORDLESS_START")
    if (
        current_app.config.get("RATE_LIMIT_ENABLED")
        and limit
        and not ratelimit.counter_hit(limit, "passwordless_page", ratelimit.by_ip())
    ):
        event("rate_limit", "exceeded", endpoint_class="passwordless_page")
        return _screen(tx, areq, conn, "start", 429, identifier=typed, error=_(TOO_MANY))
    try:
        send_secret(
            db,
            tenant,
            conn,
            areq.client,
            identifier,
            send=send,
            tx_id=tx.id,
            link_for=_link_builder(conn, areq.client, identifier),
        )
    except otp.SendLimited as exc:
        db.rollback()
        event("passwordless", "send_limited", connection=conn.name, scope=exc.scope)
        body_, status, headers = _screen(
            tx, areq, conn, "start", 429, identifier=typed, error=_(TOO_MANY)
        )
        return body_, status, {**headers, **_rate_limit_headers(exc)}
    except sms.SmsFailed as exc:
        return _screen(
            tx, areq, conn, "start", exc.status, identifier=typed, error=_(SMS_FAILED[exc.status])
        )
    tx.params = {
        **tx.params,
        TX_KEY: {"connection": conn.name, "identifier": identifier, "send": send},
    }
    db.commit()
    return redirect(url_for("passwordless_pages.page_code", state=tx.id), code=303)


def _sent(tx, areq):
    """The connection and identifier the hosted page sent a code to, or the expired page."""
    sent = (tx.params or {}).get(TX_KEY)
    conn = _offered(tx, areq, sent.get("connection")) if sent else None
    if conn is None:
        raise transaction.EXPIRED
    return conn, sent


@pages.get("/login/passwordless")
def page_code():
    tx, areq = transaction.load(get_db(), current_tenant(), request.args.get("state"))
    g.ui_locales = areq.ui_locales
    conn, sent = _sent(tx, areq)
    return _screen(tx, areq, conn, "link" if sent.get("send") == "link" else "code")


@pages.post("/login/passwordless/verify")
def page_verify():
    db, tenant = get_db(), current_tenant()
    tx, areq = transaction.load(db, tenant, request.form.get("state"))
    g.ui_locales = areq.ui_locales
    conn, sent = _sent(tx, areq)
    code = (request.form.get("code") or "").strip().replace(" ", "")[:200]
    strategy = strategy_for(conn)
    try:
        profile = strategy.complete(conn, tx, {"identifier": sent["identifier"], "code": code})
    except LoginFailed as failure:
        db.rollback()
        event(
            "login",
            "failure",
            reason=failure.reason,
            connection=conn.name,
            client_id=areq.client.client_id,
        )
        message = {
            "code_wrong": WRONG,
            "code_dead": DEAD,
            "blocked": N_("Your account is blocked. Contact the administrator."),
            "signup_disabled": N_("We could not log you in with this code."),
        }.get(failure.reason, WRONG)
        return _screen(
            tx, areq, conn, "code", 400, error=_(message), dead=failure.reason == "code_dead"
        )
    user = accounts.user_for_identity(db, conn, profile.user_id)
    return finish_login(tx, areq, user, conn.name)


# --- magic links and auth0.js's verify_redirect ---------------------------------------------


def _link_context(args) -> tuple[Client, Connection, str, str]:
    """Client, connection, normalised identifier and code named by the link, or a page."""
    invalid = PageError(N_("Link not valid"), LINK_INVALID)
    data = {k: args.get(k) for k in ("client_id", "connection")}
    try:
        client = _client(data)
        conn = _connection(client, data["connection"])
    except ApiError:
        raise invalid from None
    strategy = strategy_for(conn)
    try:
        identifier = strategy.normalise(conn, args.get(strategy.identifier_field) or "")
    except BadIdentifier:
        raise invalid from None
    code = args.get("verification_code") or ""
    if not code or len(code) > 200:
        raise invalid
    return client, conn, identifier, code


def _message(title: str, message: str, status: int):
    body_ = render_template(
        "selfservice/message.html", tenant=current_tenant(), title=title, message=message, back=None
    )
    return body_, status, {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@pages.get("/passwordless/verify_redirect")
def verify_redirect():
    """A magic link (or auth0.js after ``/passwordless/verify``). GET and HEAD spend
    nothing: mail scanners fetch links. A confirm button POSTs back here."""
    client, conn, identifier, code = _link_context(request.args)
    if _own_page_navigation():
        return _finish_link(client, conn, identifier, code, request.args)
    row = otp.find_live(get_db(), current_tenant(), conn, identifier)
    if row is None:
        return _message(N_("Link not valid"), LINK_INVALID, 400)
    if row.tx_id and _hosted_transaction(client, row.tx_id)[0] is None:
        return _message(N_("Open the link in the same browser"), OTHER_BROWSER, 400)
    body_ = render_template(
        "login/passwordless_confirm.html",
        tenant=current_tenant(),
        client=client,
        identifier=identifier,
        fields={k: v for k, v in request.args.items() if k != "_csrf"},
    )
    return body_, 200, {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@pages.post("/passwordless/verify_redirect")
def verify_redirect_confirm():
    client, conn, identifier, code = _link_context(request.form)
    return _finish_link(client, conn, identifier, code, request.form)


def _own_page_navigation() -> bool:
    token = request.args.get("_csrf")
    if not token:
        return False
    try:
        validate_csrf(token)
    except ValidationError:
        return False
    return True


def _finish_link(client: Client, conn: Connection, identifier: str, code: str, args):
    db, tenant = get_db(), current_tenant()
    row = otp.find_live(db, tenant, conn, identifier)
    if row is None:
        return _message(N_("Link not valid"), LINK_INVALID, 400)
    tx, areq = None, None
    if row.tx_id:
        tx, areq = _hosted_transaction(client, row.tx_id)
        if tx is None:
            # Another browser: nothing is spent, the link still works where it was asked for.
            event("passwordless", "link_other_browser", connection=conn.name)
            return _message(N_("Open the link in the same browser"), OTHER_BROWSER, 400)
    else:
        tx, areq = _hosted_transaction(client, args.get("state"))
    if areq is None and row.auth_params:
        areq = AuthorizeRequest.from_params(client, row.auth_params)
    if areq is None:
        params = MultiDict(
            {k: v for k, v in args.items() if k in authorize.FORWARDED or k == "client_id"}
        )
        params.setdefault("response_type", "code")
        areq = authorize.parse(db, tenant, params, issuer())
    g.ui_locales = areq.ui_locales
    try:
        user = authenticate(
            db, conn, identifier, code, client_pk=client.id, tx_id=tx.id if tx else None
        )
    except LoginFailed as failure:
        db.rollback()
        event(
            "login",
            "failure",
            reason=failure.reason,
            connection=conn.name,
            client_id=client.client_id,
        )
        if failure.reason == "blocked":
            return _message(
                N_("Account blocked"),
                N_("Your account is blocked. Contact the administrator."),
                403,
            )
        return _message(N_("Link not valid"), LINK_INVALID, 400)
    return finish_login(tx, areq, user, conn.name)
