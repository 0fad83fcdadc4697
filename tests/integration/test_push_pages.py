"""What people see of the push: the card badge, per-entry detail, Retry, the pre-send check."""

import pytest
import sqlalchemy as sa

from tests.conftest import make_company, make_user
from tests.integration.push_support import *  # noqa: F403 (fixtures)
from tests.integration.push_support import WEEK
from webapp.extensions import db
from webapp.models import ProcorePush, PushState, Role, TimeCard


def card_page(client, card) -> str:
    response = client.get(f"/time/cards/{card.id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_card_page_badge_goes_from_pending_to_sent_with_a_link_to_procore(world, client):
    card = world.approve(world.card(world.workers[0], entries=2))
    client.login(world.admin)
    page = card_page(client, card)
    assert "Procore:" in page and "Pending" in page
    assert 'hx-trigger="every 2s"' in page  # keeps polling while entries are on their way

    world.push()
    badge = client.get(f"/time/procore/cards/{card.id}/badge", headers={"HX-Request": "true"})
    html = badge.get_data(as_text=True)
    assert "Sent" in html and "View in Procore" in html
    assert "every 2s" not in html  # polling stops by itself
    assert "<html" not in html


def test_failed_entries_show_the_reason_per_entry_and_retry_sends_them(world, client):

    card = world.approve(world.card(world.workers[0], entries=1))
    world.procore_takes_start_stop()
    world.push()
    client.login(world.admin)
    page = card_page(client, card)
    assert "Failed" in page and "start and end time" in page and "Retry" in page

    detail = client.get(f"/time/procore/cards/{card.id}/detail", headers={"HX-Request": "true"})
    assert "start and end time" in detail.get_data(as_text=True)

    world.sandbox.store.update(  # the admin switches Procore back to total hours
        "companies", world.sandbox.company_id, {"projects_timecard_in_out_enabled": False}
    )
    response = client.post(f"/time/procore/cards/{card.id}/retry", headers={"HX-Request": "true"})
    assert response.status_code == 200 and "Pending" in response.get_data(as_text=True)
    world.push()
    assert len(world.sandbox.entries()) == 1


def test_not_mapped_badge_links_admins_to_the_record_to_fix(world, client):
    stranger = make_user(world.company, first_name="Una", last_name="Linked")
    card = world.approve(world.card(stranger, entries=1))
    world.push()
    client.login(world.admin)
    page = card_page(client, card)
    assert "Not mapped" in page
    assert f"/users/{stranger.id}/edit" in page


def test_rate_limited_card_says_waiting_for_procore_rate_limit(world, client):
    card = world.approve(world.card(world.workers[0], entries=1))
    db.session.execute(
        sa.update(ProcorePush).values(
            state=PushState.WAITING_RATE_LIMIT, reason="Waiting for Procore rate limit"
        )
    )
    db.session.commit()
    client.login(world.admin)
    page = card_page(client, card)
    assert "Waiting for Procore rate limit" in page
    assert "Failed" not in page


def test_another_companys_card_sync_urls_are_404_and_workers_cannot_retry(world, client):
    card = world.approve(world.card(world.workers[0], entries=1))
    world.push()
    outsider_company = make_company("Elsewhere")
    outsider = make_user(outsider_company, Role.ADMIN)
    client.login(outsider)
    for url in (f"/time/procore/cards/{card.id}/badge", f"/time/procore/cards/{card.id}/detail"):
        assert client.get(url).status_code == 404
    assert client.post(f"/time/procore/cards/{card.id}/retry").status_code == 404

    client.post("/logout")
    client.login(world.workers[0])
    assert client.post(f"/time/procore/cards/{card.id}/retry").status_code == 403
    assert client.get(f"/time/procore/cards/{card.id}/badge").status_code == 200
    assert db.session.get(TimeCard, card.id) is not None


def test_pre_send_check_counts_creates_updates_and_skips_with_reasons(world, client):
    sent = world.approve(world.card(world.workers[0], entries=2))
    world.push()
    from decimal import Decimal

    from webapp.services import timecards as tc

    entry = sent.entries[0]
    tc.update_entry(
        entry,
        tc.EntryData(
            work_date=entry.work_date,
            project_id=entry.project_id,
            cost_code_id=entry.cost_code_id,
            hours=Decimal("5"),
        ),
        world.admin,
    )
    world.approve(world.card(world.workers[1], entries=3))
    stranger = make_user(world.company, first_name="Una", last_name="Linked")
    world.approve(world.card(stranger, entries=2))

    client.login(world.admin)
    response = client.get(f"/time/procore/check?week={WEEK.isoformat()}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<strong>3</strong> will be created" in html
    assert "<strong>1</strong> updated" in html
    assert "<strong>2</strong> skipped because" in html
    assert "2 because Una Linked is not linked to a Procore user" in html
    assert "1 already in Procore and unchanged" in html

    fragment = client.get(
        f"/time/procore/check?week={WEEK.isoformat()}", headers={"HX-Request": "true"}
    )
    assert "<html" not in fragment.get_data(as_text=True)
    client.post("/logout")
    client.login(world.workers[0])
    assert client.get("/time/procore/check").status_code == 403


def test_pre_send_check_empty_week_says_what_happens_next(world, client):
    client.login(world.admin)
    html = client.get("/time/procore/check?week=2020-01-06").get_data(as_text=True)
    assert "No submitted or approved time cards for this week yet" in html


@pytest.mark.parametrize("week", ["0001-01-01", "9999-12-31"])
def test_pre_send_check_for_a_week_at_the_calendars_edge_shows_this_week_and_says_why(
    world, client, week
):
    client.login(world.admin)

    response = client.get("/time/procore/check", query_string={"week": week})

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Pick a date between 2000-01-01 and 2100-12-31. Showing this week instead." in html


@pytest.mark.parametrize("week", ["0001-01-01", "9999-12-31"])
def test_send_now_for_a_week_at_the_calendars_edge_is_refused_and_queues_nothing(
    world, client, week, monkeypatch
):
    from webapp.services import push

    queued = []
    monkeypatch.setattr(push, "enqueue_push", lambda company_id: queued.append(company_id))
    client.login(world.admin)

    response = client.post(
        "/time/procore/send", data={"week": week}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 422
    assert "Not sent: Pick a date between 2000-01-01" in response.get_data(as_text=True)
    assert queued == []
