"""Pure time card rules: weeks, hours from times, overlaps, and parsing the entry row."""

from datetime import date, time
from decimal import Decimal

from webapp.models import WorkType
from webapp.services.timecards import (
    compute_hours,
    day_totals,
    intervals_overlap,
    monday_of,
    week_days,
)
from webapp.timecards.forms import parse_entry_form, parse_time, parse_week


def test_any_day_belongs_to_the_week_starting_that_monday():
    assert monday_of(date(2026, 3, 2)) == date(2026, 3, 2)
    assert monday_of(date(2026, 3, 8)) == date(2026, 3, 2)  # Sunday
    assert monday_of(date(2026, 1, 1)) == date(2025, 12, 29)  # across a year end
    assert week_days(date(2026, 3, 2))[-1] == date(2026, 3, 8)


def test_hours_are_the_span_minus_the_break_in_two_decimal_places():
    assert compute_hours(time(7), time(15, 30), 30) == Decimal("8.00")
    assert compute_hours(time(7), time(7, 20), 0) == Decimal("0.33")
    assert compute_hours(time(6, 45), time(14, 5), 25) == Decimal("6.92")
    assert isinstance(compute_hours(time(7), time(8), 0), Decimal)


def test_touching_intervals_do_not_overlap_but_shared_minutes_do():
    assert not intervals_overlap(time(7), time(12), time(12), time(15))
    assert intervals_overlap(time(7), time(12), time(11, 59), time(15))
    assert intervals_overlap(time(9), time(10), time(7), time(17))


def test_day_totals_add_hours_per_date():
    class Entry:
        def __init__(self, day, hours):
            self.work_date, self.hours = day, Decimal(hours)

    totals = day_totals([Entry(date(2026, 3, 2), "8"), Entry(date(2026, 3, 2), "1.5")])
    assert totals[date(2026, 3, 2)] == Decimal("9.5")


def form(**fields):
    base = {"work_date": "2026-03-02", "project_id": "4", "hours": "7.5", "work_type": "regular"}
    base.update(fields)
    return base


def test_a_complete_row_parses_into_entry_data():
    data, errors = parse_entry_form(form(cost_code_id="9", break_minutes="", notes="  pour "))
    assert errors == {}
    assert data.hours == Decimal("7.5") and data.cost_code_id == 9
    assert data.break_minutes == 0 and data.notes == "pour"
    assert data.work_type is WorkType.REGULAR


def test_each_malformed_field_gets_its_own_message():
    _, errors = parse_entry_form(
        {
            "work_date": "tomorrow",
            "project_id": "",
            "start_time": "7am",
            "hours": "NaN",
            "break_minutes": "-5",
            "work_type": "weekend",
            "notes": "x" * 2001,
        }
    )
    assert set(errors) == {
        "work_date",
        "project_id",
        "time",
        "hours",
        "break_minutes",
        "work_type",
        "notes",
    }


def test_times_and_weeks_parse_leniently_and_fall_back():
    assert parse_time("07:30") == time(7, 30)
    assert parse_time("07:30:00") == time(7, 30)
    assert parse_time("25:00") is None
    assert parse_week("2026-03-04", date(2020, 1, 1)) == date(2026, 3, 4)
    assert parse_week("junk", date(2020, 1, 1)) == date(2020, 1, 1)
