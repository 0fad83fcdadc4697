"""Clock in / clock out: an open ClockSession per person, turned into time entries.

Clock out goes through timecards.add_entry(), the same validation and history as an entry
typed by hand; the clock is deleted in the same transaction, so either the entries exist
and the clock is gone, or nothing changed and the clock is still open.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.models import ClockSession, Company, CostCode, Project, TimeCard, User, WorkType
from webapp.models.base import utcnow
from webapp.models.project import project_supervisor
from webapp.services import timecards as cards
from webapp.services.timecards import TWO_PLACES, EntryData, TimeCardError

# A clock left open longer than this was forgotten; its time is entered by hand instead.
MAX_SHIFT = timedelta(hours=24)
# The last minute a day's entry can end at: the model keeps start/end as times of one day,
# and 00:00 as an end is read as "before the start", so a part ending at midnight ends here.
LAST_MINUTE = time(23, 59)
CANCEL_HINT = "or cancel this clock-in and enter the time by hand"


class ClockError(Exception):
    """A refused clock action, with a message saying what to do."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class Shift:
    """One day's part of a clocked shift, in local time rounded to the minute."""

    work_date: date
    start: time
    end: time


def now() -> datetime:
    """The current UTC time (tests patch this to move the clock)."""
    return utcnow()


def local_zone(user: User) -> ZoneInfo:
    """The user's time zone, else their company's, else UTC."""
    company = db.session.get(Company, user.company_id)
    for name in (user.time_zone, company.time_zone if company else None):
        try:
            if name:
                return ZoneInfo(name)
        except (KeyError, ValueError):
            continue
    return ZoneInfo("UTC")


def round_to_minute(moment: datetime) -> datetime:
    """`moment` rounded to the nearest minute (30 s and more round up)."""
    floor = moment.replace(second=0, microsecond=0)
    return floor + timedelta(minutes=1) if moment - floor >= timedelta(seconds=30) else floor


def split_at_midnight(start: datetime, end: datetime) -> list[Shift]:
    """The local-time parts of [start, end), one per local day, rounded to the minute.

    A part that runs to midnight ends at 23:59 (the model cannot end an entry at 24:00), so
    a shift across midnight records one minute less than it lasted.
    """
    start, end = round_to_minute(start), round_to_minute(end)
    parts = []
    day = start.date()
    while day <= end.date():
        part_start = start.time() if day == start.date() else time(0, 0)
        part_end = end.time() if day == end.date() else LAST_MINUTE
        if part_end > part_start:
            parts.append(Shift(day, part_start, part_end))
        day += timedelta(days=1)
    return parts


def week_refusal(card: TimeCard | None, user: User, or_else: str = "") -> str | None:
    """Why `user` cannot add clocked time to this week's card, or None.

    `or_else` names the way out besides asking for the card back (e.g. cancelling the clock).
    """
    refusal = cards.edit_refusal(card, user) if card else None
    if refusal == cards.SUBMITTED_MESSAGE:
        return (
            f"Your card for the week of {card.week_start:%a %m/%d} is submitted: ask your "
            f"supervisor to reject it{or_else}."
        )
    if refusal == cards.APPROVED_MESSAGE:
        return (
            f"Your card for the week of {card.week_start:%a %m/%d} is approved: ask an admin "
            f"to reopen it{or_else}."
        )
    return refusal


# ---------------------------------------------------------------- queries


def open_clock(company_id: int, user_id: int) -> ClockSession | None:
    """The user's open clock, or None."""
    return db.session.scalar(
        sa.select(ClockSession).where(
            ClockSession.company_id == company_id, ClockSession.user_id == user_id
        )
    )


def clocked_in_now(viewer: User) -> sa.Select:
    """A select of the open clocks `viewer` may see: all for admins, else their projects'."""
    query = (
        sa.select(ClockSession)
        .join(User, User.id == ClockSession.user_id)
        .where(ClockSession.company_id == viewer.company_id)
        .order_by(ClockSession.started_at, User.last_name, User.first_name, ClockSession.id)
    )
    if not viewer.is_admin:
        query = query.where(
            ClockSession.project_id.in_(
                sa.select(project_supervisor.c.project_id).where(
                    project_supervisor.c.user_id == viewer.id
                )
            )
        )
    return query


# ---------------------------------------------------------------- changes


def clock_in(
    user: User,
    project_id: int,
    cost_code_id: int | None,
    work_type: WorkType = WorkType.REGULAR,
    notes: str | None = None,
) -> ClockSession:
    """Open a clock for `user` now; ClockError when a rule fails (nothing is saved)."""
    if open_clock(user.company_id, user.id) is not None:
        raise ClockError("You are already clocked in; clock out or cancel that clock-in first.")
    project = db.session.get(Project, project_id)
    if project is None or project.company_id != user.company_id:
        raise ClockError("Choose a project.", "project_id")
    if not project.active:
        raise ClockError(f"{project.name} is inactive; choose an active project.", "project_id")
    if cost_code_id is not None:
        code = db.session.get(CostCode, cost_code_id)
        if (
            code is None
            or code.company_id != user.company_id
            or not cards.project_cost_codes_by_id(user.company_id, project.id, [code.id])
        ):
            raise ClockError(
                f"That cost code is not assigned to {project.name}; pick one from the list.",
                "cost_code_id",
            )
    started = now()
    today = started.astimezone(local_zone(user)).date()
    card = cards.find_card(user.company_id, user.id, cards.monday_of(today))
    refusal = week_refusal(card, user, " before you clock in")
    if refusal:
        raise ClockError(refusal)
    clock = ClockSession(
        company_id=user.company_id,
        user_id=user.id,
        project_id=project.id,
        cost_code_id=cost_code_id,
        work_type=work_type,
        started_at=started,
        notes=notes,
    )
    db.session.add(clock)
    try:
        db.session.commit()
    except IntegrityError:  # another tab clocked in between our check and our insert
        db.session.rollback()
        raise ClockError(
            "You are already clocked in; clock out or cancel that clock-in first."
        ) from None
    return clock


def cancel(clock: ClockSession) -> None:
    """Drop a mistaken clock-in (no entry exists yet, so nothing else records it)."""
    db.session.execute(sa.delete(ClockSession).where(ClockSession.id == clock.id))
    db.session.commit()


def clock_out(clock: ClockSession, user: User, break_minutes: int = 0) -> list:
    """Close the clock: one time entry per local day it spans, on that week's card.

    The break goes to the longest part. Raises ClockError saying what to do when any rule
    refuses an entry; then nothing is saved and the clock stays open.
    """
    zone = local_zone(user)
    ended = now()
    if ended - clock.started_at > MAX_SHIFT:
        raise ClockError(
            f"This clock-in is more than {MAX_SHIFT.total_seconds() / 3600:.0f} hours old; "
            "cancel it and enter the time by hand."
        )
    parts = split_at_midnight(clock.started_at.astimezone(zone), ended.astimezone(zone))
    if not parts:
        raise ClockError(
            "You clocked in less than a minute ago; clock out later, or cancel this clock-in."
        )
    longest = max(parts, key=lambda p: cards.span_minutes(p.start, p.end))
    # Claim the clock first: of two clock-outs at once (two tabs), the second finds it gone.
    claimed = db.session.execute(sa.delete(ClockSession).where(ClockSession.id == clock.id))
    if claimed.rowcount != 1:
        db.session.rollback()
        raise ClockError("This clock-in was already closed; reload the page.")
    project_id, cost_code_id = clock.project_id, clock.cost_code_id
    work_type, notes = clock.work_type, clock.notes
    entries = []
    try:
        for part in parts:
            card = cards.find_card(user.company_id, user.id, cards.monday_of(part.work_date))
            refusal = week_refusal(card, user, ", or cancel this clock-in")
            if refusal:
                raise ClockError(refusal)
            if card is None:
                card = cards.get_or_create_card(
                    user.company_id, user, cards.monday_of(part.work_date), user
                )
            part_break = break_minutes if part is longest else 0
            minutes = cards.span_minutes(part.start, part.end) - part_break
            data = EntryData(
                work_date=part.work_date,
                project_id=project_id,
                cost_code_id=cost_code_id,
                start_time=part.start,
                end_time=part.end,
                hours=(Decimal(minutes) / Decimal(60)).quantize(TWO_PLACES, ROUND_HALF_UP),
                break_minutes=part_break,
                work_type=work_type,
                notes=notes,
            )
            entries.append(cards.add_entry(card, data, user, " by clock out"))
    except TimeCardError as error:
        db.session.rollback()
        reasons = " ".join(m.rstrip(".") + "." for m in error.errors.values())
        raise ClockError(f"{reasons} Fix that, {CANCEL_HINT}.") from None
    except ClockError:
        db.session.rollback()
        raise
    db.session.commit()
    return entries


def elapsed_label(clock: ClockSession) -> str:
    """How long the clock has been running, e.g. '2 h 05 min'."""
    minutes = max(0, int((now() - clock.started_at).total_seconds() // 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def started_label(clock: ClockSession, user: User) -> str:
    """When the clock started in the user's zone: '7:02 AM', with the day if not today."""
    zone = local_zone(user)
    started = clock.started_at.astimezone(zone)
    label = started.strftime("%-I:%M %p")
    if started.date() != now().astimezone(zone).date():
        label += started.strftime(" on %a %m/%d")
    return label


def local_today(user: User) -> date:
    """Today's date where the user works."""
    return now().astimezone(local_zone(user)).date()
