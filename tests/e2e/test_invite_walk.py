"""An admin adds a user with no password, copies an invite link, and the user sets a password
with it in another browser; the web server's request log never shows the token."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, screenshot

pytestmark = pytest.mark.e2e


def test_admin_copies_an_invite_link_and_the_user_sets_a_password(stack, page, playwright_browser):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page, stack.web_url, "admin@example.com", "demo-password")
    page.goto(stack.web_url + "/users/new")
    page.get_by_label("First name").fill("Nia")
    page.get_by_label("Last name").fill("Newhire")
    page.get_by_label("Username").fill("nia")
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_text("Nia Newhire was added.")).to_be_visible()
    expect(page.locator("tr", has_text="Newhire, Nia")).to_contain_text("No password yet")

    page.get_by_role("link", name="Show only users with no password yet").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    page.get_by_role("link", name="Newhire, Nia").click()
    page.get_by_role("button", name="Create invite link").click()
    field = page.get_by_label("Invite link for Nia")
    expect(field).to_have_value(re.compile(re.escape(stack.web_url) + r"/invite/\S+"))
    expect(page.get_by_text("Crewclock sends no email")).to_be_visible()
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    link = field.input_value()
    assert page.evaluate("navigator.clipboard.readText()") == link
    screenshot(page, "invite-01-link")

    invited = playwright_browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        nia = invited.new_page()
        response = nia.goto(link)
        assert response.status == 200
        assert response.headers["referrer-policy"] == "no-referrer"
        expect(nia.get_by_role("heading", name="Set your password, Nia")).to_be_visible()
        nia.get_by_label("New password").fill("nia-chooses-1")
        nia.get_by_label("Type it again").fill("nia-chooses-1")
        nia.get_by_role("button", name="Set password and log in").click()
        expect(nia.get_by_text("Welcome, Nia: your password is set.")).to_be_visible()
        expect(nia.get_by_text("Nia Newhire · Worker")).to_be_visible()
        screenshot(nia, "invite-02-logged-in")

        again = nia.goto(link)
        assert again.status == 410
        expect(nia.get_by_text("This invite link has expired or was already used.")).to_be_visible()
    finally:
        invited.close()

    token = link.rsplit("/", 1)[1]
    web_log = stack.log("web")
    assert "/invite/[redacted]" in web_log
    assert token not in web_log
