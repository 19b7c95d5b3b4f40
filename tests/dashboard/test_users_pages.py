"""Dashboard Users pages with the Flask test client: search, profile, sessions, events, and
the CSRF-protected actions (block, unblock, revoke sessions, mails, delete)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from login_site.models import LoginSession
from login_site.models import SecurityEvent
from login_site.models import Tenant
from login_site.models import User
from tests.conftest import ALICE
from tests.conftest import T1
from tests.conftest import csrf_token
from tests.conftest import login_code
from tests.conftest import start_login
from tests.conftest import submit_login
from tests.dashboard.conftest import ADMIN
from tests.dashboard.conftest import setup_admin_tenant
from tests.dashboard.test_browser import log_in
from tests.dashboard.test_browser import shot
from tests.dashboard.test_browser import sign_in
from tests.e2e.browser import open_login

CAROL = ("carol@example.test", "Carol-password-1")


def user_row(app, email: str, tenant: str = "t1") -> User | None:
    with app.extensions["login_site.sessionmaker"]() as db:
        return db.scalar(
            sa.select(User)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(Tenant.name == tenant, User.email == email)
        )


def user_id_of(app, email: str, tenant: str = "t1") -> str:
    return user_row(app, email, tenant).user_id


def get(dash, path: str, **kwargs):
    return dash.get(path, base_url=dash.base, **kwargs)


def post_form(dash, page_path: str, action_path: str, **data):
    """Submit a form as the browser would: the CSRF token comes from the page."""
    page = get(dash, page_path)
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    token = csrf_token(page.get_data(as_text=True))
    return dash.post(action_path, base_url=dash.base, data={"csrf_token": token, **data})


def user_path(user_id: str) -> str:
    return "/dashboard/users/" + user_id.replace("|", "%7C")


def audit_rows(app, name: str) -> list[SecurityEvent]:
    with app.extensions["login_site.sessionmaker"]() as db:
        return list(db.scalars(sa.select(SecurityEvent).where(SecurityEvent.name == name)))


def tenant_id(app, name: str) -> str:
    with app.extensions["login_site.sessionmaker"]() as db:
        return db.scalar(sa.select(Tenant.id).where(Tenant.name == name))


def section(html: str, title_id: str) -> str:
    """The part of a page from the heading ``title_id`` to the end of its section."""
    return html.split(f'id="{title_id}"', 1)[1].split("</section>", 1)[0]


def test_the_users_page_lists_the_selected_tenants_users_only(dash):
    page = get(dash, "/dashboard/users")
    assert page.status_code == 200
    html = section(page.get_data(as_text=True), "results-title")
    assert ALICE[0] in html and CAROL[0] in html
    assert "bob@example.test" not in html  # a user of t2
    assert "root@example.test" not in html  # the admin tenant's own admin


@pytest.mark.parametrize(
    ("query", "found", "absent"),
    [
        ("alice", [ALICE[0]], [CAROL[0]]),
        ("ALICE@EXAMPLE", [ALICE[0]], [CAROL[0]]),
        ("Alice Example", [ALICE[0]], [CAROL[0]]),
        ("email:carol@example.test", [CAROL[0]], [ALICE[0]]),
        ("blocked:true", ["blocked@example.test"], [ALICE[0], CAROL[0]]),
        ("%", [], [ALICE[0], CAROL[0]]),  # a literal percent sign, not a wildcard
    ],
)
def test_search_finds_users_by_text_or_field(backend, dash, query, found, absent):
    page = get(dash, "/dashboard/users", query_string={"q": query})
    html = section(page.get_data(as_text=True), "results-title")
    for email in found:
        assert email in html
    for email in absent:
        assert email not in html


def test_search_by_user_id(app, dash):
    alice_id = user_id_of(app, ALICE[0])
    page = get(dash, "/dashboard/users", query_string={"q": alice_id})
    html = section(page.get_data(as_text=True), "results-title")
    assert ALICE[0] in html and CAROL[0] not in html


def test_a_malformed_field_search_is_a_400_with_the_reason(dash):
    page = get(dash, "/dashboard/users", query_string={"q": "nosuchfield:x"})
    assert page.status_code == 400
    assert "is not searchable" in page.get_data(as_text=True)


@pytest.mark.parametrize("page_number", ["-1", "abc", "99999999999"])
def test_bad_page_numbers_show_the_first_page(dash, page_number):
    page = get(dash, "/dashboard/users", query_string={"page": page_number})
    assert page.status_code == 200
    assert ALICE[0] in page.get_data(as_text=True)


def test_the_user_page_shows_profile_identities_sessions_and_events(app, dash):
    t1 = app.test_client()
    page, state = start_login(t1)
    submit_login(t1, page, state, ALICE[0], "a-wrong-Password-1")
    login_code(t1)
    html = get(dash, user_path(user_id_of(app, ALICE[0]))).get_data(as_text=True)
    assert "Alice Example" in html
    assert user_id_of(app, ALICE[0]) in html
    identities = section(html, "identities-title")
    assert ">db<" in identities
    sessions = section(html, "sessions-title")
    assert "127.0.0.1" in sessions and "No active sessions" not in sessions
    events = section(html, "events-title")
    assert ">login<" in events and ">success<" in events


def test_a_user_of_another_tenant_is_not_found(app, dash):
    page = get(dash, user_path(user_id_of(app, "bob@example.test", "t2")))
    assert page.status_code == 404


def test_block_needs_the_csrf_token(app, dash):
    alice_id = user_id_of(app, ALICE[0])
    response = dash.post(user_path(alice_id) + "/block", base_url=dash.base)
    assert response.status_code == 400
    assert user_row(app, ALICE[0]).blocked is False


def test_blocking_a_user_ends_their_sessions_and_their_logins_fail(backend, app, dash):
    t1 = app.test_client()
    login_code(t1)
    alice_id = user_id_of(app, ALICE[0])
    response = post_form(dash, user_path(alice_id), user_path(alice_id) + "/block")
    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == user_path(alice_id)
    assert user_row(app, ALICE[0]).blocked is True
    with app.extensions["login_site.sessionmaker"]() as db:
        assert (
            db.scalar(
                sa.select(sa.func.count())
                .select_from(LoginSession)
                .where(LoginSession.revoked_at.is_(None))
                .join(User, User.id == LoginSession.user_pk)
                .where(User.user_id == alice_id)
            )
            == 0
        )
    page, state = start_login(app.test_client())
    failed = submit_login(app.test_client(), page, state, *ALICE)
    assert failed.status_code in (400, 401, 403)
    (row,) = audit_rows(app, "dashboard.user_blocked")
    assert row.actor == user_id_of(app, ADMIN[0], "admin")
    assert row.target == f"user:{alice_id}"
    assert row.tenant_id == tenant_id(app, "t1")
    shown = get(dash, user_path(alice_id)).get_data(as_text=True)
    assert "Blocked" in shown and "dashboard.user_blocked" in shown


def test_unblocking_lets_the_user_log_in_again(app, dash):
    blocked_id = user_id_of(app, "blocked@example.test")
    response = post_form(dash, user_path(blocked_id), user_path(blocked_id) + "/unblock")
    assert response.status_code == 303
    assert user_row(app, "blocked@example.test").blocked is False
    login_code(app.test_client(), user=("blocked@example.test", "Blocked-password-1"))
    (row,) = audit_rows(app, "dashboard.user_unblocked")
    assert row.tenant_id == tenant_id(app, "t1")
    # The brute-force unblock of the shared code is filed under the same tenant.
    assert {r.tenant_id for r in audit_rows(app, "brute_force")} == {tenant_id(app, "t1")}


def test_revoking_sessions_logs_the_user_out(app, dash):
    t1 = app.test_client()
    login_code(t1)
    assert t1.get("/account/password", base_url=f"http://{T1}").status_code == 200
    alice_id = user_id_of(app, ALICE[0])
    response = post_form(dash, user_path(alice_id), user_path(alice_id) + "/revoke-sessions")
    assert response.status_code == 303
    assert t1.get("/account/password", base_url=f"http://{T1}").status_code == 401
    (row,) = audit_rows(app, "dashboard.user_sessions_revoked")
    assert row.details["ended"] == 1


def test_a_password_reset_mail_links_to_the_users_tenant(app, dash, mailbox):
    alice_id = user_id_of(app, ALICE[0])
    response = post_form(dash, user_path(alice_id), user_path(alice_id) + "/reset-password")
    assert response.status_code == 303
    message = mailbox.wait_for(to=ALICE[0])
    (link,) = [u for u in mailbox.links(message) if "reset_password?ticket=" in u]
    parts = urlsplit(link)
    assert parts.hostname.startswith("t1.")  # not the dashboard's admin host
    form = app.test_client().get(
        f"{parts.path}?{parts.query}", base_url=f"{parts.scheme}://{parts.netloc}"
    )
    assert form.status_code == 200
    assert "ticket" in form.get_data(as_text=True)
    assert "reset_password?ticket" not in str(
        [r.details for r in audit_rows(app, "dashboard.password_reset_sent")]
    )


def test_a_verification_mail_verifies_the_users_email(app, dash, mailbox):
    carol_id = user_id_of(app, CAROL[0])
    assert user_row(app, CAROL[0]).email_verified is False
    response = post_form(dash, user_path(carol_id), user_path(carol_id) + "/verify-email")
    assert response.status_code == 303
    message = mailbox.wait_for(to=CAROL[0])
    (link,) = [u for u in mailbox.links(message) if "verify_email?ticket=" in u]
    parts = urlsplit(link)
    page = app.test_client().get(
        f"{parts.path}?{parts.query}", base_url=f"{parts.scheme}://{parts.netloc}"
    )
    assert page.status_code == 200
    assert user_row(app, CAROL[0]).email_verified is True


def test_verified_users_get_no_verification_button_and_no_mail(app, dash, mailbox):
    alice_id = user_id_of(app, ALICE[0])
    assert "verify-email" not in get(dash, user_path(alice_id)).get_data(as_text=True)
    response = post_form(dash, user_path(alice_id), user_path(alice_id) + "/verify-email")
    assert response.status_code == 303
    assert "no unverified email" in get(dash, user_path(alice_id)).get_data(as_text=True)
    assert mailbox.find(to=ALICE[0]) == []


def test_delete_asks_first_then_deletes(app, dash):
    carol_id = user_id_of(app, CAROL[0])
    confirm = get(dash, user_path(carol_id) + "/delete")
    assert confirm.status_code == 200
    assert user_row(app, CAROL[0]) is not None
    html = confirm.get_data(as_text=True)
    token = csrf_token(html)
    refused = dash.post(
        user_path(carol_id) + "/delete",
        base_url=dash.base,
        data={"csrf_token": token, "confirm": "someone-else"},
    )
    assert refused.status_code == 400
    assert user_row(app, CAROL[0]) is not None
    response = dash.post(
        user_path(carol_id) + "/delete",
        base_url=dash.base,
        data={"csrf_token": token, "confirm": carol_id},
    )
    assert response.status_code == 303
    assert user_row(app, CAROL[0]) is None
    (row,) = audit_rows(app, "dashboard.user_deleted")
    assert row.target == f"user:{carol_id}"
    assert get(dash, user_path(carol_id)).status_code == 404


def test_user_ids_with_slashes_reach_their_page(app, dash):
    with app.extensions["login_site.sessionmaker"]() as db:
        t1 = db.scalar(sa.select(Tenant).where(Tenant.name == "t1"))
        db.add(User(tenant_id=t1.id, user_id="oidc|up/odd", email="odd@example.test", name="O"))
        db.commit()
    page = get(dash, "/dashboard/users/oidc%7Cup/odd")
    assert page.status_code == 200
    assert re.search(r"oidc\|up/odd", page.get_data(as_text=True))


# --- in Chromium ----------------------------------------------------------------------------


@pytest.fixture
def server(live_server):
    """The app on a loopback port with the admin tenant on ``admin.localhost:PORT``."""
    setup_admin_tenant(live_server.app, f"admin.localhost:{live_server.port}")
    return live_server


@pytest.mark.e2e
def test_in_chromium_an_admin_finds_a_user_blocks_them_and_their_login_fails(page, server):
    page.on("dialog", lambda dialog: dialog.accept())  # "Block this user?"
    sign_in(page, server)
    page.get_by_role("navigation", name="Dashboard sections").get_by_role(
        "link", name="Users"
    ).click()
    page.wait_for_url("**/dashboard/users")
    shot(page, "users")
    page.get_by_label("Email, name, username or user ID").fill("alice")
    page.get_by_role("button", name="Search", exact=True).click()
    results = page.locator("#results-title").locator("..")
    expect(results.get_by_role("link", name=ALICE[0])).to_be_visible()
    expect(results.get_by_role("link", name=CAROL[0])).to_have_count(0)
    shot(page, "users-search")
    results.get_by_role("link", name=ALICE[0]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(ALICE[0])
    shot(page, "user")
    page.get_by_role("button", name="Block").click()
    expect(page.get_by_role("status")).to_contain_text("The user is blocked")
    expect(page.get_by_role("button", name="Unblock")).to_be_visible()
    shot(page, "user-blocked")
    page.get_by_role("link", name="Delete…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete this user?")
    shot(page, "user-delete")

    open_login(page, server)
    log_in(page, ALICE)
    expect(page.get_by_role("alert")).to_contain_text("Your account is blocked")
    shot(page, "user-blocked-login")
