"""Who may reach which time card route: tenancy (404), roles (403), CSRF, sign-in."""

import pytest

from tests.conftest import make_company
from tests.integration.test_timecards import (
    HX,
    TUESDAY,
    card_of,
    entry_fields,
    login_as,
    setup_crew,
    submitted_card,
)
from webapp.models import TimeCardStatus


def card_routes(card_id: int, entry_id: int) -> list[tuple[str, str, dict]]:
    """Every route that names a card or an entry: (method, url, form)."""
    return [
        ("GET", f"/time/cards/{card_id}", {}),
        ("GET", f"/time/entries/form?entry_id={entry_id}", {}),
        ("GET", f"/time/entries/form?card_id={card_id}", {}),
        ("POST", "/time/entries", {"card_id": str(card_id)}),
        ("POST", f"/time/entries/{entry_id}", {}),
        ("POST", f"/time/entries/{entry_id}/delete", {}),
        ("POST", f"/time/cards/{card_id}/submit", {}),
        ("POST", f"/time/cards/{card_id}/approve", {}),
        ("POST", f"/time/cards/{card_id}/reject", {"note": "no"}),
    ]


def call(client, method, url, form, **kwargs):
    if method == "GET":
        return client.get(url, headers=HX)
    return client.post(url, data=form, headers=HX, **kwargs)


@pytest.fixture
def two_companies(app):
    """A submitted card in our company, and an admin of another company."""
    crew = setup_crew()
    card = submitted_card(app, crew)
    other = setup_crew(make_company("Rival Builders"))
    return crew, card, other


def test_other_companys_admin_gets_404_on_every_card_route(app, two_companies):
    crew, card, other = two_companies
    client = login_as(app, other.admin)
    for method, url, form in card_routes(card.id, card.entries[0].id):
        response = call(client, method, url, form)
        assert response.status_code == 404, (method, url)
    card = card_of(crew.worker)
    assert card.status == TimeCardStatus.SUBMITTED and len(card.entries) == 1


def test_other_companys_cards_never_appear_in_approvals(app, two_companies):
    _crew, _card, other = two_companies
    html = login_as(app, other.admin).get("/time/approvals").get_data(as_text=True)
    assert "Will Worker" not in html
    assert "Nothing is waiting for your approval" in html


def test_coworker_gets_404_on_another_workers_card(app, two_companies):
    crew, card, _other = two_companies
    client = login_as(app, crew.coworker)
    for method, url, form in card_routes(card.id, card.entries[0].id):
        # Approve/reject are closed to workers by role before any card is looked up.
        expected = 403 if url.endswith(("/approve", "/reject")) else 404
        assert call(client, method, url, form).status_code == expected, (method, url)
    assert card_of(crew.worker).status == TimeCardStatus.SUBMITTED


def test_worker_is_not_allowed_on_approvals(app, two_companies):
    crew, _card, _other = two_companies
    assert login_as(app, crew.worker).get("/time/approvals").status_code == 403


def test_worker_cannot_approve_or_reject_their_own_card(app, two_companies):
    crew, card, _other = two_companies
    client = login_as(app, crew.worker)
    assert client.post(f"/time/cards/{card.id}/approve", headers=HX).status_code == 403
    response = client.post(f"/time/cards/{card.id}/reject", data={"note": "x"}, headers=HX)
    assert response.status_code == 403
    assert card_of(crew.worker).status == TimeCardStatus.SUBMITTED


def test_supervisor_may_review_but_not_edit_entries(app, two_companies):
    crew, card, _other = two_companies
    client = login_as(app, crew.supervisor)
    assert client.get(f"/time/cards/{card.id}").status_code == 200
    entry_id = card.entries[0].id
    response = client.post(
        f"/time/entries/{entry_id}", data=entry_fields(crew.hours_project, hours="1"), headers=HX
    )
    assert response.status_code == 403
    assert client.post(f"/time/entries/{entry_id}/delete", headers=HX).status_code == 403
    response = client.post(
        "/time/entries",
        data=entry_fields(crew.hours_project, card_id=card.id, work_date=TUESDAY),
        headers=HX,
    )
    assert response.status_code == 403
    assert client.post(f"/time/cards/{card.id}/submit", headers=HX).status_code == 403
    assert len(card_of(crew.worker).entries) == 1


def test_supervisor_cannot_approve_their_own_card(app):
    crew = setup_crew()
    client = login_as(app, crew.supervisor)
    client.post("/time/entries", data=entry_fields(crew.hours_project), headers=HX)
    card = card_of(crew.supervisor)
    assert client.post(f"/time/cards/{card.id}/submit", headers=HX).status_code == 200
    assert client.post(f"/time/cards/{card.id}/approve", headers=HX).status_code == 403
    assert "Will Worker" not in client.get("/time/approvals").get_data(as_text=True)
    assert card_of(crew.supervisor).status == TimeCardStatus.SUBMITTED


def test_posts_without_csrf_token_are_refused(app, two_companies):
    crew, card, _other = two_companies
    client = login_as(app, crew.admin)
    posts = [r for r in card_routes(card.id, card.entries[0].id) if r[0] == "POST"]
    for _method, url, form in posts:
        response = client.post(url, data=form, headers=HX, csrf=False)
        assert response.status_code == 400, url
        assert "security token" in response.get_data(as_text=True)
    card = card_of(crew.worker)
    assert card.status == TimeCardStatus.SUBMITTED and len(card.entries) == 1


def test_signed_out_visitors_are_sent_to_login(client):
    for url in ("/time/", "/time/approvals", "/time/cards/1", "/time/entries/form"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url
