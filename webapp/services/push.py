"""Time cards to Procore: the outbox written with each change, and the drain that sends it.

Exactly once, whatever fails in between: each entry has one outbox row with a stable origin_id.
Before a create is sent the row is marked `create_in_doubt` and committed; from then on no
create for that row happens until Procore has been asked (listing the project's entries for
the date and matching origin_id) whether the earlier one arrived. A worker killed anywhere,
a response lost after Procore committed, or the job run twice therefore ends with one entry.

The web side only writes rows (in the caller's transaction) and, after commit, enqueues the
drain job. The drain runs one at a time per company (a Redis lease) and never touches
`request` or `current_user`.
"""

from __future__ import annotations

import logging
import time as _time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import selectinload

from webapp.extensions import db
from webapp.models import (
    ConnectionStatus,
    CostCode,
    EntityType,
    IntegrationSettings,
    ProcoreConnection,
    ProcoreLink,
    Project,
    RunStatus,
    SyncRun,
    SyncRunItem,
    TimeCard,
    TimeCardStatus,
    TimecardTrigger,
    TimeEntry,
    User,
)
from webapp.models.base import utcnow
from webapp.models.push import WORK_STATES, ProcoreLookup, ProcorePush, PushAction, PushState
from webapp.procore import mapping_timecards as mapping
from webapp.procore.api import ProcoreAPI
from webapp.procore.mapping import parse_procore_time
from webapp.runs import queueing, service
from webapp.runs.kinds import RunKind, StopReason
from webapp.runs.runner import Kind, RunContext, RunRunner, register
from webapp.services import late_creates

log = logging.getLogger(__name__)

BATCH = 200
MAX_SWEEPS = 5
RETRY_LATER = timedelta(minutes=2)
PARTY = "party_for_user"
TIME_ENTRY_SETTING_MAX_AGE = timedelta(minutes=10)


# =============================================================== outbox writes (web side)
def sendable_statuses(trigger: TimecardTrigger) -> tuple[TimeCardStatus, ...]:
    """Card statuses at which entries belong in Procore for this trigger setting."""
    if trigger == TimecardTrigger.ON_SUBMIT:
        return (TimeCardStatus.SUBMITTED, TimeCardStatus.APPROVED)
    return (TimeCardStatus.APPROVED,)


def is_sendable(status: TimeCardStatus, trigger: TimecardTrigger | None) -> bool:
    """The one rule for 'belongs in Procore': the status hook, a trigger change, the
    pre-send check and 'Send now' all ask this, so they cannot disagree."""
    return trigger is not None and status in sendable_statuses(trigger)


def _push_trigger(company_id: int) -> TimecardTrigger | None:
    """The company's trigger, or None while Procore is not set up (nothing is pushed)."""
    settings = db.session.get(IntegrationSettings, company_id)
    if settings is None or settings.setup_completed_at is None:
        return None
    return settings.timecard_trigger


def origin_namespace(company_id: int) -> int:
    """The company's timecard origin-id namespace, made (randomly, once) when first needed;
    saved with the caller's transaction."""
    settings = db.session.get(IntegrationSettings, company_id)
    if settings is None:
        raise ValueError(f"company {company_id} has no Procore settings")
    if settings.timecard_origin_namespace is None:
        settings.timecard_origin_namespace = mapping.new_origin_namespace()
    return settings.timecard_origin_namespace


def _row_for(company_id: int, entry_id: int) -> ProcorePush | None:
    return db.session.scalar(
        sa.select(ProcorePush).where(
            ProcorePush.company_id == company_id, ProcorePush.time_entry_id == entry_id
        )
    )


def _want(company_id: int, card_id: int, entry_id: int, action: PushAction) -> None:
    row = _row_for(company_id, entry_id)
    if row is None:
        if action == PushAction.DELETE:
            return  # never sent, nothing to remove
        row = ProcorePush(
            company_id=company_id,
            time_entry_id=entry_id,
            time_card_id=card_id,
            origin_id=mapping.origin_id_for(entry_id, origin_namespace(company_id)),
            generation=0,
        )
        db.session.add(row)
    elif row.generation is not None:
        # An atomic bump: a drain that read the old generation will not mark this done.
        row.generation = ProcorePush.generation + 1
    row.action = action
    row.state = PushState.PENDING
    row.reason = None
    row.fix_entity = row.fix_local_id = None
    row.next_attempt_at = None
    _enqueue_after_commit(company_id)


def queue_status_change(card: TimeCard, old: TimeCardStatus, new: TimeCardStatus) -> None:
    """Write outbox rows for a card that reached (or left) the push trigger's status."""
    trigger = _push_trigger(card.company_id)
    if trigger is None:
        return
    # Decided by the card's status now, not by the transition: the trigger may have changed
    # since the card was sent, and a card no longer sendable must leave Procore whatever
    # status it came from.
    _converge_card(card, trigger)


def _converge_card(card: TimeCard, trigger: TimecardTrigger) -> int:
    """Queue what Procore should hold for one card now; the number of rows queued."""
    rows = {
        r.time_entry_id: r
        for r in db.session.scalars(
            sa.select(ProcorePush).where(
                ProcorePush.company_id == card.company_id, ProcorePush.time_card_id == card.id
            )
        )
    }
    queued = 0
    if is_sendable(card.status, trigger):
        for entry in card.entries:
            row = rows.get(entry.id)
            if row is None or row.action != PushAction.UPSERT:
                _want(card.company_id, card.id, entry.id, PushAction.UPSERT)
                queued += 1
    else:
        # A card that went back (or no longer meets the trigger) takes its entries out of
        # Procore until it is sendable again; a removal Procore refuses becomes a conflict.
        for row in rows.values():
            if row.action == PushAction.UPSERT:
                _want(card.company_id, card.id, row.time_entry_id, PushAction.DELETE)
                queued += 1
    return queued


# A trigger change re-evaluates the cards of "open" weeks: the last OPEN_WEEKS weeks, plus
# any older card with an outbox row (something of it is in Procore, on its way there, or
# held), so entries already sent are always taken back when no longer sendable, while a
# card submitted years ago and never approved is not sent out of the blue.
OPEN_WEEKS = 8


def requeue_open_cards(company_id: int, today: date | None = None) -> int:
    """Queue (or take out of Procore) every open card's entries for the current trigger.

    Called when "when time cards are sent" changes and by 'Send now'; writes rows in the
    caller's transaction (the drain is enqueued after its commit). Returns rows queued.
    """
    trigger = _push_trigger(company_id)
    if trigger is None:
        return 0
    since = (today or date.today()) - timedelta(weeks=OPEN_WEEKS)
    since -= timedelta(days=since.weekday())
    with_rows = sa.select(ProcorePush.time_card_id).where(ProcorePush.company_id == company_id)
    cards = db.session.scalars(
        sa.select(TimeCard)
        .where(
            TimeCard.company_id == company_id,
            sa.or_(TimeCard.week_start >= since, TimeCard.id.in_(with_rows)),
        )
        # Every card's entries are read: load them together, not one query per card.
        .options(selectinload(TimeCard.entries))
        .order_by(TimeCard.id)
    ).unique()
    return sum(_converge_card(card, trigger) for card in cards)


def queued_count(company_id: int) -> int:
    """Rows waiting to be sent (what 'Send now' will send)."""
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(ProcorePush)
        .where(ProcorePush.company_id == company_id, ProcorePush.state.in_(WORK_STATES))
    )


def queue_entry_change(entry: TimeEntry, action: str) -> None:
    """Write the outbox row for an entry added, edited or deleted on a card already sent."""
    card = entry.time_card
    trigger = _push_trigger(entry.company_id)
    if trigger is None or card is None:
        return
    if action == "deleted":
        _want(entry.company_id, card.id, entry.id, PushAction.DELETE)
    elif card.status in sendable_statuses(trigger):
        _want(entry.company_id, card.id, entry.id, PushAction.UPSERT)


# ------------------------------------------------------------ enqueue after the commit
def _enqueue_after_commit(company_id: int) -> None:
    queueing.after_commit(db.session, ("push", company_id), lambda: _enqueue_now(company_id))


def _enqueue_now(company_id: int) -> None:
    # After a commit its session can emit no SQL: start the run in a session of its own.
    with current_app.app_context():
        enqueue_push(company_id)


def enqueue_push(company_id: int, delay: timedelta | None = None) -> bool:
    """Queue a drain run for a company; False when one is already queued or running (a
    burst of changes makes one drain; one running finds the new work when it ends)."""
    if not current_app.config.get("PUSH_AUTO_ENQUEUE", True):
        return False
    _, created = service.start(company_id, RunKind.PUSH, trigger="auto", delay=delay)
    return created


def enqueue_all_due() -> int:
    """Enqueue a drain for every company with queued rows (a safety net for lost enqueues,
    e.g. Redis down at commit time; the periodic scheduler or `Send now` call it)."""
    # Only active connections: one needing reconnect would record a failed run every tick.
    companies = db.session.scalars(
        sa.select(ProcorePush.company_id)
        .join(ProcoreConnection, ProcoreConnection.company_id == ProcorePush.company_id)
        .where(
            ProcorePush.state.in_(WORK_STATES),
            ProcoreConnection.status == ConnectionStatus.ACTIVE,
        )
        .distinct()
    ).all()
    return sum(1 for company_id in companies if enqueue_push(company_id))


# ===================================================================== the Procore side
@dataclass
class PushResult:
    """What one drain did (also recorded on the SyncRun row)."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    not_mapped: int = 0
    conflicts: int = 0
    reconciled: int = 0
    waiting: int = 0
    duplicates: int = 0  # duplicates Procore created late, removed there
    retry_at: datetime | None = None
    stopped: StopReason | None = None  # why the drain stopped early (auth, rate limit, ...)
    run_id: int | None = None
    notes: list = field(default_factory=list)  # what Procore said that the run must show
    items: list = field(default_factory=list)  # run history lines beyond failures (dicts)

    def later(self, when: datetime) -> None:
        if self.retry_at is None or when < self.retry_at:
            self.retry_at = when


@dataclass
class _Facts:
    row: ProcorePush
    generation: int
    entry: TimeEntry | None = None
    user: User | None = None
    project: Project | None = None
    cost_code: CostCode | None = None


@dataclass
class _Cache:
    """Procore lookups reused for one drain (project cost codes, time types, people)."""

    cost_codes: dict[int, list[dict] | Exception] = field(default_factory=dict)
    time_types: dict[str, int] | None = None
    people_loaded: bool = False


class _Stop(Exception):
    """Stop this drain (auth lost, rate limited, Procore unavailable); rows stay queued."""

    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason)
        self.reason = reason


def _errors():
    from webapp.procore import errors

    return errors


# ------------------------------------------------------------------ conditional writes
def _facts_update(row_id: int, **values) -> None:
    """Facts learned from Procore (ids, hashes): always true, written whatever happened."""
    db.session.execute(
        sa.update(ProcorePush)
        .where(ProcorePush.id == row_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def _state_update(row_id: int, generation: int, state: PushState, **values) -> bool:
    """Set the state unless the row changed since we read it (then it stays pending)."""
    result = db.session.execute(
        sa.update(ProcorePush)
        .where(ProcorePush.id == row_id, ProcorePush.generation == generation)
        .values(state=state, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _finish(
    f: _Facts, state: PushState, reason: str | None = None, *, commit: bool = True, **values
) -> None:
    extra = {}
    if state in (PushState.NOT_MAPPED,):
        extra = {"fix_entity": values.pop("fix_entity", None)}
        extra["fix_local_id"] = values.pop("fix_local_id", None)
    if values:
        _facts_update(f.row.id, **values)
    _state_update(f.row.id, f.generation, state, reason=reason, next_attempt_at=None, **extra)
    if commit:
        db.session.commit()


# ------------------------------------------------------------------------- loading
def next_due_at(company_id: int) -> datetime | None:
    """When the earliest row waiting on a delay (rate limit, settle time) becomes due, or
    the next look for a duplicate of an entry sent again after a create went unanswered."""
    return db.session.scalar(
        sa.select(sa.func.min(ProcorePush.next_attempt_at)).where(
            ProcorePush.company_id == company_id,
            sa.or_(ProcorePush.state.in_(WORK_STATES), _watched()),
            ProcorePush.next_attempt_at.is_not(None),
        )
    )


def _watched():
    """Rows sent (again) while an earlier create of theirs went unanswered: Procore may
    still apply that one, so later drains look for a duplicate."""
    return sa.and_(ProcorePush.create_in_doubt.is_(True), ProcorePush.procore_id.is_not(None))


def _due_rows(company_id: int, after_id: int, now: datetime) -> list[ProcorePush]:
    return list(
        db.session.scalars(
            sa.select(ProcorePush)
            .where(
                ProcorePush.company_id == company_id,
                ProcorePush.state.in_(WORK_STATES),
                ProcorePush.id > after_id,
                sa.or_(ProcorePush.next_attempt_at.is_(None), ProcorePush.next_attempt_at <= now),
            )
            .order_by(ProcorePush.id)
            .limit(BATCH)
        )
    )


def _load_facts(company_id: int, rows: list[ProcorePush]) -> list[_Facts]:
    """Entries, users, projects and cost codes of a batch in a handful of queries."""
    entry_ids = [r.time_entry_id for r in rows]
    entries = {
        e.id: e
        for e in db.session.scalars(
            sa.select(TimeEntry).where(
                TimeEntry.company_id == company_id, TimeEntry.id.in_(entry_ids)
            )
        ).unique()
    }
    card_ids = {e.time_card_id for e in entries.values()}
    cards = {
        c.id: c
        for c in db.session.scalars(sa.select(TimeCard).where(TimeCard.id.in_(card_ids))).unique()
    }
    facts = []
    for row in rows:
        entry = entries.get(row.time_entry_id)
        card = cards.get(entry.time_card_id) if entry else None
        facts.append(
            _Facts(
                row=row,
                generation=row.generation,
                entry=entry,
                user=card.user if card else None,
                project=entry.project if entry else None,
                cost_code=entry.cost_code if entry else None,
            )
        )
    return facts


def _links(company_id: int, entity: EntityType, local_ids: set[int]) -> dict[int, int]:
    if not local_ids:
        return {}
    rows = db.session.execute(
        sa.select(ProcoreLink.local_id, ProcoreLink.procore_id).where(
            ProcoreLink.company_id == company_id,
            ProcoreLink.entity_type == entity,
            ProcoreLink.local_id.in_(local_ids),
        )
    )
    return {local: remote for local, remote in rows}


# ======================================================================== the drain
class Pusher:
    """Sends one company's due outbox rows through a ProcoreClient."""

    def __init__(self, company_id: int, client, *, lease=None, now=utcnow) -> None:
        self.company_id = company_id
        self.client = client
        self.api = ProcoreAPI(client)
        self.lease = lease
        self.now = now
        self.cache = _Cache()
        self.links: dict[EntityType, dict[int, int]] = {}  # this batch's links, by entity
        self.result = PushResult()
        settings = db.session.get(IntegrationSettings, company_id)
        self.use_bulk = bool(settings and settings.use_bulk_timecards)
        self.writes_cost_codes = bool(settings and settings.cost_codes_direction.writes_procore)
        # Step 5's labour line item type, sent on every entry when chosen.
        self.line_item_type_id = settings.labor_line_item_type_id if settings else None
        self.procore_company_id = getattr(client, "procore_company_id", None) or (
            settings.procore_company_id if settings else None
        )
        self.settle = timedelta(
            seconds=float(current_app.config.get("PUSH_UNKNOWN_SETTLE_SECONDS", 30))
        )
        config = current_app.config
        # A create without an answer may be applied by Procore minutes later: it is looked
        # up `lookups` times over `window` before it is sent again, and an entry sent again
        # is watched for a late duplicate for `watch`.
        self.window = max(
            self.settle, timedelta(seconds=float(config.get("PUSH_UNKNOWN_WINDOW_SECONDS", 600)))
        )
        self.lookups = max(1, int(config.get("PUSH_UNKNOWN_LOOKUPS", 4)))
        self.watch = timedelta(seconds=float(config.get("PUSH_LATE_CREATE_WATCH_SECONDS", 86400)))
        self.recreate: set[int] = set()  # rows whose unanswered create was looked for long enough
        self.setting_read = False
        self.notes: list[str] = []

    # -------------------------------------------------------------------- main loop
    def drain(self, max_seconds: float | None = None) -> PushResult:
        """Work every due row (in id order, batch by batch) until none is left."""
        started = _time.monotonic()
        try:
            self._read_time_entry_setting()
            # Several sweeps: a sweep can leave rows due again (a lost reply to reconcile).
            for _sweep in range(MAX_SWEEPS):
                after_id, worked = 0, 0
                while True:
                    rows = _due_rows(self.company_id, after_id, self.now())
                    if not rows:
                        break
                    after_id, worked = rows[-1].id, worked + len(rows)
                    self._batch(rows)
                    if max_seconds is not None and _time.monotonic() - started > max_seconds:
                        self.result.later(self.now())
                        raise _Stop(StopReason.TIME_UP)
                if not worked:
                    break
            self._late_duplicates()
        except _Stop as stop:
            self.result.stopped = stop.reason
            db.session.rollback()
        self._schedule_followup()
        return self.result

    # ---------------------------------------------------- Procore's time-entry setting
    def _read_time_entry_setting(self) -> None:
        """Read Procore's timesheet time-entry setting (hours or start/stop) and keep it.

        Procore takes only the form its setting allows, so the payload follows what Procore
        says, not the mode typed in on the project here. Read in the worker at the start of
        a drain (at most every TIME_ENTRY_SETTING_MAX_AGE); what Procore answered when it
        cannot be read is kept for the pages and this run, and entries then go in the form
        their Crewclock project records.
        """
        settings = db.session.get(IntegrationSettings, self.company_id)
        if settings is None:
            return
        read_at = settings.procore_time_entry_read_at
        if read_at is not None and self.now() - read_at < TIME_ENTRY_SETTING_MAX_AGE:
            self._note_setting_problem(settings)
            return
        errors = _errors()
        try:
            config = self._call(self.api.company_configuration)
        except _RateLimited:
            return  # keep what we knew; the writes meet the limit and wait for it
        except errors.ProcoreError as exc:
            status = getattr(exc, "status", None)
            said = mapping.describe_errors(getattr(exc, "body", None))
            settings.procore_time_entry_problem = (
                f"Procore did not show its time-entry setting"
                f"{f' (HTTP {status})' if status else ''}: {said}. Entries are sent as hours or "
                "start/stop times as each Crewclock project records them."
            )
            settings.procore_time_entry_read_at = self.now()
            db.session.commit()
            self._note_setting_problem(settings)
            return
        value = config.get("projects_timecard_in_out_enabled") if isinstance(config, dict) else None
        if isinstance(value, bool):
            settings.procore_timecard_in_out = value
            settings.procore_time_entry_problem = None
        else:
            settings.procore_time_entry_problem = (
                "Procore's company configuration did not say whether timesheets take hours "
                "or start/stop times (projects_timecard_in_out_enabled). Entries are sent as "
                "each Crewclock project records them."
            )
        settings.procore_time_entry_read_at = self.now()
        db.session.commit()
        self._note_setting_problem(settings)

    def _note_setting_problem(self, settings: IntegrationSettings) -> None:
        self.procore_in_out = (
            None if settings.procore_time_entry_problem else settings.procore_timecard_in_out
        )
        if settings.procore_time_entry_problem:
            self.notes.append(settings.procore_time_entry_problem)

    def _schedule_followup(self) -> None:
        when = next_due_at(self.company_id)
        if when is not None:
            self.result.later(when)

    def _batch(self, rows: list[ProcorePush]) -> None:
        facts = _load_facts(self.company_id, rows)
        self._load_links(facts)
        self._reconcile([f for f in facts if f.row.create_in_doubt and f.row.procore_id is None])
        creates: list[tuple[_Facts, dict, int]] = []
        for f in facts:
            self._renew_lease()
            db.session.refresh(f.row)
            if f.row.generation != f.generation:
                f.generation = f.row.generation
            if f.row.state not in WORK_STATES:
                continue
            if f.row.create_in_doubt and f.row.procore_id is None and f.row.id not in self.recreate:
                continue  # still unknown after the lookup: look again later
            planned = self._plan(f)
            if planned is not None:
                creates.append(planned)
        self._create_all(creates)

    def _renew_lease(self) -> None:
        if self.lease is not None and not self.lease.renew():
            raise _Stop(StopReason.LEASE_LOST)

    # ------------------------------------------------------------------ per row
    def _plan(self, f: _Facts) -> tuple[_Facts, dict, int] | None:
        """Do an update or delete now; return a create to send (maybe in bulk) later."""
        row = f.row
        if row.action == PushAction.DELETE or f.entry is None:
            self._delete(f)
            return None
        self._integer_origin(f)
        try:
            refs = self._refs(f)
            payload = mapping.entry_payload(self._entry_facts(f), refs)
        except _RateLimited as exc:
            self._rate_limited(f, exc)
            return None
        except _errors().ProcoreError as exc:  # a lookup refused: project gone, no access
            self._refused(f, exc)
            return None
        except _NotMapped as missing:
            self.result.not_mapped += 1
            _finish(
                f,
                PushState.NOT_MAPPED,
                missing.reason,
                fix_entity=missing.entity,
                fix_local_id=missing.local_id,
            )
            return None
        except mapping.EntryNotSendable as exc:
            self.result.failed += 1
            _finish(f, PushState.FAILED, str(exc))
            return None
        if (
            row.procore_id is not None
            and mapping.payload_hash(payload) != row.payload_hash
            and not self._unchanged_in_procore(f, payload)
        ):
            return None
        moved = row.procore_id is not None and row.procore_project_id != refs.project_id
        # Procore entries cannot change project: remove the old one, then create anew.
        if moved and not self._delete_remote(f, keep_state=True):
            return None
        if row.procore_id is not None:
            self._update(f, refs, payload)
            return None
        return (f, payload, refs.project_id)

    def _integer_origin(self, f: _Facts) -> None:
        """Give a row queued with a legacy string origin_id an integer one before it is sent
        (never while a create with the old one may be in Procore: the lookup needs it)."""
        row = f.row
        if mapping.is_integer_origin(row.origin_id) or row.create_in_doubt:
            return
        new = mapping.origin_id_for(row.time_entry_id, origin_namespace(self.company_id))
        _facts_update(row.id, origin_id=new)
        db.session.commit()
        row.origin_id = new

    def _mode(self, f: _Facts) -> tuple[str, str]:
        """The form to send (hours or start/stop) and whether Procore's setting said so."""
        in_out = getattr(self, "procore_in_out", None)
        if in_out is None:
            return str(f.project.time_entry_mode), "project"
        return (mapping.START_STOP if in_out else mapping.HOURS), "procore"

    def _entry_facts(self, f: _Facts) -> mapping.EntryFacts:
        e = f.entry
        mode, mode_source = self._mode(f)
        return mapping.EntryFacts(
            entry_id=e.id,
            card_id=e.time_card_id,
            work_date=e.work_date,
            hours=e.hours,
            start_time=e.start_time,
            end_time=e.end_time,
            break_minutes=e.break_minutes or 0,
            work_type=str(e.work_type),
            notes=e.notes,
            mode=mode,
            time_zone=f.user.time_zone if f.user else "UTC",
            origin_id=f.row.origin_id,
            mode_source=mode_source,
        )

    # ---------------------------------------------------------------- mapping refs
    def _load_links(self, facts: list[_Facts]) -> None:
        """The batch's user, project and cost code links in one query per entity type."""
        wanted = {
            EntityType.USER: {f.user.id for f in facts if f.user},
            EntityType.PROJECT: {f.project.id for f in facts if f.project},
            EntityType.COST_CODE: {f.cost_code.id for f in facts if f.cost_code},
        }
        self.links = {
            entity: _links(self.company_id, entity, ids) for entity, ids in wanted.items()
        }

    def _link(self, entity: EntityType, local_id: int) -> int | None:
        return self.links.get(entity, {}).get(local_id)

    def _refs(self, f: _Facts) -> mapping.ProcoreRefs:
        user, project, code = f.user, f.project, f.cost_code
        user_link = self._link(EntityType.USER, user.id)
        if user_link is None:
            raise _NotMapped(
                f"{user.name} is not linked to a Procore user. Link them under Users.",
                "user",
                user.id,
            )
        project_link = self._link(EntityType.PROJECT, project.id)
        if project_link is None:
            raise _NotMapped(
                f"Project '{project.name}' is not linked to a Procore project. "
                "Link it under Projects.",
                "project",
                project.id,
            )
        party_id = self._party_id(user_link)
        if party_id is None:
            raise _NotMapped(
                f"{user.name}'s Procore user has no person record in Procore's directory, "
                "so Procore cannot take time for them.",
                "user",
                user.id,
            )
        cost_code_id = None
        if code is not None:
            cost_code_id = self._project_cost_code(f, project_link)
        time_types = self._time_types(project_link)
        wanted = mapping.time_type_code(str(f.entry.work_type))
        if wanted not in time_types:
            raise _NotMapped(
                f"Procore has no '{wanted}' timecard time type for {f.entry.work_type.label} "
                "time. Add it in Procore's Timesheets settings.",
                "project",
                project.id,
            )
        return mapping.ProcoreRefs(
            project_id=project_link,
            party_id=party_id,
            cost_code_id=cost_code_id,
            time_type_id=time_types[wanted],
            line_item_type_id=self.line_item_type_id,
        )

    def _party_id(self, procore_user_id: int) -> int | None:
        key = str(procore_user_id)
        cached = db.session.scalar(
            sa.select(ProcoreLookup.procore_id).where(
                ProcoreLookup.company_id == self.company_id,
                ProcoreLookup.kind == PARTY,
                ProcoreLookup.key == key,
            )
        )
        if cached is not None or self.cache.people_loaded:
            return cached
        # One pass over the directory's people fills the cache for everyone at once.
        known = set(
            db.session.scalars(
                sa.select(ProcoreLookup.key).where(
                    ProcoreLookup.company_id == self.company_id, ProcoreLookup.kind == PARTY
                )
            )
        )
        found = None
        people = self._call(lambda: list(self.api.people(self.procore_company_id)))
        for user_id, person_id in mapping.party_ids_by_user(people).items():
            if str(user_id) not in known:
                db.session.add(
                    ProcoreLookup(
                        company_id=self.company_id,
                        kind=PARTY,
                        key=str(user_id),
                        procore_id=person_id,
                    )
                )
                known.add(str(user_id))
            if user_id == procore_user_id:
                found = person_id
        db.session.commit()
        self.cache.people_loaded = True
        return found

    def _project_codes(self, procore_project_id: int, refresh: bool = False) -> list[dict]:
        if refresh or procore_project_id not in self.cache.cost_codes:
            try:
                self.cache.cost_codes[procore_project_id] = self._call(
                    lambda: list(self.api.project_cost_codes(procore_project_id))
                )
            except _errors().ProcoreError as exc:
                self.cache.cost_codes[procore_project_id] = exc  # one call per project, not row
        codes = self.cache.cost_codes[procore_project_id]
        if isinstance(codes, Exception):
            raise codes
        return codes

    def _project_cost_code(self, f: _Facts, procore_project_id: int) -> int:
        code = f.cost_code
        standard_id = self._link(EntityType.COST_CODE, code.id)
        if standard_id is None:
            raise _NotMapped(
                f"Cost code {code.code} is not linked to a Procore cost code. "
                "Link it under Cost codes.",
                "cost_code",
                code.id,
            )
        found = mapping.project_cost_code_id(
            self._project_codes(procore_project_id), standard_id, code.code
        )
        if found is not None:
            return found
        if not self.writes_cost_codes:
            raise _NotMapped(
                f"Cost code {code.code} is not in Procore project '{f.project.name}'. Add it "
                "to the project in Procore, or let Crewclock write cost codes to Procore in "
                "the sync settings.",
                "cost_code",
                code.id,
            )
        return self._create_project_cost_code(f, procore_project_id, standard_id)

    def _create_project_cost_code(self, f: _Facts, procore_project_id: int, standard_id) -> int:
        return self._create_code(f, f.cost_code, procore_project_id, standard_id)

    def _create_code(self, f: _Facts, code: CostCode, procore_project_id: int, standard_id) -> int:
        """Create `code` in the Procore project under its division (found or created first).

        Procore's create takes the segment with the parent's id (for 03-100: "100" under the
        project's "03") and builds the full code itself; a full code sent alone would become
        a root code that no longer sits under its division.
        """
        errors = _errors()
        parent = db.session.get(CostCode, code.parent_id) if code.parent_id else None
        if parent is not None and parent.company_id != self.company_id:
            parent = None
        division_code, segment = mapping.cost_code_parts(code.code, parent.code if parent else None)
        body = {"code": segment, "name": code.name, "standard_cost_code_id": standard_id}
        if division_code is not None:
            body["parent_id"] = self._project_division(f, code, division_code, procore_project_id)
        body["origin_id"] = f"crewclock-costcode-{code.id}-{procore_project_id}"
        try:
            created = self._call(
                lambda: self.api.create_project_cost_code(procore_project_id, body)
            )
        except (errors.ProcoreOutcomeUnknown, errors.ProcoreValidationError) as exc:
            # It may exist now (lost reply, or made by an earlier run): look before giving up.
            codes = self._project_codes(procore_project_id, refresh=True)
            match = mapping.project_cost_code_id(codes, standard_id, code.code)
            if match is None:
                said = ""
                if isinstance(exc, errors.ProcoreValidationError):
                    said = f" Procore said: {mapping.describe_errors(exc.body)}."
                raise _NotMapped(
                    f"Procore did not accept cost code {code.code} for project "
                    f"'{f.project.name}'.{said} Add it in Procore.",
                    "cost_code",
                    code.id,
                ) from None
            return match
        self.cache.cost_codes.setdefault(procore_project_id, []).append(created)
        return created["id"]

    def _project_division(
        self, f: _Facts, code: CostCode, division_code: str, procore_project_id: int
    ) -> int:
        """The Procore project's code for `division_code` (matched by full code or by the
        standard code it was made from), created from our own division when missing."""
        division = db.session.scalar(
            sa.select(CostCode).where(
                CostCode.company_id == self.company_id, CostCode.code == division_code
            )
        )
        division_standard = None
        if division is not None:
            division_standard = _links(self.company_id, EntityType.COST_CODE, {division.id}).get(
                division.id
            )
        found = mapping.project_cost_code_id(
            self._project_codes(procore_project_id), division_standard, division_code
        )
        if found is not None:
            return found
        if division is None:
            raise _NotMapped(
                f"Cost code {code.code} belongs under {division_code}, which is neither in "
                f"Procore project '{f.project.name}' nor among Crewclock's cost codes. Add "
                f"{division_code} in either place.",
                "cost_code",
                code.id,
            )
        return self._create_code(f, division, procore_project_id, division_standard)

    def _time_types(self, procore_project_id: int) -> dict[str, int]:
        # Timecard time types are company-wide; any linked project lists them.
        if self.cache.time_types is None:
            self.cache.time_types = mapping.time_type_ids(
                self._call(lambda: list(self.api.timecard_time_types(procore_project_id)))
            )
        return self.cache.time_types

    # ------------------------------------------------------------ calls and errors
    def _call(self, fn):
        """Run one client call; turn connection-wide problems into a stop of the drain."""
        errors = _errors()
        try:
            return fn()
        except (errors.NeedsReauth, errors.ProcoreAuthError):
            raise _Stop(StopReason.RECONNECT) from None
        except errors.ProcoreRateLimited as exc:
            raise _RateLimited(getattr(exc, "reset_at", None)) from None
        except errors.ProcoreUnavailable:
            raise _Stop(StopReason.UNAVAILABLE) from None

    def _rate_limited(self, f: _Facts, exc: _RateLimited, create_refused: bool = False) -> None:
        """Park the row (and everything queued) until the limit resets; stop the drain.

        Only a 429 answering the create itself proves nothing was made; a 429 on a lookup
        leaves an earlier create in doubt, to be looked up again."""
        when = exc.when(self.now())
        self.result.waiting += 1
        self.result.later(when)
        if create_refused:
            self._not_sent(f)
        _state_update(
            f.row.id,
            f.generation,
            PushState.WAITING_RATE_LIMIT,
            reason="Waiting for Procore rate limit",
            next_attempt_at=when,
        )
        # Everything else queued waits too, and its card says so instead of "Pending".
        db.session.execute(
            sa.update(ProcorePush)
            .where(
                ProcorePush.company_id == self.company_id,
                ProcorePush.state == PushState.PENDING,
            )
            .values(
                state=PushState.WAITING_RATE_LIMIT,
                reason="Waiting for Procore rate limit",
                next_attempt_at=when,
            )
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        raise _Stop(StopReason.RATE_LIMITED)

    # ----------------------------------------------------------------- reconcile
    def _reconcile(self, doubtful: list[_Facts]) -> None:
        """Ask Procore which in-doubt creates arrived: one listing per project and dates.

        Not found is not proof: Procore may apply a create whose answer never came minutes
        later. Such a row is looked up again over the window and only sent again after it.
        """
        by_project: dict[int, list[_Facts]] = defaultdict(list)
        settle_until = self.now() - self.settle
        for f in doubtful:
            self.recreate.discard(f.row.id)
            marked = f.row.last_pushed_at
            if marked is not None and marked > settle_until:
                # A reply may still be on its way (timeout after send): look a bit later.
                _state_update(
                    f.row.id, f.generation, PushState.UNKNOWN, next_attempt_at=marked + self.settle
                )
                self.result.later(marked + self.settle)
                continue
            if f.row.procore_project_id is None or f.row.work_date is None:
                _facts_update(f.row.id, create_in_doubt=False)
                continue
            by_project[f.row.procore_project_id].append(f)
        db.session.commit()
        errors = _errors()
        for project_id, group in by_project.items():
            dates = [f.row.work_date for f in group]
            try:
                listed = self._call(
                    lambda project_id=project_id, dates=dates: list(
                        self.api.timecard_entries(
                            project_id, min(dates).isoformat(), max(dates).isoformat()
                        )
                    )
                )
            except errors.ProcoreNotFound:
                listed = []  # the project is gone, so is anything we made in it
            except _RateLimited as exc:
                self._rate_limited(group[0], exc)
                return
            by_origin = late_creates.group_by_origin(listed)
            for f in group:
                matches = by_origin.get(mapping.origin_key(f.row.origin_id))
                if matches:
                    found, all_removed = self._keep_one(f, project_id, matches)
                    self.result.reconciled += 1
                    _facts_update(
                        f.row.id,
                        procore_id=found["id"],
                        # A duplicate Procore refused to remove stays watched: tried again.
                        create_in_doubt=not all_removed,
                        payload_hash=f.row.sent_hash,
                        **_procore_copy(found),
                    )
                    if all_removed:
                        # Still pending: the normal path now checks it against the entry.
                        _state_update(f.row.id, f.generation, PushState.PENDING, reason=None)
                elif self._looked_long_enough(f):
                    # Kept in doubt: once sent again, later drains look for a late duplicate.
                    self.recreate.add(f.row.id)
                    _state_update(f.row.id, f.generation, PushState.PENDING)
                else:
                    when = self._next_lookup(f)
                    _facts_update(f.row.id, next_attempt_at=when)
                    _state_update(
                        f.row.id,
                        f.generation,
                        PushState.UNKNOWN,
                        reason=(
                            "Procore did not answer when it was sent and may still add it: "
                            "looking it up again before sending it again "
                            f"(not before {(f.row.last_pushed_at + self.window):%H:%M} UTC)"
                        ),
                        next_attempt_at=when,
                    )
                    self.result.later(when)
            db.session.commit()
        for f in doubtful:
            db.session.refresh(f.row)

    def _looked_long_enough(self, f: _Facts) -> bool:
        """Whether a create not found in Procore may be sent again now."""
        row = f.row
        if row.sent_hash is None or row.last_pushed_at is None:
            return True  # no unanswered create of ours (e.g. re-sending one deleted in Procore)
        return self.now() - row.last_pushed_at >= self.window

    def _next_lookup(self, f: _Facts) -> datetime:
        """The next of `lookups` lookups spread from the settle time to the window's end."""
        start, end = f.row.last_pushed_at, f.row.last_pushed_at + self.window
        step = (self.window - self.settle) / max(1, self.lookups - 1)
        if self.lookups <= 1 or step <= timedelta(0):
            return end
        when = start + self.settle
        while when <= self.now():
            when += step
        return min(when, end)

    # ------------------------------------------------------- duplicates created late
    def _keep_one(self, f: _Facts, project_id: int, matches: list[dict]) -> tuple[dict, bool]:
        """Of several Procore entries carrying the row's origin id keep the linked one (else
        the oldest) and delete the others; the one kept, and whether all others went."""
        keep, extras = late_creates.split(matches, f.row.procore_id)
        removed = [
            self._remove_duplicate(f.row, f.generation, project_id, extra["id"], keep["id"])
            for extra in extras
        ]
        return keep, all(removed)

    def _remove_duplicate(
        self, row: ProcorePush, generation: int, project_id: int, dup_id: int, kept: int
    ) -> bool:
        """DELETE one duplicate; False when Procore refused (the row is then a conflict
        saying so in Procore's words)."""
        errors = _errors()
        try:
            self._call(lambda: self.api.delete_timecard_entry(project_id, dup_id))
        except errors.ProcoreNotFound:
            return True  # already gone
        except errors.ProcoreOutcomeUnknown:
            return True  # a later look finds it again and deletes it (safe to repeat)
        except errors.ProcoreError as exc:
            # Approved or locked there: say so on the card and in the run, in Procore's words.
            reason = late_creates.refused_reason(dup_id, mapping.describe_errors(exc.body))
            self.result.conflicts += 1
            _facts_update(row.id, create_in_doubt=True)  # watched: tried again later
            _state_update(row.id, generation, PushState.CONFLICT, reason=reason)
            db.session.commit()
            return False
        self.result.duplicates += 1
        self.result.items.append(
            {
                "local_id": row.time_entry_id,
                "procore_id": dup_id,
                "outcome": "removed",
                "reason": late_creates.removed_reason(kept),
            }
        )
        log.info(
            "audit action=push.late_duplicate_removed company=%s entry=%s procore_id=%s kept=%s",
            self.company_id,
            row.time_entry_id,
            dup_id,
            kept,
        )
        return True

    def _late_duplicates(self) -> None:
        """Look for duplicates of entries sent again after an unanswered create (Procore may
        apply that create at any later time): every drain while watched, one listing per
        project; a watched row is looked at again after a growing pause, then let go."""
        now = self.now()
        since = now - self.watch
        db.session.execute(
            sa.update(ProcorePush)
            .where(
                ProcorePush.company_id == self.company_id,
                _watched(),
                ProcorePush.state.not_in(WORK_STATES),
                sa.or_(ProcorePush.last_pushed_at.is_(None), ProcorePush.last_pushed_at < since),
            )
            .values(create_in_doubt=False, next_attempt_at=None)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        rows = list(
            db.session.scalars(
                sa.select(ProcorePush)
                .where(
                    ProcorePush.company_id == self.company_id,
                    _watched(),
                    ProcorePush.procore_project_id.is_not(None),
                    ProcorePush.work_date.is_not(None),
                    ProcorePush.last_pushed_at >= since,
                )
                .order_by(ProcorePush.id)
                .limit(BATCH * 5)
            )
        )
        by_project: dict[int, list[ProcorePush]] = defaultdict(list)
        for row in rows:
            by_project[row.procore_project_id].append(row)
            # Looked at now; look again after a pause that grows with the entry's age.
            pause = max(self.window, now - row.last_pushed_at)
            db.session.execute(
                sa.update(ProcorePush)
                .where(ProcorePush.id == row.id, ProcorePush.state.not_in(WORK_STATES))
                .values(next_attempt_at=now + pause)
                .execution_options(synchronize_session=False)
            )
        db.session.commit()
        errors = _errors()
        for project_id, group in by_project.items():
            dates = [r.work_date for r in group]
            try:
                listed = self._call(
                    lambda project_id=project_id, dates=dates: list(
                        self.api.timecard_entries(
                            project_id, min(dates).isoformat(), max(dates).isoformat()
                        )
                    )
                )
                by_origin = late_creates.group_by_origin(listed)
                for row in group:
                    matches = by_origin.get(mapping.origin_key(row.origin_id)) or []
                    if len(matches) < 2:
                        continue
                    keep, extras = late_creates.split(matches, row.procore_id)
                    if keep["id"] != row.procore_id:  # ours was removed there: keep the oldest
                        _facts_update(row.id, procore_id=keep["id"], **_procore_copy(keep))
                    for extra in extras:
                        self._remove_duplicate(
                            row, row.generation, project_id, extra["id"], keep["id"]
                        )
            except _RateLimited as exc:
                self.result.later(exc.when(self.now()))
                db.session.commit()
                return  # the next drain looks again
            except errors.ProcoreError:
                log.info("could not list project %s to look for late duplicates", project_id)
            db.session.commit()

    # ------------------------------------------------------------------- creates
    def _mark_sending(self, group: list[tuple[_Facts, dict, int]]) -> None:
        now = self.now()
        for f, payload, project_id in group:
            _facts_update(
                f.row.id,
                create_in_doubt=True,
                sent_hash=mapping.payload_hash(payload),
                procore_project_id=project_id,
                work_date=f.entry.work_date,
                last_pushed_at=now,
                attempts=ProcorePush.attempts + 1,
            )
            _state_update(f.row.id, f.generation, PushState.SENDING)
        db.session.commit()  # durable before any byte reaches Procore

    def _not_sent(self, f: _Facts) -> None:
        """Procore certainly did not take this create; an earlier unanswered one of the row
        (sent again after the lookups) may still land, so that doubt is kept."""
        _facts_update(f.row.id, create_in_doubt=f.row.id in self.recreate)

    def _created(self, f: _Facts, payload: dict, entry: dict, commit: bool = True) -> None:
        self.result.created += 1
        _finish(
            f,
            PushState.DONE,
            None,
            commit=commit,
            procore_id=entry["id"],
            # Sent again after an unanswered create: later drains watch for a late duplicate.
            create_in_doubt=f.row.id in self.recreate,
            payload_hash=mapping.payload_hash(payload),
            procore_updated_at=parse_procore_time(entry.get("updated_at")),
            **_procore_copy(entry),
        )

    def _create_all(self, creates: list[tuple[_Facts, dict, int]]) -> None:
        if self.use_bulk:
            by_project: dict[int, list] = defaultdict(list)
            for item in creates:
                by_project[item[2]].append(item)
            singles = []
            for project_id, items in by_project.items():
                for start in range(0, len(items), mapping.BULK_CREATE_MAX):
                    chunk = items[start : start + mapping.BULK_CREATE_MAX]
                    if len(chunk) == 1 or not self._bulk_create(project_id, chunk):
                        singles.extend(chunk)
            creates = singles
        for item in creates:
            self._renew_lease()
            self._create_one(*item)

    def _create_one(self, f: _Facts, payload: dict, project_id: int) -> None:
        errors = _errors()
        self._mark_sending([(f, payload, project_id)])
        try:
            entry = self._call(lambda: self.api.create_timecard_entry(project_id, payload))
        except errors.ProcoreOutcomeUnknown:
            self._unknown([f])
            return
        except _RateLimited as exc:
            self._rate_limited(f, exc, create_refused=True)
            return
        except _Stop:
            # Auth or outage before Procore took the request: nothing was created.
            self._not_sent(f)
            _state_update(f.row.id, f.generation, PushState.PENDING)
            db.session.commit()
            raise
        except (errors.ProcoreConflict, errors.ProcoreValidationError) as exc:
            # Procore refused the create. Even a refusal naming origin_id is no proof that
            # our entry is there (the id may be refused, or be another system's), so look it
            # up once: found, it is sent; not found, it fails with Procore's words. Never
            # "unknown", which would send it again and again.
            self._refused_after_lookup(f, payload, project_id, exc)
            return
        except errors.ProcoreError as exc:
            self._refused(f, exc, create=True)
            return
        self._created(f, payload, entry)

    def _refused_after_lookup(self, f: _Facts, payload: dict, project_id: int, exc) -> None:
        errors = _errors()
        day = f.entry.work_date
        try:
            listed = self._call(
                lambda: list(
                    self.api.timecard_entries(project_id, day.isoformat(), day.isoformat())
                )
            )
        except _RateLimited as rate:
            self._rate_limited(f, rate)  # still in doubt: the next pass looks it up again
            return
        except errors.ProcoreError:
            listed = []
        found = mapping.find_by_origin(listed, f.row.origin_id)
        if found is not None and found.get("id") is not None:
            self._created(f, payload, found)
            return
        self._refused(f, exc, create=True)

    def _bulk_create(self, project_id: int, chunk: list[tuple[_Facts, dict, int]]) -> bool:
        """Send up to 25 creates in one call; False means 'send them one by one instead'."""
        errors = _errors()
        self._mark_sending(chunk)
        entries = [mapping.bulk_item(p, project_id) for _, p, _ in chunk]
        try:
            answer = self._call(lambda: self.api.bulk_create_timecard_entries(project_id, entries))
        except errors.ProcoreOutcomeUnknown:
            self._unknown([f for f, _, _ in chunk])
            return True
        except _RateLimited as exc:
            for f, _, _ in chunk[1:]:  # a 429 was not processed: nothing is in doubt
                self._not_sent(f)
                _state_update(f.row.id, f.generation, PushState.PENDING)
            self._rate_limited(chunk[0][0], exc, create_refused=True)
            return True
        except _Stop:
            for f, _, _ in chunk:
                self._not_sent(f)
                _state_update(f.row.id, f.generation, PushState.PENDING)
            db.session.commit()
            raise
        except errors.ProcoreError as exc:
            # Refused as a whole (not in the beta, a bad item, too many): Procore made
            # nothing, so single creates are safe and give each entry its own reason.
            log.info("bulk_create refused (%s); falling back to single creates", exc)
            for f, _, _ in chunk:
                self._not_sent(f)
            db.session.commit()
            return False
        made = answer.get("timecard_entries", []) if isinstance(answer, dict) else answer
        by_origin = mapping.index_by_origin(made or [])
        missing = []
        for f, payload, _ in chunk:
            entry = by_origin.get(mapping.origin_key(f.row.origin_id))
            if entry is None:
                missing.append(f)
            else:
                self._created(f, payload, entry, commit=False)
        # One transaction for the whole reply: a crash before it leaves the chunk in doubt,
        # which the lookup by origin_id settles, exactly as a crash before the reply would.
        db.session.commit()
        if missing:
            self._unknown(missing)
        return True

    def _unknown(self, group: list[_Facts]) -> None:
        """The create may have reached Procore: park the rows until a lookup settles it."""
        when = self.now() + self.settle
        for f in group:
            _state_update(
                f.row.id,
                f.generation,
                PushState.UNKNOWN,
                reason="Checking with Procore whether the entry arrived",
                next_attempt_at=when if self.settle else None,
            )
        db.session.commit()
        self.result.later(when)

    def _refused(self, f: _Facts, exc, create: bool = False) -> None:
        errors = _errors()
        body = getattr(exc, "body", None)
        if isinstance(exc, errors.ProcoreNotFound):
            reason = (
                "Procore could not find the project (deleted in Procore, or this connection "
                "cannot see it)."
            )
        elif isinstance(exc, errors.ProcoreForbidden):
            reason = "Procore refused: the connected user may not write timesheets here."
        else:
            reason = f"Procore refused the entry: {mapping.describe_errors(body)}"
        self.result.failed += 1
        values = {"create_in_doubt": False} if create else {}
        _finish(f, PushState.FAILED, reason, **values)

    # --------------------------------------------------------------- updates
    def _update(self, f: _Facts, refs: mapping.ProcoreRefs, payload: dict) -> None:
        errors = _errors()
        digest = mapping.payload_hash(payload)
        if digest == f.row.payload_hash:
            self.result.unchanged += 1
            _finish(f, PushState.DONE)
            return
        _facts_update(f.row.id, last_pushed_at=self.now(), attempts=ProcorePush.attempts + 1)
        db.session.commit()
        try:
            entry = self._call(
                lambda: self.api.update_timecard_entry(refs.project_id, f.row.procore_id, payload)
            )
        except errors.ProcoreOutcomeUnknown:
            # A full-body PATCH is safe to send again: leave it pending for the next pass.
            _state_update(
                f.row.id,
                f.generation,
                PushState.PENDING,
                reason="Procore did not confirm the update; it will be sent again",
                next_attempt_at=self.now() + RETRY_LATER,
            )
            db.session.commit()
            self.result.later(self.now() + RETRY_LATER)
            return
        except _RateLimited as exc:
            self._rate_limited(f, exc)
            return
        except errors.ProcoreNotFound:
            self.result.conflicts += 1
            _finish(
                f,
                PushState.CONFLICT,
                "The entry was deleted in Procore. 'Retry' sends it again.",
                procore_id=None,
                payload_hash=None,
            )
            return
        except errors.ProcoreValidationError as exc:
            if mapping.is_locked_error(getattr(exc, "body", None)):
                self.result.conflicts += 1
                _finish(
                    f,
                    PushState.CONFLICT,
                    "Procore has approved this entry, so it can no longer change there. "
                    "Ask the Procore approver to reopen it, then 'Retry'.",
                )
                return
            self._refused(f, exc)
            return
        except errors.ProcoreError as exc:
            self._refused(f, exc)
            return
        self.result.updated += 1
        _finish(
            f,
            PushState.DONE,
            payload_hash=digest,
            procore_updated_at=parse_procore_time((entry or {}).get("updated_at")),
            **_procore_copy(entry),
        )

    # ------------- Procore-side edits (an entry edited here and in Procore: never overwrite)
    def _unchanged_in_procore(self, f: _Facts, ours: dict | None) -> bool:
        """Read Procore's copy before overwriting or removing it (one GET by id).

        True: nobody changed the fields we send since our last write, go ahead. False: the
        row is settled here, as done when Procore already holds `ours` (e.g. the reply to
        our last PATCH was lost), else as a conflict for a person: once an entry has been
        sent, an edit made in Procore is raised to an admin, never silently overwritten.
        """
        row = f.row
        if row.payload_hash is None or row.procore_project_id is None:
            return True  # nothing to compare against (e.g. 'Retry' after it was deleted)
        errors = _errors()
        try:
            remote = self._call(
                lambda: self.api.show_timecard_entry(row.procore_project_id, row.procore_id)
            )
        except errors.ProcoreNotFound:
            return True  # the write meets the 404 and handles it as before
        except _RateLimited as exc:
            self._rate_limited(f, exc)
            return False
        except errors.ProcoreError as exc:
            self._refused(f, exc)
            return False
        if not isinstance(remote, dict):
            return True
        # Compared with Procore's answer to our last write, not with what we sent: Procore
        # stores start/stop times after its rounding rules, which is not an edit there.
        if row.procore_hash is not None and mapping.procore_state_hash(remote) == row.procore_hash:
            return True
        zone = self._time_zone(f)
        seen = mapping.procore_payload_hashes(remote, zone)
        if row.payload_hash in seen:
            return True
        updated_at = parse_procore_time(remote.get("updated_at"))
        if ours is not None and mapping.payload_hash(ours) in seen:
            self.result.unchanged += 1
            _finish(
                f,
                PushState.DONE,
                payload_hash=mapping.payload_hash(ours),
                procore_updated_at=updated_at,
                **_procore_copy(remote),
            )
            return False
        theirs = mapping.procore_as_payload(remote, zone)
        self.result.conflicts += 1
        # sent_hash keeps Procore's version: 'Retry' adopts it as the baseline, so the
        # retry sends ours unless Procore changes the entry again (see retry_card).
        _finish(
            f,
            PushState.CONFLICT,
            mapping.changed_in_procore_reason(theirs, ours),
            sent_hash=mapping.payload_hash(theirs),
            procore_updated_at=updated_at,
        )
        log.info(
            "audit action=push.conflict_procore_edit company=%s entry=%s procore_id=%s",
            self.company_id,
            row.time_entry_id,
            row.procore_id,
        )
        return False

    def _time_zone(self, f: _Facts) -> str:
        user = f.user
        if user is None:  # the entry is gone; its card still names the worker
            card = db.session.get(TimeCard, f.row.time_card_id)
            user = card.user if card is not None else None
        return user.time_zone if user is not None else "UTC"

    # --------------------------------------------------------------- deletes
    def _delete(self, f: _Facts) -> None:
        row = f.row
        if row.procore_id is None:
            self.result.skipped += 1
            _finish(f, PushState.SKIPPED, "Removed before it was sent to Procore; nothing to do.")
            return
        if not self._unchanged_in_procore(f, None):
            return
        if self._delete_remote(f):
            self.result.deleted += 1
            _finish(
                f,
                PushState.DONE,
                "Removed from Procore",
                procore_id=None,
                payload_hash=None,
                sent_hash=None,
            )

    def _delete_remote(self, f: _Facts, keep_state: bool = False) -> bool:
        """DELETE Procore's copy; True when it is gone (also if it already was)."""
        errors = _errors()
        row = f.row
        try:
            self._call(
                lambda: self.api.delete_timecard_entry(row.procore_project_id, row.procore_id)
            )
        except errors.ProcoreNotFound:
            pass  # already gone
        except _RateLimited as exc:
            self._rate_limited(f, exc)
            return False
        except errors.ProcoreValidationError as exc:
            self.result.conflicts += 1
            reason = (
                "Procore has approved this entry, so it cannot be removed there. Ask the "
                "Procore approver to reopen it, then 'Retry'."
                if mapping.is_locked_error(getattr(exc, "body", None))
                else f"Procore refused to remove the entry: {mapping.describe_errors(exc.body)}"
            )
            _finish(f, PushState.CONFLICT, reason)
            return False
        except errors.ProcoreOutcomeUnknown:
            self.result.later(self.now() + RETRY_LATER)
            _state_update(
                row.id, f.generation, PushState.PENDING, next_attempt_at=self.now() + RETRY_LATER
            )
            db.session.commit()
            return False
        except errors.ProcoreError as exc:
            self._refused(f, exc)
            return False
        if keep_state:
            _facts_update(row.id, procore_id=None, payload_hash=None, sent_hash=None)
            db.session.commit()
            row.procore_id = None
        return True


class _NotMapped(Exception):
    def __init__(self, reason: str, entity: str, local_id: int) -> None:
        super().__init__(reason)
        self.reason, self.entity, self.local_id = reason, entity, local_id


class _RateLimited(Exception):
    def __init__(self, reset_at) -> None:
        super().__init__("rate limited")
        self.reset_at = reset_at

    def when(self, now: datetime) -> datetime:
        reset = self.reset_at
        if isinstance(reset, (int, float)):
            reset = datetime.fromtimestamp(reset, UTC)
        if isinstance(reset, datetime) and reset > now:
            return reset
        return now + timedelta(seconds=10)


def _procore_copy(entry) -> dict:
    """Procore's answer to a write, kept on the row: its fields' hash and its hours."""
    if not isinstance(entry, dict) or entry.get("id") is None:
        return {"procore_hash": None, "procore_hours": None}
    return {
        "procore_hash": mapping.procore_state_hash(entry),
        "procore_hours": mapping.procore_hours(entry),
    }


# ================================================================= running the drain
def _due_count(company_id: int, now: datetime) -> int:
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(ProcorePush)
        .where(
            ProcorePush.company_id == company_id,
            ProcorePush.state.in_(WORK_STATES),
            sa.or_(ProcorePush.next_attempt_at.is_(None), ProcorePush.next_attempt_at <= now),
        )
    )


def push_company(company_id: int, client=None, max_seconds=None, now=utcnow) -> PushResult:
    """Send a company's due outbox rows to Procore now, recorded as a `push_timecards` run."""
    if not _due_count(company_id, now()) and not _watch_due(company_id, now()):
        result = PushResult()
        when = next_due_at(company_id)
        if when is not None:
            result.later(when)
        return result
    run, _ = service.start(company_id, RunKind.PUSH, trigger="auto", enqueue=False)
    ctx = RunRunner().handle(run.id, client=client, max_seconds=max_seconds, now=now)
    if ctx.result is not None:
        return ctx.result
    return PushResult(stopped=StopReason.RECONNECT, run_id=run.id)  # failed before draining


def _watch_due(company_id: int, now: datetime) -> bool:
    """Whether a look for a duplicate Procore created late is due (no other work needed)."""
    return (
        db.session.scalar(
            sa.select(ProcorePush.id)
            .where(
                ProcorePush.company_id == company_id,
                _watched(),
                ProcorePush.next_attempt_at <= now,
            )
            .limit(1)
        )
        is not None
    )


def failure_reason(exc: Exception) -> str:
    """What a push (or hours check) run that failed on `exc` shows."""
    errors = _errors()
    if isinstance(exc, (errors.NeedsReauth, errors.ProcoreAuthError)):
        return "The Procore connection needs to be reconnected (Settings → Integrations)."
    return f"{type(exc).__name__}: {exc}"[:500]


def _record_run(run: SyncRun, started: datetime, result: PushResult) -> None:
    run.created, run.updated = result.created, result.updated
    run.deleted = result.deleted + result.duplicates
    run.unchanged, run.skipped = result.unchanged, result.skipped
    run.failed = result.failed + result.not_mapped + result.conflicts
    run.done = result.created + result.updated + result.deleted + result.unchanged
    problems = db.session.execute(
        sa.select(
            ProcorePush.time_entry_id, ProcorePush.procore_id, ProcorePush.state, ProcorePush.reason
        )  # fmt: skip
        .where(
            ProcorePush.company_id == run.company_id,
            ProcorePush.state.in_((PushState.FAILED, PushState.NOT_MAPPED, PushState.CONFLICT)),
            ProcorePush.updated_at >= started,
        )
        .limit(1000)
    ).all()
    for item in result.items:
        db.session.add(
            SyncRunItem(company_id=run.company_id, run_id=run.id, entity_type="time_entry", **item)
        )
    for entry_id, procore_id, state, reason in problems:
        db.session.add(
            SyncRunItem(
                company_id=run.company_id,
                run_id=run.id,
                entity_type="time_entry",
                local_id=entry_id,
                procore_id=procore_id,
                outcome="failed" if state != PushState.CONFLICT else "conflict",
                reason=reason,
            )
        )
    if result.stopped and result.stopped.shown:
        run.status, run.error = RunStatus.PARTIAL, str(result.stopped)
    elif run.failed:
        run.status = RunStatus.PARTIAL
    else:
        run.status = RunStatus.SUCCEEDED
    if result.notes:
        run.error = " ".join([run.error, *result.notes] if run.error else result.notes)


@register
class PushRunKind(Kind):
    """One drain of a company's outbox; at most one per company at a time (the run lease)."""

    kinds = (RunKind.PUSH,)
    running_stage = "Sending time entries"

    def failure_reason(self, exc: Exception) -> str:
        return failure_reason(exc)

    def prepare(self, ctx: RunContext) -> None:
        ctx.run.total = _due_count(ctx.company_id, ctx.options.get("now", utcnow)())

    def run(self, ctx: RunContext) -> None:
        started = ctx.run.started_at
        pusher = Pusher(
            ctx.company_id, ctx.client, lease=ctx.lease, now=ctx.options.get("now", utcnow)
        )
        result = pusher.drain(max_seconds=ctx.options.get("max_seconds"))
        result.notes = list(dict.fromkeys(pusher.notes))
        result.run_id = ctx.run.id
        _record_run(ctx.run, started, result)
        ctx.result = result

    def after(self, ctx: RunContext) -> None:
        result = ctx.result
        if result is None or (result.stopped and result.stopped.needs_admin):
            return  # failed, or only Reconnect helps: nothing to follow up
        when = result.retry_at
        # Work committed while this drain ended saw it running and started nothing.
        due = next_due_at(ctx.company_id)
        if due is not None and (when is None or due < when):
            when = due
        if when is not None:
            enqueue_push(ctx.company_id, delay=max(timedelta(seconds=1), when - utcnow()))


# ========================================================== what the pages show
@dataclass
class CardSync:
    """The badge of one card: the worst state of its entries, with the reason."""

    state: str
    label: str
    kind: str
    reason: str | None = None
    counts: dict = field(default_factory=dict)
    procore_project_id: int | None = None
    procore_id: int | None = None
    fix_entity: str | None = None
    fix_local_id: int | None = None


# Worst first: the badge shows the first state any entry of the card is in.
_PRECEDENCE = (
    (PushState.CONFLICT, "Conflict", "bad"),
    (PushState.FAILED, "Failed", "bad"),
    (PushState.NOT_MAPPED, "Not mapped", "warn"),
    (PushState.WAITING_RATE_LIMIT, "Waiting for Procore rate limit", "info"),
    (PushState.UNKNOWN, "Pending", "info"),
    (PushState.SENDING, "Pending", "info"),
    (PushState.PENDING, "Pending", "info"),
    (PushState.DONE, "Sent", "ok"),
    (PushState.SKIPPED, "Skipped", "neutral"),
)


def card_sync_states(company_id: int, card_ids) -> dict[int, CardSync]:
    """Badges for many cards in one grouped query."""
    card_ids = list(card_ids)
    if not card_ids:
        return {}
    rows = db.session.execute(
        sa.select(
            ProcorePush.time_card_id,
            ProcorePush.state,
            sa.func.count(),
            sa.func.max(ProcorePush.reason),
            sa.func.max(ProcorePush.procore_project_id),
            sa.func.max(ProcorePush.procore_id),
            sa.func.max(ProcorePush.fix_entity),
            sa.func.max(ProcorePush.fix_local_id),
        )
        .where(ProcorePush.company_id == company_id, ProcorePush.time_card_id.in_(card_ids))
        .group_by(ProcorePush.time_card_id, ProcorePush.state)
    ).all()
    grouped: dict[int, dict] = defaultdict(dict)
    for card_id, state, count, reason, project_id, procore_id, fix_entity, fix_id in rows:
        grouped[card_id][PushState(state)] = (
            count,
            reason,
            project_id,
            procore_id,
            fix_entity,
            fix_id,
        )
    badges = {}
    for card_id, states in grouped.items():
        counts = {str(s): v[0] for s, v in states.items()}
        for state, label, kind in _PRECEDENCE:
            if state not in states:
                continue
            if state == PushState.SKIPPED and PushState.DONE in states:
                continue
            count, reason, project_id, procore_id, fix_entity, fix_id = states[state]
            if state == PushState.DONE:
                reason = None
                if procore_id is None:  # every done row is a removal (e.g. card rejected)
                    label, kind = "Removed from Procore", "neutral"
                    reason = "Taken out of Procore when the card went back for changes."
            badges[card_id] = CardSync(
                state=str(state),
                label=label,
                kind=kind,
                reason=reason,
                counts=counts,
                procore_project_id=project_id,
                procore_id=procore_id,
                fix_entity=fix_entity,
                fix_local_id=fix_id,
            )
            break
    return badges


def card_push_rows(company_id: int, card_id: int) -> list[tuple[ProcorePush, TimeEntry | None]]:
    """Per-entry detail of a card: each outbox row with its entry (None once deleted)."""
    rows = db.session.execute(
        sa.select(ProcorePush, TimeEntry)
        .outerjoin(TimeEntry, TimeEntry.id == ProcorePush.time_entry_id)
        .where(ProcorePush.company_id == company_id, ProcorePush.time_card_id == card_id)
        .order_by(TimeEntry.work_date, ProcorePush.id)
    ).all()
    return [(push, entry) for push, entry in rows]


RETRYABLE = (PushState.FAILED, PushState.CONFLICT, PushState.NOT_MAPPED)


def retry_card(company_id: int, card_id: int, push_id: int | None = None) -> int:
    """Put a card's failed, conflicting or unmapped rows back in the queue; commits."""
    query = sa.select(ProcorePush).where(
        ProcorePush.company_id == company_id,
        ProcorePush.time_card_id == card_id,
        ProcorePush.state.in_(RETRYABLE),
    )
    if push_id is not None:
        query = query.where(ProcorePush.id == push_id)
    count = 0
    for row in db.session.scalars(query):
        if (
            row.state == PushState.CONFLICT
            and (row.reason or "").startswith(mapping.CHANGED_IN_PROCORE)
            and row.sent_hash
        ):
            # A person chose Crewclock's version: Procore's copy as seen at the conflict
            # becomes the baseline, so it is overwritten unless Procore changed it again.
            row.payload_hash = row.sent_hash
        _want(company_id, card_id, row.time_entry_id, row.action)
        count += 1
    if count:
        # The admin may have changed Procore's time-entry setting to fix a refusal: the
        # retry reads it again instead of trusting what the last send saw.
        settings = db.session.get(IntegrationSettings, company_id)
        if settings is not None:
            settings.procore_time_entry_read_at = None
    db.session.commit()
    return count


def resend_entries(company_id: int, targets: dict[int, tuple[str, int | None]]) -> int:
    """Queue again entries the hours check found missing ("missing") or with other hours
    ("changed") in Procore; commits. `targets` maps entry id -> (finding, Procore id seen).

    Only rows still as the check saw them (sent, same Procore id, wanted in Procore) are
    touched, so a second click or a push in between cannot queue anything twice. A missing
    entry is re-created through the reconcile path: marked create-in-doubt, the drain first
    lists Procore by origin_id and only creates when the entry is really gone.
    """
    if not targets:
        return 0
    count = 0
    for row in db.session.scalars(
        sa.select(ProcorePush).where(
            ProcorePush.company_id == company_id,
            ProcorePush.time_entry_id.in_(list(targets)),
            ProcorePush.action == PushAction.UPSERT,
            ProcorePush.state.in_((PushState.DONE, PushState.CONFLICT)),
        )
    ):
        finding, seen_procore_id = targets[row.time_entry_id]
        if row.procore_id != seen_procore_id:
            continue  # changed since the check (e.g. already re-sent)
        if finding == "missing":
            row.procore_id = None
            row.sent_hash = None
            row.create_in_doubt = row.procore_project_id is not None and row.work_date is not None
        # No baseline: the next send writes Crewclock's version (the admin chose it).
        row.payload_hash = None
        _want(company_id, row.time_card_id, row.time_entry_id, PushAction.UPSERT)
        count += 1
    db.session.commit()
    return count


def procore_web_url(api_url: str, web_url: str = "") -> str | None:
    """Procore's web app, where people open records: PROCORE_WEB_URL, else known from the
    API host (api.procore.com -> app.procore.com; Procore's developer sandbox serves both)."""
    if web_url:
        return web_url.rstrip("/")
    host = urlsplit(api_url).hostname or ""
    if host == "sandbox.procore.com":
        return "https://sandbox.procore.com"
    if host == "procore.com" or host.endswith(".procore.com"):
        return "https://app.procore.com"
    return None


def procore_entry_url(
    api_url: str, procore_company_id, project_id, entry_id, web_url: str = ""
) -> str | None:
    """Where a person sees the entry: Procore's timesheets page, or the sandbox's record."""
    if not project_id:
        return None
    web = procore_web_url(api_url, web_url)
    if web:
        return f"{web}/{project_id}/project/timesheets/list"
    if procore_company_id and entry_id:
        return (
            f"{api_url}/companies/{procore_company_id}/projects/{project_id}"
            f"/timecard_entries/{entry_id}"
        )
    return None


# =========================================================== the pre-send check
@dataclass
class Precheck:
    """What a push of one week would do, computed from our data only (no Procore calls)."""

    week_start: object
    create: int = 0
    update: int = 0
    unchanged: int = 0
    delete: int = 0
    skipped: dict = field(default_factory=dict)  # reason -> count
    cards: int = 0
    # Procore's time-entry setting as the push last read it, in words, and any problem.
    procore_mode: str | None = None
    procore_mode_problem: str | None = None

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def precheck_week(company_id: int, week_start) -> Precheck:
    """Count entries of the week's cards that would be created, updated or skipped (why)."""
    check = Precheck(week_start=week_start)
    settings = db.session.get(IntegrationSettings, company_id)
    in_out = None
    if settings is not None:
        check.procore_mode_problem = settings.procore_time_entry_problem
        if settings.procore_time_entry_problem is None:
            in_out = settings.procore_timecard_in_out
        if in_out is not None:
            check.procore_mode = "start and stop times" if in_out else "total hours"
    trigger = _push_trigger(company_id) or TimecardTrigger.ON_APPROVAL
    wanted = sendable_statuses(trigger)
    cards = list(
        db.session.scalars(
            sa.select(TimeCard).where(
                TimeCard.company_id == company_id,
                TimeCard.week_start == week_start,
                TimeCard.status.in_((TimeCardStatus.SUBMITTED, TimeCardStatus.APPROVED)),
            )
        ).unique()
    )
    check.cards = len(cards)
    entries = list(
        db.session.scalars(
            sa.select(TimeEntry).where(TimeEntry.time_card_id.in_([c.id for c in cards]))
        ).unique()
    )
    rows = {
        r.time_entry_id: r
        for r in db.session.scalars(
            sa.select(ProcorePush).where(
                ProcorePush.company_id == company_id,
                ProcorePush.time_card_id.in_([c.id for c in cards]),
            )
        )
    }
    by_card = {c.id: c for c in cards}
    users = _links(company_id, EntityType.USER, {c.user_id for c in cards})
    projects = _links(company_id, EntityType.PROJECT, {e.project_id for e in entries})
    codes = _links(
        company_id, EntityType.COST_CODE, {e.cost_code_id for e in entries if e.cost_code_id}
    )

    def skip(reason: str) -> None:
        check.skipped[reason] = check.skipped.get(reason, 0) + 1

    for entry in entries:
        card = by_card[entry.time_card_id]
        row = rows.get(entry.id)
        if not is_sendable(card.status, trigger):
            skip(f"the card is not {wanted[-1].value} yet")
        elif card.user_id not in users:
            skip(f"{card.user.name} is not linked to a Procore user")
        elif entry.project_id not in projects:
            skip(f"project '{entry.project.name}' is not linked to Procore")
        elif entry.cost_code_id and entry.cost_code_id not in codes:
            skip(f"cost code {entry.cost_code.code} is not linked to Procore")
        elif in_out is True and not (entry.start_time and entry.end_time):
            skip(
                "Procore's timesheets take start and stop times (its time-entry setting) "
                "and the entry has only hours"
            )
        elif (
            in_out is None
            and str(entry.project.time_entry_mode) == mapping.START_STOP
            and not (entry.start_time and entry.end_time)
        ):
            skip("the project needs start/stop times and the entry has only hours")
        elif row is not None and row.state == PushState.CONFLICT:
            skip("Procore has locked or removed it (conflict)")
        elif row is None or row.procore_id is None:
            check.create += 1
        elif row.state == PushState.DONE:
            check.unchanged += 1
        else:
            check.update += 1
    check.delete = sum(
        1
        for r in rows.values()
        if r.action == PushAction.DELETE and r.procore_id and r.state in WORK_STATES
    )
    return check
