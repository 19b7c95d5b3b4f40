"""Passwordless in headless Chromium through the hosted page: email code, wrong codes,
magic link in the same and in another browser context, SMS code (issue 6)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import open_login
from tests.passwordless.conftest import NEW_EMAIL
from tests.passwordless.conftest import PHONE
from tests.passwordless.conftest import code_in
from tests.passwordless.conftest import last_code

pytestmark = pytest.mark.e2e


def ask_for(page, send_button: str, field: str = "#pl-email-otp", value: str = NEW_EMAIL):
    page.locator(field).fill(value)
    page.get_by_role("button", name=send_button).click()
    page.wait_for_url("**/login/passwordless?**")


def enter(page, code: str) -> None:
    page.locator("#code").fill(code)
    page.get_by_role("button", name="Verify code").click()


def test_email_code_through_the_hosted_page(page, live_server, callbacks, mailbox):
    open_login(page, live_server)
    ask_for(page, "Email me a code")
    expect(page.get_by_role("status")).to_contain_text(f"We sent a code to {NEW_EMAIL}")
    enter(page, code_in(mailbox, NEW_EMAIL))
    page.wait_for_url("https://app.test/cb?**")
    assert "code=" in callbacks.urls[-1] and "state=st-123" in callbacks.urls[-1]


def test_wrong_codes_then_a_new_code(page, live_server, callbacks, mailbox):
    open_login(page, live_server)
    ask_for(page, "Email me a code")
    code = code_in(mailbox, NEW_EMAIL)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    enter(page, wrong)
    expect(page.get_by_role("alert")).to_have_text(
        "That code is not right. Check it and try again."
    )
    enter(page, wrong)
    expect(page.get_by_role("alert")).to_have_text(
        "That code is not right. Check it and try again."
    )
    enter(page, wrong)
    expect(page.get_by_role("alert")).to_contain_text("Request a new code.")
    expect(page.locator("#code")).to_have_count(0)
    page.get_by_role("button", name="Request a new code").click()
    page.wait_for_url("**/login/passwordless?**")
    enter(page, last_code(mailbox, NEW_EMAIL, previous=1))
    page.wait_for_url("https://app.test/cb?**")
    assert "code=" in callbacks.urls[-1]


def test_magic_link_in_the_same_browser_logs_in_after_the_confirm_button(
    page, live_server, callbacks, mailbox
):
    open_login(page, live_server)
    ask_for(page, "Email me a link")
    expect(page.get_by_role("status")).to_contain_text("Open it in this browser")
    message = mailbox.wait_for(to=NEW_EMAIL)
    link = [u for u in mailbox.links(message) if "verify_redirect" in u][0]
    assert link.startswith(live_server.url("t1", "/passwordless/verify_redirect?"))
    page.goto(link)
    expect(page.locator("h1")).to_have_text("Log in")
    page.get_by_role("button", name="Log in to web").click()
    page.wait_for_url("https://app.test/cb?**")
    assert "code=" in callbacks.urls[-1] and "state=st-123" in callbacks.urls[-1]


def test_magic_link_in_another_browser_is_refused_and_still_works_in_the_first(
    browser, page, live_server, callbacks, mailbox
):
    open_login(page, live_server)
    ask_for(page, "Email me a link")
    message = mailbox.wait_for(to=NEW_EMAIL)
    link = [u for u in mailbox.links(message) if "verify_redirect" in u][0]
    other = browser.new_context(locale="en-US")
    try:
        elsewhere = other.new_page()
        elsewhere.goto(link)
        expect(elsewhere.locator("h1")).to_have_text("Open the link in the same browser")
        expect(elsewhere.get_by_role("button")).to_have_count(0)
    finally:
        other.close()
    page.goto(link)
    page.get_by_role("button", name="Log in to web").click()
    page.wait_for_url("https://app.test/cb?**")
    assert "code=" in callbacks.urls[-1]


def test_sms_code_through_the_hosted_page(page, sms_live, callbacks, twilio):
    open_login(page, sms_live)
    ask_for(page, "Text me a code", field="#pl-sms", value="+1 202 555 0123")
    expect(page.get_by_role("status")).to_contain_text(f"We sent a code to {PHONE}")
    enter(page, twilio.wait_for(PHONE).code)
    page.wait_for_url("https://app.test/cb?**")
    assert "code=" in callbacks.urls[-1]
