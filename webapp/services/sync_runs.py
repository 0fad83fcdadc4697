"""Running syncs: one run per (company, kind) at a time, the scheduler tick, webhook events,
hook registration, and pausing after repeated failures."""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from webapp import redis_runtime
from webapp.extensions import db
from webapp.inputs import MAX_ID, parse_int
from webapp.models import (
    ConnectionStatus,
    IntegrationSettings,
    ProcoreConnection,
    ProcoreLink,
    RunStatus,
    SyncRun,
    SyncRunItem,
)
from webapp.models.base import utcnow
from webapp.models.sync import ProcoreWebhookEvent
from webapp.procore.api import ProcoreAPI
from webapp.procore.mapping import COST_CODE, PROJECT, USER
from webapp.services import sync
from webapp.services.sync import FULL_KIND, SYNC_KIND, WEBHOOK_KIND

log = logging.getLogger(__name__)

LEASE_SECONDS = 15 * 60
STALE_AFTER = timedelta(minutes=45)  # a queued/running run older than this with no lease
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
RESOURCES = {"Company Users": USER, "Projects": PROJECT, "Standard Cost Codes": COST_CODE}
EVENT_TYPES = ("create", "update", "delete")
HOOK_NAMESPACE = "crewclock"
HOOK_ITEM = "webhook"  # SyncRunItem.entity_type of what registration could not subscribe
MAX_EVENTS_PER_RUN = 5000


def _redis():
    from webapp.redis_runtime import get_redis

    return get_redis()


class Lease(redis_runtime.Lease):
    """One run per (company, kind) across all workers."""

    def __init__(self, redis, key: str, ttl: int = LEASE_SECONDS) -> None:
        super().__init__(redis, key, ttl)


def lease_key(company_id: int, kind: str) -> str:
    return f"crewclock:sync:lease:{company_id}:{kind}"


# ==================================================================== starting runs
def active_run(company_id: int, kind: str) -> SyncRun | None:
    return db.session.scalar(
        sa.select(SyncRun)
        .where(
            SyncRun.company_id == company_id,
            SyncRun.kind == kind,
            SyncRun.status.in_(ACTIVE),
        )
        .order_by(SyncRun.id.desc())
        .limit(1)
    )


def company_run(company_id: int, run_id: int, kind: str) -> SyncRun | None:
    """A run of this company and kind, or None (another company's, or another kind of run)."""
    run = db.session.get(SyncRun, run_id)
    if run is None or run.company_id != company_id or run.kind != kind:
        return None
    return run


def _abandon_if_stale(run: SyncRun, redis) -> bool:
    """Fail a run whose worker died long ago (no lease, old); True when it was abandoned."""
    if redis.exists(lease_key(run.company_id, run.kind)):
        return False
    if run.created_at > utcnow() - STALE_AFTER:
        return False
    run.status, run.finished_at = RunStatus.FAILED, utcnow()
    run.error = "Abandoned: the worker running it stopped."
    db.session.commit()
    return True


def start_sync(
    company_id: int, kind: str = SYNC_KIND, trigger: str = "manual", user_id: int | None = None
) -> tuple[SyncRun | None, bool]:
    """(run, created): queue a run of `kind`, or return the one already queued/running."""
    from webapp import jobs

    if kind not in sync.SYNC_KINDS:
        raise ValueError(kind)
    redis = _redis()
    guard = f"crewclock:sync:start:{company_id}:{kind}"
    token = secrets.token_hex(8)
    for _ in range(50):  # two clicks at once: the second waits for the first to commit
        if redis.set(guard, token, nx=True, ex=10):
            break
        time.sleep(0.02)
    else:
        return active_run(company_id, kind), False
    try:
        existing = active_run(company_id, kind)
        if existing is not None and not _abandon_if_stale(existing, redis):
            return existing, False
        run = SyncRun(
            company_id=company_id,
            kind=kind,
            trigger=trigger,
            status=RunStatus.QUEUED,
            started_by_id=user_id,
            checkpoint={},
            stage="Waiting for a worker",
        )
        db.session.add(run)
        db.session.commit()  # commit before enqueue: the job must find its row
        from webapp.redis_runtime import get_queue

        get_queue("sync").enqueue(
            jobs.run_sync,
            company_id,
            run.id,
            job_id=f"sync-run-{run.id}",
            job_timeout=jobs.JOB_TIMEOUT,
            retry=jobs.JOB_RETRY,
            result_ttl=jobs.RESULT_TTL,
            failure_ttl=jobs.FAILURE_TTL,
        )
        return run, True
    finally:
        redis.eval(redis_runtime.RELEASE_IF_OWNER, 1, guard, token)


def _client_for(company_id: int, stats):
    from webapp.services.connections import procore_client_for

    return procore_client_for(company_id, stats=stats)


def execute_run(company_id: int, run_id: int, client=None) -> SyncRun | None:
    """The job body: hold the (company, kind) lease, sync, record counts or the failure."""
    run = db.session.get(SyncRun, run_id)
    if run is None or run.company_id != company_id:
        return None
    if run.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
        return run  # RQ ran it twice: the first finished it
    lease = Lease(_redis(), lease_key(company_id, run.kind))
    if not lease.acquire():
        # Another run of this kind is still working: let RQ retry this one later.
        raise LeaseBusy(f"another {run.kind} run is in progress for company {company_id}")
    kind = run.kind
    try:
        result = _execute(run, lease, client)
    finally:
        lease.release()
    if kind == WEBHOOK_KIND and result.status != RunStatus.FAILED and _pending_events(company_id):
        enqueue_webhook_run(company_id)  # events that arrived while we were finishing
    return result


class LeaseBusy(RuntimeError):
    """The (company, kind) lease is held by another run."""


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


def _execute(run: SyncRun, lease: Lease, client) -> SyncRun:
    from webapp.procore.client import CallStats
    from webapp.procore.errors import NeedsReauth, ProcoreAuthError

    company_id, run_id = run.company_id, run.id
    was_failed = run.status == RunStatus.FAILED
    stats = None
    try:
        run.status, run.error = RunStatus.RUNNING, None
        run.started_at = utcnow()
        run.finished_at = None
        db.session.commit()
        if client is None:
            stats = CallStats()
            client = _client_for(company_id, stats)
        else:
            stats = getattr(client, "stats", None)
        calls_before = stats.calls if stats is not None else 0
        limited_before = stats.rate_limited if stats is not None else 0
        syncer = sync.Syncer(company_id, client, run)
        ensure_webhook(company_id, client, run)
        if run.kind == FULL_KIND:
            syncer.full()
        elif run.kind == WEBHOOK_KIND:
            process_events(syncer, lease)
            syncer.outbound()
        else:
            syncer.incremental()
        sync.run_record(run, syncer.tally, None)
        if stats is not None:
            run.api_calls = stats.calls - calls_before
            run.http_429 = stats.rate_limited - limited_before
        run.finished_at, run.stage = utcnow(), None
        state = sync.state_for(company_id)
        state.consecutive_failures = 0
        state.last_success_at = run.finished_at
        db.session.commit()
        return run
    except Exception as exc:
        db.session.rollback()
        _record_failure(run_id, exc, was_failed, stats)
        if isinstance(exc, (NeedsReauth, ProcoreAuthError, sync.SyncRefused)):
            return db.session.get(SyncRun, run_id)  # a retry cannot help; the banner says why
        raise


def _record_failure(run_id: int, exc: Exception, was_failed: bool, stats) -> None:
    run = db.session.get(SyncRun, run_id)
    run.status, run.finished_at = RunStatus.FAILED, utcnow()
    run.error = f"{type(exc).__name__}: {exc}"[:2000]
    if stats is not None:
        run.api_calls, run.http_429 = stats.calls, stats.rate_limited
    state = sync.state_for(run.company_id)
    state.last_failure_at = run.finished_at
    if not was_failed:  # an RQ retry of the same run is not another failure in a row
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
    db.session.commit()


def resume(company_id: int) -> None:
    """Lift an automatic pause (the admin fixed the cause)."""
    state = sync.state_for(company_id)
    state.paused_at, state.pause_reason, state.consecutive_failures = None, None, 0
    db.session.flush()


# ==================================================================== the scheduler
def companies_to_sync() -> list[int]:
    """Companies with an active connection, finished set-up, sync on and not paused."""
    from webapp.models.sync import SyncState

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
    redis = _redis()
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
            from webapp.services.push import enqueue_all_due

            enqueue_all_due()
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


def _int(value, maximum: int = MAX_ID) -> int | None:
    """An id from the event (a JSON number, or a string in v4.0 payloads) within range."""
    return parse_int(value, maximum=maximum)


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
    resource_id = _int(body.get("resource_id"))
    raw_id = body.get("id")
    ulid = body.get("ulid") if isinstance(body.get("ulid"), str) else None
    event_id = _int(raw_id, maximum=MAX_EVENT_ID)
    if ulid is None and isinstance(raw_id, str) and len(raw_id) == 26:
        ulid = raw_id  # v4.0 payloads: the id is the ULID
    if resource_id is None or (ulid is None and event_id is None):
        raise BadEvent("resource_id and an event id are required (whole numbers within 64 bits)")
    if ulid is not None and not ULID_CHARS.fullmatch(ulid):
        raise BadEvent("ulid must be up to 40 letters and digits")
    procore_company = _int(body.get("company_id"))
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
    settings = sync.settings_for(company_id)
    if not sync.sync_enabled(settings) or sync.state_for(company_id).paused_at is not None:
        db.session.commit()
        return None
    run, _ = start_sync(company_id, WEBHOOK_KIND, trigger="webhook")
    return run


def process_events(syncer: sync.Syncer, lease: Lease) -> None:
    """Apply the company's pending webhook events: our own echoes and unlinked records are
    marked done without a call; every other record is fetched once by id (its current
    state, so duplicates, reordering and update-after-delete all end right)."""
    from webapp.models import EntityType

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
    from webapp.procore.errors import ProcoreError, ProcoreValidationError, body_message

    state = sync.state_for(company_id)
    settings = sync.settings_for(company_id)
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
