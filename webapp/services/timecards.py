"""Time cards: entries, validation rules, status transitions and their history.

Every status change goes through change_status() and every entry change through
create_entry()/update_entry()/delete_entry(), so the history and the hooks that the
Procore push builds on can never be skipped.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from webapp.extensions import db
from webapp.models import (
    CostCode,
    Project,
    Role,
    TimeCard,
    TimeCardEvent,
    TimeCardStatus,
    TimeEntry,
    TimeEntryMode,
    User,
    WorkType,
)
from webapp.models.base import utcnow
from webapp.models.project import project_cost_code, project_supervisor
from webapp.services import push
from webapp.services.search import matching_any

MAX_HOURS_PER_DAY = Decimal("24")
TWO_PLACES = Decimal("0.01")
SUBMITTED_MESSAGE = "This card is submitted; ask your supervisor to reject it if it needs changes"
APPROVED_MESSAGE = "This card is approved; ask an admin if it needs changes"
# Up to this many active projects (or a project's cost codes) the entry row shows a plain
# select; above it a search box plus the worker's recent choices (a 10,000-option select
# is half a megabyte per render).
PICKER_THRESHOLD = 100
PICKER_MATCHES = 20  # search results shown at once
RECENT_WEEKS = 4
RECENT_LIMIT = 8


class TimeCardError(Exception):
    """A refused change, with a message per field ("" for the card as a whole)."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass
class EntryData:
    """The parsed fields of one time entry (see timecards/forms.py)."""

    work_date: date
    project_id: int
    cost_code_id: int | None = None
    start_time: time | None = None
    end_time: time | None = None
    hours: Decimal | None = None
    break_minutes: int = 0
    work_type: WorkType = WorkType.REGULAR
    notes: str | None = None


# ---------------------------------------------------------------- pure rules


def monday_of(day: date) -> date:
    """The Monday that starts `day`'s week."""
    return day - timedelta(days=day.weekday())


def week_days(week_start: date) -> list[date]:
    """Monday to Sunday of the week starting `week_start`."""
    return [week_start + timedelta(days=i) for i in range(7)]


def span_minutes(start: time, end: time) -> int:
    """Minutes from start to end on the same day (negative when end is before start)."""
    return (end.hour * 60 + end.minute) - (start.hour * 60 + start.minute)


def compute_hours(start: time, end: time, break_minutes: int) -> Decimal:
    """Worked hours (2 places) between start and end, minus the break."""
    minutes = Decimal(span_minutes(start, end) - break_minutes)
    return (minutes / Decimal(60)).quantize(TWO_PLACES, rounding=ROUND_HALF_UP)


def intervals_overlap(a_start: time, a_end: time, b_start: time, b_end: time) -> bool:
    """True when [a_start, a_end) and [b_start, b_end) share any minute."""
    return a_start < b_end and b_start < a_end


def day_totals(entries) -> dict[date, Decimal]:
    """Hours per work date."""
    totals: dict[date, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for entry in entries:
        totals[entry.work_date] += entry.hours
    return totals


def format_hours(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:.2f}"


# ---------------------------------------------------------------- who may do what


def supervised_project_ids(user: User) -> sa.Select:
    """A select of the ids of projects `user` supervises."""
    return sa.select(project_supervisor.c.project_id).where(project_supervisor.c.user_id == user.id)


def supervises_card(card: TimeCard, user: User) -> bool:
    """True when `card` has an entry on a project `user` supervises."""
    query = sa.select(
        sa.exists().where(
            TimeEntry.time_card_id == card.id,
            TimeEntry.project_id.in_(supervised_project_ids(user)),
        )
    )
    return bool(db.session.scalar(query))


def can_view(card: TimeCard, user: User) -> bool:
    """Owner, admin, or a manager/supervisor of a project the card has time on."""
    if card.company_id != user.company_id:
        return False
    if card.user_id == user.id or user.role == Role.ADMIN:
        return True
    return user.role in (Role.MANAGER, Role.SUPERVISOR) and supervises_card(card, user)


def can_approve(card: TimeCard, user: User) -> bool:
    """Admins approve any card; managers/supervisors those on their projects, not their own."""
    if card.company_id != user.company_id or not user.can_approve:
        return False
    if user.role == Role.ADMIN:
        return True
    return card.user_id != user.id and supervises_card(card, user)


def may_change_entries(card: TimeCard, user: User) -> bool:
    """Only the card's owner or an admin touches entries (status rules come on top)."""
    return card.company_id == user.company_id and (
        card.user_id == user.id or user.role == Role.ADMIN
    )


def edit_refusal(card: TimeCard, user: User) -> str | None:
    """Why `user` may not change entries on `card` now, or None when they may."""
    if not may_change_entries(card, user):
        return "Only the card's owner or an admin can change its entries."
    if user.role == Role.ADMIN:
        return None  # admins may correct any card; the history records it
    if card.status == TimeCardStatus.SUBMITTED:
        return SUBMITTED_MESSAGE
    if card.status == TimeCardStatus.APPROVED:
        return APPROVED_MESSAGE
    return None


# ---------------------------------------------------------------- queries


def find_card(company_id: int, user_id: int, week_start: date) -> TimeCard | None:
    """The user's card for that week with entries and history loaded, or None."""
    return db.session.scalar(
        sa.select(TimeCard)
        .where(
            TimeCard.company_id == company_id,
            TimeCard.user_id == user_id,
            TimeCard.week_start == week_start,
        )
        .options(selectinload(TimeCard.entries), selectinload(TimeCard.events))
    )


def load_card(card_id: int) -> TimeCard | None:
    """A card with its entries and history eager-loaded."""
    return db.session.scalar(
        sa.select(TimeCard)
        .where(TimeCard.id == card_id)
        .options(selectinload(TimeCard.entries), selectinload(TimeCard.events))
        .execution_options(populate_existing=True)
    )


def active_projects(company_id: int, limit: int | None = None) -> list[Project]:
    """The company's active projects, by name (at most `limit` of them when given)."""
    query = (
        sa.select(Project)
        .where(Project.company_id == company_id, Project.active.is_(True))
        .order_by(Project.name, Project.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.scalars(query))


def search_active_projects(company_id: int, q: str, limit: int = PICKER_MATCHES) -> list[Project]:
    """Up to `limit` + 1 of the company's active projects whose name or number contains `q`.

    One more than `limit` comes back so the caller can say the list was cut short.
    """
    query = sa.select(Project).where(Project.company_id == company_id, Project.active.is_(True))
    query = matching_any(query, q, Project.name, Project.number)
    return list(db.session.scalars(query.order_by(Project.name, Project.id).limit(limit + 1)))


def _recent_window(week_start: date) -> tuple[date, date]:
    """The weeks whose entries count as recent for a card: the 4 before it and its own."""
    return week_start - timedelta(days=7 * RECENT_WEEKS), week_start + timedelta(days=6)


def recent_projects(
    company_id: int, user_id: int, week_start: date, limit: int = RECENT_LIMIT
) -> list[Project]:
    """The active projects `user_id` logged time on in the last weeks, most recent first."""
    first, last = _recent_window(week_start)
    used = (
        sa.select(TimeEntry.project_id, sa.func.max(TimeEntry.work_date).label("last_used"))
        .join(TimeCard, TimeCard.id == TimeEntry.time_card_id)
        .where(
            TimeCard.company_id == company_id,
            TimeCard.user_id == user_id,
            TimeCard.week_start.between(first - timedelta(days=6), last),
            TimeEntry.work_date.between(first, last),
        )
        .group_by(TimeEntry.project_id)
        .subquery()
    )
    return list(
        db.session.scalars(
            sa.select(Project)
            .join(used, used.c.project_id == Project.id)
            .where(Project.company_id == company_id, Project.active.is_(True))
            .order_by(used.c.last_used.desc(), Project.name, Project.id)
            .limit(limit)
        )
    )


def _assigned_codes(company_id: int, project_id: int) -> sa.Select:
    return (
        sa.select(CostCode)
        .join(project_cost_code, project_cost_code.c.cost_code_id == CostCode.id)
        .where(
            project_cost_code.c.project_id == project_id,
            CostCode.company_id == company_id,
            CostCode.active.is_(True),
        )
    )


def project_cost_codes(company_id: int, project_id: int, limit: int | None = None) -> list:
    """The active cost codes assigned to a project, by code (at most `limit` when given)."""
    query = _assigned_codes(company_id, project_id).order_by(CostCode.code, CostCode.id)
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.scalars(query))


def project_cost_codes_by_id(company_id: int, project_id: int, ids: list[int]) -> list:
    """Those of `ids` that are active cost codes assigned to the project."""
    return list(
        db.session.scalars(_assigned_codes(company_id, project_id).where(CostCode.id.in_(ids)))
    )


def search_project_cost_codes(
    company_id: int, project_id: int, q: str, limit: int = PICKER_MATCHES
) -> list[CostCode]:
    """Up to `limit` + 1 of a project's active codes whose code or name contains `q`."""
    query = matching_any(_assigned_codes(company_id, project_id), q, CostCode.code, CostCode.name)
    return list(db.session.scalars(query.order_by(CostCode.code, CostCode.id).limit(limit + 1)))


def recent_cost_codes(
    company_id: int, user_id: int, project_id: int, week_start: date, limit: int = RECENT_LIMIT
) -> list[CostCode]:
    """The project's active codes `user_id` used in the last weeks, most recent first."""
    first, last = _recent_window(week_start)
    used = (
        sa.select(TimeEntry.cost_code_id, sa.func.max(TimeEntry.work_date).label("last_used"))
        .join(TimeCard, TimeCard.id == TimeEntry.time_card_id)
        .where(
            TimeCard.company_id == company_id,
            TimeCard.user_id == user_id,
            TimeCard.week_start.between(first - timedelta(days=6), last),
            TimeEntry.work_date.between(first, last),
            TimeEntry.project_id == project_id,
            TimeEntry.cost_code_id.is_not(None),
        )
        .group_by(TimeEntry.cost_code_id)
        .subquery()
    )
    query = _assigned_codes(company_id, project_id).join(used, used.c.cost_code_id == CostCode.id)
    return list(
        db.session.scalars(query.order_by(used.c.last_used.desc(), CostCode.code).limit(limit))
    )


def card_totals(card_ids: list[int]) -> dict[int, Decimal]:
    """Total hours per card, in one grouped query."""
    if not card_ids:
        return {}
    rows = db.session.execute(
        sa.select(TimeEntry.time_card_id, sa.func.sum(TimeEntry.hours))
        .where(TimeEntry.time_card_id.in_(card_ids))
        .group_by(TimeEntry.time_card_id)
    )
    return {card_id: Decimal(total) for card_id, total in rows}


def cards_for_approver(user: User, status: TimeCardStatus | None = TimeCardStatus.SUBMITTED):
    """A select of the cards the user may act on: all for admins, else their projects'."""
    query = (
        sa.select(TimeCard)
        .join(User, User.id == TimeCard.user_id)
        .where(TimeCard.company_id == user.company_id)
        .order_by(TimeCard.week_start.desc(), User.last_name, User.first_name, TimeCard.id)
    )
    if status is not None:
        query = query.where(TimeCard.status == status)
    if user.role != Role.ADMIN:
        on_my_projects = sa.exists().where(
            TimeEntry.time_card_id == TimeCard.id,
            TimeEntry.project_id.in_(supervised_project_ids(user)),
        )
        query = query.where(on_my_projects, TimeCard.user_id != user.id)
    return query


# ---------------------------------------------------------------- hooks


def after_status_change(card: TimeCard, old: TimeCardStatus, new: TimeCardStatus) -> None:
    """Runs inside the status change's transaction (the Procore push adds its outbox here)."""
    push.queue_status_change(card, old, new)


def after_entry_change(entry: TimeEntry, action: str) -> None:
    """Runs inside the entry change's transaction; action is added, edited or deleted."""
    push.queue_entry_change(entry, action)


# ---------------------------------------------------------------- changes


def _record(card: TimeCard, actor: User | None, action: str, detail: str | None = None) -> None:
    db.session.add(
        TimeCardEvent(
            company_id=card.company_id,
            time_card_id=card.id,
            actor_id=actor.id if actor else None,
            action=action,
            detail=detail,
        )
    )


def get_or_create_card(company_id: int, user: User, week_start: date, actor: User) -> TimeCard:
    """The user's card for the week, created (as a draft, flushed, not committed) if missing."""
    card = find_card(company_id, user.id, week_start)
    if card is None:
        card = TimeCard(
            company_id=company_id,
            user_id=user.id,
            week_start=week_start,
            status=TimeCardStatus.DRAFT,
        )
        db.session.add(card)
        db.session.flush()
        _record(card, actor, "created")
    return card


ALLOWED_TRANSITIONS = {
    TimeCardStatus.DRAFT: {TimeCardStatus.SUBMITTED},
    TimeCardStatus.REJECTED: {TimeCardStatus.SUBMITTED},
    TimeCardStatus.SUBMITTED: {TimeCardStatus.APPROVED, TimeCardStatus.REJECTED},
    TimeCardStatus.APPROVED: {TimeCardStatus.REJECTED},
}


def change_status(
    card: TimeCard, new_status: TimeCardStatus, actor: User, note: str | None = None
) -> TimeCard:
    """The one door for status changes: checks, records the event, runs the hook, commits."""
    old = card.status
    if new_status not in ALLOWED_TRANSITIONS.get(old, set()):
        raise TimeCardError({"": f"A {old.label.lower()} card cannot be {new_status.value}."})
    note = (note or "").strip() or None
    if new_status == TimeCardStatus.SUBMITTED:
        if card.user_id != actor.id and actor.role != Role.ADMIN:
            raise TimeCardError({"": "Only the card's owner can submit it."})
        if not card.entries:
            raise TimeCardError({"": "Add at least one entry before submitting the card."})
        card.submitted_at = utcnow()
        card.approved_at = card.approved_by_id = None
        card.rejection_note = None
    elif new_status == TimeCardStatus.APPROVED:
        if not can_approve(card, actor):
            raise TimeCardError({"": "You cannot approve this card."})
        card.approved_at, card.approved_by_id = utcnow(), actor.id
    elif new_status == TimeCardStatus.REJECTED:
        if not can_approve(card, actor) or (old == TimeCardStatus.APPROVED and not actor.is_admin):
            raise TimeCardError({"": "You cannot reject this card."})
        if not note:
            raise TimeCardError({"note": "Say what needs fixing so the worker can correct it."})
        if len(note) > 2000:
            raise TimeCardError({"note": "Keep the note under 2000 characters."})
        card.rejection_note = note
        card.approved_at = card.approved_by_id = None
    card.status = new_status
    _record(card, actor, new_status.value, note)
    after_status_change(card, old, new_status)
    db.session.commit()
    return card


def _entries_on_day(card: TimeCard, work_date: date, excluding: TimeEntry | None) -> list:
    """The person's other entries that day (a day belongs to exactly one weekly card)."""
    query = sa.select(TimeEntry).where(
        TimeEntry.company_id == card.company_id,
        TimeEntry.time_card_id == card.id,
        TimeEntry.work_date == work_date,
    )
    if excluding is not None and excluding.id is not None:
        query = query.where(TimeEntry.id != excluding.id)
    return list(db.session.scalars(query))


def validate_entry(
    card: TimeCard, data: EntryData, actor: User, entry: TimeEntry | None = None
) -> tuple[dict[str, str], Project | None, Decimal | None]:
    """Check every rule for saving `data` on `card`; returns (errors, project, hours)."""
    errors: dict[str, str] = {}
    refusal = edit_refusal(card, actor)
    if refusal:
        return {"": refusal}, None, None

    last_day = card.week_start + timedelta(days=6)
    if not card.week_start <= data.work_date <= last_day:
        errors["work_date"] = (
            f"Pick a date in this card's week ({card.week_start:%a %m/%d} – {last_day:%a %m/%d})."
        )

    project = db.session.get(Project, data.project_id)
    if project is None or project.company_id != card.company_id:
        errors["project_id"] = "Choose a project."
        project = None
    elif not project.active and (entry is None or entry.project_id != project.id):
        errors["project_id"] = f"{project.name} is inactive; choose an active project."

    if data.cost_code_id is not None and project is not None:
        code = db.session.get(CostCode, data.cost_code_id)
        if (
            code is None
            or code.company_id != card.company_id
            or not _is_assigned(project.id, code.id)
        ):
            errors["cost_code_id"] = (
                f"That cost code is not assigned to {project.name}; pick one from the list."
            )
        elif not code.active and (entry is None or entry.cost_code_id != code.id):
            errors["cost_code_id"] = f"Cost code {code.code} is inactive; pick another."

    hours = None
    if project is not None:
        if project.time_entry_mode == TimeEntryMode.START_STOP:
            hours = _start_stop_hours(data, errors)
        else:
            hours = data.hours
            if hours is None:
                errors["hours"] = "Enter the hours worked."
            elif hours <= 0:
                errors["hours"] = "Hours must be more than 0."
            elif hours > MAX_HOURS_PER_DAY:
                errors["hours"] = "Hours cannot exceed 24 in a day."

    if hours is not None and "work_date" not in errors and not errors.keys() & {"hours", "time"}:
        others = _entries_on_day(card, data.work_date, entry)
        if project is not None and project.time_entry_mode == TimeEntryMode.START_STOP:
            for other in others:
                if (
                    other.start_time
                    and other.end_time
                    and intervals_overlap(
                        data.start_time, data.end_time, other.start_time, other.end_time
                    )
                ):
                    errors["time"] = (
                        f"Overlaps your {other.start_time:%H:%M}–{other.end_time:%H:%M} "
                        f"entry on {data.work_date:%a %m/%d}; change the times."
                    )
                    break
        day_total = sum((o.hours for o in others), Decimal("0")) + hours
        if "time" not in errors and day_total > MAX_HOURS_PER_DAY:
            errors["hours"] = (
                f"That makes {day_total:.2f} hours on {data.work_date:%a %m/%d}; "
                "a day has at most 24."
            )
    return errors, project, hours


def _is_assigned(project_id: int, cost_code_id: int) -> bool:
    """True when the cost code is assigned to the project (without loading all its codes)."""
    return bool(
        db.session.scalar(
            sa.select(
                sa.exists().where(
                    project_cost_code.c.project_id == project_id,
                    project_cost_code.c.cost_code_id == cost_code_id,
                )
            )
        )
    )


def _start_stop_hours(data: EntryData, errors: dict[str, str]) -> Decimal | None:
    if data.start_time is None or data.end_time is None:
        errors["time"] = "This project records start and end times; enter both."
        return None
    span = span_minutes(data.start_time, data.end_time)
    if span <= 0:
        errors["time"] = "End time must be after the start time."
        return None
    if data.break_minutes >= span:
        errors["break_minutes"] = (
            f"The break ({data.break_minutes} min) is as long as or longer than the time "
            f"between start and end ({span} min)."
        )
        return None
    return compute_hours(data.start_time, data.end_time, data.break_minutes)


def _apply(entry: TimeEntry, data: EntryData, project: Project, hours: Decimal) -> None:
    start_stop = project.time_entry_mode == TimeEntryMode.START_STOP
    entry.work_date = data.work_date
    entry.project_id = project.id
    entry.project = project
    entry.cost_code_id = data.cost_code_id
    entry.cost_code = db.session.get(CostCode, data.cost_code_id) if data.cost_code_id else None
    entry.start_time = data.start_time if start_stop else None
    entry.end_time = data.end_time if start_stop else None
    entry.break_minutes = data.break_minutes if start_stop else 0
    entry.hours = hours
    entry.work_type = data.work_type
    entry.notes = data.notes


def describe_entry(entry: TimeEntry) -> str:
    """A one-line summary of an entry for the history."""
    when = f"{entry.work_date:%a %m/%d}"
    times = ""
    if entry.start_time and entry.end_time:
        times = f" {entry.start_time:%H:%M}–{entry.end_time:%H:%M}"
    code = f", {entry.cost_code.code}" if entry.cost_code else ""
    return f"{when}{times}: {entry.hours:.2f} h on {entry.project.name}{code}"


def _snapshot(entry: TimeEntry) -> dict[str, str]:
    return {
        "date": f"{entry.work_date:%a %m/%d}",
        "project": entry.project.name if entry.project else "—",
        "cost code": entry.cost_code.code if entry.cost_code else "—",
        "start": f"{entry.start_time:%H:%M}" if entry.start_time else "—",
        "end": f"{entry.end_time:%H:%M}" if entry.end_time else "—",
        "break": f"{entry.break_minutes} min",
        "hours": f"{entry.hours:.2f}",
        "work type": entry.work_type.label,
        "notes": entry.notes or "—",
    }


def _admin_note(card: TimeCard, actor: User) -> str:
    if card.user_id != actor.id and card.status != TimeCardStatus.DRAFT:
        return f" (by admin on a {card.status.value} card)"
    return ""


def add_entry(card: TimeCard, data: EntryData, actor: User, how: str = "") -> TimeEntry:
    """Validate and add an entry (history and hooks included) without committing.

    Raises TimeCardError and leaves the rollback to the caller, so a change made of several
    entries (a clock-out across midnight) is kept whole or not at all. `how` is appended to
    the history line (e.g. " by clock out").
    """
    errors, project, hours = validate_entry(card, data, actor)
    if errors:
        raise TimeCardError(errors)
    entry = TimeEntry(company_id=card.company_id, time_card_id=card.id)
    _apply(entry, data, project, hours)
    card.entries.append(entry)
    db.session.add(entry)
    db.session.flush()
    _record(card, actor, "entry_added", describe_entry(entry) + how + _admin_note(card, actor))
    after_entry_change(entry, "added")
    return entry


def create_entry(card: TimeCard, data: EntryData, actor: User) -> TimeEntry:
    """Add an entry to `card`; raises TimeCardError (and keeps nothing) when a rule fails."""
    try:
        entry = add_entry(card, data, actor)
    except TimeCardError:
        db.session.rollback()
        raise
    db.session.commit()
    return entry


def update_entry(entry: TimeEntry, data: EntryData, actor: User) -> TimeEntry:
    """Change an entry; the history lists each field that changed (old → new)."""
    card = entry.time_card
    errors, project, hours = validate_entry(card, data, actor, entry)
    if errors:
        db.session.rollback()
        raise TimeCardError(errors)
    before = _snapshot(entry)
    _apply(entry, data, project, hours)
    after = _snapshot(entry)
    changes = [f"{k} {before[k]} → {after[k]}" for k in before if before[k] != after[k]]
    if changes:
        detail = f"{before['date']}: " + "; ".join(changes) + _admin_note(card, actor)
        _record(card, actor, "entry_edited", detail)
        after_entry_change(entry, "edited")
    db.session.commit()
    return entry


def delete_entry(entry: TimeEntry, actor: User) -> TimeCard:
    """Remove an entry (recorded in the history)."""
    card = entry.time_card
    refusal = edit_refusal(card, actor)
    if refusal:
        raise TimeCardError({"": refusal})
    detail = describe_entry(entry) + _admin_note(card, actor)
    after_entry_change(entry, "deleted")
    card.entries.remove(entry)
    db.session.delete(entry)
    _record(card, actor, "entry_deleted", detail)
    db.session.commit()
    return card


def event_label(action: str) -> str:
    return {
        "created": "Card created",
        "submitted": "Submitted",
        "approved": "Approved",
        "rejected": "Rejected",
        "entry_added": "Entry added",
        "entry_edited": "Entry edited",
        "entry_deleted": "Entry deleted",
    }.get(action, action.replace("_", " ").capitalize())


def now_local_date(user: User) -> date:
    """Today in the user's time zone."""
    from zoneinfo import ZoneInfo

    try:
        zone = ZoneInfo(user.time_zone)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    return datetime.now(zone).date()
