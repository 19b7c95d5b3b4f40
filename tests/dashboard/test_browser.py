"""The dashboard in Chromium, against the real app on a loopback port: an admin builds an
application and its connections and the login page follows at once; Try runs a real login;
a user without the admin role is refused. Screenshots of each main screen go to
test-artifacts/dashboard-*.png for a human to look at."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.conftest import ALICE
from tests.conftest import authorize_params
from tests.dashboard.conftest import ADMIN
from tests.dashboard.conftest import NOBODY
from tests.dashboard.conftest import setup_admin_tenant
from tests.e2e.browser import ARTIFACTS

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(live_server):
    setup_admin_tenant(live_server.app, f"admin.localhost:{live_server.port}")
    return live_server


def dashboard_url(server, path: str = "/dashboard/") -> str:
    return f"http://admin.localhost:{server.port}{path}"


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def log_in(page: Page, user) -> None:
    """On the hosted login page: email, password, Continue."""
    page.get_by_label("Email address").fill(user[0])
    page.get_by_label("Password").fill(user[1])
    page.get_by_role("button", name="Continue").click()


def sign_in(page: Page, server, user=ADMIN) -> None:
    page.goto(dashboard_url(server))
    page.wait_for_url("**/login?**")
    shot(page, "signin") if user is ADMIN else None
    log_in(page, user)
    page.wait_for_url("**/dashboard/applications")


def saved(page: Page, text: str) -> None:
    expect(page.get_by_role("status")).to_contain_text(text)


def create_connection(page: Page, server, kind: str, name: str, app: str) -> None:
    page.goto(dashboard_url(server, f"/dashboard/connections?kind={kind}"))
    page.get_by_role("link", name="Create connection").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Create", exact=True).click()
    page.wait_for_url("**/dashboard/connections/*/applications")
    page.get_by_role("switch", name=app).check()
    page.get_by_role("button", name="Save").click()
    saved(page, "Applications saved.")


def test_admin_builds_an_application_whose_login_page_offers_only_its_enabled_connections(
    page: Page, server
):
    sign_in(page, server)
    expect(page.get_by_label("Tenant")).to_contain_text("Tenant One")
    shot(page, "applications")

    page.get_by_role("link", name="Create application").click()
    page.get_by_label("Name").fill("Seed App")
    page.get_by_label("Regular web application").check()
    shot(page, "application-new")
    page.get_by_role("button", name="Create", exact=True).click()
    page.wait_for_url("**/dashboard/applications/*")
    client_id = page.url.rsplit("/", 1)[1]
    page.get_by_label("Allowed callback URLs").fill("https://app.test/seed-cb#frag")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#callbacks-error")).to_have_text("Line 1: must not contain a fragment.")
    expect(page.get_by_label("Allowed callback URLs")).to_have_attribute("aria-invalid", "true")
    shot(page, "application-settings-error")
    page.get_by_label("Allowed callback URLs").fill("https://app.test/seed-cb")
    page.get_by_role("button", name="Save changes").click()
    saved(page, "Settings saved.")
    shot(page, "application-settings")
    page.get_by_role("link", name="Credentials").click()
    expect(page.locator("#client-secret")).to_have_count(0)
    page.get_by_role("button", name="Reveal secret").click()
    expect(page.locator("#client-secret")).to_have_text(re.compile(r"^[A-Za-z0-9_-]{60,}$"))
    shot(page, "application-credentials")

    create_connection(page, server, "database", "seed-users", "Seed App")
    shot(page, "connection-applications")
    create_connection(page, server, "passwordless", "seed-email", "Seed App")
    page.get_by_role("link", name="Settings").click()
    shot(page, "connection-settings")
    page.goto(dashboard_url(server, "/dashboard/connections?kind=database"))
    shot(page, "connections")

    page.goto(dashboard_url(server, f"/dashboard/applications/{client_id}/connections"))
    expect(page.get_by_role("switch", name="seed-users")).to_be_checked()
    expect(page.get_by_role("switch", name="seed-email")).to_be_checked()
    expect(page.get_by_role("switch", name="db", exact=True)).not_to_be_checked()
    page.get_by_role("switch", name="seed-email").uncheck()
    page.get_by_role("button", name="Save").click()
    saved(page, "Connections saved.")
    expect(page.get_by_role("switch", name="seed-email")).not_to_be_checked()
    shot(page, "application-connections")

    params = authorize_params(client_id=client_id, redirect_uri="https://app.test/seed-cb")
    page.goto(f"http://t1.localhost:{server.port}/authorize?{urlencode(params)}")
    page.wait_for_url("**/login?**")
    expect(page.locator('form[data-connection="seed-users"]')).to_be_visible()
    expect(page.locator("[data-connection]")).to_have_count(1)
    shot(page, "login-page")


def test_try_logs_in_through_the_database_connection_and_shows_the_profile(page: Page, server):
    sign_in(page, server)
    page.get_by_role("link", name="Connections").click()
    page.get_by_role("link", name="db", exact=True).click()
    shot(page, "connection-db")
    page.get_by_role("button", name="Try").click()
    page.wait_for_url(f"http://127.0.0.1:{server.port}/login?**")
    log_in(page, ALICE)
    page.wait_for_url("**/dashboard/try/callback?**")
    expect(page.get_by_role("heading", name="It works!")).to_be_visible()
    expect(page.get_by_role("definition").filter(has_text=ALICE[0])).to_be_visible()
    expect(page.locator("pre.json")).to_contain_text('"email": "alice@example.test"')
    shot(page, "try-result")


def test_a_user_without_the_admin_role_gets_a_403_page(page: Page, server):
    statuses = []  # of /dashboard/connections: first the redirect to sign in, then the 403
    target = "/dashboard/connections"
    page.on("response", lambda r: statuses.append(r.status) if r.url.endswith(target) else None)
    page.goto(dashboard_url(server, "/dashboard/connections"))
    page.wait_for_url("**/login?**")
    log_in(page, NOBODY)
    page.wait_for_url("**/dashboard/connections")
    expect(page.get_by_role("heading", name="Not an administrator")).to_be_visible()
    assert statuses == [302, 403]
    shot(page, "forbidden")


def test_tenant_switcher_and_tenant_creation_work_in_the_browser(page: Page, server):
    sign_in(page, server)
    page.get_by_role("link", name="Tenants").click()
    page.get_by_label("Name", exact=True).fill("shop")
    page.get_by_label("Display name").fill("Shop")
    page.get_by_label("Hosts").fill(f"shop.localhost:{server.port}")
    page.get_by_label("Primary colour").fill("#0f766e")
    page.get_by_role("button", name="Create tenant").click()
    page.wait_for_url("**/dashboard/applications")
    saved(page, "Tenant Shop created and selected.")
    expect(page.get_by_label("Tenant")).to_have_value(
        page.locator("#tenant-select option", has_text="Shop").get_attribute("value")
    )
    page.get_by_label("Tenant").select_option(label="Tenant Two")  # submits on change
    page.wait_for_load_state()
    expect(page.get_by_label("Tenant").locator("option:checked")).to_have_text("Tenant Two")
    page.get_by_role("link", name="Tenants").click()
    shot(page, "tenants")
