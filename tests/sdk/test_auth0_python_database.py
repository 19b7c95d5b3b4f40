"""auth0-python's Database client against a live server (issue 5)."""

import pytest
from auth0.authentication import Database
from auth0.authentication.exceptions import Auth0Error


def database(live_server) -> Database:
    return Database(f"127.0.0.1:{live_server.port}", "sdk-web", protocol="http")


def test_database_signup_creates_an_unverified_user(live_server, mailbox):
    answer = database(live_server).signup(
        email="sdk-signup@example.test",
        password="Sturdy-Passw0rd",
        connection="db",
        given_name="Sam",
        user_metadata={"source": "sdk"},
    )
    assert answer["email"] == "sdk-signup@example.test" and answer["email_verified"] is False
    assert answer["given_name"] == "Sam" and len(answer["_id"]) == 24
    mailbox.wait_for(to="sdk-signup@example.test", subject_contains="")


def test_database_signup_with_a_weak_password_raises_invalid_password(live_server):
    with pytest.raises(Auth0Error) as raised:
        database(live_server).signup(email="weak@example.test", password="weak", connection="db")
    assert raised.value.status_code == 400 and raised.value.error_code == "invalid_password"


def test_database_change_password_answers_auth0s_text(live_server, mailbox):
    text = database(live_server).change_password(email="alice@example.test", connection="db")
    assert text == "We've just sent you an email to reset your password."
    mailbox.wait_for(to="alice@example.test", subject_contains="")
    unknown = database(live_server).change_password(email="ghost@example.test", connection="db")
    assert unknown == text
