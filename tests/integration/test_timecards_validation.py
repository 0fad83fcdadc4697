"""Every time entry rule refuses bad input with a 422 row that says what to do, saving nothing."""

from datetime import date

import pytest
import sqlalchemy as sa

from tests.integration.test_timecards import (
    HX,
    TUESDAY,
    add_entry,
    card_of,
    entry_fields,
    history,
    login_as,
    setup_crew,
    submitted_card,
)
from webapp.extensions import db
from webapp.models import TimeCard, TimeEntry


def entry_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(TimeEntry))


def assert_refused(response, message: str, row_id: str = "entry-form-new"):
    """A 422 row, swapped over itself, showing `message`."""
    html = response.get_data(as_text=True)
    assert response.status_code == 422, html
    assert message in html
    assert response.headers["HX-Retarget"] == f"#{row_id}"
    assert f'id="{row_id}"' in html


@pytest.fixture
def crew(app):
    return setup_crew()


@pytest.fixture
def worker(app, crew):
    return login_as(app, crew.worker)


def test_end_before_start_is_refused(worker, crew):
    response = add_entry(worker, crew.clock_project, start_time="15:00", end_time="07:00")
    assert_refused(response, "End time must be after the start time.")
    assert entry_count() == 0
    assert card_of(crew.worker) is None  # not even an empty card is left behind


def test_start_stop_project_needs_both_times(worker, crew):
    response = add_entry(worker, crew.clock_project, start_time="07:00", end_time="")
    assert_refused(response, "enter both")
    assert entry_count() == 0


def test_overlapping_entries_on_the_same_day_are_refused(worker, crew):
    ok = add_entry(worker, crew.clock_project, start_time="07:00", end_time="12:00")
    assert ok.status_code == 200
    response = add_entry(worker, crew.clock_project, start_time="11:30", end_time="15:00")
    assert_refused(response, "Overlaps your 07:00–12:00 entry")
    assert entry_count() == 1
    # Back-to-back is fine, and the same times on another day too.
    assert add_entry(worker, crew.clock_project, start_time="12:00", end_time="15:00").status_code
    same_times_tuesday = add_entry(
        worker, crew.clock_project, work_date=TUESDAY, start_time="07:00", end_time="12:00"
    )
    assert same_times_tuesday.status_code == 200
    assert entry_count() == 3


def test_editing_an_entry_does_not_overlap_with_itself(worker, crew):
    add_entry(worker, crew.clock_project, start_time="07:00", end_time="12:00")
    entry = card_of(crew.worker).entries[0]
    response = worker.post(
        f"/time/entries/{entry.id}",
        data=entry_fields(crew.clock_project, start_time="07:30", end_time="12:00"),
        headers=HX,
    )
    assert response.status_code == 200
    assert "start 07:00 → 07:30" in response.get_data(as_text=True)


def test_more_than_24_hours_in_a_day_is_refused(worker, crew):
    assert add_entry(worker, crew.hours_project, hours="20").status_code == 200
    response = add_entry(worker, crew.hours_project, hours="5")
    assert_refused(response, "That makes 25.00 hours on Mon 03/02; a day has at most 24.")
    assert entry_count() == 1


def test_a_single_entry_over_24_hours_is_refused(worker, crew):
    assert_refused(add_entry(worker, crew.hours_project, hours="24.5"), "cannot exceed 24")


@pytest.mark.parametrize("hours", ["0", "-2"])
def test_zero_or_negative_hours_are_refused(worker, crew, hours):
    assert_refused(add_entry(worker, crew.hours_project, hours=hours), "more than 0")
    assert entry_count() == 0


def test_missing_or_malformed_hours_are_refused(worker, crew):
    assert_refused(add_entry(worker, crew.hours_project, hours=""), "Enter the hours worked.")
    assert_refused(add_entry(worker, crew.hours_project, hours="eight"), "as a number")
    assert_refused(add_entry(worker, crew.hours_project, hours="7.555"), "two decimal places")


def test_break_longer_than_the_span_is_refused(worker, crew):
    response = add_entry(
        worker, crew.clock_project, start_time="07:00", end_time="08:00", break_minutes="60"
    )
    assert_refused(response, "The break (60 min)")
    assert entry_count() == 0


def test_cost_code_not_assigned_to_the_project_is_refused(worker, crew):
    response = add_entry(worker, crew.hours_project, cost_code_id=crew.unassigned_code.id)
    assert_refused(response, "not assigned to Elm Street Townhomes")
    response = add_entry(worker, crew.clock_project, cost_code_id=crew.code_b.id)
    assert_refused(response, "not assigned to Riverside Medical")
    assert entry_count() == 0


def test_inactive_project_is_refused(worker, crew):
    response = add_entry(worker, crew.inactive_project)
    assert_refused(response, "Old Warehouse is inactive; choose an active project.")
    assert entry_count() == 0


def test_date_outside_the_cards_week_is_refused(worker, crew):
    add_entry(worker, crew.hours_project)
    card = card_of(crew.worker)
    response = worker.post(
        "/time/entries",
        data=entry_fields(crew.hours_project, card_id=card.id, work_date=date(2026, 3, 9)),
        headers=HX,
    )
    assert_refused(response, "week (Mon 03/02 – Sun 03/08)")
    assert entry_count() == 1


def test_unknown_work_type_and_bad_date_are_refused(worker, crew):
    assert_refused(add_entry(worker, crew.hours_project, work_type="holiday"), "Choose regular")
    assert_refused(add_entry(worker, crew.hours_project, work_date="03/02/2026"), "Pick a date.")


def test_worker_cannot_change_a_submitted_card(app, crew):
    card = submitted_card(app, crew)
    worker = login_as(app, crew.worker)
    message = "This card is submitted; ask your supervisor to reject it if it needs changes"
    page = worker.get("/time/?week=2026-03-02").get_data(as_text=True)
    assert message in page and "Add</button>" not in page
    response = worker.post(
        "/time/entries",
        data=entry_fields(crew.hours_project, card_id=card.id, work_date=TUESDAY),
        headers=HX,
    )
    assert_refused(response, message)
    entry = card.entries[0]
    response = worker.post(
        f"/time/entries/{entry.id}", data=entry_fields(crew.hours_project, hours="1"), headers=HX
    )
    assert_refused(response, message, row_id=f"entry-form-{entry.id}")
    response = worker.post(f"/time/entries/{entry.id}/delete", headers=HX)
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert entry_count() == 1
    assert [a for a, _ in history(card)] == ["created", "entry_added", "submitted"]


def test_worker_cannot_change_an_approved_card(app, crew):
    card = submitted_card(app, crew)
    login_as(app, crew.supervisor).post(f"/time/cards/{card.id}/approve", headers=HX)
    worker = login_as(app, crew.worker)
    entry = card_of(crew.worker).entries[0]
    response = worker.post(
        f"/time/entries/{entry.id}", data=entry_fields(crew.hours_project, hours="1"), headers=HX
    )
    assert_refused(response, "This card is approved", row_id=f"entry-form-{entry.id}")


def test_refused_edit_keeps_the_old_values(worker, crew):
    add_entry(worker, crew.clock_project, start_time="07:00", end_time="12:00")
    entry = card_of(crew.worker).entries[0]
    response = worker.post(
        f"/time/entries/{entry.id}",
        data=entry_fields(crew.clock_project, start_time="13:00", end_time="12:00"),
        headers=HX,
    )
    assert_refused(response, "End time must be after", row_id=f"entry-form-{entry.id}")
    assert 'value="13:00"' in response.get_data(as_text=True)  # what they typed stays
    db.session.expire_all()
    entry = db.session.get(TimeEntry, entry.id)
    assert (entry.start_time.hour, entry.end_time.hour) == (7, 12)
    assert [a for a, _ in history(entry.time_card)] == ["created", "entry_added"]


def test_submitted_card_cannot_be_submitted_again(app, crew):
    card = submitted_card(app, crew)
    response = login_as(app, crew.worker).post(f"/time/cards/{card.id}/submit", headers=HX)
    assert response.status_code == 422
    assert "cannot be submitted" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TimeCard)) == 1


@pytest.mark.parametrize("work_date", ["0001-01-01", "9999-12-31", "1999-12-31", "2101-01-01"])
def test_a_work_date_outside_2000_to_2100_is_refused_beside_the_field(worker, crew, work_date):
    response = add_entry(worker, crew.clock_project, week=work_date, work_date=work_date)

    assert_refused(response, "Pick a date between 2000-01-01 and 2100-12-31.")
    assert entry_count() == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TimeCard)) == 0


@pytest.mark.parametrize("week", ["0001-01-01", "9999-12-31", "0001-01-08"])
def test_my_time_for_a_week_at_the_calendars_edge_shows_this_week_and_says_why(worker, week):
    response = worker.get("/time/", query_string={"week": week})

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f"Cannot show the week of {week}:" in html and "Showing this week instead" in html


def test_the_entry_row_for_a_week_at_the_calendars_edge_still_opens(worker):
    response = worker.get("/time/entries/form", query_string={"week": "9999-12-31"}, headers=HX)

    assert response.status_code == 200
