"""Clock in / clock out on My time: the panel, the entries clock out makes, and its refusals."""

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from tests.conftest import make_company, make_user
from tests.integration.test_timecards import (
    HX,
    MONDAY,
    TUESDAY,
    add_entry,
    card_of,
    history,
    login_as,
    setup_crew,
)
from tests.integration.test_timecards_picker import add_towers
from webapp.extensions import db
from webapp.models import ClockSession, Project, Role, TimeCardStatus, TimeEntry, WorkType
from webapp.services import clock as clock_svc


class FakeClock:
    """The clock service's idea of now, moved by the test (no sleeping)."""

    def __init__(self, start: datetime):
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def set(self, moment: datetime) -> None:
        self.current = moment


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock(datetime(2026, 3, 2, 12, 2, tzinfo=UTC))  # Mon 7:02 AM in New York
    monkeypatch.setattr(clock_svc, "now", fake)
    return fake


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def clock_in(client, project, cost_code=None, **fields):
    data = {
        "project_id": str(project.id),
        "cost_code_id": str(cost_code.id) if cost_code else "",
        "work_type": "regular",
    }
    data.update(fields)
    return client.post("/time/clock/in", data=data, headers=HX)


def open_clocks(user=None) -> list[ClockSession]:
    db.session.expire_all()
    query = sa.select(ClockSession)
    if user is not None:
        query = query.where(ClockSession.user_id == user.id)
    return list(db.session.scalars(query))


def clock_out(client, user, break_minutes=0):
    (clock,) = open_clocks(user)
    return client.post(
        f"/time/clock/{clock.id}/out", data={"break_minutes": str(break_minutes)}, headers=HX
    )


def entries_of(user) -> list[TimeEntry]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            sa.select(TimeEntry)
            .join(TimeEntry.time_card)
            .where(TimeEntry.time_card.has(user_id=user.id))
            .order_by(TimeEntry.work_date, TimeEntry.start_time)
        )
    )


# ---------------------------------------------------------------- clock in


def test_my_time_offers_clock_in_with_the_entry_pickers(app, clock):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    html = client.get("/time/").get_data(as_text=True)
    assert "Clock in" in html
    assert "Elm Street Townhomes" in html and "Riverside Medical" in html
    assert "Old Warehouse" not in html  # inactive projects are not offered
    panel = client.get(
        "/time/clock", query_string={"project_id": crew.clock_project.id}, headers=HX
    ).get_data(as_text=True)
    assert "03-300 Concrete" in panel and "09-250 Drywall" not in panel


def test_clock_in_shows_since_when_on_which_project_and_code(app, clock):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    response = clock_in(client, crew.clock_project, crew.code_a)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Clocked in since 7:02 AM" in html
    assert "Riverside Medical" in html and "03-300 Concrete" in html
    assert "Clock out" in html and "Cancel clock-in" in html
    clock.set(utc(2026, 3, 2, 14, 17))
    page = client.get("/time/").get_data(as_text=True)
    assert "Clocked in since 7:02 AM" in page and "2 h 15 min so far" in page
    assert card_of(crew.worker) is None  # nothing is on the card until clock out


def test_a_second_clock_in_is_refused_and_only_one_clock_is_open(app, clock):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    assert clock_in(client, crew.clock_project).status_code == 200
    again = clock_in(client, crew.hours_project)
    assert again.status_code == 422
    assert "already clocked in" in again.get_data(as_text=True)
    (only,) = open_clocks(crew.worker)
    assert only.project_id == crew.clock_project.id


def test_the_database_itself_refuses_a_second_open_clock(app, clock):
    """Two tabs racing past the check still cannot both insert (unique user_id)."""
    crew = setup_crew()
    for project in (crew.clock_project, crew.hours_project):
        db.session.add(
            ClockSession(
                company_id=crew.company.id,
                user_id=crew.worker.id,
                project_id=project.id,
                started_at=clock(),
            )
        )
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    assert open_clocks() == []


def test_clock_in_follows_the_entry_rules_for_project_and_cost_code(app, clock):
    crew = setup_crew()
    other = make_company("Other Co")
    foreign = Project(company_id=other.id, name="Foreign Job")
    db.session.add(foreign)
    db.session.commit()
    client = login_as(app, crew.worker)

    response = clock_in(client, crew.clock_project, crew.code_b)  # not assigned to it
    assert response.status_code == 422
    assert "not assigned to Riverside Medical" in response.get_data(as_text=True)
    response = clock_in(client, crew.inactive_project, crew.code_a)
    assert response.status_code == 422
    assert "Old Warehouse is inactive" in response.get_data(as_text=True)
    response = clock_in(client, foreign)
    assert response.status_code == 422
    assert "Foreign Job" not in response.get_data(as_text=True)
    response = client.post("/time/clock/in", data={"project_id": ""}, headers=HX)
    assert response.status_code == 422 and "Choose a project." in response.get_data(as_text=True)
    assert open_clocks() == []


def test_clock_in_while_this_weeks_card_is_submitted_is_refused_up_front(app, clock):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    add_entry(client, crew.hours_project, hours="8")
    client.post(f"/time/cards/{card_of(crew.worker).id}/submit", headers=HX)

    response = clock_in(client, crew.clock_project)

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert (
        "Your card for the week of Mon 03/02 is submitted: ask your supervisor to reject it "
        "before you clock in." in html
    )
    assert open_clocks() == []


def test_a_plain_form_clock_in_without_javascript_comes_back_to_my_time(app, clock):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    response = client.post("/time/clock/in", data={"project_id": str(crew.clock_project.id)})
    assert response.status_code == 303 and response.headers["Location"].endswith("/time/")
    assert len(open_clocks(crew.worker)) == 1
    refused = client.post("/time/clock/in", data={"project_id": str(crew.clock_project.id)})
    assert refused.status_code == 303
    page = client.get("/time/").get_data(as_text=True)
    assert "already clocked in" in page


# ---------------------------------------------------------------- clock out


def test_clock_out_adds_one_entry_on_the_weeks_card_with_history(app, clock):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    clock_in(client, crew.clock_project, crew.code_a, notes="Pour level 2")
    clock.set(utc(2026, 3, 2, 20, 32, 40))  # 3:32:40 PM local: rounds to 15:33

    response = clock_out(client, crew.worker, break_minutes=30)

    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/time/?week=2026-03-02"
    (entry,) = entries_of(crew.worker)
    assert entry.work_date == MONDAY
    assert (entry.start_time, entry.end_time, entry.break_minutes) == (time(7, 2), time(15, 33), 30)
    assert entry.hours == Decimal("8.02")  # 511 min - 30 min break = 481 min
    assert entry.cost_code_id == crew.code_a.id and entry.notes == "Pour level 2"
    card = card_of(crew.worker)
    assert card.status == TimeCardStatus.DRAFT and card.week_start == MONDAY
    added = "Mon 03/02 07:02–15:33: 8.02 h on Riverside Medical, 03-300 by clock out"
    assert ("entry_added", added) in history(card)
    assert open_clocks() == []
    page = client.get("/time/?week=2026-03-02").get_data(as_text=True)
    assert "Clocked out: 8.02 h added on Mon 03/02." in page
    assert "Entry added" in page and "by clock out" in page
    assert "Clock in" in page  # the panel is back to clocking in


def test_clock_out_on_an_hours_project_records_hours_net_of_the_break(app, clock):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    clock_in(client, crew.hours_project, crew.code_b, work_type="overtime")
    clock.set(utc(2026, 3, 2, 16, 2))  # four hours later

    assert clock_out(client, crew.worker, break_minutes=15).status_code == 204

    (entry,) = entries_of(crew.worker)
    # Like an entry typed by hand on an hours project: hours only, no times or break.
    assert entry.hours == Decimal("3.75") and entry.start_time is None and entry.break_minutes == 0
    assert entry.work_type == WorkType.OVERTIME


def test_a_shift_across_midnight_becomes_two_entries(app, clock):
    """The first part ends 23:59: an entry's end is a time of its own day and 00:00 would read
    as before its start, so a shift across midnight records one minute less than it lasted."""
    crew = setup_crew()
    client = login_as(app, crew.worker)
    clock.set(utc(2026, 3, 3, 3, 0))  # Mon 22:00 in New York
    clock_in(client, crew.clock_project, crew.code_a)
    clock.set(utc(2026, 3, 3, 11, 0))  # Tue 06:00

    assert clock_out(client, crew.worker, break_minutes=30).status_code == 204

    first, second = entries_of(crew.worker)
    assert (first.work_date, first.start_time, first.end_time) == (MONDAY, time(22), time(23, 59))
    assert (first.break_minutes, first.hours) == (0, Decimal("1.98"))
    assert (second.work_date, second.start_time, second.end_time) == (TUESDAY, time(0), time(6))
    assert (second.break_minutes, second.hours) == (30, Decimal("5.50"))  # the longer part
    assert [a for a, _ in history(card_of(crew.worker))].count("entry_added") == 2


def test_a_shift_across_sunday_midnight_lands_on_both_weeks_cards(app, clock):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    clock.set(utc(2026, 3, 9, 3, 0))  # Sun 03/08 23:00 in New York (EDT from 03/08)
    clock_in(client, crew.clock_project)
    clock.set(utc(2026, 3, 9, 8, 0))  # Mon 03/09 04:00

    assert clock_out(client, crew.worker).status_code == 204

    assert [e.work_date for e in entries_of(crew.worker)] == [date(2026, 3, 8), date(2026, 3, 9)]
    assert card_of(crew.worker, MONDAY) is not None
    assert card_of(crew.worker, date(2026, 3, 9)) is not None


def test_the_work_date_is_the_local_day_of_the_users_time_zone(app, clock):
    crew = setup_crew()
    crew.worker.time_zone = "America/Los_Angeles"
    db.session.commit()
    client = login_as(app, crew.worker)
    clock.set(utc(2026, 3, 3, 18, 0))  # Tue 10:00 in Los Angeles
    clock_in(client, crew.clock_project)
    clock.set(utc(2026, 3, 4, 1, 0))  # Wed 01:00 UTC is still Tue 17:00 there

    assert clock_out(client, crew.worker).status_code == 204

    (entry,) = entries_of(crew.worker)
    assert (entry.work_date, entry.start_time, entry.end_time) == (TUESDAY, time(10), time(17))


def test_without_a_usable_user_zone_the_companys_zone_decides(app, clock):
    company = make_company("Mountain Co")
    company.time_zone = "America/Denver"
    worker = make_user(company, Role.WORKER, time_zone="")
    assert clock_svc.local_zone(worker).key == "America/Denver"


def test_clock_out_refused_when_the_card_was_submitted_keeps_the_clock(app, clock):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    add_entry(client, crew.hours_project, work_date=TUESDAY, hours="8")
    clock_in(client, crew.clock_project)
    client.post(f"/time/cards/{card_of(crew.worker).id}/submit", headers=HX)
    clock.set(utc(2026, 3, 2, 20, 0))

    response = clock_out(client, crew.worker)

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert (
        "Your card for the week of Mon 03/02 is submitted: ask your supervisor to reject it, "
        "or cancel this clock-in." in html
    )
    assert "Clocked in since 7:02 AM" in html  # still clocked in
    assert len(open_clocks(crew.worker)) == 1
    assert len(entries_of(crew.worker)) == 1


def test_clock_out_overlapping_an_entry_is_refused_and_says_what_to_do(app, clock):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    add_entry(client, crew.clock_project, hours="", start_time="08:00", end_time="12:00")
    clock_in(client, crew.clock_project)
    clock.set(utc(2026, 3, 2, 14, 0))  # 09:00 local

    response = clock_out(client, crew.worker)

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Overlaps your 08:00–12:00 entry on Mon 03/02" in html
    assert "cancel this clock-in and enter the time by hand" in html
    assert len(open_clocks(crew.worker)) == 1 and len(entries_of(crew.worker)) == 1


def test_clock_out_within_a_minute_or_after_a_day_is_refused(app, clock):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    clock_in(client, crew.clock_project)
    clock.set(utc(2026, 3, 2, 12, 2, 20))
    response = clock_out(client, crew.worker)
    assert response.status_code == 422
    assert "less than a minute ago" in response.get_data(as_text=True)
    clock.set(utc(2026, 3, 3, 13, 0))
    response = clock_out(client, crew.worker)
    assert response.status_code == 422
    assert "more than 24 hours old" in response.get_data(as_text=True)
    assert len(open_clocks(crew.worker)) == 1 and entries_of(crew.worker) == []


def test_a_break_as_long_as_the_shift_is_refused(app, clock):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    clock_in(client, crew.clock_project)
    clock.set(utc(2026, 3, 2, 13, 2))
    response = clock_out(client, crew.worker, break_minutes=60)
    assert response.status_code == 422
    assert "The break (60 min)" in response.get_data(as_text=True)
    bad = client.post(
        f"/time/clock/{open_clocks()[0].id}/out", data={"break_minutes": "-5"}, headers=HX
    )
    assert bad.status_code == 422 and "whole minutes" in bad.get_data(as_text=True)
    assert len(open_clocks(crew.worker)) == 1


# ---------------------------------------------------------------- cancel and access


def test_cancel_clock_in_removes_it_and_records_nothing(app, clock):
    crew = setup_crew()
    client = login_as(app, crew.worker)
    clock_in(client, crew.clock_project)
    (open_clock,) = open_clocks(crew.worker)

    response = client.post(f"/time/clock/{open_clock.id}/cancel", headers=HX)

    assert response.status_code == 200
    assert "Clock in" in response.get_data(as_text=True)
    assert open_clocks() == [] and card_of(crew.worker) is None


def test_another_users_or_companys_clock_answers_404_and_stays(app, clock):
    crew = setup_crew()
    clock_in(login_as(app, crew.coworker), crew.clock_project)
    (coworkers,) = open_clocks(crew.coworker)
    other_company = make_company("Other Co")
    outsider = make_user(other_company, Role.ADMIN)

    for user in (crew.worker, crew.admin, outsider):
        client = login_as(app, user)
        for action in ("out", "cancel"):
            response = client.post(f"/time/clock/{coworkers.id}/{action}", headers=HX)
            assert response.status_code == 404, (user.username, action)
    assert len(open_clocks(crew.coworker)) == 1 and entries_of(crew.coworker) == []


# ---------------------------------------------------------------- who is clocked in


def test_approvers_see_who_is_clocked_in_on_their_projects(app, clock):
    crew = setup_crew()
    clock_in(login_as(app, crew.worker), crew.clock_project, crew.code_a)

    listing = login_as(app, crew.supervisor).get("/time/approvals").get_data(as_text=True)
    assert "Clocked in now" in listing
    assert "Will Worker on Riverside Medical · 03-300" in listing and "since 7:02 AM" in listing
    page = login_as(app, crew.admin).get("/time/clocked-in").get_data(as_text=True)
    assert "Will Worker" in page and "Riverside Medical" in page
    other = login_as(app, crew.other_supervisor)
    assert "Nobody is clocked in on your projects" in other.get("/time/approvals").get_data(
        as_text=True
    )
    assert "Will Worker" not in other.get("/time/clocked-in").get_data(as_text=True)
    assert login_as(app, crew.coworker).get("/time/clocked-in").status_code == 403


def test_the_clocked_in_list_is_paginated(app, clock):
    crew = setup_crew()
    for n in range(55):
        user = make_user(crew.company, Role.WORKER, first_name="Crew", last_name=f"Member{n:02d}")
        db.session.add(
            ClockSession(
                company_id=crew.company.id,
                user_id=user.id,
                project_id=crew.clock_project.id,
                started_at=clock() - timedelta(minutes=n),
            )
        )
    db.session.commit()
    supervisor = login_as(app, crew.supervisor)
    listing = supervisor.get("/time/approvals").get_data(as_text=True)
    assert listing.count("Crew Member") == 5 and "See all 55 people clocked in" in listing
    first = supervisor.get("/time/clocked-in").get_data(as_text=True)
    assert "55 total · page 1 of 2" in first and first.count("Crew Member") == 50
    second = supervisor.get("/time/clocked-in?page=2").get_data(as_text=True)
    assert second.count("Crew Member") == 5


def test_with_many_projects_the_clock_panel_searches_and_picks_into_itself(app, clock):
    crew = setup_crew()
    towers = add_towers(crew.company, count=150)
    client = login_as(app, crew.worker)
    page = client.get("/time/").get_data(as_text=True)
    panel = page[page.index('id="clock-panel"') : page.index('id="card"')]
    assert "Search projects" in panel and "Tower 000" not in panel  # no 150-option select

    found = client.get(
        "/time/entries/projects", query_string={"project_q": "T-042", "picker": "clock"}, headers=HX
    ).get_data(as_text=True)
    assert "Tower 042" in found
    assert 'hx-get="/time/clock"' in found and 'hx-target="#clock-panel"' in found

    picked = client.get(
        "/time/clock", query_string={"project_id": towers[42].id}, headers=HX
    ).get_data(as_text=True)
    assert re.search(rf'<option value="{towers[42].id}"\s+selected', picked)
    assert clock_in(client, towers[42]).status_code == 200
    assert open_clocks(crew.worker)[0].project_id == towers[42].id
