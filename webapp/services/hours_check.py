"""The weekly hours check: Crewclock's hours against Procore's, per person, project and cost
code, with the reason for every difference, and 'Re-send differences' through the outbox.

The check reads Procore in a job (one listing per linked project, page by page) and keeps
only totals per row plus one record per Procore entry that carries one of our origin ids, so
memory grows with Crewclock's entries for the week, never with Procore's list. The result is
a `hours_check` SyncRun: the rows in its checkpoint JSON, and one SyncRunItem per entry that
came from us and is missing or different in Procore (what 'Re-send differences' sends again).

A create Procore applied after the push gave up on it can leave two Procore entries with one
of our origin ids: the check keeps the one the outbox row links (else the oldest), deletes the
others in Procore and lists each removal (or Procore's refusal) on the run.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa

from webapp.extensions import db
from webapp.inputs import DATE_RANGE_MESSAGE, EARLIEST_DATE, LATEST_DATE
from webapp.models import (
    CostCode,
    EntityType,
    IntegrationSettings,
    ProcoreLink,
    Project,
    RunStatus,
    SyncRun,
    SyncRunItem,
    TimeCard,
    TimecardTrigger,
    TimeEntry,
    User,
)
from webapp.models.base import utcnow
from webapp.models.push import WORK_STATES, ProcoreLookup, ProcorePush, PushAction, PushState
from webapp.procore import mapping_timecards as mapping
from webapp.procore.api import ProcoreAPI
from webapp.procore.mapping import procore_int
from webapp.runs import service
from webapp.runs.kinds import RunKind
from webapp.runs.runner import Kind, RunContext, RunRunner, register
from webapp.services import late_creates, push

log = logging.getLogger(__name__)

KIND = RunKind.HOURS_CHECK
LIST_PAGE_SIZE = 100
ZERO = Decimal("0.00")
CENT = Decimal("0.01")

# Why a row differs, in the order the page shows them.
PENDING = "pending"  # on a card at the send trigger, not (yet) in Procore by design
MISSING = "missing"  # sent, but no longer in Procore
CHANGED = "changed"  # sent, and Procore now holds other hours for it
ROUNDED = "rounded"  # Procore stored other times than sent (its rounding rules), not an edit
DUPLICATE = "duplicate"  # one of ours twice in Procore, and Procore refused to remove one
ONLY_PROCORE = "only_procore"  # made in Procore or by another app: shown, never touched
REMOVED_HERE = "removed_here"  # made by Crewclock, no longer on a sendable card here
RESENDABLE = (MISSING, CHANGED)
SENT_STATES = (PushState.DONE, PushState.CONFLICT)


class WeekNotValid(ValueError):
    """The week asked for cannot be checked; str() says why (shown beside the field)."""


def last_week(today: date | None = None) -> date:
    """The Monday of last week (the default week to check)."""
    today = today or date.today()
    return today - timedelta(days=today.weekday() + 7)


def parse_week(raw: str | None, today: date | None = None) -> date:
    """The Monday of the week named by `raw` (any day of it); WeekNotValid when it cannot be."""
    today = today or date.today()
    if not raw:
        return last_week(today)
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        raise WeekNotValid("Pick a week: enter a date like 2026-03-02.") from None
    monday = day - timedelta(days=day.weekday())
    if monday > today:
        raise WeekNotValid("That week has not started yet; pick this week or an earlier one.")
    if day < EARLIEST_DATE:
        raise WeekNotValid(DATE_RANGE_MESSAGE)
    return monday


# ===================================================================== starting a check
def active_check(company_id: int) -> SyncRun | None:
    """The company's check still queued or running, if any."""
    return service.active(company_id, KIND)


def start_check(company_id: int, week_start: date, user_id: int | None = None) -> SyncRun:
    """Queue a check of one week (committed before the job is enqueued); an identical
    check already waiting or running is returned instead of starting a second one."""
    week = week_start.isoformat()
    run, _ = service.start(
        company_id,
        RunKind.HOURS_CHECK,
        started_by_id=user_id,
        # The week checked; cursor_before is the run's "from" marker, so runs of one week
        # are found with an indexed query and no JSON lookup.
        cursor_before=week,
        checkpoint={"week_start": week},
        same=lambda existing: existing.cursor_before == week,
    )
    return run


def get_check(company_id: int, run_id: int) -> SyncRun | None:
    """A check of this company, or None (another company's or another kind of run)."""
    return service.get(company_id, run_id, KIND)


def latest_check(company_id: int, week_start: date) -> SyncRun | None:
    """The newest check of this week."""
    return db.session.scalar(
        sa.select(SyncRun)
        .where(
            SyncRun.company_id == company_id,
            SyncRun.kind == KIND,
            SyncRun.cursor_before == week_start.isoformat(),
        )
        .order_by(SyncRun.id.desc())
        .limit(1)
    )


# ====================================================================== the check itself
@dataclass
class _Row:
    """One (person, project, cost code) of the week."""

    crewclock: Decimal = ZERO
    procore: Decimal = ZERO
    reasons: dict = field(default_factory=lambda: defaultdict(int))  # (kind, detail) -> n
    person: str | None = None  # labels for keys Crewclock cannot name itself
    cost_code: str | None = None


@dataclass
class _Ours:
    """One Crewclock entry the check expects in Procore (or knows is not there yet)."""

    key: tuple
    entry_id: int
    hours: Decimal
    push_id: int | None
    procore_id: int | None
    expected: bool  # sent: Procore should hold it
    seen_hours: Decimal | None = None
    # The hours Procore answered with when we wrote the entry (after its rounding rules).
    written_hours: Decimal | None = None
    # Every Procore entry carrying the origin id: (entry id, created_at, hours, project id).
    seen: list = field(default_factory=list)


def _hours(value) -> Decimal:
    try:
        return Decimal(str(value)).quantize(CENT)
    except (InvalidOperation, ValueError, TypeError):
        return ZERO


def _nested(entry: dict, name: str) -> dict:
    value = entry.get(name)
    return value if isinstance(value, dict) else {}


def _pending_reason(row: tuple | None) -> str:
    """Plain words for an entry at the trigger that Procore is not meant to hold yet."""
    if row is None:
        return "not sent yet: it is not in the outbox (Send now queues it)"
    state, reason = PushState(row[0]), row[1]
    if state == PushState.NOT_MAPPED:
        return f"not mapped: {reason}" if reason else "not mapped to Procore"
    if state == PushState.FAILED:
        return f"not sent, Procore refused it: {reason}" if reason else "not sent: it failed"
    if state == PushState.WAITING_RATE_LIMIT:
        return "not sent yet: waiting for Procore's rate limit"
    if state in WORK_STATES:
        return "not sent yet: pending in the outbox"
    return f"not sent: {reason}" if reason else f"not sent ({state.value})"


class Checker:
    """Compares one week of one company; writes the result onto the run."""

    def __init__(self, run: SyncRun, client) -> None:
        self.run = run
        self.company_id = run.company_id
        self.client = client
        self.week_start = date.fromisoformat(run.cursor_before)
        self.week_end = self.week_start + timedelta(days=6)
        self.rows: dict[tuple, _Row] = defaultdict(_Row)
        self.ours: dict[str, _Ours] = {}  # origin_id -> our entry
        self.items: list[SyncRunItem] = []
        self.procore_entries = 0
        self.duplicates_removed = 0

    # ----------------------------------------------------------------- our side
    def _links(self, entity: EntityType) -> dict[int, int]:
        return {
            local: remote
            for local, remote in db.session.execute(
                sa.select(ProcoreLink.local_id, ProcoreLink.procore_id).where(
                    ProcoreLink.company_id == self.company_id, ProcoreLink.entity_type == entity
                )
            )
        }

    def load_ours(self) -> None:
        """Entries of the week's cards at the send trigger, for linked people and projects."""
        settings = db.session.get(IntegrationSettings, self.company_id)
        trigger = settings.timecard_trigger if settings else TimecardTrigger.ON_APPROVAL
        self.namespace = settings.timecard_origin_namespace if settings else None
        self.user_links = self._links(EntityType.USER)
        self.project_links = self._links(EntityType.PROJECT)
        query = (
            sa.select(
                TimeEntry.id,
                TimeEntry.project_id,
                TimeEntry.cost_code_id,
                TimeEntry.hours,
                TimeCard.user_id,
                ProcorePush.id,
                ProcorePush.origin_id,
                ProcorePush.state,
                ProcorePush.action,
                ProcorePush.procore_id,
                ProcorePush.reason,
                ProcorePush.procore_hours,
            )
            .join(TimeCard, TimeCard.id == TimeEntry.time_card_id)
            .outerjoin(
                ProcorePush,
                sa.and_(
                    ProcorePush.company_id == TimeEntry.company_id,
                    ProcorePush.time_entry_id == TimeEntry.id,
                ),
            )
            .where(
                TimeCard.company_id == self.company_id,
                TimeCard.week_start == self.week_start,
                TimeCard.status.in_(push.sendable_statuses(trigger)),
            )
            .order_by(TimeEntry.id)
        )
        for (
            entry_id,
            project_id,
            cost_code_id,
            hours,
            user_id,
            push_id,
            origin_id,
            state,
            action,
            procore_id,
            reason,
            written_hours,
        ) in db.session.execute(query).yield_per(1000):
            if user_id not in self.user_links or project_id not in self.project_links:
                continue
            key = (user_id, project_id, cost_code_id)
            row = self.rows[key]
            row.crewclock += _hours(hours)
            sent = (
                push_id is not None
                and PushState(state) in SENT_STATES
                and PushAction(action) == PushAction.UPSERT
            )
            if not sent:
                row.reasons[
                    (PENDING, _pending_reason(None if push_id is None else (state, reason)))
                ] += 1
            origin = mapping.origin_key(origin_id) or f"not-queued:{entry_id}"
            self.ours[origin] = _Ours(
                key=key,
                entry_id=entry_id,
                hours=_hours(hours),
                push_id=push_id,
                procore_id=procore_id,
                expected=sent,
                written_hours=None if written_hours is None else _hours(written_hours),
            )

    # ------------------------------------------------------------- Procore's side
    def read_procore(self) -> None:
        """List each linked project's entries of the week, page by page."""
        people = self._people_by_party()
        codes = {
            code: cid
            for cid, code in db.session.execute(
                sa.select(CostCode.id, CostCode.code).where(CostCode.company_id == self.company_id)
            )
        }
        projects = sorted(self.project_links.items(), key=lambda pair: pair[1])
        self.run.total = len(projects)
        self.run.stage = "Reading Procore's timecard entries"
        db.session.commit()
        for local_project_id, procore_project_id in projects:
            self.procore_project_id = procore_project_id
            for page in ProcoreAPI(self.client).timecard_entry_pages(
                procore_project_id,
                self.week_start.isoformat(),
                self.week_end.isoformat(),
                per_page=LIST_PAGE_SIZE,
            ):
                for entry in page.items:
                    if isinstance(entry, dict):
                        self._one(entry, local_project_id, people, codes)
            self.run.done += 1
            db.session.commit()

    def _people_by_party(self) -> dict[int, int]:
        """Procore person (party) id -> our user id, from the push's cached lookups."""
        by_procore_user = {remote: local for local, remote in self.user_links.items()}
        found = {}
        for key, party_id in db.session.execute(
            sa.select(ProcoreLookup.key, ProcoreLookup.procore_id).where(
                ProcoreLookup.company_id == self.company_id,
                ProcoreLookup.kind == push.PARTY,
            )
        ):
            local = by_procore_user.get(procore_int(key))
            if local is not None:
                found[party_id] = local
        return found

    def _one(self, entry: dict, local_project_id: int, people: dict, codes: dict) -> None:
        if entry.get("deleted_at") or entry.get("in_progress"):
            return
        day = str(entry.get("date") or "")[:10]
        if day and not (self.week_start.isoformat() <= day <= self.week_end.isoformat()):
            return  # a server ignoring the date filter must not add other weeks' hours
        self.procore_entries += 1
        hours = _hours(entry.get("hours"))
        origin = mapping.origin_key(entry.get("origin_id"))  # a number or a string
        ours = self.ours.get(origin) if origin else None
        if ours is not None:
            ours.seen_hours = (ours.seen_hours or ZERO) + hours
            self.rows[ours.key].procore += hours
            if isinstance(entry.get("id"), int):
                ours.seen.append(
                    {
                        "id": entry["id"],
                        "created_at": entry.get("created_at"),
                        "hours": hours,
                        "project": self.procore_project_id,
                    }
                )
            return
        # Not one we expect this week: attribute it by what Procore says it is.
        party = _nested(entry, "party")
        person = people.get(procore_int(party.get("id")) or procore_int(entry.get("party_id")))
        code = _nested(entry, "cost_code")
        full_code = code.get("full_code") or code.get("code")
        cost_code = codes.get(full_code) if full_code else None
        key = (
            person if person is not None else f"party:{party.get('id')}",
            local_project_id,
            cost_code
            if cost_code is not None or not code
            else f"code:{full_code or code.get('name')}",
        )
        row = self.rows[key]
        row.procore += hours
        if person is None:
            row.person = party.get("name") or "Unknown person in Procore"
        if cost_code is None and code:
            row.cost_code = " ".join(str(p) for p in (full_code, code.get("name")) if p)
        if mapping.entry_id_from_origin(origin, self.namespace) is not None:
            row.reasons[(REMOVED_HERE, "")] += 1
        else:
            row.reasons[(ONLY_PROCORE, "")] += 1

    # ---------------------------------------------------- duplicates created late
    def remove_late_duplicates(self) -> None:
        """Where Procore holds one of our entries more than once (a create it applied after
        the push gave up and sent it again), keep the linked one, else the oldest, and delete
        the others; a refusal is reported on the row and the run in Procore's words."""
        from webapp.procore import errors

        for ours in self.ours.values():
            if len(ours.seen) < 2:
                continue
            keep, extras = late_creates.split(ours.seen, ours.procore_id)
            ours.seen_hours = keep["hours"]  # compared alone: the others are not ours
            for extra in extras:
                try:
                    ProcoreAPI(self.client).delete_timecard_entry(extra["project"], extra["id"])
                except errors.ProcoreNotFound:
                    pass  # already gone (e.g. the push removed it meanwhile)
                except (errors.ProcoreAuthError, errors.NeedsReauth):
                    raise
                except errors.ProcoreError as exc:
                    said = mapping.describe_errors(getattr(exc, "body", None))
                    reason = late_creates.refused_reason(extra["id"], said)
                    self.rows[ours.key].reasons[(DUPLICATE, "")] += 1
                    self._item(ours, "failed", reason, procore_id=extra["id"])
                    continue
                else:
                    self.duplicates_removed += 1
                    self._item(
                        ours,
                        "removed",
                        late_creates.removed_reason(keep["id"]),
                        procore_id=extra["id"],
                    )
                self.rows[ours.key].procore -= extra["hours"]

    # ------------------------------------------------------------------ compare
    def compare(self) -> None:
        """Missing and changed entries, as rows' reasons and as items to re-send."""
        for ours in self.ours.values():
            if not ours.expected:
                continue
            if ours.seen_hours is None:
                self.rows[ours.key].reasons[(MISSING, "")] += 1
                self._item(ours, MISSING, "Sent to Procore, but no longer there.")
            elif ours.seen_hours != ours.hours and ours.seen_hours == ours.written_hours:
                # Procore answered our write with these hours (its rounding of the start and
                # stop times): nobody changed it there, and sending it again changes nothing.
                self.rows[ours.key].reasons[(ROUNDED, "")] += 1
            elif ours.seen_hours != ours.hours:
                self.rows[ours.key].reasons[(CHANGED, "")] += 1
                self._item(
                    ours,
                    CHANGED,
                    f"Procore has {ours.seen_hours} h, Crewclock {ours.hours} h.",
                )

    def _item(self, ours: _Ours, outcome: str, reason: str, procore_id: int | None = None):
        self.items.append(
            SyncRunItem(
                company_id=self.company_id,
                run_id=self.run.id,
                entity_type="time_entry",
                local_id=ours.entry_id,
                procore_id=procore_id or ours.procore_id,
                outcome=outcome,
                reason=reason,
            )
        )

    def result(self) -> dict:
        """The rows that differ (labelled, sorted) and the counts, as checkpoint JSON."""
        users = dict(
            db.session.execute(
                sa.select(User.id, (User.first_name + " " + User.last_name)).where(
                    User.company_id == self.company_id
                )
            ).all()
        )
        projects = dict(
            db.session.execute(
                sa.select(Project.id, Project.name).where(Project.company_id == self.company_id)
            ).all()
        )
        codes = {
            cid: f"{code} {name}"
            for cid, code, name in db.session.execute(
                sa.select(CostCode.id, CostCode.code, CostCode.name).where(
                    CostCode.company_id == self.company_id
                )
            )
        }
        shown, matching = [], 0
        counts: dict[str, int] = defaultdict(int)
        for (person, project, cost_code), row in self.rows.items():
            if row.crewclock == row.procore and not row.reasons:
                matching += 1
                continue
            kinds = sorted({kind for kind, _ in row.reasons}, key=_KIND_ORDER.index)
            for (kind, _detail), n in row.reasons.items():
                counts[kind] += n
            shown.append(
                {
                    "person": row.person or users.get(person, "Unknown person"),
                    "project": projects.get(project, "Unknown project"),
                    "cost_code": row.cost_code
                    or (codes.get(cost_code, "—") if cost_code is not None else "No cost code"),
                    "crewclock": str(row.crewclock),
                    "procore": str(row.procore),
                    "difference": str(row.procore - row.crewclock),
                    "kinds": kinds,
                    "reasons": [
                        _reason_text(kind, detail, n)
                        for (kind, detail), n in sorted(
                            row.reasons.items(), key=lambda kv: _KIND_ORDER.index(kv[0][0])
                        )
                    ],
                }
            )
        shown.sort(key=lambda r: (r["person"].lower(), r["project"].lower(), r["cost_code"]))
        return {
            "week_start": self.week_start.isoformat(),
            "rows": shown,
            "matching": matching,
            "counts": dict(counts),
            "procore_entries": self.procore_entries,
            "resendable": sum(1 for i in self.items if i.outcome in RESENDABLE),
            "duplicates_removed": self.duplicates_removed,
        }


_KIND_ORDER = [MISSING, CHANGED, DUPLICATE, ROUNDED, PENDING, ONLY_PROCORE, REMOVED_HERE]


def _reason_text(kind: str, detail: str, n: int) -> str:
    entries = "1 entry" if n == 1 else f"{n} entries"
    if kind == PENDING:
        return f"{entries} {detail}"
    if kind == MISSING:
        return f"Missing in Procore: {entries} sent from Crewclock, no longer in Procore"
    if kind == CHANGED:
        return f"Changed in Procore: {entries} from Crewclock with other hours there"
    if kind == ROUNDED:
        return (
            f"Rounded by Procore: {entries} stored with Procore's rounded start/stop times "
            "when sent (its rounding rules, not an edit there; nothing to re-send)"
        )
    if kind == DUPLICATE:
        return (
            f"Twice in Procore: {entries} from Crewclock also created late by Procore, which "
            "refused to remove the duplicate (see the run's records)"
        )
    if kind == ONLY_PROCORE:
        return f"Only in Procore: {entries} not from Crewclock (left as they are)"
    return f"In Procore, taken off here: {entries} from Crewclock no longer on a card to send"


def run_check(company_id: int, run_id: int, client=None) -> SyncRun | None:
    """Run one check now (the job does the same through RunRunner)."""
    ctx = RunRunner().handle(run_id, company_id=company_id, client=client)
    return None if ctx is None else ctx.run


@register
class HoursCheckKind(Kind):
    """Compare the run's week, store rows and items on the run."""

    kinds = (RunKind.HOURS_CHECK,)
    running_stage = "Reading Crewclock's entries"

    def refuse(self, run: SyncRun) -> str | None:
        # A check queued before weeks were limited: fail it with the reason, never ask Procore.
        return _week_problem(run.cursor_before)

    def prepare(self, ctx: RunContext) -> None:
        # A retry starts over: the earlier attempt's items must not count twice.
        db.session.execute(sa.delete(SyncRunItem).where(SyncRunItem.run_id == ctx.run.id))
        ctx.run.done = 0

    def failure_reason(self, exc: Exception) -> str:
        return push.failure_reason(exc)

    def run(self, ctx: RunContext) -> None:
        run = ctx.run
        checker = Checker(run, ctx.client)
        checker.load_ours()
        checker.read_procore()
        checker.remove_late_duplicates()
        checker.compare()
        db.session.add_all(checker.items)
        run.checkpoint = checker.result()
        run.unchanged = run.checkpoint["matching"]
        run.failed = len(run.checkpoint["rows"])
        run.status = RunStatus.SUCCEEDED  # differences are the result, not a failure


def _week_problem(stored: str | None) -> str | None:
    """Why a stored week cannot be checked, or None."""
    try:
        week = date.fromisoformat(stored or "")
    except ValueError:
        return "The week of this check is unreadable; pick a week and click Check."
    if not EARLIEST_DATE - timedelta(days=6) <= week <= LATEST_DATE:
        return f"The week of {week.isoformat()} cannot be checked. {DATE_RANGE_MESSAGE}"
    return None


# ================================================================= re-send differences
def resend_differences(company_id: int, run_id: int) -> int:
    """Put the check's missing and changed entries back through the outbox; commits."""
    run = get_check(company_id, run_id)
    if run is None or run.status != RunStatus.SUCCEEDED:
        return 0
    targets = {
        entry_id: (outcome, procore_id)
        for entry_id, outcome, procore_id in db.session.execute(
            sa.select(SyncRunItem.local_id, SyncRunItem.outcome, SyncRunItem.procore_id).where(
                SyncRunItem.run_id == run.id,
                SyncRunItem.company_id == company_id,
                SyncRunItem.outcome.in_(RESENDABLE),
            )
        )
    }
    count = push.resend_entries(company_id, targets)
    if count:
        run = db.session.get(SyncRun, run_id)
        run.checkpoint = {**run.checkpoint, "resent": count, "resent_at": utcnow().isoformat()}
        db.session.commit()
    return count
