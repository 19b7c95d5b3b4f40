"""/dbconnections/signup and /dbconnections/change_password (compat §10, checklist §1.G, §1.H)."""

import statistics
import time

import pytest
import sqlalchemy as sa

from login_site.models import User
from login_site.models import UserTicket
from tests.conftest import T1
from tests.conftest import count

SIGNUP = "/dbconnections/signup"
RESET = "/dbconnections/change_password"


def signup(client, **fields):
    body = {
        "client_id": "web",
        "connection": "db",
        "email": "new@example.test",
        "password": "Sturdy-Passw0rd",
        **fields,
    }
    return client.post(
        SIGNUP, base_url=f"http://{T1}", json={k: v for k, v in body.items() if v is not ...}
    )


def assert_legacy_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json
    assert body["code"] == code and body["statusCode"] == status and body["name"]
    assert "description" in body


def test_signup_answers_auth0s_shape_and_mails_a_verification_link(app, client, mailbox):
    response = signup(
        client,
        given_name="Nora",
        family_name="New",
        name="Nora New",
        nickname="nn",
        picture="https://img.test/n.png",
        user_metadata={"plan": "gold"},
    )
    assert response.status_code == 200
    body = response.json
    assert body == {
        "_id": body["_id"],
        "email_verified": False,
        "email": "new@example.test",
        "given_name": "Nora",
        "family_name": "New",
        "name": "Nora New",
        "nickname": "nn",
        "picture": "https://img.test/n.png",
        "user_metadata": {"plan": "gold"},
    }
    assert len(body["_id"]) == 24
    message = mailbox.wait_for(to="new@example.test", subject_contains="erif")
    link = [u for u in mailbox.links(message) if "verify_email" in u][0]
    path = link.split(T1, 1)[1]
    page = client.get(path, base_url=f"http://{T1}")
    assert page.status_code == 200 and "verified" in page.get_data(as_text=True)
    with app.extensions["login_site.sessionmaker"]() as db:
        user = db.scalars(sa.select(User).where(User.email == "new@example.test")).one()
        assert user.email_verified is True and user.user_metadata == {"plan": "gold"}
    again = client.get(path, base_url=f"http://{T1}")
    assert again.status_code == 200 and "already verified" in again.get_data(as_text=True)


def test_existing_email_gets_the_same_answer_and_the_owner_a_mail(app, client, mailbox):
    users = count(app, User)
    response = signup(client, email="Alice@Example.test")
    assert response.status_code == 200
    assert set(response.json) == {"_id", "email_verified", "email"}
    assert count(app, User) == users
    mailbox.wait_for(to="alice@example.test", subject_contains="")
    assert any(
        "already" in m["Subject"].lower()
        or "already" in m.get_body(("plain",)).get_content().lower()
        for m in mailbox.messages
    )


def test_existing_email_reveals_only_with_the_compatibility_option(app, client):
    with app.extensions["login_site.sessionmaker"]() as db:
        from login_site.models import Connection

        conn = db.scalars(sa.select(Connection).where(Connection.name == "db")).first()
        conn.options = {**conn.options, "signup_reveals_existing": True}
        db.commit()
    assert_legacy_error(signup(client, email="alice@example.test"), 400, "user_exists")


@pytest.mark.parametrize(
    "password,name",
    [
        ("short1A", "PasswordStrengthError"),
        ("alllowercase", "PasswordStrengthError"),
    ],
)
def test_weak_passwords_get_invalid_password_with_rules(app, client, password, name):
    users = count(app, User)
    response = signup(client, password=password)
    assert_legacy_error(response, 400, "invalid_password")
    assert response.json["name"] == name
    rules = response.json["description"]["rules"]
    assert any(not r["verified"] for r in rules) and response.json["policy"]
    assert count(app, User) == users


def enable(app, **options):
    with app.extensions["login_site.sessionmaker"]() as db:
        from login_site.models import Connection

        conn = db.scalars(sa.select(Connection).where(Connection.name == "db")).first()
        conn.options = {**conn.options, **options}
        db.commit()


def test_dictionary_and_personal_info_options(app, client):
    enable(
        app,
        password_dictionary={"enable": True, "dictionary": ["Tenant-One-Rocks1"]},
        password_no_personal_info={"enable": True},
    )
    common = signup(client, password="Password123")
    assert common.json["name"] == "PasswordDictionaryError"
    custom = signup(client, password="tenant-one-rocks1")
    assert custom.json["name"] == "PasswordDictionaryError"
    personal = signup(client, email="margaret@example.test", password="Margaret-2024!")
    assert personal.json["name"] == "PasswordNoUserInfoError"
    assert signup(client, password="correct horse battery staple").status_code == 400  # policy
    assert signup(client, password="Ok-Unrelated-Phrase-9").status_code == 200


def test_signup_ignores_mass_assignment(app, client):
    response = signup(
        client, email_verified=True, app_metadata={"role": "admin"}, blocked=True, user_id="auth0|x"
    )
    assert response.status_code == 200 and response.json["email_verified"] is False
    with app.extensions["login_site.sessionmaker"]() as db:
        user = db.scalars(sa.select(User).where(User.email == "new@example.test")).one()
        assert not user.email_verified and user.app_metadata == {} and not user.blocked


@pytest.mark.parametrize(
    "fields,code",
    [
        ({"client_id": ...}, "invalid_body"),
        ({"client_id": "nope"}, "bad.client_id"),
        ({"connection": "closed-db"}, "bad.connection"),
        ({"connection": "corp-saml"}, "bad.connection"),
        ({"email": "not-an-email"}, "bad.email"),
        ({"user_metadata": {f"k{i}": "v" for i in range(11)}}, "invalid_body"),
        ({"user_metadata": {"k": "v" * 501}}, "invalid_body"),
        ({"username": "nope"}, "bad.username"),
    ],
)
def test_bad_signups_are_clean_400s_and_write_nothing(app, client, fields, code):
    users = count(app, User)
    assert_legacy_error(signup(client, **fields), 400, code)
    assert count(app, User) == users


def test_signup_disabled(app, client):
    enable(app, disable_signup=True)
    response = signup(client)
    assert_legacy_error(response, 400, "signup_disabled")
    assert response.json["description"] == "public signup is disabled"


def test_malformed_body_is_400(client):
    response = client.post(
        SIGNUP, base_url=f"http://{T1}", data=b"{bad", content_type="application/json"
    )
    assert_legacy_error(response, 400, "invalid_body")


# --- change_password ----------------------------------------------------------------------


def reset(client, email, **extra):
    return client.post(
        RESET,
        base_url=f"http://{T1}",
        json={"client_id": "web", "connection": "db", "email": email, **extra},
    )


def test_change_password_answers_the_same_for_known_and_unknown_emails(app, client, mailbox):
    known = reset(client, "alice@example.test")
    unknown = reset(client, "nobody@example.test")
    lookalike = reset(client, "al\u0131ce@example.test")
    assert known.status_code == unknown.status_code == lookalike.status_code == 200
    assert known.get_data() == unknown.get_data() == lookalike.get_data()
    assert known.get_data(as_text=True) == "We've just sent you an email to reset your password."
    mailbox.wait_for(to="alice@example.test", subject_contains="")
    time.sleep(0.3)
    assert [m["To"] for m in mailbox.messages] == ["alice@example.test"]


def test_reset_link_changes_the_password_once_and_revokes_sessions(app, client, mailbox):
    from tests.conftest import csrf_token
    from tests.conftest import login_code

    login_code(client)  # a live session to be revoked
    reset(client, "alice@example.test")
    message = mailbox.wait_for(to="alice@example.test", subject_contains="")
    link = [u for u in mailbox.links(message) if "reset_password" in u][0]
    path = link.split(T1, 1)[1]
    page = client.get(path, base_url=f"http://{T1}")
    assert page.status_code == 200 and page.headers["Referrer-Policy"] == "no-referrer"
    ticket = path.split("ticket=", 1)[1]
    form = {"csrf_token": csrf_token(page.get_data(as_text=True)), "ticket": ticket}
    weak = client.post(
        "/reset_password",
        base_url=f"http://{T1}",
        data={**form, "password": "weak", "confirm": "weak"},
    )
    assert weak.status_code == 400  # the ticket survives a rejected password
    done = client.post(
        "/reset_password",
        base_url=f"http://{T1}",
        data={**form, "password": "Brand-New-Pass9", "confirm": "Brand-New-Pass9"},
    )
    assert done.status_code == 200 and "Location" not in done.headers
    replay = client.post(
        "/reset_password",
        base_url=f"http://{T1}",
        data={**form, "password": "Other-New-Pass9", "confirm": "Other-New-Pass9"},
    )
    assert replay.status_code == 400
    prompt_none = client.get(
        "/authorize",
        base_url=f"http://{T1}",
        query_string={
            "client_id": "web",
            "redirect_uri": "https://app.test/cb",
            "response_type": "code",
            "scope": "openid",
            "prompt": "none",
        },
    )
    assert "error=login_required" in prompt_none.headers["Location"]
    assert mailbox.wait_for(to="alice@example.test", subject_contains="hang")


def alice(db):
    return db.scalars(
        sa.select(User).where(User.email == "alice@example.test", User.tenant_id == _t1(db))
    ).one()


def _t1(db):
    from login_site.models import Tenant

    return db.scalars(sa.select(Tenant.id).where(Tenant.name == "t1")).one()


def test_a_newer_reset_link_kills_the_older_one(app):
    from login_site import tickets

    with app.app_context(), app.extensions["login_site.sessionmaker"]() as db:
        older = tickets.issue(db, alice(db), "reset_password")
        newer = tickets.issue(db, alice(db), "reset_password")
        db.commit()
        with pytest.raises(tickets.TicketInvalid):
            tickets.peek(db, _t1(db), older, "reset_password")
        assert tickets.peek(db, _t1(db), newer, "reset_password")


def test_a_second_reset_request_within_a_minute_is_limited(client):
    first = reset(client, "carol@example.test")
    second = reset(client, "carol@example.test")
    assert first.status_code == 200 and second.status_code == 429
    assert second.headers["Retry-After"] and second.headers["X-RateLimit-Limit"]


def test_expired_reset_link_is_refused(app, client):
    from datetime import timedelta

    from login_site import tickets
    from login_site.db import utcnow

    with app.app_context():
        with app.extensions["login_site.sessionmaker"]() as db:
            raw = tickets.issue(db, alice(db), "reset_password")
            for row in db.scalars(sa.select(UserTicket)):
                row.expires_at = utcnow() - timedelta(seconds=1)
            db.commit()
    page = client.get(f"/reset_password?ticket={raw}", base_url=f"http://{T1}")
    assert page.status_code == 400


def test_reset_request_does_not_lock_out_the_user(client):
    from tests.conftest import login_code

    reset(client, "alice@example.test")
    assert login_code(client)


def test_unknown_user_and_wrong_password_take_comparable_time(live_server):
    """LG-02: the median time of the two failures differs by less than 20 %."""
    import requests

    enable(live_server.app, brute_force_protection=False)  # 50 failures would block alice
    url = live_server.api_url("t1", "/oauth/token")
    sdk = ("sdk-web", "sdk-web-secret-0123456789abcdefghijklm")
    realm = "http://auth0.com/oauth/grant-type/password-realm"

    def attempt(username):
        started = time.perf_counter()
        requests.post(
            url,
            timeout=30,
            data={
                "grant_type": realm,
                "realm": "db",
                "username": username,
                "password": "Wrong-1pass",
                "client_id": sdk[0],
                "client_secret": sdk[1],
            },
        )
        return time.perf_counter() - started

    known, unknown = [], []
    for i in range(50):
        known.append(attempt("alice@example.test"))
        unknown.append(attempt(f"nobody{i}@example.test"))
    a, b = statistics.median(known), statistics.median(unknown)
    assert abs(a - b) / max(a, b) < 0.2, (a, b)


def test_verification_mail_on_demand_for_a_logged_in_user(app, client, mailbox):
    from tests.conftest import csrf_token
    from tests.conftest import start_login
    from tests.conftest import submit_login

    page, state = start_login(client)
    assert (
        submit_login(client, page, state, "carol@example.test", "Carol-password-1").status_code
        == 302
    )
    form = client.get("/account/verify_email", base_url=f"http://{T1}")
    assert form.status_code == 200 and "carol@example.test" in form.get_data(as_text=True)
    no_csrf = client.post("/account/verify_email", base_url=f"http://{T1}")
    assert no_csrf.status_code == 400
    sent = client.post(
        "/account/verify_email",
        base_url=f"http://{T1}",
        data={"csrf_token": csrf_token(form.get_data(as_text=True))},
    )
    assert sent.status_code == 200
    message = mailbox.wait_for(to="carol@example.test", subject_contains="")
    link = [u for u in mailbox.links(message) if "verify_email" in u][0]
    assert client.get(link.split(T1, 1)[1], base_url=f"http://{T1}").status_code == 200
    again = client.get("/account/verify_email", base_url=f"http://{T1}")
    assert "already verified" in again.get_data(as_text=True)


def test_verification_on_demand_needs_a_session(client):
    assert client.get("/account/verify_email", base_url=f"http://{T1}").status_code == 401


def test_a_replaced_verification_link_does_not_claim_the_email_is_verified(app, client, mailbox):
    from login_site import tickets

    signup(client, email="twice@example.test")
    first = mailbox.wait_for(to="twice@example.test", subject_contains="")
    old = [u for u in mailbox.links(first) if "verify_email" in u][0].split(T1, 1)[1]
    with app.app_context(), app.extensions["login_site.sessionmaker"]() as db:
        user = db.scalars(sa.select(User).where(User.email == "twice@example.test")).one()
        tickets.issue(db, user, "verify_email")  # a newer link replaces the first
        db.commit()
    page = client.get(old, base_url=f"http://{T1}")
    assert page.status_code == 400 and "already verified" not in page.get_data(as_text=True)
