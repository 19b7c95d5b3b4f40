"""SMS through Twilio Programmable Messaging, with the ``twilio`` library.

The connection options name the account (``twilio_sid``, ``twilio_token``) and the sender
(``from``, an E.164 number, or ``messaging_service_sid``). ``twilio_api_base`` (ours; the
issue calls it ``twilio_api_base_url``, accepted as an alias) replaces
``https://api.twilio.com``, so tests talk to a Twilio-compatible server on loopback.

Every call is bounded: ``CONNECT_TIMEOUT_SECONDS`` to connect and
``READ_TIMEOUT_SECONDS`` to read, so a slow Twilio holds a worker for seconds, not minutes.
Twilio's answers become :class:`SmsFailed` through one table (:data:`FAILURES`):

| Twilio                                  | retried                      | our answer |
|-----------------------------------------|------------------------------|------------|
| 201                                     | -                            | sent       |
| 400 code 21211 (invalid ``To``), 21614  | no                           | 400        |
| 400 code 21408 (region not permitted)   | no                           | 400        |
| 400 code 21610 (recipient opted out)    | no                           | 400        |
| any other 4xx (account, sender)         | no                           | 503        |
| 429, 5xx                                | once, after a short backoff  | 503        |
| connection refused / connect timeout    | once (nothing was sent)      | 503        |
| read timeout, reset while reading       | never (it may have been sent)| 503        |

Errors read ``<text> (Code: <n>)`` as Auth0's ``sms_provider_error`` does (Lock looks for
``(Code: 21211)``). Logs carry the outcome and Twilio's error code, never the number, the
body or the credentials; the library's own request log is silenced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from twilio.base.exceptions import TwilioException
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client as TwilioClient
from urllib3.exceptions import NewConnectionError

from login_site.events import event
from login_site.vault import reveal

TWILIO_API_BASE = "https://api.twilio.com"
CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 5.0
RETRY_BACKOFF_SECONDS = 0.5
TEMPLATE = "Your verification code is: @@password@@"  # Auth0's default SMS text
MAX_BODY_LENGTH = 1600  # Twilio's limit for one message

# Twilio error code -> (our status, readable text). Codes not listed: 503 (our setup).
FAILURES: dict[int, tuple[int, str]] = {
    21211: (400, "The phone number is not valid."),
    21614: (400, "This phone number cannot receive text messages."),
    21408: (400, "Text messages to this country or region are not enabled."),
    21612: (400, "Text messages cannot be sent to this phone number."),
    21610: (400, "This phone number has opted out of text messages."),
}
UNAVAILABLE = "Text messages cannot be sent right now. Try again later."
NO_ANSWER = (
    "The text message service did not answer in time. The message may still arrive; "
    "wait a minute before asking for a new code."
)


class SmsFailed(Exception):
    """The message was not (surely) sent. ``status`` 400: the number's fault; 503: ours or
    Twilio's. ``maybe_sent`` after a read timeout."""

    def __init__(
        self,
        status: int,
        description: str,
        *,
        provider_code: int | None = None,
        maybe_sent: bool = False,
    ):
        text = f"{description} (Code: {provider_code})" if provider_code else description
        super().__init__(text)
        self.status = status
        self.description = text
        self.provider_code = provider_code
        self.maybe_sent = maybe_sent

    error = "sms_provider_error"


@dataclass(frozen=True)
class TwilioSettings:
    account_sid: str
    auth_token: str
    from_number: str | None = None
    messaging_service_sid: str | None = None
    api_base: str = TWILIO_API_BASE

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TwilioSettings:
        return cls(
            account_sid=str(reveal(options.get("twilio_sid")) or ""),
            auth_token=str(reveal(options.get("twilio_token")) or ""),
            from_number=options.get("from") or None,
            messaging_service_sid=options.get("messaging_service_sid") or None,
            api_base=str(
                options.get("twilio_api_base")
                or options.get("twilio_api_base_url")
                or TWILIO_API_BASE
            ).rstrip("/"),
        )


def check_options(options: Mapping[str, Any]) -> str | None:
    """The first problem with the Twilio options, named by key, or None."""
    provider = options.get("provider", "twilio")
    if provider not in (None, "twilio"):
        return "options.provider: only twilio is supported"
    for key in ("twilio_sid", "twilio_token", "from", "messaging_service_sid", "template"):
        if options.get(key) is not None and not isinstance(options[key], str):
            return f"options.{key} must be a string"
    for key in ("twilio_api_base", "twilio_api_base_url"):
        value = options.get(key)
        if value is not None:
            parts = urlsplit(str(value))
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
                return f"options.{key} must be an http(s) base URL"
    template = options.get("template")
    if template is not None and len(template) > MAX_BODY_LENGTH:
        return f"options.template: at most {MAX_BODY_LENGTH} characters"
    return None


def message_text(options: Mapping[str, Any], code: str, application_name: str) -> str:
    """The SMS body: Auth0's ``@@password@@`` placeholder (and ``{{ code }}``,
    ``{{ application.name }}``), replaced as plain text, never evaluated."""
    text = str(options.get("template") or TEMPLATE)
    for placeholder in ("@@password@@", "{{ code }}", "{{code}}"):
        text = text.replace(placeholder, code)
    for placeholder in ("{{ application.name }}", "{{application.name}}"):
        text = text.replace(placeholder, application_name)
    if code not in text:  # a template without the placeholder must still carry the code
        text = f"{text} {code}".strip()
    return text[:MAX_BODY_LENGTH]


class _HttpClient(TwilioHttpClient):
    """The library's client with both timeouts bounded and another base URL."""

    def __init__(self, api_base: str):
        super().__init__(pool_connections=False)
        self.timeout = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)
        self.api_base = api_base

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        target = self.api_base + parts.path + (f"?{parts.query}" if parts.query else "")
        return super().request(method, target, *args, **kwargs)


def _never_sent(exc: requests.ConnectionError) -> bool:
    """Connection refused or timed out while connecting: Twilio never saw the request."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def send(
    settings: TwilioSettings,
    to: str,
    body: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Send ``body`` to the E.164 number ``to``; return Twilio's message SID or raise
    :class:`SmsFailed`. At most two requests (see the module's table)."""
    if not settings.account_sid or not settings.auth_token:
        _log("not_configured")
        raise SmsFailed(503, UNAVAILABLE)
    if not (settings.from_number or settings.messaging_service_sid):
        _log("no_sender")
        raise SmsFailed(503, UNAVAILABLE)
    # The library logs each request's URL and headers at INFO: never let them reach a log.
    logging.getLogger("twilio").setLevel(logging.WARNING)
    client = TwilioClient(
        settings.account_sid,
        settings.auth_token,
        http_client=_HttpClient(settings.api_base),
        environment={"TWILIO_IGNORE_ENVIRONMENT": "1"},  # no TWILIO_REGION/EDGE from os.environ
    )
    sender = (
        {"messaging_service_sid": settings.messaging_service_sid}
        if settings.messaging_service_sid
        else {"from_": settings.from_number}
    )
    for attempt in (1, 2):
        try:
            message = client.messages.create(to=to, body=body, **sender)
        except TwilioRestException as exc:
            if (exc.status == 429 or exc.status >= 500) and attempt == 1:
                _log("retry", status=exc.status, provider_code=exc.code)
                sleep(RETRY_BACKOFF_SECONDS)
                continue
            raise _mapped(exc.status, exc.code) from None
        except requests.ConnectionError as exc:
            if _never_sent(exc) and attempt == 1:
                _log("retry", status="connect_error")
                sleep(RETRY_BACKOFF_SECONDS)
                continue
            maybe = not _never_sent(exc)
            _log("read_error" if maybe else "connect_error")
            raise SmsFailed(503, NO_ANSWER if maybe else UNAVAILABLE, maybe_sent=maybe) from None
        except requests.Timeout:
            # A read timeout: Twilio may have accepted the message. Never sent twice.
            _log("read_timeout")
            raise SmsFailed(503, NO_ANSWER, maybe_sent=True) from None
        except (TwilioException, requests.RequestException) as exc:
            _log("error", error=type(exc).__name__)
            raise SmsFailed(503, UNAVAILABLE) from None
        _log("sent", attempts=attempt)
        return message.sid
    raise AssertionError("unreachable")


def _mapped(status: int, code: int | None) -> SmsFailed:
    if status == 429 or status >= 500:
        _log("unavailable", status=status, provider_code=code)
        return SmsFailed(503, UNAVAILABLE, provider_code=code)
    known = FAILURES.get(code or 0)
    if known is not None and status == 400:
        _log("rejected", status=status, provider_code=code)
        return SmsFailed(known[0], known[1], provider_code=code)
    # Authentication, account or sender problems: ours to fix, not the user's; the code
    # goes to the log only.
    _log("provider_error", status=status, provider_code=code)
    return SmsFailed(503, UNAVAILABLE)


def _log(outcome: str, **fields: object) -> None:
    event("sms", outcome, provider="twilio", **fields)
