"""Passwordless fixtures: the loopback Twilio server, and the ``sms`` connection of T1
pointed at it (the seed points it at a closed port)."""

from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa

from login_site.models import Connection
from tests.conftest import T1
from tests.conftest import WEB_SECRET
from tests.fixtures.twilio import twilio  # noqa: F401 - fixture
from tests.fixtures.twilio import twilio_server  # noqa: F401 - fixture

OTP_GRANT = "http://auth0.com/oauth/grant-type/passwordless/otp"
PHONE = "+12025550123"  # valid for phonenumbers; the fake Twilio accepts it
NEW_EMAIL = "newcomer@example.test"


def set_options(app, name: str, **changes) -> None:
    """Change options of a T1 connection in the database (``None`` removes a key)."""
    with app.extensions["login_site.sessionmaker"]() as db:
        conn = db.scalar(sa.select(Connection).where(Connection.name == name))
        options = dict(conn.options or {})
        for key, value in changes.items():
            if value is None:
                options.pop(key, None)
            else:
                options[key] = value
        conn.options = options
        db.commit()


@pytest.fixture
def sms_app(app, twilio):  # noqa: F811 - fixture
    """The app with the ``sms`` connection sending to the loopback Twilio server."""
    set_options(app, "sms", twilio_api_base=twilio.url)
    return app


@pytest.fixture
def sms_live(live_server, twilio):  # noqa: F811 - fixture
    set_options(live_server.app, "sms", twilio_api_base=twilio.url)
    return live_server


def start(client, **fields):
    body = {"client_id": "web", "client_secret": WEB_SECRET, "connection": "email-otp"}
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not ...}
    return client.post("/passwordless/start", base_url=f"http://{T1}", json=body)


def token(client, username, otp, realm="email-otp", **fields):
    body = {
        "grant_type": OTP_GRANT,
        "client_id": "web",
        "client_secret": WEB_SECRET,
        "username": username,
        "otp": otp,
        "realm": realm,
        "scope": "openid profile email",
    }
    body.update(fields)
    return client.post("/oauth/token", base_url=f"http://{T1}", json=body)


def code_in(mailbox, to: str) -> str:
    message = mailbox.wait_for(to=to)
    match = re.search(r"^\s*(\d{6})\s*$", mailbox.text(message), re.MULTILINE)
    assert match, mailbox.text(message)
    return match.group(1)


def last_code(mailbox, to: str, previous: int = 0) -> str:
    """The code of the newest mail to ``to`` once there are more than ``previous``."""
    deadline = time.monotonic() + 5
    while len(mailbox.find(to=to)) <= previous:
        assert time.monotonic() < deadline, "no new mail"
        time.sleep(0.02)
    message = mailbox.find(to=to)[-1]
    match = re.search(r"^\s*(\d{6})\s*$", mailbox.text(message), re.MULTILINE)
    assert match
    return match.group(1)
