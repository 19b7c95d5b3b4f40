"""Forgot password, the reset page and the new password, in Chromium (issue 5)."""

from urllib.parse import urlsplit

import pytest

from tests.conftest import ALICE
from tests.e2e.browser import open_login

pytestmark = pytest.mark.e2e
NEW_PASSWORD = "Fresh-Garden-Path7"


def test_forgot_password_mail_reset_page_and_login_with_the_new_password(
    page, live_server, callbacks, mailbox
):
    open_login(page, live_server)
    page.get_by_role("link", name="Forgot password?").click()
    page.locator("#email").fill(ALICE[0])
    page.get_by_role("button", name="Send the link").click()
    assert page.get_by_role("status").inner_text().startswith("If an account exists")

    message = mailbox.wait_for(to=ALICE[0], subject_contains="")
    link = [u for u in mailbox.links(message) if "/reset_password?" in u][0]
    parts = urlsplit(link)
    page.goto(live_server.url("t1", f"{parts.path}?{parts.query}"))
    page.locator("#password").fill("Fresh")
    assert page.locator('#policy > li[data-code="lengthAtLeast"]').get_attribute("class") != "met"
    page.locator("#password").fill(NEW_PASSWORD)
    assert page.locator('#policy > li[data-code="lengthAtLeast"]').get_attribute("class") == "met"
    page.locator("#confirm").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    assert "Password changed" in page.locator("h1").inner_text()

    open_login(page, live_server)
    page.locator("#username").fill(ALICE[0])
    page.locator("#password").fill(ALICE[1])
    page.get_by_role("button", name="Continue").click()
    assert "Wrong email or password." in page.get_by_role("alert").inner_text()
    page.locator("#password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("https://app.test/cb?**")
    assert "code=" in callbacks.urls[-1]
