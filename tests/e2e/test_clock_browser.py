"""A demo worker clocks in on My time, cancels, clocks in again and out, in a real browser
(htmx swaps, CSRF)."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, screenshot
from webapp.models.base import utcnow

pytestmark = pytest.mark.e2e


# Zones a few hours apart: one of them is always between 05:00 and 21:00 right now.
DAYTIME_ZONES = (
    "Pacific/Honolulu",
    "America/Los_Angeles",
    "America/New_York",
    "Atlantic/Azores",
    "Europe/Berlin",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Pacific/Auckland",
)


def zone_in_daytime() -> str:
    """A zone where three hours back from now is still today (no split at local midnight)."""
    now = utcnow()
    return next(z for z in DAYTIME_ZONES if 5 <= now.astimezone(ZoneInfo(z)).hour < 21)


def test_worker_clocks_in_cancels_then_clocks_in_and_out(stack, page):
    # The shift below lasts three hours up to now: run it where that cannot cross midnight,
    # whatever time of day the suite runs (a split shift is the clock tests' own subject).
    stack.execute(
        sa.update(sa.table("user_account", sa.column("email"), sa.column("time_zone")))
        .where(sa.column("email") == "worker@example.com")
        .values(time_zone=zone_in_daytime())
    )
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

    # Clock in again; three hours pass (the clock-in is moved back), then clock out.
    page.locator("#clock-panel").get_by_label("Notes (optional)").fill("Rebar on level 2")
    page.locator("#clock-panel").get_by_role("button", name="Clock in").click()
    panel = page.locator("#clock-panel")
    expect(panel.get_by_role("heading", name=re.compile(r"^Clocked in since"))).to_be_visible()
    clocks = sa.table("clock_session", sa.column("started_at", sa.DateTime(timezone=True)))
    stack.execute(sa.update(clocks).values(started_at=utcnow() - timedelta(hours=3)))
    page.reload()
    panel = page.locator("#clock-panel")
    expect(panel).to_contain_text("3 h")
    screenshot(page, "clock-01-clocked-in")
    panel.get_by_label("Break (minutes)").fill("30")
    panel.get_by_role("button", name="Clock out").click()

    expect(page.locator("#clock-panel").get_by_role("heading", name="Clock in")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("Rebar on level 2"))).to_contain_text("2.50")
    screenshot(page, "clock-02-clocked-out")
    assert stack.query("SELECT count(*) FROM clock_session") == [(0,)]
    # A total-hours project keeps the hours net of the break, as a typed entry would.
    (hours,) = stack.query("SELECT hours FROM time_entry WHERE notes = 'Rebar on level 2'")[0]
    assert float(hours) == 2.5
