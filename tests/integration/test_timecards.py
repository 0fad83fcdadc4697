"""Time cards: the worker → supervisor → admin workflow, end to end through the pages."""

from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal

import sqlalchemy as sa

from tests.conftest import make_company, make_user
from webapp.extensions import db
from webapp.models import (
    Company,
    CostCode,
    Project,
    Role,
    TimeCard,
    TimeCardEvent,
    TimeCardStatus,
    TimeEntry,
    TimeEntryMode,
    User,
)
from webapp.services import timecards as svc

MONDAY = date(2026, 3, 2)
TUESDAY = date(2026, 3, 3)
HX = {"HX-Request": "true"}


@dataclass
class Crew:
    company: object
    worker: User
    coworker: User
    supervisor: User
    other_supervisor: User
    admin: User
    hours_project: Project
    clock_project: Project
    inactive_project: Project
    code_a: CostCode
    code_b: CostCode
    unassigned_code: CostCode


def setup_crew(company=None) -> Crew:
    """A company with two supervised projects (hours / start-stop) and a crew."""
    company = company or make_company("Crew Co")
    worker = make_user(company, Role.WORKER, first_name="Will", last_name="Worker")
    coworker = make_user(company, Role.WORKER, first_name="Cora", last_name="Coworker")
    supervisor = make_user(company, Role.SUPERVISOR, first_name="Sue", last_name="Super")
    other_supervisor = make_user(company, Role.SUPERVISOR, first_name="Otto", last_name="Other")
    admin = make_user(company, Role.ADMIN, first_name="Ada", last_name="Admin")
    code_a = CostCode(company_id=company.id, code="03-300", name="Concrete")
    code_b = CostCode(company_id=company.id, code="09-250", name="Drywall")
    unassigned = CostCode(company_id=company.id, code="26-050", name="Electrical")
    hours_project = Project(company_id=company.id, name="Elm Street Townhomes")
    clock_project = Project(
        company_id=company.id,
        name="Riverside Medical",
        time_entry_mode=TimeEntryMode.START_STOP,
    )
    inactive = Project(company_id=company.id, name="Old Warehouse", active=False)
    db.session.add_all([code_a, code_b, unassigned, hours_project, clock_project, inactive])
    db.session.flush()
    hours_project.cost_codes = [code_a, code_b]
    clock_project.cost_codes = [code_a]
    inactive.cost_codes = [code_a]
    hours_project.supervisors = [supervisor]
    clock_project.supervisors = [supervisor]
    inactive.supervisors = [other_supervisor]
    db.session.commit()
    return Crew(
        company,
        worker,
        coworker,
        supervisor,
        other_supervisor,
        admin,
        hours_project,
        clock_project,
        inactive,
        code_a,
        code_b,
        unassigned,
    )


def login_as(app, user):
    """A fresh client signed in as `user`."""
    client = app.test_client()
    client.login(user)
    return client


def entry_fields(project, **fields) -> dict:
    data = {
        "week": MONDAY.isoformat(),
        "work_date": MONDAY.isoformat(),
        "project_id": str(project.id),
        "cost_code_id": "",
        "hours": "8",
        "break_minutes": "0",
        "work_type": "regular",
        "notes": "",
    }
    data.update({k: str(v) for k, v in fields.items()})
    return data


def add_entry(client, project, **fields):
    return client.post("/time/entries", data=entry_fields(project, **fields), headers=HX)


def card_of(user, week=MONDAY) -> TimeCard | None:
    db.session.expire_all()
    return db.session.scalar(
        sa.select(TimeCard).where(TimeCard.user_id == user.id, TimeCard.week_start == week)
    )


def history(card) -> list[tuple[str, str | None]]:
    db.session.expire_all()
    events = db.session.scalars(
        sa.select(TimeCardEvent)
        .where(TimeCardEvent.time_card_id == card.id)
        .order_by(TimeCardEvent.id)
    )
    return [(e.action, e.detail) for e in events]


def submitted_card(app, crew) -> TimeCard:
    """The worker's week with one 8-hour day on the supervised hours project, submitted."""
    client = login_as(app, crew.worker)
    assert add_entry(client, crew.hours_project, cost_code_id=crew.code_a.id).status_code == 200
    card = card_of(crew.worker)
    assert client.post(f"/time/cards/{card.id}/submit", headers=HX).status_code == 200
    return card_of(crew.worker)


# ---------------------------------------------------------------- my time


def test_worker_adds_entries_and_sees_day_and_week_totals(app):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    assert add_entry(client, crew.hours_project, hours="8").status_code == 200
    response = add_entry(client, crew.hours_project, hours="2.5", cost_code_id=crew.code_b.id)
    assert response.status_code == 200
    response = add_entry(client, crew.hours_project, work_date=TUESDAY, hours="7.25")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "10.50" in html  # Monday's total
    assert "7.25" in html
    assert "17.75" in html  # the week
    page = client.get(f"/time/?week={TUESDAY.isoformat()}").get_data(as_text=True)
    assert "week of Mon Mar 2, 2026" in page and "17.75" in page
    assert "09-250 Drywall" in page


def test_start_stop_entry_hours_come_from_times_minus_break(app):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    response = add_entry(
        client,
        crew.clock_project,
        hours="",
        start_time="07:00",
        end_time="15:30",
        break_minutes="30",
    )
    assert response.status_code == 200
    entry = card_of(crew.worker).entries[0]
    assert entry.hours == Decimal("8.00")
    assert (entry.start_time, entry.end_time, entry.break_minutes) == (time(7), time(15, 30), 30)


def test_hours_project_ignores_start_and_end_times(app):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    add_entry(client, crew.hours_project, hours="6.5", start_time="07:00", end_time="09:00")
    entry = card_of(crew.worker).entries[0]
    assert entry.hours == Decimal("6.50") and entry.start_time is None


def test_week_picker_links_to_previous_and_next_week(app):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    html = client.get("/time/?week=2026-03-04").get_data(as_text=True)
    assert "week of Mon Mar 2, 2026" in html
    assert "/time/?week=2026-02-23" in html and "/time/?week=2026-03-09" in html


def test_empty_week_tells_the_worker_how_to_start(app):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    html = client.get("/time/?week=2026-03-02").get_data(as_text=True)
    assert "No time on this card yet" in html and "Add your first entry" in html
    assert card_of(crew.worker) is None  # looking does not create a card


def test_changing_project_reloads_its_cost_codes_and_time_fields(app):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    response = client.get(
        "/time/entries/form",
        query_string={"week": MONDAY.isoformat(), "project_id": crew.clock_project.id},
        headers=HX,
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'name="start_time"' in html and 'name="hours"' not in html
    assert "03-300 Concrete" in html and "09-250 Drywall" not in html
    html = client.get(
        "/time/entries/form",
        query_string={"week": MONDAY.isoformat(), "project_id": crew.hours_project.id},
        headers=HX,
    ).get_data(as_text=True)
    assert 'name="hours"' in html and "09-250 Drywall" in html
    assert "Old Warehouse" not in html  # inactive projects are not offered
    assert "26-050" not in html


def test_worker_edits_an_entry_and_history_shows_old_and_new_hours(app):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    add_entry(client, crew.hours_project, hours="8")
    entry = card_of(crew.worker).entries[0]
    form = client.get(f"/time/entries/form?entry_id={entry.id}", headers=HX).get_data(as_text=True)
    assert 'value="8.00"' in form
    response = client.post(
        f"/time/entries/{entry.id}", data=entry_fields(crew.hours_project, hours="7.5"), headers=HX
    )
    assert response.status_code == 200
    assert "hours 8.00 → 7.50" in response.get_data(as_text=True)
    assert ("entry_edited", "Mon 03/02: hours 8.00 → 7.50") in history(card_of(crew.worker))


def test_worker_deletes_an_entry_and_it_is_recorded(app):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    add_entry(client, crew.hours_project, hours="8")
    card = card_of(crew.worker)
    response = client.post(f"/time/entries/{card.entries[0].id}/delete", headers=HX)
    assert response.status_code == 200
    assert card_of(crew.worker).entries == []
    assert [a for a, _ in history(card)] == ["created", "entry_added", "entry_deleted"]


# ---------------------------------------------------------------- approvals


def test_project_supervisor_approves_a_submitted_card(app):
    crew = setup_crew()
    card = submitted_card(app, crew)
    assert card.status == TimeCardStatus.SUBMITTED
    supervisor = login_as(app, crew.supervisor)
    listing = supervisor.get("/time/approvals").get_data(as_text=True)
    assert "Will Worker" in listing and "8.00" in listing
    page = supervisor.get(f"/time/cards/{card.id}").get_data(as_text=True)
    assert "Approve" in page and "Elm Street Townhomes" in page
    response = supervisor.post(f"/time/cards/{card.id}/approve", headers=HX)
    assert response.status_code == 200 and "Approved" in response.get_data(as_text=True)
    card = card_of(crew.worker)
    assert card.status == TimeCardStatus.APPROVED and card.approved_by_id == crew.supervisor.id
    assert "Will Worker" not in supervisor.get("/time/approvals").get_data(as_text=True)


def test_supervisor_of_other_projects_neither_sees_nor_approves_the_card(app):
    crew = setup_crew()
    card = submitted_card(app, crew)
    other = login_as(app, crew.other_supervisor)
    listing = other.get("/time/approvals").get_data(as_text=True)
    assert "Will Worker" not in listing and "Nothing is waiting for your approval" in listing
    assert other.get(f"/time/cards/{card.id}").status_code == 404
    assert other.post(f"/time/cards/{card.id}/approve", headers=HX).status_code == 404
    assert card_of(crew.worker).status == TimeCardStatus.SUBMITTED


def test_admin_sees_every_submitted_card(app):
    crew = setup_crew()
    submitted_card(app, crew)
    listing = login_as(app, crew.admin).get("/time/approvals").get_data(as_text=True)
    assert "Will Worker" in listing


def test_reject_needs_a_note_then_worker_fixes_and_resubmits(app):
    crew = setup_crew()
    card = submitted_card(app, crew)
    supervisor = login_as(app, crew.supervisor)
    response = supervisor.post(f"/time/cards/{card.id}/reject", data={"note": " "}, headers=HX)
    assert response.status_code == 422
    assert "Say what needs fixing" in response.get_data(as_text=True)
    assert card_of(crew.worker).status == TimeCardStatus.SUBMITTED

    note = "Monday should be 7.5 hours"
    response = supervisor.post(f"/time/cards/{card.id}/reject", data={"note": note}, headers=HX)
    assert response.status_code == 200
    assert card_of(crew.worker).status == TimeCardStatus.REJECTED

    worker = login_as(app, crew.worker)
    page = worker.get("/time/?week=2026-03-02").get_data(as_text=True)
    assert note in page and "Resubmit" in page
    entry = card_of(crew.worker).entries[0]
    response = worker.post(
        f"/time/entries/{entry.id}",
        data=entry_fields(crew.hours_project, hours="7.5", cost_code_id=crew.code_a.id),
        headers=HX,
    )
    assert response.status_code == 200
    assert worker.post(f"/time/cards/{card.id}/submit", headers=HX).status_code == 200
    card = card_of(crew.worker)
    assert card.status == TimeCardStatus.SUBMITTED and card.rejection_note is None
    assert [a for a, _ in history(card)] == [
        "created",
        "entry_added",
        "submitted",
        "rejected",
        "entry_edited",
        "submitted",
    ]
    assert ("rejected", note) in history(card)


def test_admin_edits_an_approved_card_and_the_change_is_recorded(app):
    crew = setup_crew()
    card = submitted_card(app, crew)
    login_as(app, crew.supervisor).post(f"/time/cards/{card.id}/approve", headers=HX)
    admin = login_as(app, crew.admin)
    entry = card_of(crew.worker).entries[0]
    response = admin.post(
        f"/time/entries/{entry.id}",
        data=entry_fields(crew.hours_project, hours="7.5", cost_code_id=crew.code_a.id),
        headers=HX,
    )
    assert response.status_code == 200
    card = card_of(crew.worker)
    assert card.status == TimeCardStatus.APPROVED
    assert card.entries[0].hours == Decimal("7.50")
    action, detail = history(card)[-1]
    assert action == "entry_edited" and "hours 8.00 → 7.50" in detail and "admin" in detail
    page = admin.get(f"/time/cards/{card.id}").get_data(as_text=True)
    assert "hours 8.00 → 7.50" in page and "Ada Admin" in page


def test_admin_adds_an_entry_to_a_workers_card(app):
    crew = setup_crew()
    card = submitted_card(app, crew)
    admin = login_as(app, crew.admin)
    response = admin.post(
        "/time/entries",
        data=entry_fields(crew.hours_project, card_id=card.id, work_date=TUESDAY, hours="4"),
        headers=HX,
    )
    assert response.status_code == 200
    assert len(card_of(crew.worker).entries) == 2
    assert card_of(crew.admin) is None


def test_empty_card_cannot_be_submitted(app):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    add_entry(client, crew.hours_project)
    card = card_of(crew.worker)
    client.post(f"/time/entries/{card.entries[0].id}/delete", headers=HX)
    response = client.post(f"/time/cards/{card.id}/submit", headers=HX)
    assert response.status_code == 422
    assert "Add at least one entry" in response.get_data(as_text=True)
    assert card_of(crew.worker).status == TimeCardStatus.DRAFT


# ---------------------------------------------------------------- hooks and speed


def test_status_changes_and_entry_changes_call_their_hooks(app, monkeypatch):
    crew = setup_crew()
    calls = []
    monkeypatch.setattr(
        svc, "after_status_change", lambda card, old, new: calls.append((old.value, new.value))
    )
    monkeypatch.setattr(svc, "after_entry_change", lambda entry, action: calls.append(action))
    card = submitted_card(app, crew)
    login_as(app, crew.supervisor).post(f"/time/cards/{card.id}/approve", headers=HX)
    assert calls == ["added", ("draft", "submitted"), ("submitted", "approved")]


class QueryCounter:
    def __init__(self):
        self.count = 0

    def __call__(self, *args, **kwargs):
        self.count += 1


def count_queries(fn) -> int:
    counter = QueryCounter()
    db.session.expunge_all()  # the test's app context shares one session across requests
    sa.event.listen(db.engine, "before_cursor_execute", counter)
    try:
        fn()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", counter)
    return counter.count


def _fill_week(crew, user, week_start, entries_per_day):
    card = TimeCard(company_id=crew.company.id, user_id=user.id, week_start=week_start)
    db.session.add(card)
    db.session.flush()
    for day in range(5):
        for n in range(entries_per_day):
            db.session.add(
                TimeEntry(
                    company_id=crew.company.id,
                    time_card_id=card.id,
                    work_date=svc.week_days(week_start)[day],
                    project_id=crew.hours_project.id,
                    cost_code_id=crew.code_a.id,
                    hours=Decimal("1.00"),
                    notes=f"entry {n}",
                )
            )
    card.status = TimeCardStatus.SUBMITTED
    db.session.commit()
    return card


def test_card_page_query_count_does_not_grow_with_entries(app):
    crew = setup_crew()
    small = _fill_week(crew, crew.worker, MONDAY, 1).id
    large = _fill_week(crew, crew.coworker, MONDAY, 10).id
    client = login_as(app, crew.admin)
    few = count_queries(lambda: client.get(f"/time/cards/{small}"))
    many = count_queries(lambda: client.get(f"/time/cards/{large}"))
    assert many <= few  # (the Procore banner may be cached after the first request)


def test_approvals_page_query_count_does_not_grow_with_cards(app):
    crew = setup_crew()
    _fill_week(crew, crew.worker, MONDAY, 1)
    ids = {name: getattr(crew, name).id for name in ("company", "hours_project", "code_a")}
    client = login_as(app, crew.supervisor)
    one = count_queries(lambda: client.get("/time/approvals"))
    crew.company = db.session.get(Company, ids["company"])
    crew.hours_project = db.session.get(Project, ids["hours_project"])
    crew.code_a = db.session.get(CostCode, ids["code_a"])
    for n in range(12):
        worker = make_user(crew.company, Role.WORKER, last_name=f"Extra{n}")
        _fill_week(crew, worker, MONDAY, 1)
    html = client.get("/time/approvals").get_data(as_text=True)
    assert html.count("Review</a>") == 13
    twelve_more = count_queries(lambda: client.get("/time/approvals"))
    assert twelve_more <= one


def test_admin_can_send_an_approved_card_back_but_a_supervisor_cannot(app):
    crew = setup_crew()
    card = submitted_card(app, crew)
    supervisor = login_as(app, crew.supervisor)
    supervisor.post(f"/time/cards/{card.id}/approve", headers=HX)
    response = supervisor.post(f"/time/cards/{card.id}/reject", data={"note": "oops"}, headers=HX)
    assert response.status_code == 422 and "cannot reject" in response.get_data(as_text=True)
    assert card_of(crew.worker).status == TimeCardStatus.APPROVED
    admin = login_as(app, crew.admin)
    assert "send the card back" in admin.get(f"/time/cards/{card.id}").get_data(as_text=True)
    response = admin.post(f"/time/cards/{card.id}/reject", data={"note": "Wrong job"}, headers=HX)
    assert response.status_code == 200
    card = card_of(crew.worker)
    assert card.status == TimeCardStatus.REJECTED and card.rejection_note == "Wrong job"
    assert card.approved_by_id is None
