"""Running syncs: one run per (company, kind) at a time, the scheduler tick, webhook events,
hook registration, and pausing after repeated failures."""

from __future__ import annotations

import hmac
import logging
import re
import time
from datetime import datetime

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.inputs import parse_int
from webapp.models import (
    ConnectionStatus,
    EntityType,
    IntegrationSettings,
    ProcoreConnection,
    ProcoreLink,
    RunStatus,
    SyncRun,
    SyncRunItem,
)
from webapp.models.base import utcnow
from webapp.models.sync import ProcoreWebhookEvent, SyncState
from webapp.procore.api import ProcoreAPI
from webapp.procore.errors import ProcoreError, ProcoreValidationError, body_message
from webapp.procore.mapping import COST_CODE, PROJECT, USER
from webapp.redis_runtime import get_redis
from webapp.runs import service
from webapp.runs.runner import Kind, RunContext, RunRunner, register
from webapp.services import push, sync
from webapp.services.sync import FULL_KIND, SYNC_KIND, SYNC_KINDS, WEBHOOK_KIND

log = logging.getLogger(__name__)

RESOURCES = {"Company Users": USER, "Projects": PROJECT, "Standard Cost Codes": COST_CODE}
EVENT_TYPES = ("create", "update", "delete")
HOOK_NAMESPACE = "crewclock"
HOOK_ITEM = "webhook"  # SyncRunItem.entity_type of what registration could not subscribe
MAX_EVENTS_PER_RUN = 5000


# ==================================================================== starting runs
active_run = service.active


def company_run(company_id: int, run_id: int, kind: str) -> SyncRun | None:
    """A run of this company and kind, or None (another company's, or another kind of run)."""
    return service.get(company_id, run_id, kind)


def start_sync(
    company_id: int, kind: str = SYNC_KIND, trigger: str = "manual", user_id: int | None = None
) -> tuple[SyncRun | None, bool]:
    """(run, created): queue a run of `kind`, or return the one already queued/running."""
    if kind not in sync.SYNC_KINDS:
        raise ValueError(kind)
    try:
        return service.start(company_id, kind, trigger=trigger, started_by_id=user_id)
    except service.StartBusy:  # two clicks at once: the other one is starting it
        return active_run(company_id, kind), False


def execute_run(company_id: int, run_id: int, client=None) -> SyncRun | None:
    """Run one sync run now (the job does the same through RunRunner)."""
    ctx = RunRunner().handle(run_id, company_id=company_id, client=client)
    return None if ctx is None else ctx.run


def _pending_events(company_id: int) -> bool:
    return bool(
        db.session.scalar(
            sa.select(ProcoreWebhookEvent.id)
            .where(
                ProcoreWebhookEvent.company_id == company_id,
                ProcoreWebhookEvent.processed_at.is_(None),
            )
            .limit(1)
        )
    )


@register
class SyncRunKind(Kind):
    """Incremental, full reconciliation and webhook runs; repeated failures pause syncing."""

    kinds = SYNC_KINDS

    def needs_admin(self, exc: Exception) -> bool:
        # A retry cannot help; the banner says why.
        return super().needs_admin(exc) or isinstance(exc, sync.SyncRefused)

    def run(self, ctx: RunContext) -> None:
        run, company_id, client = ctx.run, ctx.company_id, ctx.client
        syncer = sync.Syncer(company_id, client, run)
        ensure_webhook(company_id, client, run)
        if run.kind == FULL_KIND:
            syncer.full()
        elif run.kind == WEBHOOK_KIND:
            process_events(syncer, ctx.lease)
            syncer.outbound()
        else:
            syncer.incremental()
        sync.run_record(run, syncer.tally)
        state = sync.state_for(company_id)
        state.consecutive_failures = 0
        state.last_success_at = utcnow()

    def failed(self, ctx: RunContext, exc: Exception) -> None:
        run = ctx.run
        state = sync.state_for(run.company_id)
        state.last_failure_at = run.finished_at
        if not ctx.was_failed:  # an RQ retry of the same run is not another failure in a row
            state.consecutive_failures = (state.consecutive_failures or 0) + 1
        if state.consecutive_failures >= sync.PAUSE_AFTER_FAILURES and state.paused_at is None:
            state.paused_at = utcnow()
            state.pause_reason = (
                f"{state.consecutive_failures} sync runs failed in a row. Last error: {run.error}"
            )[:2000]
            log.warning(
                "alert action=sync.paused company=%s failures=%s",
                run.company_id,
                state.consecutive_failures,
            )

    def after(self, ctx: RunContext) -> None:
        run = ctx.run
        if (
            run.kind == WEBHOOK_KIND
            and run.status != RunStatus.FAILED
            and _pending_events(run.company_id)
        ):
            enqueue_webhook_run(run.company_id)  # events that arrived while we were finishing


def resume(company_id: int) -> None:
    """Lift an automatic pause (the admin fixed the cause)."""
    state = sync.state_for(company_id)
    state.paused_at, state.pause_reason, state.consecutive_failures = None, None, 0
    db.session.flush()


# ==================================================================== the scheduler
def companies_to_sync() -> list[int]:
    """Companies with an active connection, finished set-up, sync on and not paused."""
    rows = db.session.execute(
        sa.select(IntegrationSettings, SyncState.paused_at)
        .join(ProcoreConnection, ProcoreConnection.company_id == IntegrationSettings.company_id)
        .outerjoin(SyncState, SyncState.company_id == IntegrationSettings.company_id)
        .where(ProcoreConnection.status == ConnectionStatus.ACTIVE)
    ).all()
    return [s.company_id for s, paused in rows if paused is None and sync.sync_enabled(s)]


def tick(now: datetime | None = None, company_ids: list[int] | None = None) -> list[str]:
    """One scheduler tick: start each due periodic run once per time bucket (any number of
    schedulers may tick; a Redis SET NX on the bucket lets exactly one enqueue)."""
    now = now or utcnow()
    config = current_app.config
    periods = {
        SYNC_KIND: int(config.get("SYNC_INTERVAL_SECONDS", 900)),
        FULL_KIND: int(config.get("SYNC_FULL_INTERVAL_SECONDS", 24 * 3600)),
    }
    redis = get_redis()
    started = []
    for company_id in companies_to_sync() if company_ids is None else company_ids:
        for kind, period in periods.items():
            bucket = int(now.timestamp()) // period
            key = f"crewclock:sync:tick:{company_id}:{kind}:{bucket}"
            if not redis.set(key, "1", nx=True, ex=period * 2):
                continue  # another scheduler (or an earlier tick) took this bucket
            run, created = start_sync(company_id, kind, trigger="schedule")
            if created:
                started.append(f"{company_id}:{kind}:{bucket}")
    return started


def scheduler_loop(every: float = 30.0, stop=None) -> None:
    """`flask sync-scheduler`: tick forever (safe to run on several machines)."""
    while stop is None or not stop():
        try:
            for started in tick():
                log.info("sync scheduled %s", started)
            # Safety net for time card pushes whose enqueue was lost (Redis down at commit).
            push.enqueue_all_due()
        except Exception:  # keep ticking through a Redis/DB blip
            db.session.rollback()
            log.exception("sync scheduler tick failed")
        db.session.remove()
        time.sleep(every)


# ==================================================================== webhooks
class BadEvent(ValueError):
    """The webhook body is not a Procore event we understand."""


class IgnoredEvent(ValueError):
    """A well-formed event Crewclock has no use for: answered 2xx (so Procore neither retries
    nor pauses the endpoint) and not stored, since nothing would ever process it."""


# Event ids are only part of the dedupe key (never stored as numbers): any unsigned 64 bits.
MAX_EVENT_ID = 2**64 - 1
ULID_CHARS = re.compile(r"[0-9A-Za-z]{1,40}")


def _text(value, limit: int) -> str | None:
    """A string field as stored: no NUL bytes (PostgreSQL refuses them), at most `limit`."""
    if value is None:
        return None
    return str(value).replace("\x00", "")[:limit] or None


def check_secret(header: str | None) -> bool:
    """The Authorization header equals WEBHOOK_SECRET (constant time; empty secret = never)."""
    secret = current_app.config.get("WEBHOOK_SECRET") or ""
    if not secret or header is None:
        return False
    return hmac.compare_digest(header.encode(), secret.encode())


def receive_event(body) -> tuple[ProcoreWebhookEvent | None, bool]:
    """Store one event once; (event, new). BadEvent when the body is not an event,
    IgnoredEvent when it is one for no connected company or of a kind we do not sync."""
    if not isinstance(body, dict):
        raise BadEvent("body must be a JSON object")
    event_type = body.get("event_type") or body.get("reason")
    resource_name = body.get("resource_name") or body.get("resource_type")
    if not isinstance(event_type, str) or not isinstance(resource_name, str):
        raise BadEvent("event_type and resource_name are required")
    # A webhook body is untrusted request input, so its ids go through the strict request
    # parser (ASCII digits within range), not the lenient Procore payload reader. Ids are
    # JSON numbers, or strings in v4.0 payloads; parse_int takes both.
    resource_id = parse_int(body.get("resource_id"))
    raw_id = body.get("id")
    ulid = body.get("ulid") if isinstance(body.get("ulid"), str) else None
    event_id = parse_int(raw_id, maximum=MAX_EVENT_ID)
    if ulid is None and isinstance(raw_id, str) and len(raw_id) == 26:
        ulid = raw_id  # v4.0 payloads: the id is the ULID
    if resource_id is None or (ulid is None and event_id is None):
        raise BadEvent("resource_id and an event id are required (whole numbers within 64 bits)")
    if ulid is not None and not ULID_CHARS.fullmatch(ulid):
        raise BadEvent("ulid must be up to 40 letters and digits")
    procore_company = parse_int(body.get("company_id"))
    if body.get("company_id") is not None and procore_company is None:
        raise BadEvent("company_id must be a whole number within 64 bits")
    company_id = None
    if procore_company is not None:
        company_id = db.session.scalar(
            sa.select(ProcoreConnection.company_id)
            .where(ProcoreConnection.procore_company_id == procore_company)
            .order_by(ProcoreConnection.company_id)
            .limit(1)
        )
    if company_id is None:
        raise IgnoredEvent("no connected company")
    if event_type not in EVENT_TYPES:
        # v4.0's `reason` may name more than create/update/delete.
        raise IgnoredEvent(f"event type {event_type[:20]!r} is not synced")
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    event = ProcoreWebhookEvent(
        company_id=company_id,
        dedupe_key=f"ulid:{ulid}" if ulid else f"id:{event_id}",
        procore_company_id=procore_company,
        resource_name=_text(resource_name, 80) or "",
        resource_id=resource_id,
        event_type=event_type,
        source_application_id=_text(metadata.get("source_application_id"), 120),
        event_timestamp=_text(body.get("timestamp"), 40),
    )
    db.session.add(event)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return None, False
    return event, True


def enqueue_webhook_run(company_id: int) -> SyncRun | None:
    """Queue a webhook run for the company unless one is already waiting."""
    settings = sync.saved_settings(company_id)
    if not sync.sync_enabled(settings) or sync.state_for(company_id).paused_at is not None:
        db.session.commit()
        return None
    run, _ = start_sync(company_id, WEBHOOK_KIND, trigger="webhook")
    return run


def process_events(syncer: sync.Syncer, lease) -> None:
    """Apply the company's pending webhook events: our own echoes and unlinked records are
    marked done without a call; every other record is fetched once by id (its current
    state, so duplicates, reordering and update-after-delete all end right)."""
    company_id = syncer.company_id
    client_id = current_app.config.get("PROCORE_CLIENT_ID")
    names_apps = _procore_names_apps(company_id, client_id)
    while True:
        events = list(
            db.session.scalars(
                sa.select(ProcoreWebhookEvent)
                .where(
                    ProcoreWebhookEvent.company_id == company_id,
                    ProcoreWebhookEvent.processed_at.is_(None),
                )
                .order_by(ProcoreWebhookEvent.id)
                .limit(MAX_EVENTS_PER_RUN)
            )
        )
        if not events:
            return
        now = utcnow()
        wanted: dict[tuple[str, int], list] = {}
        for event in events:
            entity = RESOURCES.get(event.resource_name)
            if entity is None:
                event.outcome = "ignored: not a synced resource"
            elif _own_change(company_id, entity, event, client_id, names_apps):
                event.outcome = "ignored: our own change"
            else:
                wanted.setdefault((entity, event.resource_id), []).append(event)
                continue  # processed once its record is fetched (below)
            event.processed_at = now
        linked = set()
        for entity in {e for e, _ in wanted}:
            ids = [pid for e, pid in wanted if e == entity]
            rows = db.session.scalars(
                sa.select(ProcoreLink.procore_id).where(
                    ProcoreLink.company_id == company_id,
                    ProcoreLink.entity_type == EntityType(entity),
                    ProcoreLink.procore_id.in_(ids),
                )
            )
            linked |= {(entity, pid) for pid in rows}
        # Commit per record: no write transaction stays open across a Procore call (a token
        # refresh commits in its own session; on SQLite it would wait on ours), and a worker
        # killed mid-batch leaves only unfetched events pending.
        db.session.commit()
        for key, group in wanted.items():
            entity, procore_id = key
            if key not in linked or not syncer.directions[entity].reads_procore:
                outcome = "ignored: not linked or not synced from Procore"
            else:
                outcome = syncer.fetch_one(entity, procore_id)
                lease.renew()
            for event in group:
                event.outcome = outcome
                event.processed_at = now
            db.session.commit()
        syncer.run.done += len(events)
        db.session.commit()


def _offered_events(entry: dict) -> set[str]:
    """The event types one entry of Procore's webhook resources list may be subscribed to."""
    excluded = entry.get("except")
    if isinstance(excluded, str):
        excluded = [excluded]
    if isinstance(excluded, list):
        gone = {str(event).strip().lower() for event in excluded}
        return {event for event in EVENT_TYPES if event not in gone}
    # Without `except`, an event field that is present but empty means "not offered".
    return {
        event
        for event in EVENT_TYPES
        if event not in entry or entry[event] not in (None, "", False)
    }


def offered_triggers(listed) -> dict[str, set[str]]:
    """{resource name: event types} from Procore's webhook resources list for one scope.

    Procore's description of the list names no field for the resource itself; `name` or
    `resource_name` is used when present, else `tools`.
    """
    rows = listed.get("data") if isinstance(listed, dict) else listed
    offered: dict[str, set[str]] = {}
    for entry in rows if isinstance(rows, list) else []:
        if not isinstance(entry, dict):
            continue
        name = entry.get("name") or entry.get("resource_name") or entry.get("tools")
        if isinstance(name, str) and name.strip():
            offered.setdefault(name.strip(), set()).update(_offered_events(entry))
    return offered


def _hook_item(run: SyncRun | None, company_id: int, resource: str, event: str, why: str):
    if run is not None:
        db.session.add(
            SyncRunItem(
                company_id=company_id,
                run_id=run.id,
                entity_type=HOOK_ITEM,
                label=f"Webhook trigger: {resource} {event}",
                outcome="skipped",
                reason=why,
            )
        )


def _procore_names_apps(company_id: int, client_id) -> bool:
    """Whether Procore has ever named us as the writing app in this company's events."""
    if not client_id:
        return False
    return (
        db.session.scalar(
            sa.select(ProcoreWebhookEvent.id)
            .where(
                ProcoreWebhookEvent.company_id == company_id,
                ProcoreWebhookEvent.source_application_id == client_id,
            )
            .limit(1)
        )
        is not None
    )


def _own_change(
    company_id: int, entity: str, event: ProcoreWebhookEvent, client_id, names_apps: bool
) -> bool:
    """Whether an event reports a write we made: named as ours by Procore, or (Procore may
    leave the writing app out) an update matching a write we noted moments ago."""
    source = event.source_application_id
    ours = bool(client_id) and source == client_id
    if source is not None and not ours:
        return False  # another app's change
    if source is None and names_apps:
        return False  # Procore names us on our writes here: an unnamed change is someone else's
    if event.event_type != "update":
        return ours  # a sync only ever updates records
    # Claimed even when Procore names us, so the note is used up by its own echo.
    claimed = sync.claim_own_echo(company_id, entity, event.resource_id, event.event_timestamp)
    return ours or claimed


def ensure_webhook(company_id: int, client, run: SyncRun | None = None) -> None:
    """Register our hook on the connection's Procore company once, with a trigger for each
    synced resource and event Procore offers to company hooks. What Procore does not offer,
    or refuses, is written on the run's items (and the refusals on the sync panel); the
    regular and full syncs find those changes instead."""
    state = sync.state_for(company_id)
    settings = sync.saved_settings(company_id)
    url = sync.webhook_url()
    secret = current_app.config.get("WEBHOOK_SECRET")
    if not (settings and settings.procore_company_id and url and secret):
        return
    if not any(d.reads_procore for d in sync.directions(settings).values()):
        return
    pc = settings.procore_company_id
    if state.hook_id is not None and state.hook_procore_company_id == pc:
        return
    db.session.commit()  # nothing uncommitted while Procore is called
    try:
        api = ProcoreAPI(client)
        offered = offered_triggers(api.webhook_resources(pc))
        hooks = api.webhook_hooks(pc, HOOK_NAMESPACE)
        hook = next(
            (h for h in hooks or [] if isinstance(h, dict) and h.get("destination_url") == url),
            None,
        )
        body = {
            "api_version": "v2.0",
            "namespace": HOOK_NAMESPACE,
            "destination_url": url,
            "destination_headers": {"Authorization": secret},
        }
        if hook is None:
            hook = api.create_webhook_hook(pc, body)
        else:  # make sure Procore sends the current secret
            api.update_webhook_hook(pc, hook["id"], body)
        existing = api.webhook_triggers(pc, hook["id"])
        have = {
            (t.get("resource_name"), t.get("event_type"))
            for t in existing or []
            if isinstance(t, dict)
        }
        refused = []
        for resource in RESOURCES:
            for event_type in EVENT_TYPES:
                if (resource, event_type) in have:
                    continue
                if event_type not in offered.get(resource, ()):
                    found_by = "full reconciliation" if event_type == "delete" else "regular sync"
                    _hook_item(
                        run,
                        company_id,
                        resource,
                        event_type,
                        f"Procore offers no {resource} {event_type} webhook to company hooks; "
                        f"the {found_by} finds these changes instead.",
                    )
                    continue
                try:
                    api.create_webhook_trigger(
                        pc,
                        hook["id"],
                        {"resource_name": resource, "event_type": event_type},
                        api_version="v2.0",
                    )
                except ProcoreValidationError as exc:
                    # Procore refused this one trigger: keep subscribing the others.
                    said = body_message(exc.body) or str(exc)
                    refused.append(f"{resource} {event_type} ({said})")
                    _hook_item(
                        run,
                        company_id,
                        resource,
                        event_type,
                        f"Procore refused the webhook trigger: {said}",
                    )
        state.hook_id, state.hook_procore_company_id = hook["id"], pc
        state.hook_error = (
            ("Procore refused these triggers: " + "; ".join(refused))[:2000] if refused else None
        )
    except ProcoreError as exc:
        # Webhooks only speed things up; polling keeps working without them.
        state.hook_error = str(exc)[:2000]
        log.warning("webhook registration failed company=%s: %s", company_id, exc)
    db.session.commit()
