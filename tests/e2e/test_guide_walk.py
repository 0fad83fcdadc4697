"""The seed guide walked literally in a browser against the sandbox (reliability.md G1-G4).

Settings → Integrations → 'Connect' → Procore login → 'Allow' → "Connected to …" (G1) →
'Set Up' → five steps → 'Sync' with progress and a summary (G2) → a worker's time reaches
Procore and the card's badge moves to Sent (G3) → Procore revokes the connection and the
admin sees 'Reconnect' while a worker sees a read-only notice (G4) → 'Disconnect' revokes
the tokens at Procore and keeps Crewclock's data and links.
"""

import os
import re
import signal
import time
from contextlib import contextmanager

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, screenshot

pytestmark = pytest.mark.e2e

ADMIN = ("admin@example.com", "demo-password")
PROCORE_ADMIN = "dana.admin@summit.example.com"  # belongs to both demo Procore companies
PROCORE_PASSWORD = "sandbox"
SUPERVISOR = ("supervisor@example.com", "demo-password")
WORKER_EMAIL = "james.smith@summit.example.com"  # imported from Procore by Auto Import
WORKER_PASSWORD = "walk-the-guide-1"
PROJECT = "Harbor Warehouse"


def procore_api(stack, path: str, method: str = "GET", **params):
    """Call the sandbox's REST API as Procore's admin, the way another Procore app would."""
    token = requests.post(
        stack.sandbox_url + "/_sandbox/token", json={"email": PROCORE_ADMIN}, timeout=5
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    if company_id := params.pop("company_id", None):
        headers["Procore-Company-Id"] = str(company_id)
    response = requests.request(
        method, stack.sandbox_url + path, headers=headers, params=params, timeout=5
    )
    response.raise_for_status()
    return response.json() if response.content else None


def summit_company_id(stack) -> int:
    companies = procore_api(stack, "/rest/v1.0/companies")
    return next(c["id"] for c in companies if c["name"] == "Summit Builders Inc.")


def procore_timecard_entries(stack) -> list[dict]:
    """Every timecard entry in the Summit Builders company at the sandbox."""
    summit = summit_company_id(stack)
    return procore_api(
        stack, f"/rest/v1.0/companies/{summit}/timecard_entries", company_id=summit, per_page=1000
    )


def wait_for_procore_entries(stack, count: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(entries := procore_timecard_entries(stack)) != count:
        assert time.monotonic() < deadline, f"Procore holds {len(entries)} entries"
        time.sleep(0.5)
    return entries


def rate_limited(count: int, retry_after: int) -> dict:
    """A sandbox fault rule: Procore's 429 for timecard entry writes."""
    return {
        "method": "POST",
        "path": "timecard_entries",
        "status": 429,
        "count": count,
        "headers": {"Retry-After": str(retry_after)},
    }


def add_faults(stack, rules: list[dict]) -> None:
    response = requests.post(
        stack.sandbox_url + "/_sandbox/faults", json={"rules": rules}, timeout=5
    )
    response.raise_for_status()


def choose(select, text: str) -> None:
    """Select the option whose label contains `text`."""
    value = select.locator("option", has_text=text).first.get_attribute("value")
    select.select_option(value=value)


def log_out(page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("Email or username")).to_be_visible()


def give_supervisor_and_password(page) -> None:
    """Admin: the imported project (which came with its cost codes) gets Sam as supervisor;
    the imported worker gets a password."""
    open_link(page, "Projects")
    open_link(page, PROJECT)
    # The import gave the project its list's cost codes, so time can be booked right away.
    expect(page.locator("#project-cost-codes table")).to_contain_text("Formwork")
    choose(page.get_by_label("Supervisors"), "Sam Supervisor")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text(f"Project {PROJECT} was saved.")).to_be_visible()
    open_link(page, "Users")
    open_link(page, "Smith, James")
    page.get_by_label("New password (optional)").fill(WORKER_PASSWORD)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("James Smith was saved.")).to_be_visible()


@contextmanager
def paused(process):
    """SIGSTOP a process for the block (RQ leaves its jobs queued), then SIGCONT it."""
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


def open_link(scope, name: str) -> None:
    """Follow a link and wait for the new page to load, so htmx is ready before we act."""
    page = getattr(scope, "page", scope)
    with page.expect_navigation():
        scope.get_by_role("link", name=name).first.click()


def connect_at_procore(page, stack, choice: str) -> None:
    """Settings → Integrations → 'Connect', log in at the sandbox, then 'Allow' or 'Deny'."""
    open_link(page, "Settings")
    open_link(page, "Integrations")
    page.get_by_role("button", name="Connect").click()
    page.wait_for_url(stack.sandbox_url + "/**")
    page.get_by_label("Email").fill(PROCORE_ADMIN)
    page.get_by_label("Password").fill(PROCORE_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Allow")).to_be_visible()
    screenshot(page, f"walk-03-procore-consent-{choice.lower()}")
    page.get_by_role("button", name=choice).click()
    page.wait_for_url(stack.web_url + "/**")


def sandbox_allow(page, stack) -> None:
    """At the sandbox: log in if asked, then 'Allow'; back on Crewclock afterwards."""
    if page.get_by_role("button", name="Log in").is_visible():
        page.get_by_label("Email").fill(PROCORE_ADMIN)
        page.get_by_label("Password").fill(PROCORE_PASSWORD)
        page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(stack.web_url + "/**")


def revoke_crewclock_at_procore(stack) -> None:
    """What removing the app in Procore's App Management does: every token it holds dies."""
    tables = requests.get(stack.sandbox_url + "/_sandbox/export", timeout=5).json()["tables"]
    tokens = [key for key, record in tables["access_tokens"] if not record["revoked"]]
    assert tokens
    for token in tokens:
        requests.post(stack.sandbox_url + "/oauth/revoke", data={"token": token}, timeout=5)


def test_guide_walk_connects_imports_sends_time_and_asks_to_reconnect(stack, page):
    log_in(page, stack.web_url, *ADMIN)
    screenshot(page, "walk-01-logged-in")

    # G1: connect through the sandbox's real OAuth pages.
    connect_at_procore(page, stack, "Allow")
    # Dana's login sees two Procore companies; step 1 picks one, so the card names her.
    expect(page.get_by_text(re.compile(r"Connected to\s+Dana Whitfield"))).to_be_visible()
    expect(page.get_by_text("Summit Builders Inc., Ridgeline Concrete LLC")).to_be_visible()
    screenshot(page, "walk-04-integrations-connected")

    # G2: 'Set Up' → the five steps → 'Sync'.
    open_link(page, "Set Up")
    expect(page.get_by_role("heading", name=re.compile("Procore company"))).to_be_visible()
    page.get_by_label("Procore company").select_option(label="Summit Builders Inc.")
    expect(page.get_by_label("Global (Standard) Cost Code List")).to_be_visible()
    page.get_by_label("Global (Standard) Cost Code List").select_option(label="Standard Cost Codes")
    screenshot(page, "walk-05-step1-company")
    page.get_by_role("button", name="Next").click()

    expect(page.get_by_role("heading", name="2. Users")).to_be_visible()
    expect(page.get_by_role("switch", name="Auto Import")).to_be_checked()
    expect(page.locator("#stage-summary")).to_contain_text(
        "25 in Procore · 20 will be imported", timeout=30_000
    )
    screenshot(page, "walk-06-step2-users", docs="setup-users")
    page.get_by_role("button", name="Next").click()

    expect(page.get_by_role("heading", name="3. Projects")).to_be_visible()
    expect(page.locator("#stage-summary")).to_be_visible(timeout=30_000)
    screenshot(page, "walk-07-step3-projects")
    page.get_by_role("button", name="Next").click()

    expect(page.get_by_role("heading", name="4. Cost codes")).to_be_visible()
    expect(page.locator("#stage-summary")).to_be_visible(timeout=30_000)
    screenshot(page, "walk-08-step4-cost-codes")
    page.get_by_role("button", name="Next").click()

    expect(page.get_by_role("heading", name="5. Sync settings")).to_be_visible()
    screenshot(page, "walk-09-step5-sync-settings")
    # Hold the worker so the page shows the run waiting with 'Sync' disabled, then let it go.
    with paused(stack.processes["worker"]):
        page.get_by_role("button", name="Sync").click()
        expect(page.get_by_text("Waiting for a worker…")).to_be_visible()
        expect(page.get_by_role("button", name="Sync")).to_be_disabled()
        screenshot(page, "walk-10-import-waiting")
    expect(page.locator("#run-summary")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Import finished.")).to_be_visible()
    expect(page.get_by_role("button", name="Sync")).to_be_enabled()  # settings can change again
    summary = dict(
        zip(
            page.locator("#run-summary dt").all_inner_texts(),
            page.locator("#run-summary dd").all_inner_texts(),
            strict=True,
        )
    )
    assert int(summary["Created"]) > 0 and summary["Failed"] == "0", summary
    # The guideline breakers are listed with the reason they were skipped.
    expect(
        page.get_by_role("cell", name="Email address is missing. Username is missing.")
    ).to_be_visible()
    screenshot(page, "walk-11-import-summary", docs="import-summary")

    # G3: an imported worker's approved time reaches Procore.
    give_supervisor_and_password(page)
    log_out(page)
    log_in(page, stack.web_url, WORKER_EMAIL, WORKER_PASSWORD)
    open_link(page, "My time")
    row = page.locator("tr.editing")
    row.get_by_label("Project").select_option(label=PROJECT)
    # Choosing the project redraws the row with that project's codes: let htmx finish first.
    page.wait_for_load_state("networkidle")
    expect(row.get_by_label("Cost code")).to_contain_text("Formwork")
    choose(row.get_by_label("Cost code"), "Formwork")
    row.get_by_label("Hours").fill("7.5")
    row.get_by_label("Notes").fill("Forms on the north wall")
    row.get_by_role("button", name="Add").click()
    expect(page.get_by_role("cell", name="Forms on the north wall")).to_be_visible()
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#card")).to_contain_text("Submitted")
    screenshot(page, "walk-12-worker-submitted")
    log_out(page)

    log_in(page, stack.web_url, *SUPERVISOR)
    open_link(page, "Time cards to approve")
    open_link(page.get_by_role("row", name=re.compile("James Smith")), "Review")
    badge = page.locator(".sync-status .badge")
    with paused(stack.processes["worker"]):
        page.get_by_role("button", name="Approve").click()
        expect(badge).to_have_text("Pending")
        screenshot(page, "walk-13-card-pending")
        # Procore answers the first five writes with 429 (the client's retries run out on
        # the fifth, whose Retry-After is long enough for the badge's 2 s poll to see it).
        add_faults(stack, [rate_limited(count=4, retry_after=1), rate_limited(1, 6)])
    expect(badge).to_have_text("Waiting for Procore rate limit", timeout=30_000)
    screenshot(page, "walk-14-card-waiting-rate-limit")
    expect(badge).to_have_text("Sent", timeout=30_000)
    screenshot(page, "walk-15-card-sent-to-procore", docs="timecard-sent")

    entries = procore_timecard_entries(stack)
    assert len(entries) == 1, entries
    entry = entries[0]
    assert str(entry["origin_id"]).isdigit()  # an integer origin id, as v1.0 declares
    assert entry["hours"] == "7.5"
    assert entry["party"]["name"] == "James Smith"
    assert entry["project"]["name"] == PROJECT
    assert entry["cost_code"]["full_code"] == "03-100"
    assert entry["description"] == "Forms on the north wall"
    log_out(page)

    # The weekly hours check: someone deletes the entry in Procore; the admin's check finds
    # it missing, and 'Re-send differences' puts it back in Procore once.
    summit = summit_company_id(stack)
    procore_api(
        stack,
        f"/rest/v1.0/companies/{summit}/timecard_entries/{entry['id']}",
        method="DELETE",
        company_id=summit,
    )
    assert procore_timecard_entries(stack) == []
    log_in(page, stack.web_url, *ADMIN)
    open_link(page, "Settings")
    open_link(page, "Integrations")
    open_link(page, "Hours check (Crewclock vs Procore)")
    hours = page.locator("#hours")
    hours.get_by_label("Week of").fill(entry["date"])
    hours.get_by_role("button", name="Check").click()
    expect(hours.get_by_text("Missing in Procore", exact=True)).to_be_visible(timeout=30_000)
    expect(hours.get_by_role("row", name=re.compile("James Smith"))).to_contain_text("7.50")
    screenshot(page, "walk-15a-hours-check-missing-in-procore")
    hours.get_by_role("button", name="Re-send differences").click()
    expect(hours).to_contain_text("Re-sent 1 entry")
    (again,) = wait_for_procore_entries(stack, 1)
    assert again["origin_id"] == entry["origin_id"] and again["id"] != entry["id"]
    hours.get_by_role("button", name="Check").click()
    expect(hours.locator("#hours-none")).to_contain_text(
        "The one person / project / cost code row matches.", timeout=30_000
    )
    screenshot(page, "walk-15b-hours-check-no-differences")
    log_out(page)

    # G4: Procore revokes Crewclock's access; the next Procore call finds out.
    revoke_crewclock_at_procore(stack)
    log_in(page, stack.web_url, *ADMIN)
    page.goto(stack.web_url + "/settings/integrations/procore/setup/step/2")
    page.get_by_role("button", name="Refresh from Procore").click()
    banner = page.locator("#procore-banner")
    expect(page.get_by_text("Loading from Procore failed")).to_be_visible(timeout=30_000)
    open_link(page, "Settings")
    open_link(page, "Integrations")
    expect(banner).to_contain_text("syncing is paused")
    expect(banner.get_by_role("button", name="Reconnect")).to_be_visible()
    expect(page.locator("#procore-card")).to_contain_text("Needs reconnect")
    screenshot(page, "walk-16-admin-reconnect-banner", docs="reconnect-banner")
    log_out(page)

    log_in(page, stack.web_url, WORKER_EMAIL, WORKER_PASSWORD)
    expect(banner).to_contain_text("needs an admin to reconnect")
    expect(banner.get_by_role("button", name="Reconnect")).to_have_count(0)
    screenshot(page, "walk-17-worker-read-only-notice")
    log_out(page)

    # 'Reconnect' is the same Procore sign-in; afterwards the banner is gone.
    log_in(page, stack.web_url, *ADMIN)
    banner.get_by_role("button", name="Reconnect").click()
    page.wait_for_url(stack.sandbox_url + "/**")
    sandbox_allow(page, stack)
    expect(page.get_by_text("Procore is connected.")).to_be_visible()
    expect(banner).to_have_count(0)
    expect(page.get_by_text(re.compile(r"Connected to\s+Summit Builders Inc\."))).to_be_visible()
    screenshot(page, "walk-18-integrations-reconnected", docs="integrations")

    # 'Disconnect' revokes the tokens at Procore and forgets them; Crewclock's data stays.
    links_before = _count(stack, "procore_link")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#procore-card").get_by_role("button", name="Disconnect").click()
    expect(page.get_by_text("Procore is disconnected; its tokens were revoked.")).to_be_visible()
    expect(page.locator("#procore-card").get_by_role("button", name="Connect")).to_be_visible()
    screenshot(page, "walk-19-integrations-disconnected")
    tables = requests.get(stack.sandbox_url + "/_sandbox/export", timeout=5).json()["tables"]
    assert all(record["revoked"] for _, record in tables["access_tokens"])
    stored = stack.query("SELECT access_token_enc, refresh_token_enc FROM procore_connection")
    assert stored == [(None, None)]
    assert _count(stack, "procore_link") == links_before > 0


def _count(stack, table: str) -> int:
    return stack.query(f"SELECT count(*) FROM {table}")[0][0]


def test_denying_at_procore_shows_a_plain_message_and_stores_nothing(stack, page):
    log_in(page, stack.web_url, *ADMIN)
    connect_at_procore(page, stack, "Deny")

    card = page.locator("#procore-card")
    expect(card.get_by_role("alert")).to_have_text(
        "Procore access was not allowed, so nothing was connected. "
        "Click Connect and choose Allow to connect."
    )
    expect(card.get_by_role("button", name="Connect")).to_be_visible()
    expect(card).not_to_contain_text("Connected to")
    screenshot(page, "deny-01-integrations-not-connected")

    assert _count(stack, "procore_connection") == 0
    tables = requests.get(stack.sandbox_url + "/_sandbox/export", timeout=5).json()["tables"]
    assert tables["access_tokens"] == [] and tables["oauth_codes"] == []
