"""Time cards reach Procore exactly once, with the right fields, and follow later changes."""

from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from tests.integration.push_support import *  # noqa: F403 (fixtures)
from tests.integration.push_support import WEEK, WORKER_EMAILS, remote_project_id
from webapp.extensions import db
from webapp.models import (
    EntityType,
    ProcorePush,
    PushState,
    SyncRun,
    TimeCardStatus,
    TimecardTrigger,
    TimeEntryMode,
)
from webapp.models.base import utcnow
from webapp.procore import mapping_timecards as mapping
from webapp.services import push
from webapp.services import timecards as tc


def states(company_id) -> list[str]:
    return [
        str(s)
        for s in db.session.scalars(
            sa.select(ProcorePush.state)
            .where(ProcorePush.company_id == company_id)
            .order_by(ProcorePush.id)
        )
    ]


def test_approved_card_becomes_one_procore_entry_with_the_right_fields(world):
    worker = world.workers[0]
    card = world.approve(world.card(worker, entries=1, hours="7.50", notes="Forms at grid B"))
    result = world.push()

    entries = world.sandbox.entries()
    assert len(entries) == 1
    entry = entries[0]
    sandbox = world.sandbox
    person = sandbox.one(
        "people", user_id=sandbox.one("users", email_address=WORKER_EMAILS[0])["id"]
    )
    project_id = remote_project_id(world)
    code = sandbox.store.select("cost_codes", project_id=project_id, full_code="03-100")[0]
    assert entry["project_id"] == project_id
    assert entry["party_id"] == person["id"]
    assert entry["cost_code_id"] == code["id"]
    assert (
        entry["timecard_time_type_id"]
        == sandbox.one("time_types", abbreviated_time_type="REG")["id"]
    )
    assert entry["hours"] == "7.5"
    assert entry["date"] == WEEK.isoformat()
    assert entry["description"] == "Forms at grid B"
    db.session.refresh(world.settings)
    namespace = world.settings.timecard_origin_namespace
    # An integer origin id (Procore's v1.0 timecard schemas declare int): the company's
    # random namespace, then the entry id.
    assert entry["origin_id"] == mapping.origin_id_for(card.entries[0].id, namespace)
    assert entry["origin_id"].isdigit() and int(entry["origin_id"]) < 2**53
    row = db.session.scalar(sa.select(ProcorePush))
    assert row.state == PushState.DONE and row.procore_id == entry["id"]
    assert result.created == 1
    run = db.session.get(SyncRun, result.run_id)
    assert run.kind == "push_timecards" and run.created == 1 and run.api_calls >= 1


def test_submitted_card_waits_for_approval_unless_set_to_send_on_submit(world):
    worker = world.workers[0]
    card = world.card(worker)
    tc.change_status(card, TimeCardStatus.SUBMITTED, worker)
    world.push()
    assert world.sandbox.entries() == []

    world.settings.timecard_trigger = TimecardTrigger.ON_SUBMIT
    db.session.commit()
    other = world.card(world.workers[1], entries=2)
    tc.change_status(other, TimeCardStatus.SUBMITTED, world.workers[1])
    world.push()
    assert len(world.sandbox.entries()) == 2


def test_running_the_push_twice_or_resubmitting_never_duplicates(world):
    worker = world.workers[0]
    card = world.approve(world.card(worker, entries=3))
    world.push()
    posts_after_first = world.sandbox.requests_to("POST", "timecard_entries")
    world.push()
    world.push()
    assert len(world.sandbox.entries()) == 3
    assert world.sandbox.requests_to("POST", "timecard_entries") == posts_after_first

    world.reject(card)
    world.push()
    assert world.sandbox.entries() == []  # a rejected card takes its entries out of Procore
    badge = push.card_sync_states(world.company.id, [card.id])[card.id]
    assert badge.label == "Removed from Procore"
    tc.change_status(card, TimeCardStatus.SUBMITTED, worker)
    world.approve(card)
    world.push()
    world.push()
    origins = [e["origin_id"] for e in world.sandbox.entries()]
    assert len(origins) == 3 and len(set(origins)) == 3


def test_admin_edit_after_sending_updates_and_delete_removes_the_procore_entry(world):
    worker = world.workers[0]
    card = world.approve(world.card(worker, entries=2))
    world.push()
    first, second = card.entries
    tc.update_entry(
        first,
        tc.EntryData(
            work_date=first.work_date,
            project_id=first.project_id,
            cost_code_id=first.cost_code_id,
            hours=Decimal("6.25"),
            notes="Shortened",
        ),
        world.admin,
    )
    tc.delete_entry(second, world.admin)
    world.push()

    entries = world.sandbox.entries()
    assert len(entries) == 1
    assert entries[0]["hours"] == "6.25" and entries[0]["description"] == "Shortened"
    assert sorted(states(world.company.id)) == ["done", "done"]


def test_entry_locked_in_procore_shows_a_conflict_on_the_card(world):
    worker = world.workers[0]
    card = world.approve(world.card(worker, entries=1))
    world.push()
    remote = world.sandbox.entries()[0]
    world.sandbox.store.update("timecard_entries", remote["id"], {"approval_status": "approved"})
    entry = card.entries[0]
    tc.update_entry(
        entry,
        tc.EntryData(
            work_date=entry.work_date,
            project_id=entry.project_id,
            cost_code_id=entry.cost_code_id,
            hours=Decimal("4"),
        ),
        world.admin,
    )
    world.push()

    badge = push.card_sync_states(world.company.id, [card.id])[card.id]
    assert badge.label == "Conflict"
    assert "approved" in badge.reason
    assert world.sandbox.entries()[0]["hours"] == "8.0"  # Procore's locked copy untouched


def test_unlinked_worker_is_not_mapped_with_a_reason_while_others_still_go(world):
    from tests.conftest import make_user

    stranger = make_user(world.company, first_name="Una", last_name="Linked")
    lonely = world.approve(world.card(stranger, entries=1))
    fine = world.approve(world.card(world.workers[1], entries=2))
    world.push()

    assert len(world.sandbox.entries()) == 2
    badges = push.card_sync_states(world.company.id, [lonely.id, fine.id])
    assert badges[fine.id].label == "Sent"
    assert badges[lonely.id].label == "Not mapped"
    assert "Una Linked is not linked to a Procore user" in badges[lonely.id].reason
    assert badges[lonely.id].fix_entity == "user"


def test_cost_code_missing_from_the_procore_project_is_not_mapped_unless_we_may_write_codes(
    world,
):
    project_id = remote_project_id(world)
    remote_code = world.sandbox.store.select(
        "cost_codes", project_id=project_id, full_code="03-100"
    )[0]
    world.sandbox.store.delete("cost_codes", remote_code["id"])
    card = world.approve(world.card(world.workers[0], entries=1))
    world.push()
    badge = push.card_sync_states(world.company.id, [card.id])[card.id]
    assert badge.label == "Not mapped"
    assert "03-100 is not in Procore project 'Harbor Warehouse'" in badge.reason

    from webapp.models import SyncDirection

    world.settings.cost_codes_direction = SyncDirection.BOTH
    db.session.commit()
    push.retry_card(world.company.id, card.id)
    world.push()
    entries = world.sandbox.entries()
    assert len(entries) == 1
    created = world.sandbox.store.get("cost_codes", entries[0]["cost_code_id"])
    assert created["project_id"] == project_id and created["name"] == "Formwork"


def test_deleted_procore_project_fails_with_a_clear_reason_and_nothing_is_half_sent(world):
    from webapp.models import Project

    other = Project(company_id=world.company.id, name="Mission Tower", cost_codes=[world.cost_code])
    db.session.add(other)
    db.session.commit()
    remote_other = world.sandbox.one("projects", name="Mission Tower")
    world.link(
        EntityType.PROJECT,
        other.id,
        remote_other["id"],
    )
    gone = world.approve(world.card(world.workers[0], entries=1, project=other))
    kept = world.approve(world.card(world.workers[1], entries=1))
    world.sandbox.store.delete("projects", remote_other["id"])
    world.push()

    badges = push.card_sync_states(world.company.id, [gone.id, kept.id])
    assert badges[kept.id].label == "Sent"
    assert badges[gone.id].label == "Failed"
    assert "could not find the project" in badges[gone.id].reason
    assert len(world.sandbox.entries()) == 1


def test_procore_on_start_stop_times_fails_an_hours_only_entry_saying_what_to_add(world):
    # The form follows Procore's time-entry setting, not the mode typed in on the project.
    card = world.approve(world.card(world.workers[0], entries=1))
    world.procore_takes_start_stop()
    world.push()
    badge = push.card_sync_states(world.company.id, [card.id])[card.id]
    assert badge.label == "Failed"
    assert "Procore's timesheets take start and stop times" in badge.reason
    assert "start and end time" in badge.reason
    assert world.sandbox.entries() == []
    assert world.sandbox.requests_to("POST", "timecard_entries") == 0  # nothing was sent

    world.push()  # not retried by itself: it stays failed until someone changes something
    assert push.card_sync_states(world.company.id, [card.id])[card.id].label == "Failed"


def test_start_stop_project_sends_hours_when_procore_takes_total_hours(world):
    card = world.approve(world.card(world.workers[0], entries=1, hours="6.50"))
    world.project.time_entry_mode = TimeEntryMode.START_STOP  # the mode typed in here
    db.session.commit()
    world.push()
    assert push.card_sync_states(world.company.id, [card.id])[card.id].label == "Sent"
    [entry] = world.sandbox.entries()
    assert entry["hours"] == "6.5" and entry["time_in"] is None


def test_lost_reply_after_procore_committed_is_reconciled_by_origin_id(world):
    """Scenario C2: the POST reached Procore, the answer never came back."""
    world.sandbox.faults.add_rule(
        {"method": "POST", "path": r"/timecard_entries$", "action": "drop", "count": 1}
    )
    card = world.approve(world.card(world.workers[0], entries=1))
    world.push()
    assert len(world.sandbox.entries()) == 1  # Procore has it; we did not hear back
    row = db.session.scalar(sa.select(ProcorePush))
    db.session.refresh(row)
    assert row.state == PushState.DONE

    world.push()
    entries = world.sandbox.entries()
    assert len(entries) == 1
    row = db.session.scalar(sa.select(ProcorePush))
    assert row.state == PushState.DONE and row.procore_id == entries[0]["id"]
    assert push.card_sync_states(world.company.id, [card.id])[card.id].label == "Sent"


def test_worker_killed_mid_send_leaves_a_row_that_the_rerun_reconciles(world):
    """A crash after marking 'sending' (the POST may or may not have gone) never duplicates."""
    card = world.approve(world.card(world.workers[0], entries=2))
    world.push()
    rows = list(db.session.scalars(sa.select(ProcorePush).order_by(ProcorePush.id)))
    # Simulate: the first row's create reached Procore but the worker died before recording
    # it; the second row's worker died before sending anything.
    for row in rows:
        row.state, row.create_in_doubt, row.procore_id = PushState.SENDING, True, None
    world.sandbox.store.delete("timecard_entries", world.sandbox.entries()[1]["id"])
    db.session.commit()
    world.push()
    # The one that arrived is found; the other is not sent again while Procore may still
    # apply it late: it is looked up again over the window first.
    assert len(world.sandbox.entries()) == 1
    assert states(world.company.id) == ["done", "unknown"]
    later = utcnow() + timedelta(minutes=11)
    world.push(now=lambda: later)

    origins = sorted(e["origin_id"] for e in world.sandbox.entries())
    namespace = world.settings.timecard_origin_namespace
    assert origins == sorted(mapping.origin_id_for(e.id, namespace) for e in card.entries)
    assert states(world.company.id) == ["done", "done"]


def test_bulk_create_sends_25_per_call_and_falls_back_to_single_creates_on_refusal(world):
    world.settings.use_bulk_timecards = True
    db.session.commit()
    cards = [world.approve(world.card(w, entries=7, hours="1")) for w in world.workers]
    more = world.card(world.workers[0], entries=7, hours="1", week=WEEK.replace(day=9))
    world.approve(more)
    cards.append(more)
    world.push()
    assert len(world.sandbox.entries()) == 21
    assert world.sandbox.requests_to("POST", "bulk_create") == 1
    assert world.sandbox.requests_to("POST", "/timecard_entries") == 0

    world.sandbox.faults.add_rule(
        {"method": "POST", "path": "bulk_create", "status": 403, "body": {"message": "beta"}}
    )
    late = world.approve(
        world.card(world.workers[1], entries=3, hours="1", week=WEEK.replace(day=16))
    )
    world.push()
    assert len(world.sandbox.entries()) == 24
    assert push.card_sync_states(world.company.id, [late.id])[late.id].label == "Sent"


def test_rate_limit_shows_waiting_for_procore_rate_limit_not_failed(world):
    world.sandbox.faults.add_rule(
        {
            "method": "POST",
            "path": "timecard_entries",
            "status": 429,
            "headers": {"Retry-After": "30"},
        }
    )
    card = world.approve(world.card(world.workers[0], entries=2))
    result = world.push(client=world.sandbox.client(max_attempts=2))
    badge = push.card_sync_states(world.company.id, [card.id])[card.id]
    assert badge.label == "Waiting for Procore rate limit"
    assert result.retry_at is not None
    assert world.sandbox.entries() == []

    world.sandbox.faults.clear_rules()
    db.session.execute(sa.update(ProcorePush).values(next_attempt_at=None))
    db.session.commit()
    world.push()
    assert len(world.sandbox.entries()) == 2
    assert push.card_sync_states(world.company.id, [card.id])[card.id].label == "Sent"


def test_edit_during_a_send_is_not_lost(world):
    """A row changed while its request was in flight stays pending and goes next time."""
    card = world.approve(world.card(world.workers[0], entries=1))
    row = db.session.scalar(sa.select(ProcorePush))
    read_generation = row.generation
    push._want(world.company.id, card.id, row.time_entry_id, push.PushAction.UPSERT)
    db.session.commit()
    assert not push._state_update(row.id, read_generation, PushState.DONE)
