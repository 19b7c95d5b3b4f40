"""Profile sync (set_user_root_attributes), parameters passed upstream (upstream_params,
connection_scope, extra scopes) and account linking only after proving both accounts
(checklist SU-06, SC-10, UP-05)."""

from __future__ import annotations

import re

from sqlalchemy import select

from login_site.models import Identity
from login_site.models import Tenant
from login_site.models import User
from tests.conftest import ALICE
from tests.conftest import T1
from tests.conftest import csrf_token
from tests.conftest import redeem
from tests.social.conftest import code_from
from tests.social.conftest import id_claims
from tests.social.conftest import round_trip


def login_claims(app, connection: str, sub: str, **params) -> dict:
    browser = app.test_client()
    return id_claims(
        redeem(browser, code_from(round_trip(browser, connection, sub, **params))).get_json()
    )


def user_row(app, user_id: str) -> User:
    with app.extensions["login_site.sessionmaker"]() as db:
        user = db.execute(select(User).where(User.user_id == user_id)).scalar_one()
        db.expunge(user)
        return user


# --- sync -------------------------------------------------------------------------------------


def test_the_profile_is_refreshed_at_each_login_by_default(app, connect, fresh_upstream):
    name = connect("google-oauth2")
    fresh_upstream.add_user("1001", email="ann@example.test", email_verified=True, name="Ann")
    assert login_claims(app, name, "1001")["name"] == "Ann"
    fresh_upstream.set_user("1001", name="Ann Marie", picture="https://img.test/new.png")
    claims = login_claims(app, name, "1001")
    assert claims["name"] == "Ann Marie" and claims["picture"] == "https://img.test/new.png"
    with app.extensions["login_site.sessionmaker"]() as db:
        identity = db.execute(select(Identity)).scalars().all()[-1]
        assert identity.profile_data["name"] == "Ann Marie"  # raw profile kept up to date


def test_on_first_login_keeps_what_the_application_edited(app, connect, fresh_upstream):
    name = connect("google-oauth2", set_user_root_attributes="on_first_login")
    fresh_upstream.add_user("1001", email="ann@example.test", email_verified=True, name="Ann")
    login_claims(app, name, "1001")
    with app.extensions["login_site.sessionmaker"]() as db:
        user = db.execute(select(User).where(User.user_id == "google-oauth2|1001")).scalar_one()
        user.name = "Edited by the app"
        db.commit()
    fresh_upstream.set_user("1001", name="Changed upstream")
    assert login_claims(app, name, "1001")["name"] == "Edited by the app"


def test_an_invalid_sync_mode_is_refused(app, connect):
    import pytest

    from login_site.management.errors import ManagementError

    with pytest.raises(ManagementError) as caught:
        connect("google-oauth2", set_user_root_attributes="sometimes")
    assert "set_user_root_attributes" in caught.value.message


# --- parameters for the provider ------------------------------------------------------------


def test_upstream_params_pass_static_values_and_aliases(app, connect, fresh_upstream):
    name = connect(
        "twitter",
        upstream_params={
            "screen_name": {"alias": "login_hint"},
            "force_login": {"value": "true"},
            "lang": {"alias": "ui_locales"},
        },
    )
    fresh_upstream.add_user("1001", login="ann")
    login_claims(app, name, "1001", login_hint="@ann", ui_locales="fr")
    sent = fresh_upstream.authorize_log[-1]
    assert sent["screen_name"] == "@ann"
    assert sent["force_login"] == "true"
    assert sent["lang"] == "fr"


def test_upstream_params_cannot_replace_protocol_parameters(app, connect):
    import pytest

    from login_site.management.errors import ManagementError

    for bad in (
        {"redirect_uri": {"value": "https://evil.test/"}},
        {"state": {"value": "x"}},
        {"x": {"alias": "client_secret"}},
        {"x": {"value": 5}},
        {"x": "plain"},
    ):
        with pytest.raises(ManagementError):
            connect("github", name="gh-bad", upstream_params=bad)


def test_connection_scope_and_configured_scopes_are_asked_for(app, connect, fresh_upstream):
    name = connect("google-oauth2", scope=["https://www.googleapis.com/auth/calendar"])
    fresh_upstream.add_user("1001", email="ann@example.test", email_verified=True)
    login_claims(
        app, name, "1001", connection_scope="https://www.googleapis.com/auth/drive.readonly"
    )
    scopes = fresh_upstream.authorize_log[-1]["scope"].split()
    assert {"openid", "email", "profile"} <= set(scopes)
    assert "https://www.googleapis.com/auth/calendar" in scopes
    assert "https://www.googleapis.com/auth/drive.readonly" in scopes


def test_the_vault_asks_google_for_offline_access(app, connect, fresh_upstream):
    name = connect("google-oauth2", federated_connections_access_tokens={"active": True})
    fresh_upstream.add_user("1001", email="ann@example.test", email_verified=True)
    login_claims(app, name, "1001")
    assert fresh_upstream.authorize_log[-1]["access_type"] == "offline"


# --- linking ----------------------------------------------------------------------------------


def verify_alice(app, verified: bool = True) -> str:
    with app.extensions["login_site.sessionmaker"]() as db:
        t1 = db.execute(select(Tenant).where(Tenant.name == "t1")).scalar_one()
        alice = db.execute(
            select(User).where(User.email == ALICE[0], User.tenant_id == t1.id)
        ).scalar_one()
        alice.email_verified = verified
        db.commit()
        return alice.user_id


def link_page(app, connect, fresh_upstream, verified: bool = True):
    name = connect("github", name="gh")
    fresh_upstream.add_user(
        "1001",
        login="alice-gh",
        emails=[{"email": ALICE[0], "verified": verified, "primary": True}],
    )
    browser = app.test_client()
    trip = round_trip(browser, name, "1001")
    return browser, trip


def test_a_verified_matching_email_asks_for_the_existing_password(app, connect, fresh_upstream):
    alice_id = verify_alice(app)
    browser, trip = link_page(app, connect, fresh_upstream)
    assert trip.response.status_code == 200
    page = trip.text
    assert "You already have an account" in page and 'data-screen="link"' in page
    state = re.search(r'name="state" value="([^"]+)"', page).group(1)
    wrong = browser.post(
        "/login/link",
        base_url=f"http://{T1}",
        data={
            "csrf_token": csrf_token(page),
            "state": state,
            "action": "link",
            "password": "not it",
        },
    )
    assert wrong.status_code == 400 and 'data-error="invalid_credentials"' in wrong.get_data(
        as_text=True
    )
    right = browser.post(
        "/login/link",
        base_url=f"http://{T1}",
        data={
            "csrf_token": csrf_token(page),
            "state": state,
            "action": "link",
            "password": ALICE[1],
        },
    )
    claims = id_claims(redeem(browser, code_from_location(right)).get_json())
    assert claims["sub"] == alice_id
    with app.extensions["login_site.sessionmaker"]() as db:
        alice = db.execute(select(User).where(User.user_id == alice_id)).scalar_one()
        assert sorted(i.provider for i in alice.identities) == ["auth0", "github"]
    # Next time GitHub alone signs in as Alice, no question asked.
    assert login_claims(app, "gh", "1001")["sub"] == alice_id


def test_keeping_accounts_separate_makes_a_new_user(app, connect, fresh_upstream):
    alice_id = verify_alice(app)
    browser, trip = link_page(app, connect, fresh_upstream)
    page = trip.text
    state = re.search(r'name="state" value="([^"]+)"', page).group(1)
    response = browser.post(
        "/login/link",
        base_url=f"http://{T1}",
        data={"csrf_token": csrf_token(page), "state": state, "action": "separate"},
    )
    claims = id_claims(redeem(browser, code_from_location(response)).get_json())
    assert claims["sub"] == "github|1001" != alice_id


def test_an_unverified_upstream_email_never_reaches_the_existing_account(
    app, connect, fresh_upstream
):
    alice_id = verify_alice(app)
    browser, trip = link_page(app, connect, fresh_upstream, verified=False)
    claims = id_claims(redeem(browser, code_from(trip)).get_json())
    assert claims["sub"] == "github|1001" != alice_id
    assert claims["email_verified"] is False


def test_an_unverified_local_account_is_never_offered_for_linking(app, connect, fresh_upstream):
    verify_alice(app, verified=False)
    browser, trip = link_page(app, connect, fresh_upstream)
    assert trip.response.status_code == 302
    claims = id_claims(redeem(browser, code_from(trip)).get_json())
    assert claims["sub"] == "github|1001"


def code_from_location(response) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)[:800]
    from tests.conftest import query_of

    return query_of(response.headers["Location"])["code"]


def _prove_with(browser, page: str, connection: str, user: str):
    from tests.social.conftest import call_back
    from tests.social.conftest import provider_answer

    state = re.search(r'name="state" value="([^"]+)"', page).group(1)
    response = browser.post(
        "/login/link",
        base_url=f"http://{T1}",
        data={
            "csrf_token": csrf_token(page),
            "state": state,
            "action": "prove",
            "connection": connection,
        },
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    method, fields = provider_answer(response.headers["Location"], user)
    return call_back(browser, method, fields)


def social_owner_and_newcomer(app, connect, fresh_upstream):
    """Ann signed up with GitHub (verified address); then logs in with Google, same address."""
    github, google = connect("github", name="gh"), connect("google-oauth2", name="google")
    fresh_upstream.add_user(
        "1001",
        login="ann",
        emails=[{"email": "ann@example.test", "verified": True, "primary": True}],
    )
    fresh_upstream.add_user("2002", login="mallory", email="mallory@example.test")
    owner = login_claims(app, github, "1001")["sub"]
    fresh_upstream.add_user("g-1", email="ann@example.test", email_verified=True, name="Ann G")
    browser = app.test_client()
    trip = round_trip(browser, google, "g-1")
    assert trip.response.status_code == 200 and "Prove it with GitHub" in trip.text
    assert 'data-screen="link"' not in trip.text  # no password to ask for
    return owner, browser, trip.text


def test_an_account_without_password_is_proven_through_its_own_provider(
    app, connect, fresh_upstream
):
    owner, browser, page = social_owner_and_newcomer(app, connect, fresh_upstream)
    response = _prove_with(browser, page, "gh", "1001")
    claims = id_claims(redeem(browser, code_from_location(response)).get_json())
    assert claims["sub"] == owner
    with app.extensions["login_site.sessionmaker"]() as db:
        user = db.execute(select(User).where(User.user_id == owner)).scalar_one()
        assert sorted(i.provider for i in user.identities) == ["github", "google-oauth2"]
    assert login_claims(app, "google", "g-1")["sub"] == owner


def test_proving_as_someone_else_links_nothing(app, connect, fresh_upstream):
    owner, browser, page = social_owner_and_newcomer(app, connect, fresh_upstream)
    response = _prove_with(browser, page, "gh", "2002")  # another GitHub account
    assert response.status_code == 400
    assert 'data-error="upstream_rejected"' in response.get_data(as_text=True)
    with app.extensions["login_site.sessionmaker"]() as db:
        user = db.execute(select(User).where(User.user_id == owner)).scalar_one()
        assert [i.provider for i in user.identities] == ["github"]
