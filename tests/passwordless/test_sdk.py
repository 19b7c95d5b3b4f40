"""auth0-python 6.8.0, unchanged, against the live server: ``Passwordless.email`` /
``Passwordless.sms`` and ``GetToken.passwordless_login`` (compat §2.1, §10.3).

The SDK names the connections ``email`` and ``sms``; T1's email connection is called
``email-otp``, which the name ``email`` finds (the one ``email`` connection of the client)."""

from __future__ import annotations

import pytest
from auth0.authentication import GetToken
from auth0.authentication import Passwordless
from auth0.authentication.exceptions import Auth0Error
from auth0.authentication.exceptions import RateLimitError
from auth0.authentication.token_verifier import AsymmetricSignatureVerifier
from auth0.authentication.token_verifier import TokenVerifier

from tests.conftest import WEB_SECRET
from tests.passwordless.conftest import NEW_EMAIL
from tests.passwordless.conftest import PHONE
from tests.passwordless.conftest import code_in

SCOPE = "openid profile email"


@pytest.fixture
def domain(live_server) -> str:
    return f"127.0.0.1:{live_server.port}"


def passwordless(domain: str) -> Passwordless:
    return Passwordless(domain, "web", client_secret=WEB_SECRET, protocol="http")


def get_token(domain: str) -> GetToken:
    return GetToken(domain, "web", client_secret=WEB_SECRET, protocol="http")


def verify(live_server, id_token: str) -> dict:
    issuer = live_server.api_url("t1")
    verifier = TokenVerifier(
        signature_verifier=AsymmetricSignatureVerifier(f"{issuer}.well-known/jwks.json"),
        issuer=issuer,
        audience="web",
    )
    return verifier.verify(id_token)


def test_email_code_with_the_sdk(live_server, domain, mailbox):
    answer = passwordless(domain).email(NEW_EMAIL, send="code")
    assert answer["email"] == NEW_EMAIL and answer["_id"]
    code = code_in(mailbox, NEW_EMAIL)

    tokens = get_token(domain).passwordless_login(NEW_EMAIL, code, "email", SCOPE, None)

    claims = verify(live_server, tokens["id_token"])
    assert claims["sub"].startswith("email|") and claims["email"] == NEW_EMAIL
    assert tokens["token_type"] == "Bearer" and tokens["access_token"]


def test_sms_code_with_the_sdk(sms_live, domain, twilio):
    answer = passwordless(domain).sms(PHONE)
    assert answer["phone_number"] == PHONE
    code = twilio.wait_for(PHONE).code

    tokens = get_token(domain).passwordless_login(PHONE, code, "sms", SCOPE, None)

    assert verify(sms_live, tokens["id_token"])["sub"].startswith("sms|")


def test_the_sdk_reads_a_wrong_code_as_invalid_grant(live_server, domain, mailbox):
    passwordless(domain).email(NEW_EMAIL, send="code")
    code = code_in(mailbox, NEW_EMAIL)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    with pytest.raises(Auth0Error) as raised:
        get_token(domain).passwordless_login(NEW_EMAIL, wrong, "email", SCOPE, None)
    assert raised.value.status_code == 403
    assert raised.value.error_code == "invalid_grant"
    assert raised.value.message == "Wrong email or verification code."


def test_the_sdk_reads_twilios_invalid_number_as_sms_provider_error(sms_live, domain, twilio):
    with pytest.raises(Auth0Error) as raised:
        passwordless(domain).sms("+15005550001")
    assert raised.value.status_code == 400
    assert raised.value.error_code == "sms_provider_error"
    assert "(Code: 21211)" in raised.value.message


def test_the_sdk_reads_a_bad_phone_number(live_server, domain):
    with pytest.raises(Auth0Error) as raised:
        passwordless(domain).sms("+1 555")
    assert raised.value.error_code == "bad.phone_number"


def test_the_sdk_sees_the_send_limit_as_a_rate_limit(live_server, domain, mailbox):
    for _ in range(3):
        passwordless(domain).email(NEW_EMAIL, send="code")
    with pytest.raises(RateLimitError) as raised:
        passwordless(domain).email(NEW_EMAIL, send="code")
    assert raised.value.status_code == 429
    assert raised.value.reset_at > 0
