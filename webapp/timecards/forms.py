"""Parse the time entry and status forms; each parser returns (value, field errors)."""

from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation

from webapp.inputs import parse_date, parse_date_checked, parse_id, parse_int
from webapp.models import WorkType
from webapp.services.timecards import EntryData

MAX_NOTES = 2000


def parse_time(value: str | None) -> time | None:
    """An HH:MM time, or None."""
    value = (value or "").strip()
    for fmt in ("%H:%M", "%H:%M:%S"):
        try:
            return datetime.strptime(value, fmt).time()
        except ValueError:
            continue
    return None


def parse_work_type_and_notes(form, errors: dict[str, str]) -> tuple[WorkType, str | None]:
    """The work type and notes of an entry or a clock-in; problems go into `errors`."""
    try:
        work_type = WorkType(form.get("work_type") or WorkType.REGULAR.value)
    except ValueError:
        errors["work_type"] = "Choose regular, overtime or double time."
        work_type = WorkType.REGULAR
    notes = (form.get("notes") or "").strip() or None
    if notes and len(notes) > MAX_NOTES:
        errors["notes"] = f"Keep notes under {MAX_NOTES} characters."
    return work_type, notes


def parse_entry_form(form) -> tuple[EntryData | None, dict[str, str]]:
    """Turn the entry row's fields into EntryData, or field errors saying what to fix."""
    errors: dict[str, str] = {}
    work_date, date_problem = parse_date_checked(form.get("work_date"))
    if work_date is None:
        errors["work_date"] = date_problem
    project_id = parse_id(form.get("project_id"))
    if project_id is None:
        errors["project_id"] = "Choose a project."
    cost_code_raw = (form.get("cost_code_id") or "").strip()
    cost_code_id = parse_id(cost_code_raw) if cost_code_raw else None
    if cost_code_raw and cost_code_id is None:
        errors["cost_code_id"] = "Pick a cost code from the list."

    start_raw, end_raw = form.get("start_time"), form.get("end_time")
    start_time, end_time = parse_time(start_raw), parse_time(end_raw)
    if (start_raw or "").strip() and start_time is None:
        errors["time"] = "Enter the start time as HH:MM."
    if (end_raw or "").strip() and end_time is None:
        errors["time"] = "Enter the end time as HH:MM."

    hours = None
    hours_raw = (form.get("hours") or "").strip()
    if hours_raw:
        try:
            hours = Decimal(hours_raw)
            if not hours.is_finite():
                raise InvalidOperation
            if hours != hours.quantize(Decimal("0.01")):
                errors["hours"] = "Use at most two decimal places (e.g. 7.50)."
        except InvalidOperation:
            errors["hours"] = "Enter hours as a number, e.g. 7.5."
            hours = None

    break_raw = (form.get("break_minutes") or "").strip()
    break_minutes = parse_int(break_raw, maximum=1440) if break_raw else 0
    if break_minutes is None:
        errors["break_minutes"] = "Enter the break in whole minutes (0 or more)."
        break_minutes = 0

    work_type, notes = parse_work_type_and_notes(form, errors)

    if errors:
        return None, errors
    return (
        EntryData(
            work_date=work_date,
            project_id=project_id,
            cost_code_id=cost_code_id,
            start_time=start_time,
            end_time=end_time,
            hours=hours,
            break_minutes=break_minutes,
            work_type=work_type,
            notes=notes,
        ),
        {},
    )


def parse_week(value: str | None, default: date) -> date:
    """The ?week= date (any day of the week), or `default` when missing, malformed or out of
    range (see week_notice for what to tell the person)."""
    return parse_date(value) or default


def week_notice(value: str | None) -> str | None:
    """What to say when a ?week= value was given but cannot be shown (None otherwise)."""
    if not (value or "").strip():
        return None
    _day, problem = parse_date_checked(value)
    if problem is None:
        return None
    return f"Cannot show the week of {value.strip()[:20]}: {problem} Showing this week instead."


def parse_clock_in_form(form) -> tuple[dict, dict[str, str]]:
    """The clock-in fields (project, cost code, work type, notes) as clock_in() arguments."""
    errors: dict[str, str] = {}
    project_id = parse_id(form.get("project_id"))
    if project_id is None:
        errors["project_id"] = "Choose a project."
    cost_code_raw = (form.get("cost_code_id") or "").strip()
    cost_code_id = parse_id(cost_code_raw) if cost_code_raw else None
    if cost_code_raw and cost_code_id is None:
        errors["cost_code_id"] = "Pick a cost code from the list."
    work_type, notes = parse_work_type_and_notes(form, errors)
    fields = {
        "project_id": project_id,
        "cost_code_id": cost_code_id,
        "work_type": work_type,
        "notes": notes,
    }
    return fields, errors
