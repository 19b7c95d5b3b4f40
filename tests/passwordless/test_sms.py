"""SMS codes through the loopback Twilio server: numbers, templates, and each Twilio
failure (checklist PL-04, PL-05, PW-09..PW-12; issue 6's failure matrix)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from login_site import sms
from login_site.models import PasswordlessCode
from login_site.models import User
from tests.conftest import T1
from tests.conftest import count
from tests.fixtures.twilio import ACCOUNT_SID
from tests.passwordless.conftest import PHONE
from tests.passwordless.conftest import set_options
from tests.passwordless.conftest import start
from tests.passwordless.conftest import token


def sms_start(client, phone=PHONE, **fields):
    return start(client, connection="sms", phone_number=phone, **fields)


def live_codes(app) -> int:
    with app.extensions["login_site.sessionmaker"]() as db:
        return db.scalar(
            sa.select(sa.func.count())
            .select_from(PasswordlessCode)
            .where(PasswordlessCode.live_key.is_not(None))
        )


def test_sms_code_logs_a_new_user_in(sms_app, client, twilio):
    response = sms_start(client)
    assert response.status_code == 200, response.json
    assert response.json == {"_id": response.json["_id"], "phone_number": PHONE}
    message = twilio.wait_for(PHONE)
    assert message.account_sid == ACCOUNT_SID and message.from_ == "+15005550006"
    assert message.body == f"Your verification code is: {message.code}"
    answer = token(client, PHONE, message.code, realm="sms")
    assert answer.status_code == 200, answer.json
    with sms_app.extensions["login_site.sessionmaker"]() as db:
        user = db.scalar(sa.select(User).where(User.phone_number == PHONE))
        assert user.user_id.startswith("sms|") and user.phone_verified and user.email is None
        row = db.scalar(sa.select(PasswordlessCode))
        assert (row.expires_at - row.created_at).total_seconds() == 300


def test_messaging_service_sid_replaces_the_from_number(sms_app, client, twilio):
    set_options(sms_app, "sms", messaging_service_sid="MG0123456789abcdef0123456789abcdef")
    assert sms_start(client).status_code == 200
    message = twilio.wait_for(PHONE)
    assert message.messaging_service_sid == "MG0123456789abcdef0123456789abcdef"
    assert message.from_ is None


def test_the_sms_template_is_the_connections(sms_app, client, twilio):
    set_options(sms_app, "sms", template="{{ application.name }} code @@password@@ (5 min)")
    sms_start(client)
    message = twilio.wait_for(PHONE)
    assert message.body == f"web code {message.code} (5 min)"


@pytest.mark.parametrize(
    "phone",
    [
        "+1",
        "abc",
        "+12345678901234567890",  # 20 digits
        "+1 555 0100 ext 2",
        "12025550123",  # no +
        "+15555550100",  # fictional 555-01xx: not a valid number
        "+882123456789",  # international networks: premium, no country
        "+19005551234",  # US premium rate
    ],
)
def test_invalid_or_costly_numbers_are_refused_before_twilio(sms_app, client, twilio, phone):
    response = sms_start(client, phone=phone)
    assert response.status_code == 400, response.json
    assert response.json["error"] == "bad.phone_number"
    assert twilio.requests == [] and count(sms_app, PasswordlessCode) == 0


def test_countries_outside_the_allow_list_are_refused(sms_app, client, twilio):
    set_options(sms_app, "sms", allowed_countries=["FR", "DE"])
    response = sms_start(client)
    assert response.status_code == 400 and response.json["error"] == "bad.phone_number"
    assert "country" in response.json["error_description"]
    assert twilio.requests == []
    assert sms_start(client, phone="+33612345678").status_code == 200


def test_numbers_sharing_a_prefix_are_limited_together(sms_app, client, twilio):
    # SMS pumping walks a number range (PW-10): 10 per hour per prefix by default.
    set_options(sms_app, "sms", rate_limits={"per_prefix": "3/hour"})
    answers = [sms_start(client, phone=f"+1202555012{i}").status_code for i in range(5)]
    assert answers == [200, 200, 200, 429, 429]
    assert len(twilio.messages) == 3
    assert sms_start(client, phone="+12125550123").status_code == 200


def test_the_fourth_sms_to_one_number_in_ten_minutes_is_refused(sms_app, client, twilio):
    answers = [sms_start(client).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    assert len(twilio.requests) == 3


# --- Twilio's failures ----------------------------------------------------------------------


def failure(response, status: int, description_part: str) -> dict:
    assert response.status_code == status, response.json
    assert response.json["error"] == "sms_provider_error"
    assert description_part in response.json["error_description"]
    return response.json


def test_twilio_21211_invalid_number_is_a_400_with_the_code(sms_app, client, twilio):
    twilio.fail_next("21211")
    failure(sms_start(client), 400, "(Code: 21211)")
    assert [r["outcome"] for r in twilio.requests] == ["21211"]
    assert live_codes(sms_app) == 0  # the code that was never sent is dead


def test_twilio_test_number_for_invalid_numbers_is_a_400(sms_app, client, twilio):
    failure(sms_start(client, phone="+15005550001"), 400, "The phone number is not valid.")


def test_twilio_21408_region_not_permitted_is_a_400(sms_app, client, twilio):
    twilio.fail_next("21408")
    failure(sms_start(client), 400, "(Code: 21408)")
    assert len(twilio.requests) == 1


@pytest.mark.parametrize("kind", ["429", "500"])
def test_one_429_or_5xx_is_retried_once_and_the_sms_goes_out(sms_app, client, twilio, kind):
    twilio.fail_next(kind)
    response = sms_start(client)
    assert response.status_code == 200, response.json
    assert [r["outcome"] for r in twilio.requests] == [kind, "sent"]
    message = twilio.wait_for(PHONE)
    assert token(client, PHONE, message.code, realm="sms").status_code == 200


@pytest.mark.parametrize("kind", ["429", "500"])
def test_a_second_429_or_5xx_is_a_503(sms_app, client, twilio, kind):
    twilio.fail_next(kind, times=2)
    failure(sms_start(client), 503, "Try again later")
    assert [r["outcome"] for r in twilio.requests] == [kind, kind]
    assert live_codes(sms_app) == 0


def test_a_read_timeout_is_a_503_and_is_not_retried(sms_app, client, twilio):
    twilio.fail_next("slow")
    began = time.monotonic()
    body = failure(sms_start(client), 503, "may still arrive")
    waited = time.monotonic() - began
    assert sms.READ_TIMEOUT_SECONDS <= waited < sms.READ_TIMEOUT_SECONDS + 3, waited
    assert body["error_description"].isascii()
    # Twilio did send it after all: the code stays good, and it was sent once.
    message = twilio.wait_for(PHONE, timeout=5)
    assert len(twilio.requests) == 1
    assert token(client, PHONE, message.code, realm="sms").status_code == 200


def test_a_connection_reset_while_reading_is_not_retried(sms_app, client, twilio):
    twilio.fail_next("reset")
    failure(sms_start(client), 503, "may still arrive")
    assert [r["outcome"] for r in twilio.requests] == ["reset"]


def test_an_unreachable_twilio_is_retried_once_then_a_503(app, client, twilio):
    # The seed's base URL: a closed port, so both connects are refused.
    began = time.monotonic()
    failure(sms_start(client), 503, "Try again later")
    assert time.monotonic() - began < sms.CONNECT_TIMEOUT_SECONDS * 2 + 2
    assert twilio.requests == []


def test_wrong_twilio_credentials_are_a_503_without_details(sms_app, client, twilio):
    set_options(sms_app, "sms", twilio_token="not-the-token")
    body = failure(sms_start(client), 503, "Try again later")
    assert "20003" not in body["error_description"]
    assert [r["outcome"] for r in twilio.requests] == ["20003"]


def test_the_otp_grant_on_sms_uses_the_phone_number_wording(sms_app, client, twilio):
    sms_start(client)
    twilio.wait_for(PHONE)
    answer = token(client, PHONE, "000000", realm="sms")
    assert answer.status_code == 403
    assert answer.json == {
        "error": "invalid_grant",
        "error_description": "Wrong phone number or verification code.",
    }


def test_sms_start_needs_a_phone_number(sms_app, client, twilio):
    response = start(client, connection="sms")
    assert response.status_code == 400 and response.json["error"] == "bad.phone_number"
    assert response.json["error_description"] == "Missing required property: phone_number"
    response = client.post(
        "/passwordless/start",
        base_url=f"http://{T1}",
        json={
            "client_id": "web",
            "client_secret": "web-secret-0123456789abcdefghijklmnop",
            "connection": "sms",
            "phone_number": "+12025550123",
            "send": "link",
        },
    )
    assert response.status_code == 400 and response.json["error"] == "bad.send"
    assert twilio.requests == []


def test_neither_the_number_nor_the_code_reaches_the_logs(sms_app, client, twilio, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    twilio.fail_next("429")
    sms_start(client)
    code = twilio.wait_for(PHONE).code
    token(client, PHONE, code, realm="sms")
    assert code not in caplog.text
    assert PHONE not in caplog.text and PHONE[1:] not in caplog.text
