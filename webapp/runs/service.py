"""Starting runs and finding them: one guard, commit, then enqueue `run-<id>`.

Five clicks at once make one run, whatever the database: a Redis lease serialises the check
and the insert across web processes (SQLite takes no lock on a read), and the company row is
locked too where the database can (PostgreSQL).
"""

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Company, RunStatus, SyncRun
from webapp.models.base import utcnow
from webapp.redis_runtime import Lease, get_redis
from webapp.runs import queueing
from webapp.runs.kinds import RunKind
from webapp.runs.runner import RunLease

log = logging.getLogger(__name__)

ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
DONE = (RunStatus.SUCCEEDED, RunStatus.PARTIAL)
WAITING = "Waiting for a worker"
# A run still queued this long after its click, with no job in Redis, lost its enqueue.
LOST_ENQUEUE_AFTER = timedelta(seconds=5)
# A queued/running run this old with no lease and no job lost its worker some other way
# than the ones the worker notices (e.g. Redis lost its data): a new start replaces it.
STALE_AFTER = timedelta(minutes=45)
DIED = "The worker process running it died"


class StartBusy(RuntimeError):
    """Another request is starting a run of this kind right now."""


def active(company_id: int, kind: str) -> SyncRun | None:
    """The queued or running run of this kind, if any (one at a time per company)."""
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


def latest(company_id: int, kind: str) -> SyncRun | None:
    """The newest run of this kind."""
    return db.session.scalar(
        sa.select(SyncRun)
        .where(SyncRun.company_id == company_id, SyncRun.kind == kind)
        .order_by(SyncRun.id.desc())
        .limit(1)
    )


def get(company_id: int, run_id: int, kind: str | None = None) -> SyncRun | None:
    """A run of this company (and kind), or None for another company's or kind's id."""
    run = db.session.get(SyncRun, run_id)
    if run is None or run.company_id != company_id or (kind is not None and run.kind != kind):
        return None
    return run


@contextmanager
def start_lock(company_id: int, kind: str, wait: float = 5.0):
    """Hold the (company, kind) start lock: checks and inserts under it never interleave."""
    guard = Lease(get_redis(), f"crewclock:run-start:{company_id}:{kind}", ttl=10)
    deadline = time.monotonic() + wait
    while not guard.acquire():
        if time.monotonic() > deadline:
            raise StartBusy("another request is starting this run; try again")
        time.sleep(0.02)
    try:
        yield
    finally:
        guard.release()


def start(
    company_id: int,
    kind: RunKind | str,
    *,
    trigger: str = "manual",
    started_by_id: int | None = None,
    checkpoint: dict | None = None,
    stage: str | None = WAITING,
    cursor_before: str | None = None,
    same: Callable[[SyncRun], bool] | None = None,
    delay: timedelta | None = None,
    enqueue: bool = True,
) -> tuple[SyncRun, bool]:
    """(run, created): a new queued run, committed then enqueued as `run-<id>`; or the run
    of this kind already queued or running (when `same(run)` says it does the same work).

    An enqueue that fails (Redis went down after the commit) is logged; `enqueue_if_lost`
    enqueues the queued run again when its progress is next polled.
    """
    kind = RunKind(kind)
    with start_lock(company_id, kind):
        db.session.execute(sa.select(Company.id).where(Company.id == company_id).with_for_update())
        existing = active(company_id, kind)
        if existing is not None and _abandon_if_stale(existing):
            existing = None
        if existing is not None and (same is None or same(existing)):
            db.session.commit()
            if delay is None and existing.status == RunStatus.QUEUED:
                queueing.release_if_scheduled(existing)  # new work does not wait for a delay
            return existing, False
        run = SyncRun(
            company_id=company_id,
            kind=kind.value,
            trigger=trigger,
            status=RunStatus.QUEUED,
            started_by_id=started_by_id,
            checkpoint=checkpoint if checkpoint is not None else {},
            stage=stage,
            cursor_before=cursor_before,
        )
        db.session.add(run)
        db.session.commit()  # commit before enqueue: the job must find its row
    if enqueue:
        try:
            queueing.enqueue_run(run, delay=delay)
        except Exception:
            log.warning("could not enqueue run=%s kind=%s", run.id, kind)
    return run, True


def _abandon_if_stale(run: SyncRun) -> bool:
    """Fail a run that lost its worker long ago (no lease, no job, old); True if failed."""
    if run.created_at > utcnow() - STALE_AFTER or RunLease.held(run):
        return False
    try:
        if queueing.job_of(run) is not None:
            return False
    except Exception:  # Redis trouble: assume the job is there
        return False
    run.status, run.finished_at = RunStatus.FAILED, utcnow()
    run.error = "Abandoned: the worker running it stopped."
    db.session.commit()
    return True


def enqueue_if_lost(run: SyncRun) -> bool:
    """Enqueue again a queued run whose job never reached Redis (it was down at the click)."""
    if run.status != RunStatus.QUEUED or run.created_at > utcnow() - LOST_ENQUEUE_AFTER:
        return False
    if queueing.job_of(run) is not None:
        return False
    queueing.enqueue_run(run)
    return True


def fail(run_id: int, reason: str) -> SyncRun | None:
    """Mark a run failed with the reason the admin sees (its job may still be retried)."""
    db.session.rollback()
    run = db.session.get(SyncRun, run_id)
    if run is None:
        return None
    run.status, run.stage = RunStatus.FAILED, None
    run.error = reason[:2000]
    run.finished_at = utcnow()
    db.session.commit()
    return run


def close_dead(run_id: int, why: str, will_retry: bool) -> SyncRun | None:
    """Close the run of a job whose worker process died: queued again when RQ retries it
    (every kind resumes or starts over safely), else failed with `why`."""
    db.session.rollback()
    run = db.session.get(SyncRun, run_id)
    if run is None or run.status in DONE:
        return run
    RunLease.clear_dead(run)  # the dead process can no longer renew or release it
    if will_retry:
        run.status, run.finished_at = RunStatus.QUEUED, None
        run.stage = f"{why[:60]}; retrying"[:80]
        run.error = why[:2000]
    else:
        run.status, run.finished_at, run.stage = RunStatus.FAILED, utcnow(), None
        run.error = why[:2000]
    db.session.commit()
    return run
