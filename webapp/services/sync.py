"""Sync of linked users, projects and cost codes between Crewclock and Procore.

The hash of a link (`ProcoreLink.payload_hash`) is the hash of the *synced values* both
sides last agreed on, in our field names (see `procore_values` / `local_values`), so one
hash compares against either side:

- Procore's values hash == link hash  -> Procore did not change (our own echo included);
- our values hash == link hash        -> nothing to send (steady state: 0 outbound writes);
- both differ                         -> both changed: the conflict policy decides.

Inbound: an incremental poll with `filters[updated_at]` from a cursor taken from Procore's
clock and advanced only after a complete listing; webhooks fetch single records by id; a
periodic full listing soft-deletes linked records missing from a *complete* listing.
Outbound: the bulk sync endpoints, 1,000 per call, matched by Procore id (users, projects,
and standard cost codes of the chosen list, placed under their linked division).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import (
    CostCode,
    EntityType,
    IntegrationSettings,
    ProcoreLink,
    ProcoreStagedRecord,
    Project,
    Role,
    RunStatus,
    SyncDirection,
    SyncRun,
    SyncRunItem,
    User,
)
from webapp.models.base import utcnow
from webapp.models.sync import ConflictPolicy, SyncConflict, SyncCursor, SyncState
from webapp.procore import api as procore_api
from webapp.procore import mapping
from webapp.procore.api import Endpoint
from webapp.procore.mapping import COST_CODE, PROJECT, USER, parse_procore_time
from webapp.runs.kinds import SYNC_KINDS as RUN_SYNC_KINDS
from webapp.runs.kinds import RunKind

log = logging.getLogger(__name__)

SYNC_KIND = RunKind.SYNC
FULL_KIND = RunKind.SYNC_FULL
WEBHOOK_KIND = RunKind.SYNC_WEBHOOK
SYNC_KINDS = RUN_SYNC_KINDS
KIND_LABELS = {SYNC_KIND: "Incremental", FULL_KIND: "Full reconciliation", WEBHOOK_KIND: "Webhook"}
OVERLAP = timedelta(minutes=5)
PER_PAGE = 100
SYNC_BATCH = 1000  # Procore's limit per sync action call
PAUSE_AFTER_FAILURES = 3
HELD = "Changed in both Crewclock and Procore; held for review."
NOT_SENT = "Not sent to Procore: "
NOT_APPLIED = "Procore's change was not applied: "
VALUES_PREFIX = "v:"
MODELS = {USER: User, PROJECT: Project, COST_CODE: CostCode}
SYNCED_FIELDS = {
    USER: ("first_name", "last_name", "email", "phone", "employee_id"),
    PROJECT: ("name", "number", "street", "city", "state", "zip", "country"),
    COST_CODE: ("code", "name"),
}
DIRECTION_ATTRS = {USER: "users_direction", PROJECT: "projects_direction"}
DIRECTION_ATTRS[COST_CODE] = "cost_codes_direction"
ENTITY_LABELS = {USER: "users", PROJECT: "projects", COST_CODE: "cost codes"}
# The circuit breaker of mark_missing: one run never deactivates more than this share of a
# company's linked records of a kind (and more than this many) without an admin's confirm.
DELETE_GUARD_SHARE = 0.2
DELETE_GUARD_MIN = 5


class SyncRefused(Exception):
    """A sync cannot run for this company now (not set up, not connected)."""


# ==================================================================== values and hashes
def _clean(value):
    if isinstance(value, str):
        value = value.strip() or None
    return value


def procore_values(entity: str, payload: dict) -> dict:
    """The synced values of a Procore record, in our field names."""
    fields = mapping.fields_for(entity, payload)
    values = {key: fields.get(key) for key in SYNCED_FIELDS[entity]}
    if entity != COST_CODE:
        values["active"] = mapping.procore_active(entity, payload)
    return values


def local_values(entity: str, record) -> dict:
    """The synced values of one of our records, normalised like procore_values."""
    values = {key: _clean(getattr(record, key)) for key in SYNCED_FIELDS[entity]}
    if entity == USER and values["email"]:
        values["email"] = values["email"].lower()
    if entity == PROJECT and values["country"]:
        values["country"] = values["country"].upper()
    if entity != COST_CODE:
        values["active"] = bool(record.active)
    return values


def values_hash(values: dict) -> str:
    """The hash stored on a link: the synced values both sides agree on.

    Prefixed "v:" so a link still holding the set-up import's raw-payload hash is told apart.
    """
    return VALUES_PREFIX + mapping.payload_hash(values)[: 64 - len(VALUES_PREFIX)]


def to_procore(entity: str, record) -> dict:
    """The attributes a sync action sends for one of our records."""
    values = local_values(entity, record)
    if entity == USER:
        return {
            "first_name": values["first_name"],
            "last_name": values["last_name"],
            "email_address": values["email"],
            "mobile_phone": values["phone"],
            "employee_id": values["employee_id"],
            "is_active": values["active"],
        }
    return {
        "name": values["name"],
        "project_number": values["number"],
        "address": values["street"],
        "city": values["city"],
        "state_code": values["state"],
        "zip": values["zip"],
        "country_code": values["country"],
        "active": values["active"],
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ==================================================================== settings and state
def saved_settings(company_id: int) -> IntegrationSettings | None:
    """The company's integration settings, or None before the set-up wizard saved any.

    Unlike imports.settings_for this never creates the row: the sync pages are GETs and the
    sync jobs only read, and a company without settings simply has every direction off."""
    return db.session.get(IntegrationSettings, company_id)


def state_for(company_id: int) -> SyncState:
    """The company's sync state row, created on first use."""
    state = db.session.get(SyncState, company_id)
    if state is None:
        state = SyncState(
            company_id=company_id, conflict_policy=ConflictPolicy.PROCORE_WINS, hook_id=None
        )
        state.consecutive_failures = 0
        db.session.add(state)
        db.session.flush()
    return state


def directions(settings: IntegrationSettings | None) -> dict[str, SyncDirection]:
    """{entity: direction}; everything off when the company has no sync settings."""
    if settings is None:
        return {entity: SyncDirection.OFF for entity in MODELS}
    return {
        entity: SyncDirection(getattr(settings, attr) or SyncDirection.OFF)
        for entity, attr in DIRECTION_ATTRS.items()
    }


def sync_enabled(settings: IntegrationSettings | None) -> bool:
    """True when set-up is done, a Procore company is chosen and some direction is on."""
    if settings is None or settings.procore_company_id is None:
        return False
    if settings.setup_completed_at is None:
        return False
    return any(d != SyncDirection.OFF for d in directions(settings).values())


def cursor_for(company_id: int, entity: str) -> SyncCursor:
    row = db.session.scalar(
        sa.select(SyncCursor).where(
            SyncCursor.company_id == company_id, SyncCursor.entity_type == entity
        )
    )
    if row is None:
        row = SyncCursor(company_id=company_id, entity_type=entity)
        db.session.add(row)
        db.session.flush()
    return row


# ==================================================================== Procore endpoints
def list_endpoints(entity: str, settings: IntegrationSettings, full: bool) -> list[Endpoint]:
    """The listings that together hold every record of `entity`."""
    pc = settings.procore_company_id
    if entity == USER:
        endpoints = [procore_api.users_list(pc)]
        if full:  # deactivated profiles leave the main list
            endpoints.append(procore_api.inactive_users_list(pc))
        return endpoints
    if entity == PROJECT:
        # Inactive projects too: a complete listing without them would take every project
        # closed in Procore for deleted, and the poll must see a project being closed.
        return [procore_api.projects_list(pc, include_inactive=True)]
    if settings.standard_cost_code_list_id is None:
        return []
    return [procore_api.standard_cost_codes_list(pc, settings.standard_cost_code_list_id)]


def show_endpoint(entity: str, settings: IntegrationSettings, procore_id: int) -> Endpoint | None:
    """The endpoint that fetches one record by id; None when it cannot be asked for."""
    pc = settings.procore_company_id
    if entity == USER:
        return procore_api.user_show(pc, procore_id)
    if entity == PROJECT:
        return procore_api.project_show(pc, procore_id)
    if settings.standard_cost_code_list_id is None:
        return None
    return procore_api.standard_cost_code_show(pc, settings.standard_cost_code_list_id, procore_id)


# ==================================================================== our own echoes
# Procore reports every write as a webhook event, ours included, and need not say which app
# made it (metadata.source_application_id may be null). So each record we send is remembered
# for a while in Redis, once per write: the next update event for it is taken as our echo and
# costs no call. A second event (a real edit right after ours) finds nothing left to match and
# is fetched as usual; whichever of the two is fetched reads Procore's current state.
ECHO_TTL = 15 * 60  # seconds an unmatched write is remembered (the poll catches anything else)
ECHO_SKEW = 60  # an event stamped earlier than our send, minus this clock slack, is not ours


def _echo_key(company_id: int, entity: str, procore_id: int) -> str:
    return f"crewclock:sync:echo:{company_id}:{entity}:{procore_id}"


def remember_own_writes(company_id: int, entity: str, procore_ids: Iterable[int]) -> dict:
    """Note one write per record about to be sent; {procore id: the note} for forget_own_write."""
    from redis.exceptions import RedisError

    from webapp.redis_runtime import get_redis

    sent_at = repr(datetime.now(UTC).timestamp())
    notes = {}
    try:
        pipe = get_redis().pipeline(transaction=False)
        for procore_id in procore_ids:
            key = _echo_key(company_id, entity, procore_id)
            pipe.rpush(key, sent_at)
            pipe.expire(key, ECHO_TTL)
            notes[procore_id] = sent_at
        pipe.execute()
    except RedisError:  # without the note the echo is fetched once: slower, still right
        log.warning("could not note our own writes company=%s entity=%s", company_id, entity)
        return {}
    return notes


def forget_own_write(company_id: int, entity: str, procore_id: int, note: str | None) -> None:
    """Drop the note of a write Procore did not apply (no echo will come for it)."""
    from redis.exceptions import RedisError

    from webapp.redis_runtime import get_redis

    if note is None:
        return
    with contextlib.suppress(RedisError):
        get_redis().lrem(_echo_key(company_id, entity, procore_id), 1, note)


def claim_own_echo(company_id: int, entity: str, procore_id: int, timestamp: str | None) -> bool:
    """True when an update event for this record can be our own recent write coming back
    (and uses that write up, so a later event for the record is fetched)."""
    from redis.exceptions import RedisError

    from webapp.redis_runtime import get_redis

    stamped = parse_procore_time(timestamp)
    key = _echo_key(company_id, entity, procore_id)
    try:
        redis = get_redis()
        for raw in redis.lrange(key, 0, -1):
            note = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                sent_at = float(note)
            except ValueError:
                continue
            if stamped is not None and stamped.timestamp() < sent_at - ECHO_SKEW:
                continue  # the change happened before our write: not its echo
            if redis.lrem(key, 1, note):
                return True
    except RedisError:
        return False
    return False


# ==================================================================== the engine
@dataclass
class Tally:
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    deleted: int = 0
    sent: int = 0
    held: int = 0
    seen: dict = field(default_factory=dict)
    attention: list = field(default_factory=list)  # why the run needs an admin


class Syncer:
    """One run's work for one company: inbound pages, fetch-by-id, missing, outbound."""

    def __init__(self, company_id: int, client, run: SyncRun, now=utcnow) -> None:
        self.company_id = company_id
        self.client = client
        self.run = run
        self.now = now
        self.settings = saved_settings(company_id)
        if self.settings is None or self.settings.procore_company_id is None:
            raise SyncRefused("Finish the Procore set-up first (choose a Procore company).")
        self.pc = self.settings.procore_company_id
        self.directions = directions(self.settings)
        self.policy = state_for(company_id).conflict_policy
        # No write transaction may stay open across a Procore call: a token refresh commits
        # in its own session, and on SQLite it would wait on ours ("database is locked").
        db.session.commit()
        self.tally = Tally()
        self.api = procore_api.ProcoreAPI(client)
        self.first_date: datetime | None = None  # Procore's clock when a listing began

    # -- the kinds of run ------------------------------------------------------------------
    def incremental(self) -> None:
        """Poll users and projects changed since the cursor, then send our changes."""
        for entity in (USER, PROJECT):
            if self.directions[entity].reads_procore:
                self.poll(entity)
        if self.directions[COST_CODE] == SyncDirection.BOTH and self._changed_local(COST_CODE):
            # Cost codes have no updated_at filter: read them before sending ours (only when
            # there is something to send), so a change on both sides meets the conflict
            # policy instead of being overwritten.
            self.reconcile(COST_CODE)
        self.outbound()

    def full(self) -> None:
        """List everything (incl. cost codes), soft-delete what a complete listing lacks."""
        for entity in (USER, PROJECT, COST_CODE):
            # Crewclock -> Procore reads too: the listing agrees the first base for links
            # still holding the import's raw-payload hash (decide() applies nothing then).
            if self.directions[entity] != SyncDirection.OFF:
                self.reconcile(entity)
        self.outbound()

    # -- inbound -----------------------------------------------------------------------------
    def poll(self, entity: str) -> None:
        cursor = cursor_for(self.company_id, entity)
        db.session.commit()  # see __init__: nothing uncommitted while Procore is called
        if cursor.cursor is None:
            # Never synced: a full listing sets the first cursor (and catches deletions).
            self.reconcile(entity)
            return
        started_local = self.now()
        window = f"{_iso(cursor.cursor - OVERLAP)}...{_iso(started_local + timedelta(hours=1))}"
        self.first_date = None
        self.run.stage = f"Reading changed {entity}s"
        for endpoint in list_endpoints(entity, self.settings, full=False):
            self._read(entity, endpoint.changed_within(window))
        # Only after the whole listing: the next run starts where this one started.
        cursor.cursor = min(self.first_date or started_local, started_local + OVERLAP)
        db.session.commit()

    def reconcile(self, entity: str) -> None:
        cursor = cursor_for(self.company_id, entity)
        db.session.commit()  # see __init__: nothing uncommitted while Procore is called
        started_local = self.now()
        self.first_date = None
        seen: set[int] = set()
        endpoints = list_endpoints(entity, self.settings, full=True)
        if not endpoints:
            return
        self.run.stage = f"Reconciling {entity}s"
        for endpoint in endpoints:
            seen |= self._read(entity, endpoint)
        # Reached only when every listing completed: missing now means gone from Procore.
        self.mark_missing(entity, seen)
        cursor.cursor = min(self.first_date or started_local, started_local + OVERLAP)
        cursor.last_full_at = self.now()
        db.session.commit()

    def _read(self, entity: str, endpoint: Endpoint) -> set[int]:
        seen: set[int] = set()
        # Nothing uncommitted may wait across the first call either (e.g. the run's stage,
        # flushed by any lazy load): a token refresh writes in its own session, and on SQLite
        # it would wait for ours until "database is locked".
        db.session.commit()
        for page in self.api.pages(endpoint, PER_PAGE):
            self._note_first_date()
            ids = self.apply_payloads(entity, page.items)
            seen |= ids
            self.run.done += len(page.items)
            self.run.checkpoint = {**(self.run.checkpoint or {}), "page": page.number}
            db.session.commit()
        self._note_first_date()  # an empty listing's one answer
        return seen

    def _note_first_date(self) -> None:
        """Keep Procore's clock from the first answer of the listing (its Date header)."""
        if self.first_date is None:
            self.first_date = getattr(self.client, "last_server_date", None)

    def fetch_one(self, entity: str, procore_id: int) -> str:
        """Fetch one linked record by id and apply it; the outcome, in a few words.

        A user or project Procore answers 404 for is deleted there. A cost code is only
        looked up within the chosen list, so a 404 may just mean it sits in another list:
        only a complete listing of the list (the full reconciliation) may retire it. Procore
        refusing the request (400/422) is a failed item of the run, with Procore's words.
        """
        from webapp.procore.errors import ProcoreNotFound, ProcoreValidationError, body_message

        endpoint = show_endpoint(entity, self.settings, procore_id)
        if endpoint is None:
            return "ignored: no standard cost code list chosen"
        try:
            payload = self.api.fetch(endpoint)
        except ProcoreNotFound:
            if entity != COST_CODE:
                self.mark_missing(entity, set(), only={procore_id})
                return "deleted"
            reason = (
                "Procore did not find it in the chosen cost code list; kept as it is until "
                "the next full reconciliation lists the whole list."
            )
            if self._fetch_item(entity, procore_id, "skipped", reason):
                self.tally.skipped += 1
            return "not found: left to the full reconciliation"
        except ProcoreValidationError as exc:
            said = body_message(exc.body) or str(exc)
            reason = f"Procore refused to show it (HTTP {exc.status}): {said}"
            if self._fetch_item(entity, procore_id, "failed", reason):
                self.tally.failed += 1
            return f"failed: {reason}"[:200]
        if not isinstance(payload, dict):
            return "ignored"
        self.apply_payloads(entity, [payload])
        return "fetched"

    def _fetch_item(self, entity: str, procore_id: int, outcome: str, reason: str) -> bool:
        """Record a fetch-by-id problem as an item of the run; False if no longer linked."""
        found = self._linked(entity, [procore_id])
        if not found:
            return False
        link, record = found[0]
        self._item(entity, link, _label(entity, record), outcome, reason)
        return True

    def _linked(self, entity: str, procore_ids: list[int]) -> list:
        """(link, local record) for each of these Procore ids that is linked here."""
        model = MODELS[entity]
        return db.session.execute(
            sa.select(ProcoreLink, model)
            .join(model, model.id == ProcoreLink.local_id)
            .where(
                ProcoreLink.company_id == self.company_id,
                ProcoreLink.entity_type == EntityType(entity),
                ProcoreLink.procore_id.in_(procore_ids),
                model.company_id == self.company_id,
            )
        ).all()

    def apply_payloads(self, entity: str, payloads: Iterable[dict]) -> set[int]:
        """Apply a page of Procore records to their linked records; the ids seen."""
        by_id = {}
        for payload in payloads:
            pid = mapping.procore_id(payload)
            if pid is not None:
                by_id[pid] = payload
        if not by_id or self.directions[entity] == SyncDirection.OFF:
            return set(by_id)
        for link, record in self._linked(entity, list(by_id)):
            self.decide(entity, link, record, by_id[link.procore_id])
        return set(by_id)

    def decide(self, entity: str, link: ProcoreLink, record, payload: dict) -> str:
        """Apply one Procore record to its linked record as direction and policy say."""
        direction = self.directions[entity]
        pv = procore_values(entity, payload)
        lv = local_values(entity, record)
        ph, lh = values_hash(pv), values_hash(lv)
        link.procore_updated_at = parse_procore_time(payload.get("updated_at"))
        if pv == lv:
            link.payload_hash = ph
            if link.sync_problem and not link.sync_problem.startswith(NOT_SENT):
                link.sync_problem = None
            self._close_conflicts(entity, link.local_id, "same")
            link.last_synced_at = self.now()
            self.tally.unchanged += 1
            return "unchanged"
        base = link.payload_hash or ""
        if not base.startswith(VALUES_PREFIX) and mapping.payload_hash(payload) == base:
            # Still the import's raw-payload hash and Procore is as imported: adopt its values
            # as the base, so a difference now is a local edit for the outbound pass.
            base = link.payload_hash = ph
        if base.startswith(VALUES_PREFIX):
            procore_changed, local_changed = ph != base, lh != base
        else:  # an old base we cannot compare locally: Procore changed since the import
            procore_changed, local_changed = True, False
        if not procore_changed:
            self.tally.unchanged += 1  # any difference is ours; the outbound pass sends it
            return "unchanged"
        both = local_changed and direction == SyncDirection.BOTH
        if both and self.policy == ConflictPolicy.HOLD:
            return self._hold(entity, link, record, lv, pv)
        if not direction.reads_procore:
            link.payload_hash = ph  # Crewclock owns it: the outbound pass overwrites Procore
            return "unchanged"
        return self._apply(entity, link, record, pv, ph)

    def _apply(self, entity: str, link: ProcoreLink, record, pv: dict, ph: str) -> str:
        old_email = record.email if entity == USER else None
        procore_email = pv.get("email")
        keep = entity == USER and self._keeps_email(record, pv)
        if keep:
            # The admin chose to keep Crewclock's login: take the rest of Procore's change,
            # keep our email; the base stays Procore's, so the outbound pass sends ours back.
            pv = {**pv, "email": local_values(USER, record)["email"]}
        problems = self.problems(entity, record, pv)
        label = mapping.display_name(entity, pv) or f"Procore #{link.procore_id}"
        if problems:
            reason = NOT_APPLIED + " ".join(problems)
            link.sync_problem = reason
            self._item(entity, link, label, "skipped", reason)
            self.tally.skipped += 1
            return "skipped"
        for key, value in pv.items():
            setattr(record, key, value)
        link.payload_hash = ph
        link.sync_problem = None
        link.last_synced_at = self.now()
        self._close_conflicts(entity, link.local_id, "procore")
        reason = None
        if entity == USER:
            reason = self._login_change(record, old_email, procore_email, keep)
        self._item(entity, link, label, "updated", reason)
        self.tally.updated += 1
        return "updated"

    def _keeps_email(self, record, pv: dict) -> bool:
        """Keep Crewclock's email: chosen by the admin, users sync both ways, and Procore's
        email differs from ours (ours is the person's login)."""
        if not (self.settings.keep_crewclock_email and self.directions[USER] == SyncDirection.BOTH):
            return False
        ours = local_values(USER, record)["email"]
        return bool(ours) and pv.get("email") != ours

    def _login_change(self, record, old_email, procore_email, kept: bool) -> str | None:
        """Record (and say) that a login email changed, or that Procore's change was refused."""
        from webapp.services import login_notices

        old = (old_email or "").lower() or None
        if kept:
            login_notices.record(record, old, procore_email, self.run.id, kept=True)
            return (
                f"Procore changed {record.name}'s email to {procore_email or 'none'}; "
                f"Crewclock kept {old} as their login and sent it back to Procore "
                "('Keep Crewclock's email' is on)."
            )
        new = (record.email or "").lower() or None
        if new == old:
            return None
        login_notices.record(record, old, new, self.run.id, kept=False)
        return (
            f"Login email changed by Procore: {record.name} now logs in with "
            f"{new or 'their username only'} instead of {old or 'no email'}. "
            "They see a notice on their pages."
        )

    def _hold(self, entity, link, record, lv, pv) -> str:
        existing = db.session.scalar(
            sa.select(SyncConflict).where(
                SyncConflict.company_id == self.company_id,
                SyncConflict.entity_type == entity,
                SyncConflict.local_id == link.local_id,
                SyncConflict.resolved_at.is_(None),
            )
        )
        label = mapping.display_name(entity, lv)
        if existing is None:
            db.session.add(
                SyncConflict(
                    company_id=self.company_id,
                    entity_type=entity,
                    local_id=link.local_id,
                    procore_id=link.procore_id,
                    label=label[:300],
                    local_values=lv,
                    procore_values=pv,
                )
            )
        else:
            existing.local_values, existing.procore_values = lv, pv
        link.sync_problem = HELD
        self._item(entity, link, label, "skipped", HELD)
        self.tally.held += 1
        self.tally.skipped += 1
        return "held"

    def _close_conflicts(self, entity: str, local_id: int, resolution: str) -> None:
        db.session.execute(
            sa.update(SyncConflict)
            .where(
                SyncConflict.company_id == self.company_id,
                SyncConflict.entity_type == entity,
                SyncConflict.local_id == local_id,
                SyncConflict.resolved_at.is_(None),
            )
            .values(resolved_at=self.now(), resolution=resolution)
        )

    def problems(self, entity: str, record, pv: dict) -> list[str]:
        """Why Procore's values cannot be applied to our record (empty when they can)."""
        check = dict(pv)
        if entity == USER:
            check["username"] = record.username
        found = list(mapping.field_problems(entity, check).values())
        if entity == USER:
            if pv["email"] and pv["email"] != (record.email or "").lower():
                taken = db.session.scalar(
                    sa.select(User.id).where(
                        sa.func.lower(User.email) == pv["email"], User.id != record.id
                    )
                )
                if taken:
                    found.append("Another Crewclock user already has this email.")
            if pv["employee_id"] and pv["employee_id"] != record.employee_id:
                taken = db.session.scalar(
                    sa.select(User.id).where(
                        User.company_id == self.company_id,
                        User.employee_id == pv["employee_id"],
                        User.id != record.id,
                    )
                )
                if taken:
                    found.append("Another user here already has this employee ID.")
            if not pv["active"] and self._last_admin(record):
                found.append("Deactivating them would leave the company without an admin.")
        if entity == COST_CODE and pv["code"] != record.code:
            taken = db.session.scalar(
                sa.select(CostCode.id).where(
                    CostCode.company_id == self.company_id,
                    CostCode.code == pv["code"],
                    CostCode.id != record.id,
                )
            )
            if taken:
                found.append("Another cost code here already uses this code.")
        return found

    def _last_admin(self, record) -> bool:
        if record.role != Role.ADMIN or not record.active:
            return False
        others = db.session.scalar(
            sa.select(sa.func.count(User.id)).where(
                User.company_id == self.company_id,
                User.role == Role.ADMIN,
                User.active.is_(True),
                User.id != record.id,
            )
        )
        return not others

    def mark_missing(self, entity: str, seen: set[int], only: set[int] | None = None) -> None:
        """Soft-delete linked records missing from a complete listing (or 404 by id).

        A listing that lacks a large share of the links at once (another Procore company
        chosen, a permission lost, a filter Procore changed) is far likelier a mistake than
        mass deletion: then nothing is deactivated, the run needs attention and an admin
        confirms on the Integrations card (see DELETE_GUARD_*).
        """
        if not self.directions[entity].reads_procore:
            return
        model = MODELS[entity]
        query = (
            sa.select(ProcoreLink, model)
            .join(model, model.id == ProcoreLink.local_id)
            .where(
                ProcoreLink.company_id == self.company_id,
                ProcoreLink.entity_type == EntityType(entity),
                model.company_id == self.company_id,
            )
        )
        if only is not None:
            query = query.where(ProcoreLink.procore_id.in_(list(only)))
        missing = [
            (link, rec) for link, rec in db.session.execute(query) if link.procore_id not in seen
        ]
        if only is None:
            total = _linked_count(self.company_id, entity)
            going = [(link, rec) for link, rec in missing if rec.active]
            if too_many_deletions(len(going), total):
                self._hold_deletions(entity, going, total)
                return
            _clear_held(self.company_id, entity)  # a complete listing supersedes an old hold
        for link, record in missing:
            self._deactivate(entity, link, record, "Deleted in Procore; kept here as inactive.")
        db.session.flush()

    def _deactivate(self, entity: str, link: ProcoreLink, record, reason: str) -> bool:
        if link.sync_problem != reason:
            link.sync_problem = reason
        if not record.active:
            return False
        if entity == USER and self._last_admin(record):
            link.sync_problem = "Deleted in Procore, but they are the last admin here."
            return False
        record.active = False
        link.payload_hash = values_hash(local_values(entity, record))
        link.last_synced_at = self.now()
        self._item(entity, link, _label(entity, record), "deleted", reason)
        self.tally.deleted += 1
        return True

    def _hold_deletions(self, entity: str, going: list, total: int) -> None:
        label = ENTITY_LABELS[entity]
        reason = (
            f"{len(going)} of {total} linked {label} are missing from Procore's listing. "
            f"Nothing was deactivated: that many at once usually means the wrong Procore "
            f"company or lost permissions, not deletions. Check Procore, then confirm on the "
            f"Integrations card to deactivate them."
        )
        state = state_for(self.company_id)
        held = dict(state.held_deletions or {})
        records = dict(held.get("records") or {})
        reasons = dict(held.get("reasons") or {})
        records[entity] = sorted(link.procore_id for link, _ in going)
        reasons[entity] = reason
        state.held_deletions = {"run_id": self.run.id, "records": records, "reasons": reasons}
        for link, record in going:
            self._item(
                entity,
                link,
                _label(entity, record),
                "skipped",
                "Missing from Procore's listing; not deactivated until an admin confirms.",
            )
        self.tally.attention.append(reason)
        log.warning(
            "alert action=sync.deletions_held company=%s entity=%s count=%s of=%s",
            self.company_id,
            entity,
            len(going),
            total,
        )

    # -- outbound ----------------------------------------------------------------------------
    def outbound(self) -> None:
        """Send our changed linked users, projects and cost codes to Procore's sync endpoints."""
        for entity in (USER, PROJECT, COST_CODE):
            if self.directions[entity].writes_procore:
                self._send(entity)

    def _changed_local(self, entity: str) -> list:
        model = MODELS[entity]
        rows = db.session.execute(
            sa.select(ProcoreLink, model)
            .join(model, model.id == ProcoreLink.local_id)
            .where(
                ProcoreLink.company_id == self.company_id,
                ProcoreLink.entity_type == EntityType(entity),
                model.company_id == self.company_id,
            )
            .order_by(ProcoreLink.id)
        ).all()
        changed = []
        for link, record in rows:
            if link.sync_problem and not link.sync_problem.startswith(NOT_SENT):
                continue  # held for review, or Procore's version is unusable / deleted
            if not (link.payload_hash or "").startswith(VALUES_PREFIX):
                continue  # no agreed base yet: the first full listing sets one
            lh = values_hash(local_values(entity, record))
            if lh != link.payload_hash:
                changed.append((link, record, lh))
        return changed

    def _sync_endpoint(self, entity: str):
        """The entity's sync action (updates -> Procore's reply); None if there is none."""
        if entity == USER:
            return functools.partial(self.api.sync_users, self.pc)
        if entity == PROJECT:
            return functools.partial(self.api.sync_projects, self.pc)
        if self.settings.standard_cost_code_list_id is None:
            return None
        return functools.partial(
            self.api.sync_standard_cost_codes, self.pc, self.settings.standard_cost_code_list_id
        )

    def _updates(self, entity: str, batch: list) -> tuple[list[dict], dict[int, str]]:
        """The sync action's elements for a batch, and {procore id: why not sendable}."""
        if entity == COST_CODE:
            return self._cost_code_updates(batch)
        return [{"id": link.procore_id, **to_procore(entity, rec)} for link, rec, _ in batch], {}

    def _cost_code_updates(self, batch: list) -> tuple[list[dict], dict[int, str]]:
        """Standard cost code elements, placed in Procore's division/code tree.

        The set-up import stores Procore's `full_code` as our code and links each code to its
        division (`parent_id`). Unlike create, the sync action takes `code` *including* the
        parent's prefix, so we send our code as it is with the division's Procore id;
        Procore's full code then equals ours and the echo is quiet. A code that does not start
        with its division's code is held back here with a plain reason (Procore would refuse it
        per item).
        """
        parent_ids = {rec.parent_id for _, rec, _ in batch if rec.parent_id is not None}
        parents: dict[int, tuple[str, int | None]] = {}
        if parent_ids:
            rows = db.session.execute(
                sa.select(CostCode.id, CostCode.code, ProcoreLink.procore_id)
                .outerjoin(
                    ProcoreLink,
                    sa.and_(
                        ProcoreLink.company_id == self.company_id,
                        ProcoreLink.entity_type == EntityType.COST_CODE,
                        ProcoreLink.local_id == CostCode.id,
                    ),
                )
                .where(CostCode.company_id == self.company_id, CostCode.id.in_(parent_ids))
            ).all()
            parents = {row.id: (row.code, row.procore_id) for row in rows}
        roots = [link.procore_id for link, rec, _ in batch if rec.parent_id is None]
        # Codes that sat under a division in Procore when the set-up listed them.
        under_division = set()
        if roots:
            under_division = set(
                db.session.scalars(
                    sa.select(ProcoreStagedRecord.procore_id).where(
                        ProcoreStagedRecord.company_id == self.company_id,
                        ProcoreStagedRecord.entity_type == COST_CODE,
                        ProcoreStagedRecord.procore_id.in_(roots),
                        ProcoreStagedRecord.parent_procore_id.is_not(None),
                    )
                )
            )
        updates: list[dict] = []
        refused: dict[int, str] = {}
        for link, record, _ in batch:
            values = local_values(COST_CODE, record)
            code = values["code"] or ""
            if record.parent_id is None:
                if link.procore_id in under_division:
                    refused[link.procore_id] = (
                        "In Procore it sits under a division; choose that division here first."
                    )
                    continue
                parent_pid = None
            else:
                division_code, parent_pid = parents.get(record.parent_id, ("", None))
                prefix = f"{division_code}-"
                if parent_pid is None:
                    refused[link.procore_id] = (
                        f"Its division {division_code} is not linked to Procore."
                    )
                    continue
                if not code.startswith(prefix) or len(code) == len(prefix):
                    refused[link.procore_id] = (
                        f"Its code must start with its division's code ({prefix}...), "
                        "as in Procore's cost code structure."
                    )
                    continue
            updates.append(
                {
                    "id": link.procore_id,
                    "code": code,
                    "name": values["name"],
                    "parent_id": parent_pid,
                }
            )
        return updates, refused

    def _patch_sync(self, send, updates: list[dict]) -> tuple[dict, dict]:
        """Send one sync call: ({procore id: entity}, {procore id: Procore's message}).

        A 413 (standard cost codes) halves the batch until Procore takes it.
        """
        from webapp.procore.errors import ProcoreError, body_message

        try:
            reply = send(updates)
        except ProcoreError as exc:
            if exc.status != 413:
                raise
            if len(updates) == 1:
                return {}, {updates[0]["id"]: "Procore refused it as too large (HTTP 413)."}
            half = len(updates) // 2
            ok_a, errors_a = self._patch_sync(send, updates[:half])
            ok_b, errors_b = self._patch_sync(send, updates[half:])
            return {**ok_a, **ok_b}, {**errors_a, **errors_b}
        reply = reply if isinstance(reply, dict) else {}
        ok = {}
        for item in reply.get("entities") or []:
            if isinstance(item, dict) and mapping.procore_id(item) is not None:
                ok[mapping.procore_id(item)] = item
        errors = {}
        for item in reply.get("errors") or []:
            if isinstance(item, dict):
                errors[mapping.procore_id(item)] = body_message(item) or "rejected"
        return ok, errors

    def _send(self, entity: str) -> None:
        endpoint = self._sync_endpoint(entity)
        changed = self._changed_local(entity) if endpoint else []
        if not changed:
            return
        self.run.stage = f"Sending {entity}s to Procore"
        for start in range(0, len(changed), SYNC_BATCH):
            batch = changed[start : start + SYNC_BATCH]
            updates, refused = self._updates(entity, batch)
            # Noted before the call: Procore may deliver the echo before it answers us.
            notes = remember_own_writes(self.company_id, entity, [u["id"] for u in updates])
            ok, errors = self._patch_sync(endpoint, updates) if updates else ({}, {})
            for procore_id, note in notes.items():
                if procore_id not in ok:
                    forget_own_write(self.company_id, entity, procore_id, note)
            for link, record, lh in batch:
                label = _label(entity, record)
                if link.procore_id in ok:
                    link.payload_hash = lh
                    link.procore_updated_at = parse_procore_time(
                        ok[link.procore_id].get("updated_at")
                    )
                    link.sync_problem = None
                    link.last_synced_at = self.now()
                    self._item(entity, link, label, "sent", None)
                    self.tally.sent += 1
                else:
                    why = refused.get(link.procore_id) or errors.get(
                        link.procore_id, "Procore did not confirm it."
                    )
                    reason = NOT_SENT + why
                    link.sync_problem = reason[:2000]
                    self._item(entity, link, label, "failed", reason)
                    self.tally.failed += 1
            db.session.commit()

    # -- items -------------------------------------------------------------------------------
    def _item(self, entity, link, label, outcome, reason) -> None:
        db.session.add(
            SyncRunItem(
                company_id=self.company_id,
                run_id=self.run.id,
                entity_type=entity,
                procore_id=link.procore_id,
                local_id=link.local_id,
                label=(label or "")[:300],
                outcome=outcome,
                reason=reason,
            )
        )


def _label(entity: str, record) -> str:
    if entity == USER:
        return record.name
    if entity == PROJECT:
        return f"{record.number} {record.name}" if record.number else record.name
    return record.label


# ==================================================================== conflicts (admin)
def open_conflicts(company_id: int, limit: int = 200) -> list[SyncConflict]:
    return list(
        db.session.scalars(
            sa.select(SyncConflict)
            .where(SyncConflict.company_id == company_id, SyncConflict.resolved_at.is_(None))
            .order_by(SyncConflict.id)
            .limit(limit)
        )
    )


def resolve_conflict(company_id: int, conflict_id: int, keep: str, user_id: int | None) -> bool:
    """Keep Procore's or Crewclock's values for a held record; False if not found/open."""
    conflict = db.session.get(SyncConflict, conflict_id)
    if conflict is None or conflict.company_id != company_id or conflict.resolved_at:
        return False
    if keep not in ("procore", "crewclock"):
        return False
    entity = conflict.entity_type
    record = db.session.get(MODELS[entity], conflict.local_id)
    link = db.session.scalar(
        sa.select(ProcoreLink).where(
            ProcoreLink.company_id == company_id,
            ProcoreLink.entity_type == EntityType(entity),
            ProcoreLink.local_id == conflict.local_id,
        )
    )
    conflict.resolved_at, conflict.resolution, conflict.resolved_by_id = utcnow(), keep, user_id
    if record is None or link is None:
        db.session.flush()
        return True
    link.sync_problem = None
    if keep == "procore":
        for key, value in conflict.procore_values.items():
            setattr(record, key, value)
        link.payload_hash = values_hash(local_values(entity, record))
    else:
        # The base becomes Procore's version, so the next outbound pass sends ours.
        link.payload_hash = values_hash(conflict.procore_values)
    db.session.flush()
    log.info(
        "audit action=sync.conflict_resolved company=%s conflict=%s keep=%s user=%s",
        company_id,
        conflict_id,
        keep,
        user_id,
    )
    return True


def set_conflict_policy(company_id: int, policy: str) -> bool:
    try:
        value = ConflictPolicy(policy)
    except ValueError:
        return False
    state_for(company_id).conflict_policy = value
    db.session.flush()
    return True


def webhook_url() -> str | None:
    """Where Procore should POST events (see webapp.public_url)."""
    from webapp.public_url import public_base_url

    base = public_base_url()
    return None if base is None else f"{base}/webhooks/procore"


def run_record(run: SyncRun, tally: Tally) -> None:
    """Copy a finished run's counts onto its row."""
    run.updated = tally.updated + tally.sent
    run.unchanged = tally.unchanged
    run.skipped = tally.skipped
    run.failed = tally.failed
    run.deleted = tally.deleted
    run.checkpoint = {
        **(run.checkpoint or {}),
        "sent": tally.sent,
        "received": tally.updated,
        "held": tally.held,
    }
    run.status = RunStatus.PARTIAL if tally.failed else RunStatus.SUCCEEDED
    if tally.attention:
        run.status = RunStatus.PARTIAL
        run.error = " ".join(tally.attention)[:2000]


# ==================================================================== held deactivations
def too_many_deletions(count: int, total: int) -> bool:
    """More than DELETE_GUARD_MIN records and more than DELETE_GUARD_SHARE of the links."""
    return count > DELETE_GUARD_MIN and count > DELETE_GUARD_SHARE * total


def _linked_count(company_id: int, entity: str) -> int:
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(ProcoreLink)
        .where(ProcoreLink.company_id == company_id, ProcoreLink.entity_type == EntityType(entity))
    )


def _clear_held(company_id: int, entity: str) -> None:
    state = db.session.get(SyncState, company_id)
    if state is None or not state.held_deletions:
        return
    held = dict(state.held_deletions)
    records = {k: v for k, v in (held.get("records") or {}).items() if k != entity}
    reasons = {k: v for k, v in (held.get("reasons") or {}).items() if k != entity}
    state.held_deletions = {**held, "records": records, "reasons": reasons} if records else None


def held_deletions(company_id: int) -> dict | None:
    """The deactivations waiting for an admin's confirmation, or None."""
    state = db.session.get(SyncState, company_id)
    held = state.held_deletions if state is not None else None
    return held if held and held.get("records") else None


def confirm_held_deletions(company_id: int, run_id: int, user_id: int | None) -> int | None:
    """Apply the held deactivations an admin confirmed; None when that hold is not current.

    Recorded on the run that held them. A record Procore lists again later is reactivated
    by the next sync as usual.
    """
    held = held_deletions(company_id)
    if held is None or held.get("run_id") != run_id:
        return None
    run = db.session.get(SyncRun, run_id)
    if run is None or run.company_id != company_id:
        return None
    syncer = Syncer.__new__(Syncer)  # no Procore call: only the bookkeeping of a run
    syncer.company_id, syncer.run, syncer.now, syncer.tally = company_id, run, utcnow, Tally()
    reason = "Deleted in Procore; kept here as inactive (deactivation confirmed by an admin)."
    for entity, procore_ids in held["records"].items():
        if entity not in MODELS:
            continue
        model = MODELS[entity]
        rows = db.session.execute(
            sa.select(ProcoreLink, model)
            .join(model, model.id == ProcoreLink.local_id)
            .where(
                ProcoreLink.company_id == company_id,
                ProcoreLink.entity_type == EntityType(entity),
                ProcoreLink.procore_id.in_(list(procore_ids)),
                model.company_id == company_id,
            )
        ).all()
        for link, record in rows:
            syncer._deactivate(entity, link, record, reason)
    run.deleted = (run.deleted or 0) + syncer.tally.deleted
    state_for(company_id).held_deletions = None
    db.session.flush()
    log.info(
        "audit action=sync.deletions_confirmed company=%s run=%s count=%s user=%s",
        company_id,
        run_id,
        syncer.tally.deleted,
        user_id,
    )
    return syncer.tally.deleted
