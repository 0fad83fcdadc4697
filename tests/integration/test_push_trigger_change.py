"""Changing "when time cards are sent" re-evaluates cards already submitted or approved."""

from datetime import date

from tests.integration.push_support import *  # noqa: F403 (fixtures)
from webapp.extensions import db
from webapp.models import TimeCardStatus, TimecardTrigger
from webapp.services import push
from webapp.services import timecards as tc

STEP5 = {
    "users_direction": "procore_to_crewclock",
    "projects_direction": "procore_to_crewclock",
    "cost_codes_direction": "procore_to_crewclock",
}
HX = {"HX-Request": "true"}


def this_week() -> date:
    return tc.monday_of(date.today())


def set_trigger(client, trigger: str) -> None:
    """The admin saves step 5 (the sync settings) with another trigger."""
    response = client.post(
        "/settings/integrations/procore/setup/sync",
        data={**STEP5, "timecard_trigger": trigger},
        headers=HX,
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:500]


def test_card_approved_after_the_trigger_moved_to_submitted_is_sent(world, client):
    worker = world.workers[0]
    card = world.card(worker, entries=5, week=this_week())
    tc.change_status(card, TimeCardStatus.SUBMITTED, worker)  # trigger "approved": waits
    client.login(world.admin)

    set_trigger(client, "submitted")
    world.approve(card)

    week = this_week().isoformat()
    check = client.get(f"/time/procore/check?week={week}", headers=HX).get_data(as_text=True)
    assert "<strong>5</strong> will be created" in check
    sent = client.post("/time/procore/send", data={"week": week}, headers=HX)
    assert "5 entries" in sent.get_data(as_text=True)  # agrees with what is queued
    world.push()

    assert len(world.sandbox.entries()) == 5
    assert push.card_sync_states(world.company.id, [card.id])[card.id].label == "Sent"
    check = client.get(f"/time/procore/check?week={week}", headers=HX).get_data(as_text=True)
    assert "<strong>0</strong> will be created" in check


def test_send_now_says_when_nothing_is_waiting(world, client):
    client.login(world.admin)
    week = this_week().isoformat()
    sent = client.post("/time/procore/send", data={"week": week}, headers=HX)
    assert "Nothing is waiting to be sent to Procore." in sent.get_data(as_text=True)


def test_card_sent_on_submit_then_rejected_after_the_trigger_moved_leaves_procore(world, client):
    world.settings.timecard_trigger = TimecardTrigger.ON_SUBMIT
    db.session.commit()
    worker = world.workers[0]
    card = world.card(worker, entries=5, week=this_week())
    tc.change_status(card, TimeCardStatus.SUBMITTED, worker)
    world.push()
    assert len(world.sandbox.entries()) == 5
    # One entry was approved in Procore meanwhile: Procore will not let it be removed.
    locked = world.sandbox.entries()[0]
    world.sandbox.store.update("timecard_entries", locked["id"], {"approval_status": "approved"})
    client.login(world.admin)

    set_trigger(client, "approved")
    world.reject(card)
    world.push()

    assert [e["id"] for e in world.sandbox.entries()] == [locked["id"]]
    badge = push.card_sync_states(world.company.id, [card.id])[card.id]
    assert badge.label == "Conflict"
    assert "cannot be removed" in badge.reason
    assert badge.counts == {"done": 4, "conflict": 1}


def test_rejected_card_sent_under_the_old_trigger_is_removed_whatever_the_trigger(world):
    world.settings.timecard_trigger = TimecardTrigger.ON_SUBMIT
    db.session.commit()
    worker = world.workers[0]
    card = world.card(worker, entries=3, week=this_week())
    tc.change_status(card, TimeCardStatus.SUBMITTED, worker)
    world.push()
    assert len(world.sandbox.entries()) == 3
    # Changed behind the settings page's back: the status change itself must still notice.
    world.settings.timecard_trigger = TimecardTrigger.ON_APPROVAL
    db.session.commit()

    world.reject(card)
    world.push()

    assert world.sandbox.entries() == []
    badge = push.card_sync_states(world.company.id, [card.id])[card.id]
    assert badge.label == "Removed from Procore"
