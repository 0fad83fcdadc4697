"""The weekly hours check against the sandbox: what differs, why, and 'Re-send differences'."""

import os

import pytest
import sqlalchemy as sa
from rq import SimpleWorker

from tests.conftest import make_company, make_user
from tests.integration.push_support import *  # noqa: F403 (fixtures)
from tests.integration.push_support import WEEK, remote_project_id
from webapp.extensions import db
from webapp.models import ProcorePush, Role, RunStatus, SyncRun
from webapp.redis_runtime import get_queue, get_redis
from webapp.services import hours_check

HX = {"HX-Request": "true"}


def check(world):
    """Run a check of WEEK the way the job does, against the sandbox."""
    run = hours_check.start_check(world.company.id, WEEK)
    return hours_check.run_check(world.company.id, run.id, client=world.sandbox.client())


def ours_in_procore(world) -> list[dict]:
    origins = set(db.session.scalars(sa.select(ProcorePush.origin_id)))
    return [e for e in world.sandbox.entries() if str(e["origin_id"]) in origins]


def result_page(client, run) -> str:
    response = client.get(f"/time/procore/hours/{run.id}", headers=HX)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def sent_week(world, entries=2):
    card = world.approve(world.card(world.workers[0], entries=entries))
    world.push()
    return card


def test_page_check_and_worker_show_no_differences_when_procore_matches(world, client, monkeypatch):
    sent_week(world)
    monkeypatch.setattr(
        "webapp.services.connections.procore_client_for",
        lambda company_id, stats=None: world.sandbox.client(),
    )
    monkeypatch.setattr("webapp.jobs._app_pid", os.getpid())
    client.login(world.admin)
    page = client.get("/time/procore/hours", query_string={"week": WEEK.isoformat()})
    assert page.status_code == 200
    assert "No check of this week yet" in page.get_data(as_text=True)

    started = client.post("/time/procore/hours", data={"week": WEEK.isoformat()}, headers=HX)
    assert started.status_code == 200
    assert 'hx-trigger="every 1s"' in started.get_data(as_text=True)  # polls while it runs
    SimpleWorker([get_queue("imports")], connection=get_redis()).work(burst=True)

    run = hours_check.latest_check(world.company.id, WEEK)
    assert run.status == RunStatus.SUCCEEDED
    html = result_page(client, run)
    assert "No differences for the week of Mar 2, 2026" in html
    assert "every 1s" not in html  # polling stopped by itself
    # The result survives a reload of the page.
    again = client.get("/time/procore/hours", query_string={"week": WEEK.isoformat()})
    assert "No differences for the week of" in again.get_data(as_text=True)


def test_entry_deleted_in_procore_is_missing_and_resend_restores_exactly_one(world, client):
    sent_week(world)
    gone = ours_in_procore(world)[0]
    world.sandbox.store.delete("timecard_entries", gone["id"])

    run = check(world)
    client.login(world.admin)
    html = result_page(client, run)
    assert "Missing in Procore" in html and "Re-send differences" in html
    assert "8.00" in html and "16.00" in html  # Procore 8 h against Crewclock's 16 h

    response = client.post(f"/time/procore/hours/{run.id}/resend", headers=HX)
    assert response.status_code == 200
    assert "1 entry queued for Procore" in response.get_data(as_text=True)
    # A second click queues nothing more.
    client.post(f"/time/procore/hours/{run.id}/resend", headers=HX)
    world.push()

    origins = [e["origin_id"] for e in ours_in_procore(world)]
    assert len(origins) == 2 and origins.count(gone["origin_id"]) == 1
    assert check(world).checkpoint["rows"] == []


def test_resend_of_a_missing_entry_that_reappeared_does_not_duplicate_it(world, client):
    """The re-send goes through the outbox's lookup by origin_id before it creates."""
    sent_week(world, entries=1)
    gone = ours_in_procore(world)[0]
    world.sandbox.store.delete("timecard_entries", gone["id"])
    run = check(world)
    world.sandbox.store.insert("timecard_entries", dict(gone))  # e.g. restored in Procore

    assert hours_check.resend_differences(world.company.id, run.id) == 1
    world.push()

    assert [e["origin_id"] for e in ours_in_procore(world)] == [gone["origin_id"]]
    assert check(world).checkpoint["rows"] == []


def test_hours_changed_in_procore_are_reported_and_resend_restores_ours(world, client):
    sent_week(world, entries=1)
    entry = ours_in_procore(world)[0]
    world.sandbox.store.update("timecard_entries", entry["id"], {"hours": "6.0"})

    run = check(world)
    [row] = run.checkpoint["rows"]
    assert (row["crewclock"], row["procore"], row["difference"]) == ("8.00", "6.00", "-2.00")
    assert row["kinds"] == ["changed"]
    client.login(world.admin)
    assert "Changed in Procore" in result_page(client, run)

    client.post(f"/time/procore/hours/{run.id}/resend", headers=HX)
    world.push()

    assert world.sandbox.store.get("timecard_entries", entry["id"])["hours"] == "8.0"
    assert len(ours_in_procore(world)) == 1
    assert check(world).checkpoint["rows"] == []


def test_entry_made_by_another_app_is_only_in_procore_and_resend_leaves_it(world, client):
    sent_week(world, entries=1)
    ours = ours_in_procore(world)[0]
    made_elsewhere = {"date": WEEK.isoformat(), "hours": "3", "party_id": ours["party_id"]}
    other = world.sandbox.client().post(
        f"/rest/v1.0/projects/{remote_project_id(world)}/timecard_entries",
        json={"timecard_entry": made_elsewhere | {"cost_code_id": ours["cost_code_id"]}},
    )

    run = check(world)
    [row] = run.checkpoint["rows"]
    assert row["kinds"] == ["only_procore"]
    assert row["person"] == world.workers[0].name
    assert (row["crewclock"], row["procore"]) == ("8.00", "11.00")
    client.login(world.admin)
    html = result_page(client, run)
    assert "Only in Procore" in html and "left as they are" in html
    assert "Re-send differences" not in html  # nothing of ours to send

    assert hours_check.resend_differences(world.company.id, run.id) == 0
    world.push()
    kept = world.sandbox.store.get("timecard_entries", other["id"])
    assert kept is not None and kept["hours"] in ("3", "3.0")


def test_entries_not_sent_yet_are_pending_not_missing(world, client):
    world.approve(world.card(world.workers[0], entries=2))  # approved, the push has not run

    run = check(world)
    [row] = run.checkpoint["rows"]
    assert row["kinds"] == ["pending"]
    assert row["reasons"] == ["2 entries not sent yet: pending in the outbox"]
    assert run.checkpoint["resendable"] == 0
    client.login(world.admin)
    html = result_page(client, run)
    assert "Not sent yet" in html and "Missing in Procore" not in html


def test_failed_entries_say_why_they_were_not_sent(world):
    world.approve(world.card(world.workers[0], entries=1))
    db.session.execute(
        sa.update(ProcorePush).values(state="failed", reason="Procore refused the entry: hours")
    )
    db.session.commit()
    [row] = check(world).checkpoint["rows"]
    assert row["reasons"] == [
        "1 entry not sent, Procore refused it: Procore refused the entry: hours"
    ]


def test_procore_calls_are_one_listing_page_per_page_of_entries(world, monkeypatch):
    for worker in world.workers:
        world.approve(world.card(worker, entries=7))
    world.push()
    monkeypatch.setattr(hours_check, "LIST_PAGE_SIZE", 5)
    before = world.sandbox.requests_to("GET", "/projects/{project_id}/timecard_entries")

    run = check(world)

    listed = world.sandbox.requests_to("GET", "/projects/{project_id}/timecard_entries") - before
    assert listed == 3  # ⌈14 entries / 5 per page⌉ for the one linked project
    assert run.api_calls == 3
    assert run.checkpoint["rows"] == [] and run.checkpoint["matching"] == 2


def test_week_in_the_future_is_refused_beside_the_field(world, client):
    client.login(world.admin)
    response = client.post("/time/procore/hours", data={"week": "2999-01-04"}, headers=HX)
    assert response.status_code == 422
    assert "has not started yet" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SyncRun)) == 0


def test_many_differences_are_paginated(world, client):
    run = check(world)
    rows = [
        {
            "person": f"Person {n:03}",
            "project": "Harbor Warehouse",
            "cost_code": "03-100 Formwork",
            "crewclock": "8.00",
            "procore": "0.00",
            "difference": "-8.00",
            "kinds": ["pending"],
            "reasons": ["1 entry not sent yet: pending in the outbox"],
        }
        for n in range(120)
    ]
    run.checkpoint = {**run.checkpoint, "rows": rows}
    db.session.commit()
    client.login(world.admin)
    first = result_page(client, run)
    assert "Person 000" in first and "Person 050" not in first and "page 1 of 3" in first
    last = client.get(f"/time/procore/hours/{run.id}?page=3", headers=HX).get_data(as_text=True)
    assert "Person 119" in last and "Person 000" not in last


def test_hours_check_is_admin_only_and_another_companys_check_is_404(world, client):
    run = check(world)
    supervisor = make_user(world.company, Role.SUPERVISOR)
    client.login(supervisor)
    assert client.get("/time/procore/hours").status_code == 403
    assert client.post(f"/time/procore/hours/{run.id}/resend").status_code == 403

    other = make_company("Other Builders")
    stranger = make_user(other, Role.ADMIN)
    client.login(stranger)
    assert client.get(f"/time/procore/hours/{run.id}").status_code == 404
    assert client.post(f"/time/procore/hours/{run.id}/resend").status_code == 404


def test_pre_send_check_and_integrations_card_link_to_the_hours_check(world, client):
    client.login(world.admin)
    check_page = client.get("/time/procore/check", query_string={"week": WEEK.isoformat()})
    assert "/time/procore/hours?week=2026-03-02" in check_page.get_data(as_text=True)
    settings_page = client.get("/settings/integrations/")
    assert "/time/procore/hours" in settings_page.get_data(as_text=True)


class VariantClient:
    """Procore's listing in the documented variants: numeric hours, a deleted entry still
    listed, an entry of another week (a server ignoring the date filter), no party."""

    def __init__(self, real):
        self.real = real
        self.stats = real.stats

    def iter_pages(self, path, params=None, per_page=100):
        for page in self.real.iter_pages(path, params, per_page):
            items = [dict(e, hours=float(e["hours"]), origin_id=e["origin_id"]) for e in page.items]
            ghost = dict(items[0], id=-1, deleted_at="2026-03-03T10:00:00Z")
            other_week = dict(items[0], id=-2, date="2026-02-20", origin_id=None, party=None)
            yield type(page)(items=[*items, ghost, other_week], number=page.number)


def test_listing_variants_are_read_without_false_differences(world):
    sent_week(world)
    run = hours_check.start_check(world.company.id, WEEK)

    run = hours_check.run_check(
        world.company.id, run.id, client=VariantClient(world.sandbox.client())
    )

    assert run.status == RunStatus.SUCCEEDED
    assert run.checkpoint["rows"] == [] and run.checkpoint["procore_entries"] == 2


def test_check_without_a_procore_connection_fails_with_a_reason(world):
    run = hours_check.start_check(world.company.id, WEEK)

    run = hours_check.run_check(world.company.id, run.id)  # the connection has no tokens

    assert run.status == RunStatus.FAILED
    assert "reconnected" in run.error


def test_week_defaults_to_last_week_and_any_day_names_its_monday():
    from datetime import date

    today = date(2026, 3, 11)  # a Wednesday
    assert hours_check.parse_week(None, today) == date(2026, 3, 2)
    assert hours_check.parse_week("2026-03-08", today) == date(2026, 3, 2)
    assert hours_check.parse_week("2026-03-09", today) == date(2026, 3, 9)
    with pytest.raises(hours_check.WeekNotValid, match="not started yet"):
        hours_check.parse_week("2026-03-16", today)
    with pytest.raises(hours_check.WeekNotValid, match="Pick a week"):
        hours_check.parse_week("next week", today)


@pytest.mark.parametrize("week", ["0001-01-01", "0001-01-08", "1999-12-27"])
def test_a_week_before_2000_is_refused_beside_the_field(world, client, week):
    client.login(world.admin)

    response = client.post("/time/procore/hours", data={"week": week}, headers=HX)

    assert response.status_code == 422
    assert "Pick a date between 2000-01-01 and 2100-12-31." in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SyncRun)) == 0


def test_a_check_stored_for_week_one_fails_without_calling_procore_and_its_page_says_why(
    world, client
):
    from datetime import date

    run = hours_check.start_check(world.company.id, date(1, 1, 1))  # stored before the limit
    calls = []

    class NoCalls:
        def __getattr__(self, name):
            calls.append(name)
            raise AssertionError("the check called Procore")

    hours_check.run_check(world.company.id, run.id, client=NoCalls())
    client.login(world.admin)

    page = client.get(f"/time/procore/hours/{run.id}")

    assert page.status_code == 200
    assert "The check stopped: The week of 0001-01-01 cannot be checked." in page.get_data(
        as_text=True
    )
    assert calls == []


def test_the_hours_page_for_a_week_at_the_calendars_edge_falls_back_to_last_week(world, client):
    client.login(world.admin)

    response = client.get("/time/procore/hours", query_string={"week": "9999-12-31"})

    assert response.status_code == 200
    assert f"Week of {hours_check.last_week():%a %b %-d, %Y}" in response.get_data(as_text=True)
