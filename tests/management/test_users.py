"""/api/v2/users, /users-by-email and account linking (management-api.md §3, §6;
checklist MG-03..07, MA-01, MA-04, MA-07, MA-08, MA-12, MA-13)."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import quote
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from login_site.models import AccessToken
from login_site.models import AuthorizationCode
from login_site.models import Connection
from login_site.models import Consent
from login_site.models import DatabaseCredential
from login_site.models import Identity
from login_site.models import LoginAttempt
from login_site.models import LoginSession
from login_site.models import PasswordHistory
from login_site.models import PasswordlessCode
from login_site.models import PasswordlessIdentity
from login_site.models import RefreshToken
from login_site.models import Tenant
from login_site.models import User
from login_site.models import UserTicket
from tests.conftest import ALICE
from tests.conftest import T1
from tests.conftest import T2
from tests.conftest import basic
from tests.conftest import csrf_token
from tests.conftest import login_code
from tests.conftest import query_of
from tests.conftest import redeem
from tests.conftest import start_login
from tests.conftest import submit_login
from tests.management.conftest import T2WEB
from tests.management.conftest import call
from tests.passwordless.conftest import code_in
from tests.passwordless.conftest import start as passwordless_start
from tests.passwordless.conftest import token as passwordless_token

CAROL = ("carol@example.test", "Carol-password-1")
STRONG = "Brand-new-Passphrase-42"


def path(user_id: str, suffix: str = "") -> str:
    return f"/api/v2/users/{quote(user_id, safe='')}{suffix}"


def user_id_of(app, email: str, tenant: str = "t1") -> str:
    with app.extensions["login_site.sessionmaker"]() as db:
        return db.execute(
            sa.select(User.user_id)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(User.email == email, Tenant.name == tenant)
        ).scalar_one()


def user_row(app, user_id: str) -> User | None:
    with app.extensions["login_site.sessionmaker"]() as db:
        return db.execute(sa.select(User).where(User.user_id == user_id)).scalar_one_or_none()


def set_options(app, name: str, **changes) -> None:
    """Change options of a T1 connection in the database."""
    with app.extensions["login_site.sessionmaker"]() as db:
        conn = db.execute(
            sa.select(Connection)
            .join(Tenant, Tenant.id == Connection.tenant_id)
            .where(Connection.name == name, Tenant.name == "t1")
        ).scalar_one()
        conn.options = {**(conn.options or {}), **changes}
        db.commit()


def claims_of(jwt_text: str) -> dict:
    payload = jwt_text.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def tokens_for(client, user=ALICE, host=T1, **params) -> dict:
    """A real hosted login and code exchange on ``web``: id, access and refresh tokens."""
    code = login_code(
        client, host, user=user, scope="openid profile email offline_access", **params
    )
    response = redeem(client, code, host)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def refresh_works(client, refresh_token: str) -> bool:
    response = client.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=basic(),
    )
    return response.status_code == 200


def login_subject(client, user) -> str | None:
    """``sub`` of a full hosted login with these credentials, or None if it fails."""
    page, state = start_login(client)
    response = submit_login(client, page, state, *user)
    if response.status_code != 302 or "code=" not in response.headers.get("Location", ""):
        return None
    answer = redeem(client, query_of(response.headers["Location"])["code"])
    return claims_of(answer.get_json()["id_token"])["sub"]


def otp_subject(client, mailbox, email: str) -> str:
    """``sub`` of a passwordless login by email code on ``email-otp``."""
    mailbox.clear()
    assert passwordless_start(client, email=email, send="code").status_code == 200
    response = passwordless_token(client, email, code_in(mailbox, email))
    assert response.status_code == 200, response.get_json()
    return claims_of(response.get_json()["id_token"])["sub"]


def create(api, token=None, **fields):
    return call(api, "POST", "/api/v2/users", token or api.token("create:users"), json=fields)


def assert_error(response, status, code, *words):
    body = response.get_json()
    assert response.status_code == status, body
    assert body["statusCode"] == status
    assert body["errorCode"] == code
    for word in words:
        assert word in body["message"], body["message"]


# --- access ---------------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/api/v2/users", "read:users"),
    ("POST", "/api/v2/users", "create:users"),
    ("GET", "/api/v2/users/{id}", "read:users"),
    ("PATCH", "/api/v2/users/{id}", "update:users"),
    ("DELETE", "/api/v2/users/{id}", "delete:users"),
    ("GET", "/api/v2/users-by-email?email=alice@example.test", "read:users"),
    ("POST", "/api/v2/users/{id}/identities", "update:users"),
    ("DELETE", "/api/v2/users/{id}/identities/email/abc", "update:users"),
]


@pytest.mark.parametrize(("method", "template", "scope"), ENDPOINTS)
def test_every_endpoint_needs_a_token_and_its_scope(app, api, method, template, scope):
    alice = user_id_of(app, ALICE[0])
    target = template.replace("{id}", quote(alice, safe=""))
    missing = call(api, method, target, json={"name": "x"})
    assert_error(missing, 401, "invalid_token")
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = api.token("read:clients", "read:connections", "create:clients")
    if scope == "read:users":
        wrong = api.token("update:users", "delete:users", "create:users")
    refused = call(api, method, target, wrong, json={"name": "x"})
    assert_error(refused, 403, "insufficient_scope", scope)
    assert user_row(app, alice) is not None


def test_read_users_cannot_delete(app, api):
    alice = user_id_of(app, ALICE[0])
    response = call(api, "DELETE", path(alice), api.token("read:users"))
    assert_error(response, 403, "insufficient_scope", "delete:users")
    assert user_row(app, alice) is not None


def test_another_tenants_user_is_404_everywhere(app, api):
    bob = user_id_of(app, "bob@example.test", tenant="t2")
    token = api.token()
    for method, suffix, payload in [
        ("GET", "", None),
        ("PATCH", "", {"name": "Mallory"}),
        ("DELETE", "", None),
        ("POST", "/identities", {"provider": "auth0", "user_id": "x"}),
        ("DELETE", "/identities/auth0/" + bob.split("|")[1], None),
    ]:
        response = call(api, method, path(bob, suffix), token, json=payload)
        assert_error(response, 404, "inexistent_user", "The user does not exist.")
    assert user_row(app, bob).name == "bob@example.test"
    listed = call(api, "GET", "/api/v2/users?per_page=50", api.token("read:users")).get_json()
    assert bob not in {u["user_id"] for u in listed}


# --- reading --------------------------------------------------------------------------------


def test_list_is_a_bare_array_of_normalised_profiles(app, api, backend):
    response = call(api, "GET", "/api/v2/users", api.token("read:users"))
    assert response.status_code == 200
    items = response.get_json()
    emails = [u.get("email") for u in items]
    assert {"alice@example.test", "carol@example.test", "pat@example.test"} <= set(emails)
    assert len(emails) == len(set(emails))  # T2's alice is not here
    alice = next(u for u in items if u.get("email") == ALICE[0])
    assert alice["user_id"].startswith("auth0|") and len(alice["user_id"]) == 30
    assert alice["identities"] == [
        {
            "connection": "db",
            "provider": "auth0",
            "user_id": alice["user_id"].split("|")[1],
            "isSocial": False,
        }
    ]
    assert alice["name"] == "Alice Example" and alice["email_verified"] is True
    assert alice["created_at"].endswith("Z") and alice["blocked"] is False
    text = response.get_data(as_text=True)
    for secret in ("argon2", "password", '"id":', "tenant"):
        assert secret not in text


def test_list_pages_with_totals_and_caps_per_page_at_50(api, backend):
    token = api.token("read:users")
    everything = call(api, "GET", "/api/v2/users", token).get_json()
    body = call(api, "GET", "/api/v2/users?page=1&per_page=2&include_totals=true", token).get_json()
    assert (body["start"], body["limit"], body["length"]) == (2, 2, 2)
    assert body["total"] == len(everything)
    assert [u["user_id"] for u in body["users"]] == [u["user_id"] for u in everything[2:4]]
    capped = call(api, "GET", "/api/v2/users?per_page=100000&include_totals=true", token)
    assert capped.get_json()["limit"] == 50


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=-1", "page"),
        ("per_page=abc", "per_page"),
        ("include_totals=maybe", "include_totals"),
        ("page=20&per_page=50", "1000"),
        ("sort=password:1", "sort"),
        ("sort=email:up", "sort"),
        ("fields=user_id,password_hash", "fields"),
        ("include_fields=perhaps", "include_fields"),
        ("search_engine=v9", "search_engine"),
    ],
)
def test_bad_list_parameters_are_400(api, query, field):
    response = call(api, "GET", f"/api/v2/users?{query}", api.token("read:users"))
    assert_error(response, 400, "invalid_query_string", field)


def test_get_one_by_its_url_encoded_id(app, api):
    alice = user_id_of(app, ALICE[0])
    token = api.token("read:users")
    response = call(api, "GET", path(alice), token)
    assert response.status_code == 200
    assert response.get_json()["user_id"] == alice
    assert "%7C" in path(alice)
    unknown = call(api, "GET", path("auth0|000000000000000000000000"), token)
    assert_error(unknown, 404, "inexistent_user")
    assert call(api, "GET", path("x" * 300), token).status_code == 404


def test_fields_and_include_fields_select_properties(app, api):
    alice = user_id_of(app, ALICE[0])
    token = api.token("read:users")
    only = call(api, "GET", path(alice) + "?fields=user_id,email", token).get_json()
    assert only == {"user_id": alice, "email": ALICE[0]}
    without = call(
        api, "GET", path(alice) + "?fields=identities,app_metadata&include_fields=false", token
    ).get_json()
    assert "identities" not in without and "app_metadata" not in without
    assert without["email"] == ALICE[0]
    listed = call(api, "GET", "/api/v2/users?fields=email", token).get_json()
    assert listed and all(set(u) <= {"email"} for u in listed)


def test_users_by_email_is_exact_case_insensitive_and_tenant_scoped(app, api, backend):
    token = api.token("read:users")
    found = call(api, "GET", "/api/v2/users-by-email?email=ALICE@Example.TEST", token)
    assert found.status_code == 200
    assert [u["user_id"] for u in found.get_json()] == [user_id_of(app, ALICE[0])]
    assert call(api, "GET", "/api/v2/users-by-email?email=alice@example", token).get_json() == []
    assert call(api, "GET", "/api/v2/users-by-email?email=ali*", token).get_json() == []
    chosen = call(api, "GET", "/api/v2/users-by-email?email=carol@example.test&fields=email", token)
    assert chosen.get_json() == [{"email": "carol@example.test"}]
    missing = call(api, "GET", "/api/v2/users-by-email", token)
    assert_error(missing, 400, "invalid_query_string", "email")


# --- searching ------------------------------------------------------------------------------


def search(api, q: str, token=None, **extra) -> list[str]:
    query = urlencode({"q": q, "search_engine": "v3", **extra})
    response = call(api, "GET", f"/api/v2/users?{query}", token or api.token("read:users"))
    assert response.status_code == 200, response.get_json()
    return sorted(u.get("email") or u["user_id"] for u in response.get_json())


@pytest.mark.parametrize(
    ("q", "emails"),
    [
        ('email:"alice@example.test"', ["alice@example.test"]),
        ("email:ALICE@example.test", ["alice@example.test"]),
        ("email:ali*", ["alice@example.test"]),
        ('name:"alice example"', ["alice@example.test"]),
        ("name:Alice*", ["alice@example.test"]),
        (
            "email:alice@example.test OR email:carol@example.test",
            ["alice@example.test", "carol@example.test"],
        ),
        ("identities.connection:partners-db", ["pat@example.test"]),
        ("identities.connection:widget*", ["walt@example.test", "wendy@example.test"]),
        ("identities.connection:db AND blocked:true", ["blocked@example.test"]),
        (
            "(email:pat* OR email:walt*) AND identities.connection:widget-b-db",
            ["walt@example.test"],
        ),
        ("username:PAT", ["pat@example.test"]),
        ("email_verified:true AND identities.connection:db", ["alice@example.test"]),
        ('email:"nobody@example.test"', []),
        ("email:%lice*", []),
        ("email:a_ice*", []),
    ],
)
def test_search_by_q(api, q, emails):
    assert search(api, q) == emails


def test_search_on_both_engines_by_user_id_metadata_and_connection(app, api, backend):
    token = api.token("create:users", "read:users")
    created = create(
        api,
        token,
        connection="db",
        email="gold@example.test",
        password=STRONG,
        email_verified=True,
        user_metadata={"plan": "Gold", "team": {"name": "ops"}},
        app_metadata={"tier": "b_1%"},
    ).get_json()
    assert search(api, "user_metadata.plan:gold", token) == ["gold@example.test"]
    assert search(api, "user_metadata.plan:go*", token) == ["gold@example.test"]
    assert search(api, "user_metadata.team.name:ops", token) == ["gold@example.test"]
    assert search(api, "app_metadata.tier:b_1%", token) == ["gold@example.test"]
    assert search(api, "app_metadata.tier:b_*", token) == ["gold@example.test"]
    assert search(api, "app_metadata.tier:bx*", token) == []
    assert search(api, f'user_id:"{created["user_id"]}"', token) == ["gold@example.test"]
    assert "gold@example.test" in search(api, "user_id:auth0|*", token)
    assert search(api, "user_metadata.plan:silver", token) == []
    in_partners = call(api, "GET", "/api/v2/users?connection=partners-db", token).get_json()
    assert [u["email"] for u in in_partners] == ["pat@example.test"]
    assert call(api, "GET", "/api/v2/users?connection=nope", token).get_json() == []
    newest_first = call(api, "GET", "/api/v2/users?sort=email:-1&fields=email", token).get_json()
    emails = [u["email"] for u in newest_first]
    assert emails == sorted(emails, reverse=True)
    oldest_first = call(api, "GET", "/api/v2/users?sort=created_at:1", token).get_json()
    assert oldest_first[-1]["user_id"] == created["user_id"]


@pytest.mark.parametrize(
    "q",
    [
        "alice",
        "email:",
        "email",
        "password:secret",
        "tenant:t2",
        'email:"unclosed',
        "(email:a*",
        "email:a*)",
        "email:a carol",
        "email:a AND",
        "NOT email:a",
        "email:a && email:b",
        "blocked:maybe",
        "blocked:t*",
        "email:a*b",
        "email:a?c",
        "email:*",
        "user_metadata..x:1",
        "user_metadata.a.b.c.d:1",
        "app_metadata.$where:1",
        "(" * 7 + "email:a" + ")" * 7,
        " OR ".join(["email:a"] * 21),
        "email:" + "a" * 400,
        "x" * 1001,
    ],
)
def test_invalid_q_is_400_not_500(api, q):
    response = call(api, "GET", "/api/v2/users?" + urlencode({"q": q}), api.token("read:users"))
    assert_error(response, 400, "invalid_query_string", "'q'")


# --- creating -------------------------------------------------------------------------------


def test_create_a_database_user_who_can_log_in(app, api, backend, mailbox, caplog):
    caplog.set_level(logging.INFO, logger="login_site.events")
    response = create(
        api,
        connection="db",
        email="New.User@Example.test",
        password=STRONG,
        given_name="New",
        family_name="User",
        user_metadata={"lang": "fr"},
        app_metadata={"plan": "pro"},
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["user_id"].startswith("auth0|")
    assert body["email"] == "new.user@example.test" and body["email_verified"] is False
    assert body["nickname"] == "new.user" and body["name"] == "new.user@example.test"
    assert (body["given_name"], body["family_name"]) == ("New", "User")
    assert body["user_metadata"] == {"lang": "fr"} and body["app_metadata"] == {"plan": "pro"}
    assert body["identities"][0]["connection"] == "db"
    assert STRONG not in response.get_data(as_text=True)
    mail = mailbox.wait_for(to="new.user@example.test")
    assert any("verify_email?ticket=" in link for link in mailbox.links(mail))
    assert login_subject(app.test_client(), ("new.user@example.test", STRONG)) == body["user_id"]
    lines = [r.getMessage() for r in caplog.records]
    created = [line for line in lines if '"management.user_created"' in line]
    assert created and '"actor_client_id": "m2m"' in created[0]
    assert body["user_id"] in created[0]
    assert not any(STRONG in line or "new.user@example.test" in line for line in lines)


def test_create_with_email_verified_sends_no_mail_and_works_with_signup_disabled(app, api, mailbox):
    response = create(
        api,
        connection="closed-db",
        email="staff@example.test",
        password=STRONG,
        email_verified=True,
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["email_verified"] is True
    quiet = create(
        api, connection="db", email="quiet@example.test", password=STRONG, verify_email=False
    )
    assert quiet.status_code == 201
    with pytest.raises(AssertionError):
        mailbox.wait_for(to="quiet@example.test", timeout=1)
    assert mailbox.find(to="staff@example.test") == []


def test_create_with_a_username_where_the_connection_requires_one(app, api):
    response = create(
        api, connection="partners-db", email="ann@example.test", username="ann", password="Ann1pass"
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["username"] == "ann"
    again = create(
        api,
        connection="partners-db",
        email="ann2@example.test",
        username="ANN",
        password="Ann1pass",
    )
    assert_error(again, 409, "already_exists", "The user already exists.")


def test_duplicate_user_is_409(app, api, backend):
    response = create(api, connection="db", email="ALICE@example.test", password=STRONG)
    assert_error(response, 409, "already_exists", "The user already exists.")
    assert user_row(app, user_id_of(app, ALICE[0])).name == "Alice Example"


@pytest.mark.parametrize(
    "password", ["short1A", "alllowercaseletters", "Qwertyuiop", "Aa1!" + "x" * 1100]
)
def test_weak_password_is_400(app, api, password):
    response = create(api, connection="db", email="weak@example.test", password=password)
    assert_error(response, 400, "invalid_password", "PasswordStrengthError")
    assert password not in response.get_data(as_text=True)
    with app.extensions["login_site.sessionmaker"]() as db:
        assert db.scalar(sa.select(User).where(User.email == "weak@example.test")) is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@example.test", "password": STRONG}, "connection"),
        ({"connection": "nope", "email": "a@example.test", "password": STRONG}, "connection"),
        ({"connection": "corp-saml", "email": "a@example.test"}, "connection"),
        ({"connection": 5, "email": "a@example.test"}, "connection"),
        ({"connection": "db", "password": STRONG}, "email"),
        ({"connection": "db", "email": 5, "password": STRONG}, "email"),
        ({"connection": "db", "email": "not-an-email", "password": STRONG}, "email"),
        ({"connection": "db", "email": "a@example.test"}, "password"),
        ({"connection": "db", "email": "a@example.test", "password": ["x"]}, "password"),
        (
            {"connection": "db", "email": "a@example.test", "password": STRONG, "username": "a"},
            "username",
        ),
        ({"connection": "partners-db", "email": "a@example.test", "password": STRONG}, "username"),
        (
            {
                "connection": "partners-db",
                "email": "a@e.test",
                "password": STRONG,
                "username": "a b",
            },
            "username",
        ),
        (
            {"connection": "db", "email": "a@example.test", "password": STRONG, "colour": 1},
            "colour",
        ),
        (
            {"connection": "db", "email": "a@example.test", "password": STRONG, "user_id": "abc"},
            "user_id",
        ),
        (
            {"connection": "db", "email": "a@example.test", "password": STRONG, "identities": []},
            "identities",
        ),
        (
            {"connection": "db", "email": "a@example.test", "password": STRONG, "logins_count": 9},
            "logins_count",
        ),
        (
            {"connection": "db", "email": "a@example.test", "password": STRONG, "blocked": "yes"},
            "blocked",
        ),
        (
            {"connection": "db", "email": "a@e.test", "password": STRONG, "user_metadata": [1]},
            "user_metadata",
        ),
        (
            {
                "connection": "db",
                "email": "a@e.test",
                "password": STRONG,
                "app_metadata": {"big": "x" * 17000},
            },
            "app_metadata",
        ),
        (
            {
                "connection": "db",
                "email": "a@e.test",
                "password": STRONG,
                "picture": "javascript:x",
            },
            "picture",
        ),
        ({"connection": "db", "email": "a@e.test", "password": STRONG, "name": ""}, "name"),
        ({"connection": "email-otp", "email": "a@example.test", "password": STRONG}, "password"),
        ({"connection": "email-otp"}, "email"),
        ({"connection": "sms", "phone_number": "12345"}, "phone_number"),
        ({"connection": "sms", "phone_number": "+19005550123"}, "phone_number"),
    ],
)
def test_invalid_create_bodies_are_400_naming_the_field(app, api, body, field):
    response = create(api, **body)
    assert_error(response, 400, "invalid_body", f"'{field}'")
    with app.extensions["login_site.sessionmaker"]() as db:
        assert (
            db.scalar(
                sa.select(sa.func.count())
                .select_from(User)
                .where(User.email.in_(["a@example.test", "a@e.test"]))
            )
            == 0
        )


@pytest.mark.parametrize(
    ("data", "content_type", "words"),
    [
        (b'{"connection": "db", ', "application/json", "not valid JSON"),
        (b"[]", "application/json", "object"),
        (b"connection=db", "application/x-www-form-urlencoded", "JSON"),
    ],
)
def test_malformed_bodies_are_400(api, data, content_type, words):
    response = call(
        api,
        "POST",
        "/api/v2/users",
        api.token("create:users"),
        data=data,
        content_type=content_type,
    )
    assert_error(response, 400, "invalid_body", words)


def test_create_passwordless_users(app, api, backend):
    token = api.token("create:users")
    email_user = create(api, token, connection="email-otp", email="Otp.User@example.test")
    assert email_user.status_code == 201, email_user.get_json()
    body = email_user.get_json()
    assert body["user_id"].startswith("email|")
    assert body["email"] == "otp.user@example.test" and body["email_verified"] is False
    assert body["identities"][0]["provider"] == "email"
    again = create(api, token, connection="email-otp", email="otp.user@EXAMPLE.test")
    assert_error(again, 409, "already_exists")
    phone = create(
        api, token, connection="sms", phone_number="+12025550123", name="Phone", blocked=True
    )
    assert phone.status_code == 201, phone.get_json()
    body = phone.get_json()
    assert body["user_id"].startswith("sms|") and body["phone_number"] == "+12025550123"
    assert body["phone_verified"] is False and body["blocked"] is True
    assert body["name"] == "Phone" and "email" not in body
    assert_error(
        create(api, token, connection="sms", phone_number="+12025550123"), 409, "already_exists"
    )


# --- updating -------------------------------------------------------------------------------


def patch(api, target, token=None, /, **fields):
    return call(api, "PATCH", path(target), token or api.token("update:users"), json=fields)


def test_patch_merges_metadata_one_level_deep(app, api, backend):
    user = create(
        api,
        connection="db",
        email="meta@example.test",
        password=STRONG,
        email_verified=True,
        user_metadata={"a": 1, "b": {"x": 1}, "c": 3},
        app_metadata={"roles": ["admin"]},
    ).get_json()
    response = patch(
        api,
        user["user_id"],
        user_metadata={"b": {"y": 2}, "c": None, "d": "new"},
        app_metadata={"plan": "pro"},
        name="Meta Person",
        given_name="Meta",
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["user_metadata"] == {"a": 1, "b": {"y": 2}, "d": "new"}
    assert body["app_metadata"] == {"roles": ["admin"], "plan": "pro"}
    assert (body["name"], body["given_name"]) == ("Meta Person", "Meta")
    cleared = patch(api, user["user_id"], user_metadata={})
    assert cleared.get_json()["user_metadata"] == {}
    assert user_row(app, user["user_id"]).app_metadata == {"roles": ["admin"], "plan": "pro"}


def test_metadata_scope_alone_changes_only_metadata(app, api):
    alice = user_id_of(app, ALICE[0])
    token = api.token("update:users_app_metadata")
    ok = patch(api, alice, token, app_metadata={"plan": "pro"}, user_metadata={"x": "1"})
    assert ok.status_code == 200
    assert ok.get_json()["app_metadata"] == {"plan": "pro"}
    refused = patch(api, alice, token, name="Mallory", app_metadata={"plan": "free"})
    assert_error(refused, 403, "insufficient_scope", "update:users")
    row = user_row(app, alice)
    assert (row.name, row.app_metadata) == ("Alice Example", {"plan": "pro"})


@pytest.mark.parametrize(
    "field", ["user_id", "identities", "created_at", "tenant", "last_login", "logins_count"]
)
def test_mass_assignment_of_read_only_fields_is_400_and_changes_nothing(app, api, backend, field):
    """Checklist MA-08 / MG-05."""
    alice = user_id_of(app, ALICE[0])
    token = api.token("read:users", "update:users")
    before = call(api, "GET", path(alice), token).get_json()
    value = {
        "user_id": "auth0|mallory",
        "identities": [{"provider": "google-oauth2", "user_id": "1", "connection": "g"}],
        "created_at": "2000-01-01T00:00:00.000Z",
        "tenant": "t2",
        "last_login": "2000-01-01T00:00:00.000Z",
        "logins_count": 1000,
    }[field]
    response = patch(api, alice, token, name="Mallory", **{field: value})
    assert_error(response, 400, "invalid_body", f"'{field}'")
    assert call(api, "GET", path(alice), token).get_json() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": 5}, "email"),
        ({"email": "nope"}, "email"),
        ({"email_verified": "yes"}, "email_verified"),
        ({"username": "alice"}, "username"),
        ({"connection": "partners-db", "password": STRONG}, "connection"),
        ({"connection": "db", "password": 12345678}, "password"),
        ({"phone_number": "555"}, "phone_number"),
        ({"verify_phone_number": True}, "verify_phone_number"),
        ({"client_id": "t2web", "verify_email": True}, "client_id"),
        ({"user_metadata": "x"}, "user_metadata"),
        ({"nickname": None}, "nickname"),
        ({"password_hash": "$argon2id$"}, "password_hash"),
    ],
)
def test_invalid_patch_is_400_naming_the_field(app, api, body, field):
    alice = user_id_of(app, ALICE[0])
    response = patch(api, alice, **body)
    assert_error(response, 400, "invalid_body", f"'{field}'")
    row = user_row(app, alice)
    assert (row.email, row.email_verified, row.name) == (ALICE[0], True, "Alice Example")


def test_password_on_a_passwordless_user_is_400(app, api):
    user = create(api, connection="email-otp", email="nopass@example.test").get_json()
    response = patch(api, user["user_id"], password=STRONG)
    assert_error(response, 400, "invalid_body", "'password'")


def test_password_change_revokes_refresh_tokens_and_sessions(app, api, backend):
    browser = app.test_client()
    tokens = tokens_for(browser)
    assert "refresh_token" in tokens
    alice = claims_of(tokens["id_token"])["sub"]
    weak = patch(api, alice, password="weak")
    assert_error(weak, 400, "invalid_password", "PasswordStrengthError")
    fresh = tokens_for(app.test_client())
    response = patch(api, alice, password=STRONG)
    assert response.status_code == 200, response.get_json()
    assert refresh_works(app.test_client(), fresh["refresh_token"]) is False
    with app.extensions["login_site.sessionmaker"]() as db:
        pk = db.scalar(sa.select(User.id).where(User.user_id == alice))
        live = db.scalar(
            sa.select(sa.func.count())
            .select_from(LoginSession)
            .where(LoginSession.user_pk == pk, LoginSession.revoked_at.is_(None))
        )
        assert live == 0
    assert login_subject(app.test_client(), ALICE) is None
    assert login_subject(app.test_client(), (ALICE[0], STRONG)) == alice


def test_weak_password_patch_keeps_tokens_alive(app, api):
    browser = app.test_client()
    tokens = tokens_for(browser)
    alice = claims_of(tokens["id_token"])["sub"]
    assert_error(patch(api, alice, password="weak"), 400, "invalid_password")
    assert refresh_works(browser, tokens["refresh_token"]) is True
    assert login_subject(app.test_client(), ALICE) == alice


def test_blocking_ends_sessions_and_logins_until_unblocked(app, api, backend):
    browser = app.test_client()
    tokens = tokens_for(browser)
    alice = claims_of(tokens["id_token"])["sub"]
    blocked = patch(api, alice, blocked=True)
    assert blocked.status_code == 200 and blocked.get_json()["blocked"] is True
    assert refresh_works(browser, tokens["refresh_token"]) is False
    assert login_subject(app.test_client(), ALICE) is None
    unblocked = patch(api, alice, blocked=False)
    assert unblocked.get_json()["blocked"] is False
    assert login_subject(app.test_client(), ALICE) == alice


def test_changing_the_email_rekeys_the_login_and_can_send_a_verification(
    app, api, backend, mailbox
):
    alice = user_id_of(app, ALICE[0])
    taken = patch(api, alice, email="carol@example.test")
    assert_error(taken, 409, "already_exists")
    response = patch(api, alice, email="Alice.New@example.test", verify_email=True, client_id="web")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["email"] == "alice.new@example.test" and body["email_verified"] is False
    mail = mailbox.wait_for(to="alice.new@example.test")
    assert any("verify_email?ticket=" in link for link in mailbox.links(mail))
    assert login_subject(app.test_client(), ALICE) is None
    assert login_subject(app.test_client(), ("alice.new@example.test", ALICE[1])) == alice
    verified = patch(api, alice, email_verified=True)
    assert verified.get_json()["email_verified"] is True


def test_changing_a_username(app, api):
    pat = user_id_of(app, "pat@example.test")
    other = create(
        api, connection="partners-db", email="ann@example.test", username="ann", password="Ann1pass"
    )
    assert other.status_code == 201
    assert_error(patch(api, pat, username="ANN"), 409, "already_exists")
    response = patch(api, pat, username="patricia")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["username"] == "patricia"
    with app.extensions["login_site.sessionmaker"]() as db:
        keys = (
            db.execute(
                sa.select(DatabaseCredential.username_key)
                .join(Identity, Identity.id == DatabaseCredential.identity_id)
                .join(User, User.id == Identity.user_pk)
                .where(User.user_id == pat)
            )
            .scalars()
            .all()
        )
    assert keys == ["patricia"]


# --- deleting -------------------------------------------------------------------------------

USER_TABLES = {
    LoginSession: lambda pk, ids: LoginSession.user_pk == pk,
    AuthorizationCode: lambda pk, ids: AuthorizationCode.user_pk == pk,
    AccessToken: lambda pk, ids: AccessToken.user_pk == pk,
    RefreshToken: lambda pk, ids: RefreshToken.user_pk == pk,
    Consent: lambda pk, ids: Consent.user_pk == pk,
    UserTicket: lambda pk, ids: UserTicket.user_pk == pk,
    Identity: lambda pk, ids: Identity.user_pk == pk,
    DatabaseCredential: lambda pk, ids: DatabaseCredential.identity_id.in_(ids),
    PasswordHistory: lambda pk, ids: PasswordHistory.identity_id.in_(ids),
    User: lambda pk, ids: User.id == pk,
}


def rows_of(app, user_id: str) -> tuple[dict, dict]:
    """Rows of the user per table, and every table's total."""
    with app.extensions["login_site.sessionmaker"]() as db:
        pk = db.scalar(sa.select(User.id).where(User.user_id == user_id))
        ids = list(db.scalars(sa.select(Identity.id).where(Identity.user_pk == pk)))
        mine = {
            model.__tablename__: db.scalar(
                sa.select(sa.func.count()).select_from(model).where(where(pk, ids))
            )
            for model, where in USER_TABLES.items()
        }
        totals = {
            model.__tablename__: db.scalar(sa.select(sa.func.count()).select_from(model))
            for model in [*USER_TABLES, LoginAttempt, PasswordlessIdentity, PasswordlessCode]
        }
    return mine, totals


def consent_to_third_party(client, user) -> None:
    page, state = start_login(client, client_id="third-party", redirect_uri="https://third.test/cb")
    done = submit_login(client, page, state, *user)
    assert done.status_code == 302 and done.headers["Location"].startswith("/consent?")
    consent = client.get(done.headers["Location"], base_url=f"http://{T1}")
    decided = client.post(
        "/consent",
        base_url=f"http://{T1}",
        data={
            "csrf_token": csrf_token(consent.get_data(as_text=True)),
            "state": state,
            "decision": "allow",
        },
    )
    assert "code" in query_of(decided.headers["Location"])


def test_delete_removes_every_row_of_the_user(app, api, backend, mailbox):
    alice = user_id_of(app, ALICE[0])
    set_options(app, "db", password_history={"enable": True, "size": 3})
    assert patch(api, alice, password=STRONG).status_code == 200
    browser = app.test_client()
    tokens_for(browser, user=(ALICE[0], STRONG))  # session, code, access and refresh tokens
    login_code(app.test_client(), user=(ALICE[0], STRONG))  # a code left unredeemed
    consent_to_third_party(app.test_client(), (ALICE[0], STRONG))
    assert login_subject(app.test_client(), (ALICE[0], "wrong password")) is None
    reset = browser.post(
        "/dbconnections/change_password",
        base_url=f"http://{T1}",
        json={"client_id": "web", "email": ALICE[0], "connection": "db"},
    )
    assert reset.status_code == 200
    mailbox.wait_for(to=ALICE[0])
    mine, before = rows_of(app, alice)
    assert all(mine.values()), mine
    carol_before = rows_of(app, user_id_of(app, CAROL[0]))[0]
    with app.extensions["login_site.sessionmaker"]() as db:
        attempts = db.scalar(sa.select(sa.func.count()).select_from(LoginAttempt))
    assert attempts >= 1

    assert call(api, "DELETE", path(alice), api.token("delete:users")).status_code == 204

    gone, after = rows_of(app, alice)
    assert set(gone.values()) == {0}, gone
    for table, count in mine.items():
        assert after[table] == before[table] - count, table
    assert after["login_attempts"] == before["login_attempts"] - attempts
    assert rows_of(app, user_id_of(app, CAROL[0]))[0] == carol_before
    assert call(api, "GET", path(alice), api.token("read:users")).status_code == 404
    assert call(api, "DELETE", path(alice), api.token("delete:users")).status_code == 404
    assert login_subject(app.test_client(), (ALICE[0], STRONG)) is None


def test_deleting_a_passwordless_user_removes_its_identifier_and_codes(app, api, backend, mailbox):
    user = create(api, connection="email-otp", email="gone@example.test").get_json()
    assert (
        passwordless_start(app.test_client(), email="gone@example.test", send="code").status_code
        == 200
    )
    mailbox.wait_for(to="gone@example.test")
    _, before = rows_of(app, user["user_id"])
    response = call(api, "DELETE", path(user["user_id"]), api.token("delete:users"))
    assert response.status_code == 204
    _, after = rows_of(app, user["user_id"])
    assert after["passwordless_identities"] == before["passwordless_identities"] - 1
    assert after["passwordless_codes"] == before["passwordless_codes"] - 1
    assert after["identities"] == before["identities"] - 1
    again = create(api, connection="email-otp", email="gone@example.test")
    assert again.status_code == 201
    assert again.get_json()["user_id"] != user["user_id"]


# --- linking --------------------------------------------------------------------------------


def identities(api, user_id: str) -> list[dict]:
    return call(api, "GET", path(user_id), api.token("read:users")).get_json()["identities"]


def test_link_and_unlink_a_passwordless_identity_round_trip(app, api, backend, mailbox):
    carol = user_id_of(app, CAROL[0])
    token = api.token("create:users", "update:users", "read:users")
    otp_user = create(
        api,
        token,
        connection="email-otp",
        email="pal@example.test",
        name="Pal",
        email_verified=True,
    ).get_json()
    hex_id = otp_user["user_id"].split("|")[1]
    assert otp_subject(app.test_client(), mailbox, "pal@example.test") == otp_user["user_id"]

    linked = call(
        api,
        "POST",
        path(carol, "/identities"),
        token,
        json={"provider": "email", "user_id": hex_id},
    )
    assert linked.status_code == 201, linked.get_json()
    assert [(i["provider"], i["connection"]) for i in linked.get_json()] == [
        ("auth0", "db"),
        ("email", "email-otp"),
    ]
    secondary = linked.get_json()[1]
    assert secondary["user_id"] == hex_id and secondary["isSocial"] is False
    assert secondary["profileData"]["email"] == "pal@example.test"
    assert secondary["profileData"]["name"] == "Pal"
    assert "profileData" not in linked.get_json()[0]
    assert call(api, "GET", path(otp_user["user_id"]), token).status_code == 404
    # The passwordless login now signs in as Carol.
    assert otp_subject(app.test_client(), mailbox, "pal@example.test") == carol
    assert search(api, "identities.connection:email-otp", token) == ["carol@example.test"]

    unlinked = call(api, "DELETE", path(carol, f"/identities/email/{hex_id}"), token)
    assert unlinked.status_code == 200, unlinked.get_json()
    assert [i["provider"] for i in unlinked.get_json()] == ["auth0"]
    standalone = call(api, "GET", path(f"email|{hex_id}"), token).get_json()
    assert standalone["email"] == "pal@example.test" and standalone["name"] == "Pal"
    assert standalone["email_verified"] is True
    assert [i["connection"] for i in standalone["identities"]] == ["email-otp"]
    assert "profileData" not in standalone["identities"][0]
    assert otp_subject(app.test_client(), mailbox, "pal@example.test") == f"email|{hex_id}"
    assert login_subject(app.test_client(), CAROL) == carol


def test_link_with_an_id_token_moves_logins_and_ends_the_secondarys_tokens(app, api, backend):
    alice = user_id_of(app, ALICE[0])
    carols = tokens_for(app.test_client(), user=CAROL)
    carol = claims_of(carols["id_token"])["sub"]
    token = api.token("update:users", "read:users")
    response = call(
        api, "POST", path(alice, "/identities"), token, json={"link_with": carols["id_token"]}
    )
    assert response.status_code == 201, response.get_json()
    assert [i["user_id"] for i in response.get_json()] == [
        alice.split("|")[1],
        carol.split("|")[1],
    ]
    assert response.get_json()[1]["profileData"]["email"] == CAROL[0]
    assert user_row(app, carol) is None
    assert refresh_works(app.test_client(), carols["refresh_token"]) is False
    assert login_subject(app.test_client(), CAROL) == alice
    # The secondary id no longer exists: its ID token cannot be linked again.
    again = call(
        api, "POST", path(alice, "/identities"), token, json={"link_with": carols["id_token"]}
    )
    assert_error(again, 400, "invalid_body", "'link_with'")
    unlinked = call(api, "DELETE", path(alice, f"/identities/auth0/{carol.split('|')[1]}"), token)
    assert unlinked.status_code == 200
    assert login_subject(app.test_client(), CAROL) == carol
    assert login_subject(app.test_client(), ALICE) == alice


def test_linking_refusals(app, api):
    alice = user_id_of(app, ALICE[0])
    carol = user_id_of(app, CAROL[0])
    token = api.token("update:users")
    bob_code = login_code(
        app.test_client(),
        T2,
        user=("bob@example.test", "bob-password"),
        client_id="t2web",
    )
    bob_id_token = redeem(app.test_client(), bob_code, T2, headers=basic(*T2WEB)).get_json()[
        "id_token"
    ]
    own = tokens_for(app.test_client())["id_token"]
    carol_con = call(
        api, "GET", "/api/v2/connections?name=db", api.token("read:connections")
    ).get_json()[0]["id"]
    for payload, field in [
        ({"provider": "auth0", "user_id": alice.split("|")[1]}, "itself"),
        ({"link_with": own}, "itself"),
        ({"link_with": bob_id_token}, "'link_with'"),
        ({"link_with": "not.a.jwt"}, "'link_with'"),
        ({"link_with": api.token("read:users")}, "'link_with'"),
        ({"link_with": own, "provider": "auth0"}, "'provider'"),
        ({"provider": "auth0"}, "'user_id'"),
        ({"user_id": "abc"}, "'provider'"),
        ({"provider": "auth0", "user_id": "000000000000000000000000"}, "'user_id'"),
        ({"provider": "email", "user_id": carol.split("|")[1]}, "'user_id'"),
        (
            {"provider": "auth0", "user_id": carol.split("|")[1], "connection_id": "con_x"},
            "'connection_id'",
        ),
        ({"provider": "auth0", "user_id": carol.split("|")[1], "extra": 1}, "'extra'"),
        ({"provider": 5, "user_id": "x"}, "'provider'"),
    ]:
        response = call(api, "POST", path(alice, "/identities"), token, json=payload)
        assert_error(response, 400, "invalid_body", field)
    assert len(identities(api, alice)) == 1
    assert user_row(app, carol) is not None
    ok = call(
        api,
        "POST",
        path(alice, "/identities"),
        token,
        json={"provider": "auth0", "user_id": carol.split("|")[1], "connection_id": carol_con},
    )
    assert ok.status_code == 201
    main = call(api, "DELETE", path(alice, f"/identities/auth0/{alice.split('|')[1]}"), token)
    assert_error(main, 400, "invalid_uri", "main identity")
    unknown = call(api, "DELETE", path(alice, "/identities/email/abc"), token)
    assert_error(unknown, 404, "inexistent_identity")
    assert len(identities(api, alice)) == 2


@pytest.mark.parametrize(
    ("method", "target", "payload"),
    [
        ("GET", "/api/v2/users?" + urlencode({"q": "email:a\x00b"}), None),
        ("GET", "/api/v2/users?" + urlencode({"connection": "db\x00"}), None),
        ("GET", "/api/v2/users-by-email?" + urlencode({"email": "a\x00@example.test"}), None),
        ("GET", "/api/v2/users/auth0%7C%00abc", None),
        ("POST", "/api/v2/users", {"connection": "db\x00", "email": "n@example.test"}),
        (
            "POST",
            "/api/v2/users",
            {"connection": "db", "email": "n\x00@example.test", "password": STRONG},
        ),
        (
            "POST",
            "/api/v2/users",
            {"connection": "db", "email": "n@example.test", "password": STRONG, "name": "a\x00"},
        ),
        (
            "POST",
            "/api/v2/users",
            {
                "connection": "db",
                "email": "n@example.test",
                "password": STRONG,
                "user_metadata": {"a": "\x00"},
            },
        ),
    ],
)
def test_control_characters_are_refused_not_500(app, api, backend, method, target, payload):
    response = call(api, method, target, api.token(), json=payload)
    # Metadata too: an escaped NUL in JSON is refused everywhere (body.json_body).
    assert response.status_code in (400, 404), response.get_data(as_text=True)
    assert response.get_json()["errorCode"] in (
        "invalid_body",
        "invalid_query_string",
        "inexistent_user",
    )


def test_unlinking_an_identity_with_a_raw_upstream_profile_keeps_only_clean_values(
    app, api, backend
):
    """``profileData`` may be a provider's raw profile (social logins keep it there)."""
    alice = user_id_of(app, ALICE[0])
    carol = user_id_of(app, CAROL[0])
    token = api.token("update:users", "read:users")
    linked = call(
        api,
        "POST",
        path(alice, "/identities"),
        token,
        json={"provider": "auth0", "user_id": carol.split("|")[1]},
    )
    assert linked.status_code == 201
    with app.extensions["login_site.sessionmaker"]() as db:
        identity = db.execute(
            sa.select(Identity).where(Identity.user_id == carol.split("|")[1])
        ).scalar_one()
        identity.profile_data = {
            "sub": "1234",
            "email": "Carol.Upstream@Example.test",
            "email_verified": "true",
            "name": {"first": "Carol"},
            "nickname": "c" * 300,
            "given_name": "Ca\x00rol",
            "picture": "https://pictures.test/carol.png",
            "phone_verified": True,
        }
        db.commit()
    response = call(api, "DELETE", path(alice, f"/identities/auth0/{carol.split('|')[1]}"), token)
    assert response.status_code == 200, response.get_json()
    standalone = call(api, "GET", path(carol), token).get_json()
    assert standalone["email"] == "carol.upstream@example.test"
    assert standalone["email_verified"] is False
    assert standalone["name"] == "carol.upstream@example.test"
    assert standalone["nickname"] == "carol.upstream"
    assert standalone["picture"] == "https://pictures.test/carol.png"
    assert "given_name" not in standalone and "phone_verified" not in standalone
