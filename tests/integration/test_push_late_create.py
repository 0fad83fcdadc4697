"""A create Procore applies after the client gave up: never two entries for one of ours."""

import time
from datetime import timedelta

import sqlalchemy as sa

from tests.integration.push_support import *  # noqa: F403 (fixtures)
from tests.integration.push_support import WEEK, remote_project_id
from webapp.extensions import db
from webapp.models import ProcorePush, PushState, SyncRun, SyncRunItem
from webapp.models.base import utcnow
from webapp.services import hours_check, push

POSTS = r"/timecard_entries$"
READ_TIMEOUT = 0.1  # the client's read timeout in these tests (60 s in production)
LATE = 1.5  # Procore answers (and applies the create) this long after the POST


def slow_create(world):
    """Procore answers the next create after the client's read timeout and applies it then."""
    world.sandbox.faults.add_rule({"method": "POST", "path": POSTS, "delay": LATE, "count": 1})
    return world.sandbox.client(timeout=(1.0, READ_TIMEOUT))


def wait_for_entries(world, count: int) -> list[dict]:
    deadline = time.monotonic() + 10
    while len(world.sandbox.entries()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return world.sandbox.entries()


def badge(world, card) -> str:
    return push.card_sync_states(world.company.id, [card.id])[card.id].label


def the_row() -> ProcorePush:
    row = db.session.scalar(sa.select(ProcorePush).order_by(ProcorePush.id))
    db.session.refresh(row)
    return row


def test_create_answered_after_the_read_timeout_is_looked_up_again_and_ends_as_one_entry(world):
    client = slow_create(world)
    card = world.approve(world.card(world.workers[0], entries=1))
    start = utcnow()
    world.push(client=client, now=lambda: start)  # times out; the first lookup finds nothing
    assert world.sandbox.entries() == []
    row = the_row()
    assert row.state == PushState.UNKNOWN and "may still add it" in row.reason
    assert badge(world, card) == "Pending"

    [landed] = wait_for_entries(world, 1)  # Procore applies it after the client gave up
    world.push(client=client, now=lambda: start + timedelta(minutes=4))  # the next lookup

    assert world.sandbox.entries() == [landed]
    assert world.sandbox.requests_to("POST", "timecard_entries") == 1  # never sent again
    row = the_row()
    assert row.state == PushState.DONE and row.procore_id == landed["id"]
    assert badge(world, card) == "Sent"


def test_gateway_timeout_on_a_create_procore_applies_later_ends_as_one_entry(world):
    # The other variant: a gateway answers 504 at once while Procore applies the create later.
    world.sandbox.faults.add_rule(
        {"method": "POST", "path": POSTS, "action": "late", "apply_after": LATE, "count": 1}
    )
    card = world.approve(world.card(world.workers[0], entries=1))
    start = utcnow()
    world.push(now=lambda: start)
    assert world.sandbox.entries() == [] and badge(world, card) == "Pending"
    assert world.sandbox.faults.wait_late(10)
    world.push(now=lambda: start + timedelta(minutes=4))

    [landed] = world.sandbox.entries()
    assert world.sandbox.requests_to("POST", "timecard_entries") == 1
    assert the_row().procore_id == landed["id"] and badge(world, card) == "Sent"


def test_create_applied_after_the_window_is_removed_as_a_duplicate_by_the_next_drain(world, client):
    slow = slow_create(world)
    card = world.approve(world.card(world.workers[0], entries=1))
    start = utcnow()
    world.push(client=slow, now=lambda: start)
    # Not found over the whole window: sent again (before Procore applies the first).
    world.push(client=slow, now=lambda: start + timedelta(minutes=11))
    [resent] = world.sandbox.entries()
    assert badge(world, card) == "Sent"
    assert len(wait_for_entries(world, 2)) == 2  # the first create lands after all

    # Any later drain (here: another card approved) looks for it and removes it.
    world.approve(world.card(world.workers[1], entries=1))
    result = world.push(client=slow, now=lambda: start + timedelta(minutes=12))

    ours = [e for e in world.sandbox.entries() if e["origin_id"] == resent["origin_id"]]
    assert ours == [resent]  # the linked one kept, the late one deleted in Procore
    assert len(world.sandbox.entries()) == 2  # and the other card's entry
    assert the_row().procore_id == resent["id"] and badge(world, card) == "Sent"
    [item] = db.session.scalars(sa.select(SyncRunItem).where(SyncRunItem.run_id == result.run_id))
    assert item.outcome == "removed" and "removed a duplicate Procore created late" in item.reason
    assert db.session.get(SyncRun, result.run_id).deleted == 1
    client.login(world.admin)
    page = client.get(f"/settings/integrations/procore/sync/runs/{result.run_id}")
    assert "removed a duplicate Procore created late" in page.get_data(as_text=True)


def test_watched_entry_is_looked_at_again_without_other_work(world):
    slow = slow_create(world)
    world.approve(world.card(world.workers[0], entries=1))
    start = utcnow()
    world.push(client=slow, now=lambda: start)
    world.push(client=slow, now=lambda: start + timedelta(minutes=11))
    wait_for_entries(world, 2)

    # A follow-up drain is scheduled by itself and removes the late duplicate.
    when = push.next_due_at(world.company.id)
    assert when is not None and when <= start + timedelta(minutes=30)
    result = world.push(client=slow, now=lambda: when)
    assert result.run_id is not None
    assert len(world.sandbox.entries()) == 1
    assert the_row().procore_id == world.sandbox.entries()[0]["id"]


def test_duplicate_procore_refuses_to_remove_shows_on_the_card_in_procores_words(world):
    slow = slow_create(world)
    card = world.approve(world.card(world.workers[0], entries=1))
    start = utcnow()
    world.push(client=slow, now=lambda: start)
    world.push(client=slow, now=lambda: start + timedelta(minutes=11))
    resent = world.sandbox.entries()[0]
    late = next(e for e in wait_for_entries(world, 2) if e["id"] != resent["id"])
    world.sandbox.store.update("timecard_entries", late["id"], {"approval_status": "approved"})

    world.approve(world.card(world.workers[1], entries=1))
    result = world.push(client=slow, now=lambda: start + timedelta(minutes=12))

    state = push.card_sync_states(world.company.id, [card.id])[card.id]
    assert state.label == "Conflict"
    assert f"duplicate of this entry late (Procore entry {late['id']})" in state.reason
    assert "refused to remove it" in state.reason
    failed = db.session.scalars(
        sa.select(SyncRunItem.reason).where(SyncRunItem.run_id == result.run_id)
    ).all()
    assert any("refused to remove it" in reason for reason in failed)


def test_hours_check_removes_a_duplicate_procore_created_late_instead_of_changed(world, client):
    world.approve(world.card(world.workers[0], entries=1))
    world.push()
    [ours] = world.sandbox.entries()
    # Procore applies an earlier, unanswered create of the same entry late.
    late = world.sandbox.client().post(
        f"/rest/v1.0/projects/{remote_project_id(world)}/timecard_entries",
        json={
            "timecard_entry": {
                "date": ours["date"],
                "hours": "8",
                "party_id": ours["party_id"],
                "cost_code_id": ours["cost_code_id"],
                "origin_id": int(ours["origin_id"]),
            }
        },
    )

    run = hours_check.start_check(world.company.id, WEEK)
    run = hours_check.run_check(world.company.id, run.id, client=world.sandbox.client())

    assert world.sandbox.entries() == [ours]  # the linked one kept
    assert run.checkpoint["rows"] == []  # no "Changed in Procore", nothing to re-send
    assert run.checkpoint["resendable"] == 0
    [item] = db.session.scalars(sa.select(SyncRunItem).where(SyncRunItem.run_id == run.id))
    assert item.procore_id == late["id"] and item.outcome == "removed"
    assert "removed a duplicate Procore created late" in item.reason
    client.login(world.admin)
    html = client.get(f"/time/procore/hours/{run.id}", headers={"HX-Request": "true"})
    assert "Removed 1 duplicate Procore created late" in html.get_data(as_text=True)
