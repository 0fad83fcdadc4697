"""Scenario D5: an entry edited in Procore after it was sent is never silently overwritten.

Before updating or removing an entry it sent, the push reads Procore's copy (one GET by id);
if a field we send changed there, the row becomes a conflict with the differences, the run
records it, and Procore's copy stays as the person in Procore left it.
"""

from decimal import Decimal

import sqlalchemy as sa

from tests.integration.push_support import *  # noqa: F403 (fixtures)
from webapp.extensions import db
from webapp.models import ProcorePush, PushState, SyncRunItem
from webapp.services import push
from webapp.services import timecards as tc

SHOW = "GET /rest/v1.0/projects/{project_id}/timecard_entries/{entry_id}"
PATCH = "PATCH /rest/v1.0/projects/{project_id}/timecard_entries/{entry_id}"
DELETE = "DELETE /rest/v1.0/projects/{project_id}/timecard_entries/{entry_id}"


def calls(world) -> dict[str, int]:
    return dict(world.sandbox.faults.stats()["requests"])


def edit_here(world, entry, hours: str, notes: str | None = None) -> None:
    tc.update_entry(
        entry,
        tc.EntryData(
            work_date=entry.work_date,
            project_id=entry.project_id,
            cost_code_id=entry.cost_code_id,
            hours=Decimal(hours),
            notes=notes if notes is not None else entry.notes,
        ),
        world.admin,
    )


def edit_in_procore(world, **changes) -> dict:
    """A person in Procore changes the entry (through the sandbox's store, as Procore's UI)."""
    remote = world.sandbox.entries()[0]
    return world.sandbox.store.update("timecard_entries", remote["id"], changes)


def sent_card(world):
    card = world.approve(world.card(world.workers[0], entries=1, hours="8.00"))
    world.push()
    assert world.sandbox.entries()[0]["hours"] == "8.0"
    return card


def test_edit_in_procore_then_here_becomes_a_conflict_and_procore_keeps_its_copy(world):
    card = sent_card(world)
    edit_in_procore(world, hours="6.0")
    edit_here(world, card.entries[0], "7.00")
    before = calls(world)
    result = world.push()

    assert world.sandbox.entries()[0]["hours"] == "6.0"  # not overwritten
    assert calls(world).get(PATCH, 0) == before.get(PATCH, 0)
    badge = push.card_sync_states(world.company.id, [card.id])[card.id]
    assert badge.label == "Conflict"
    assert badge.reason.startswith("Changed in Procore since it was sent")
    assert "hours: Procore 6.00, here 7.00" in badge.reason
    item = db.session.scalar(sa.select(SyncRunItem).where(SyncRunItem.run_id == result.run_id))
    assert item.outcome == "conflict" and "hours: Procore 6.00" in item.reason
    assert result.conflicts == 1

    # Pushing again without a decision changes nothing in Procore.
    world.push()
    assert world.sandbox.entries()[0]["hours"] == "6.0"


def test_retry_after_a_procore_edit_conflict_sends_our_version(world):
    card = sent_card(world)
    edit_in_procore(world, description="Changed by the Procore approver")
    edit_here(world, card.entries[0], "7.00")
    world.push()
    assert push.card_sync_states(world.company.id, [card.id])[card.id].label == "Conflict"

    assert push.retry_card(world.company.id, card.id) == 1
    world.push()
    remote = world.sandbox.entries()[0]
    assert remote["hours"] == "7.0" and remote["description"] == "Formwork day 1"
    assert push.card_sync_states(world.company.id, [card.id])[card.id].label == "Sent"


def test_retry_conflicts_again_if_procore_changed_the_entry_once_more(world):
    card = sent_card(world)
    edit_in_procore(world, hours="6.0")
    edit_here(world, card.entries[0], "7.00")
    world.push()
    edit_in_procore(world, hours="5.0")
    push.retry_card(world.company.id, card.id)
    world.push()
    assert world.sandbox.entries()[0]["hours"] == "5.0"
    badge = push.card_sync_states(world.company.id, [card.id])[card.id]
    assert badge.label == "Conflict" and "hours: Procore 5.00" in badge.reason


def test_matching_procore_here_resolves_the_conflict_without_a_write(world):
    card = sent_card(world)
    edit_in_procore(world, hours="6.0")
    edit_here(world, card.entries[0], "7.00")
    world.push()
    before = calls(world)
    edit_here(world, card.entries[0], "6.00")
    world.push()
    assert push.card_sync_states(world.company.id, [card.id])[card.id].label == "Sent"
    assert calls(world).get(PATCH, 0) == before.get(PATCH, 0)
    assert world.sandbox.entries()[0]["hours"] == "6.0"


def test_local_edit_without_a_procore_edit_goes_through_with_one_read(world):
    card = sent_card(world)
    # Fields we never send (approval in review, billable) are not a change to ours.
    edit_in_procore(world, approval_status="reviewed", billable=True)
    before = calls(world)
    edit_here(world, card.entries[0], "7.25", notes="Stripped forms")
    world.push()

    remote = world.sandbox.entries()[0]
    assert remote["hours"] == "7.25" and remote["description"] == "Stripped forms"
    after = calls(world)
    assert after.get(SHOW, 0) - before.get(SHOW, 0) == 1
    assert after.get(PATCH, 0) - before.get(PATCH, 0) == 1
    assert push.card_sync_states(world.company.id, [card.id])[card.id].label == "Sent"

    world.push()  # idle: nothing due, no call at all
    assert calls(world) == after


def test_delete_after_a_procore_edit_is_a_conflict_and_the_entry_stays(world):
    card = sent_card(world)
    edit_in_procore(world, hours="9.0")
    tc.delete_entry(card.entries[0], world.admin)
    world.push()

    assert [e["hours"] for e in world.sandbox.entries()] == ["9.0"]
    badge = push.card_sync_states(world.company.id, [card.id])[card.id]
    assert badge.label == "Conflict" and "not removed" in badge.reason

    push.retry_card(world.company.id, card.id)
    world.push()
    assert world.sandbox.entries() == []


def test_lost_reply_to_an_update_is_settled_by_the_read_not_raised_as_a_conflict(world):
    card = sent_card(world)
    world.sandbox.faults.add_rule(
        {"method": "PATCH", "path": r"/timecard_entries/\d+$", "action": "drop", "count": 1}
    )
    edit_here(world, card.entries[0], "7.00")
    world.push()
    assert world.sandbox.entries()[0]["hours"] == "7.0"  # Procore took it; we did not hear
    db.session.execute(sa.update(ProcorePush).values(next_attempt_at=None))
    db.session.commit()
    before = calls(world)
    world.push()
    row = db.session.scalar(sa.select(ProcorePush))
    assert row.state == PushState.DONE
    assert calls(world).get(PATCH, 0) == before.get(PATCH, 0)
    assert push.card_sync_states(world.company.id, [card.id])[card.id].label == "Sent"
