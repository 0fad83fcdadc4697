"""A demo worker clocks in on My time and cancels it, in a real browser (htmx swaps, CSRF)."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


def test_worker_clocks_in_and_cancels_the_clock_in(stack, page):
    log_in(page, stack.web_url, "worker@example.com", "demo-password")
    page.get_by_role("link", name="My time").click()
    panel = page.locator("#clock-panel")
    expect(panel.get_by_role("heading", name="Clock in")).to_be_visible()

    panel.get_by_role("button", name="Clock in").click()

    expect(panel.get_by_role("heading", name=re.compile(r"^Clocked in since"))).to_be_visible()
    assert stack.query("SELECT count(*) FROM clock_session") == [(1,)]

    page.once("dialog", lambda dialog: dialog.accept())
    panel.get_by_role("button", name="Cancel clock-in").click()

    expect(page.locator("#clock-panel").get_by_role("heading", name="Clock in")).to_be_visible()
    assert stack.query("SELECT count(*) FROM clock_session") == [(0,)]
