"""Procore's own rules on timecard entries: integer origin ids, its time-entry setting
(hours or start/stop) and its rounding of start/stop times."""

from datetime import time, timedelta

import sqlalchemy as sa

from tests.integration.push_support import *  # noqa: F403 (fixtures)
from tests.integration.push_support import WEEK, remote_project_id
from webapp.extensions import db
from webapp.models import ProcorePush, PushState, SyncRun, TimeEntryMode
from webapp.procore import mapping_timecards as mapping
from webapp.services import hours_check, push
from webapp.services import timecards as tc

POSTS = "timecard_entries"


def badge(world, card):
    return push.card_sync_states(world.company.id, [card.id])[card.id]


def refuse_creates(world, body: dict) -> None:
    world.sandbox.faults.add_rule(
        {"method": "POST", "path": r"/timecard_entries$", "status": 422, "body": body}
    )


# ------------------------------------------------------------------ origin_id refusals
def test_422_naming_origin_id_fails_with_procores_words_and_is_not_sent_again(world):
    refuse_creates(world, {"errors": {"origin_id": ["has already been taken"]}})
    card = world.approve(world.card(world.workers[0], entries=1))
    result = world.push()

    shown = badge(world, card)
    assert shown.label == "Failed"
    assert "origin_id has already been taken" in shown.reason
    run = db.session.get(SyncRun, result.run_id)
    assert run.failed == 1 and "origin_id has already been taken" in run.items[0].reason
    world.push()
    world.push()
    assert world.sandbox.requests_to("POST", POSTS) == 1  # no endless 'unknown' loop
    assert badge(world, card).label == "Failed"


def test_422_when_the_entry_is_already_in_procore_is_settled_as_sent_by_the_lookup(world):
    card = world.approve(world.card(world.workers[0], entries=1))
    row = db.session.scalar(sa.select(ProcorePush))
    there = world.sandbox.store.insert(
        "timecard_entries",
        {"company_id": world.sandbox.company_id, "project_id": remote_project_id(world),
         "date": WEEK.isoformat(), "hours": "8.0", "origin_id": row.origin_id},
    )  # fmt: skip
    refuse_creates(world, {"errors": {"origin_id": ["has already been taken"]}})
    world.push()

    db.session.refresh(row)
    assert row.state == PushState.DONE and row.procore_id == there["id"]
    assert badge(world, card).label == "Sent"
    assert len(world.sandbox.entries()) == 1


def test_rows_queued_with_the_old_string_origin_id_still_work(world):
    """An existing database: a row waiting with 'crewclock-entry-N' goes out with an integer
    id, and one whose create was in doubt is still found by its old id."""
    cards = [world.approve(world.card(w, entries=1)) for w in world.workers]
    rows = list(db.session.scalars(sa.select(ProcorePush).order_by(ProcorePush.id)))
    waiting, in_doubt = rows
    waiting.origin_id = f"crewclock-entry-{waiting.time_entry_id}"
    legacy = f"crewclock-entry-{in_doubt.time_entry_id}"
    there = world.sandbox.store.insert(
        "timecard_entries",
        {"company_id": world.sandbox.company_id, "project_id": remote_project_id(world),
         "date": WEEK.isoformat(), "hours": "8.0", "origin_id": legacy},
    )  # fmt: skip
    in_doubt.origin_id, in_doubt.create_in_doubt = legacy, True
    in_doubt.state, in_doubt.procore_project_id = PushState.SENDING, remote_project_id(world)
    in_doubt.work_date = WEEK
    db.session.commit()
    world.push()

    db.session.refresh(waiting)
    db.session.refresh(in_doubt)
    assert in_doubt.state == PushState.DONE and in_doubt.procore_id == there["id"]
    assert mapping.is_integer_origin(waiting.origin_id) and waiting.state == PushState.DONE
    remote = world.sandbox.store.get("timecard_entries", waiting.procore_id)
    assert remote["origin_id"] == waiting.origin_id
    assert len(world.sandbox.entries()) == 2
    assert [badge(world, c).label for c in cards] == ["Sent", "Sent"]


# ---------------------------------------------------------- Procore's time-entry setting
def test_procore_setting_is_read_in_the_worker_remembered_and_shown_before_sending(world, client):
    world.procore_takes_start_stop()
    first = world.approve(world.card(world.workers[0], entries=1))
    world.push()
    db.session.refresh(world.settings)
    assert world.settings.procore_timecard_in_out is True
    reads = world.sandbox.requests_to("GET", "company_configuration")
    assert reads == 1

    # The next week's card is flagged by the pre-send check before anything is sent.
    later = world.approve(world.card(world.workers[1], entries=1, week=WEEK + timedelta(7)))
    client.login(world.admin)
    page = client.get(f"/time/procore/check?week={(WEEK + timedelta(7)).isoformat()}")
    html = page.get_data(as_text=True)
    assert "Procore's timesheets take <strong>start and stop times</strong>" in html
    assert "1 because Procore&#39;s timesheets take start and stop times" in html
    assert world.sandbox.requests_to("GET", "company_configuration") == reads  # no web call
    world.push()
    assert badge(world, later).label == "Failed" and badge(world, first).label == "Failed"
    assert world.sandbox.entries() == []


def test_start_stop_entries_go_as_times_when_procore_takes_them(world):
    world.procore_takes_start_stop()
    card = start_stop_card(world, time(7, 0), time(15, 30))
    world.push()
    assert badge(world, card).label == "Sent"
    [entry] = world.sandbox.entries()
    assert entry["time_in"] == f"{WEEK.isoformat()}T07:00:00Z"
    assert entry["hours"] == "8.0"


def test_unreadable_procore_setting_is_said_on_the_run_and_the_check(world, client):
    world.sandbox.faults.add_rule(
        {"method": "GET", "path": "company_configuration", "status": 403,
         "body": {"message": "You do not have access to company settings"}}
    )  # fmt: skip
    card = world.approve(world.card(world.workers[0], entries=1))
    result = world.push()
    assert badge(world, card).label == "Sent"  # sent as the project here records time
    run = db.session.get(SyncRun, result.run_id)
    assert "You do not have access to company settings" in run.error
    client.login(world.admin)
    html = client.get(f"/time/procore/check?week={WEEK.isoformat()}").get_data(as_text=True)
    assert "You do not have access to company settings" in html


# ------------------------------------------------------------------------- rounding
def start_stop_card(world, start, end, user=None):
    world.project.time_entry_mode = TimeEntryMode.START_STOP
    db.session.commit()
    worker = user or world.workers[0]
    worker.time_zone = "UTC"
    db.session.commit()
    card = tc.get_or_create_card(world.company.id, worker, WEEK, worker)
    tc.create_entry(
        card,
        tc.EntryData(
            work_date=WEEK,
            project_id=world.project.id,
            cost_code_id=world.cost_code.id,
            start_time=start,
            end_time=end,
            break_minutes=30,
            notes="Pour day",
        ),
        worker,
    )
    return world.approve(card)


def rounding_on(world):
    world.procore_takes_start_stop()
    world.sandbox.store.update(
        "companies",
        world.sandbox.company_id,
        {"rounding_configuration": {"enabled": True, "interval_minutes": 15}},
    )


def test_entry_procore_rounded_is_not_changed_in_procore_and_later_edits_go_through(world):
    rounding_on(world)
    card = start_stop_card(world, time(7, 55), time(16, 38))
    world.push()
    [remote] = world.sandbox.entries()
    assert remote["time_in"].endswith("T08:00:00Z") and remote["hours"] == "8.25"

    entry = card.entries[0]
    tc.update_entry(
        entry,
        tc.EntryData(
            work_date=entry.work_date,
            project_id=entry.project_id,
            cost_code_id=entry.cost_code_id,
            start_time=entry.start_time,
            end_time=entry.end_time,
            break_minutes=30,
            notes="Pour day, level 3",
        ),
        world.admin,
    )
    world.push()
    assert badge(world, card).label == "Sent"
    assert world.sandbox.entries()[0]["description"] == "Pour day, level 3"

    # A real edit in Procore after that still becomes a conflict.
    world.sandbox.store.update("timecard_entries", remote["id"], {"description": "Changed"})
    tc.update_entry(
        entry,
        tc.EntryData(
            work_date=entry.work_date,
            project_id=entry.project_id,
            cost_code_id=entry.cost_code_id,
            start_time=entry.start_time,
            end_time=entry.end_time,
            break_minutes=45,
            notes="Pour day, level 3",
        ),
        world.admin,
    )
    world.push()
    assert badge(world, card).label == "Conflict"


def test_hours_check_says_rounded_by_procore_not_changed(world):
    rounding_on(world)
    start_stop_card(world, time(7, 55), time(16, 38))
    world.push()
    run = hours_check.start_check(world.company.id, WEEK)
    run = hours_check.run_check(world.company.id, run.id, client=world.sandbox.client())
    [row] = run.checkpoint["rows"]
    assert row["kinds"] == ["rounded"]
    assert (row["crewclock"], row["procore"]) == ("8.22", "8.25")
    assert "Rounded by Procore" in row["reasons"][0]
    assert run.checkpoint["resendable"] == 0
