"""RQ for runs: queues, job options, `run-<id>` job ids and the after-commit enqueue hook.

A leaf module (rq, redis, webapp.redis_runtime and the RunKind enum only): jobs are enqueued
by dotted name, so nothing here imports the job functions or the services they call.
"""

import logging
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from rq import Callback, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from webapp.redis_runtime import get_queue
from webapp.runs.kinds import RunKind

log = logging.getLogger(__name__)

# Defaults every enqueue uses: a job never runs unbounded, transient failures are retried
# with back-off, and RQ keeps results briefly (the run history in the database is the record).
JOB_TIMEOUT = 30 * 60
JOB_RETRY = Retry(max=3, interval=[30, 120, 600])
RESULT_TTL = 3600
FAILURE_TTL = 7 * 24 * 3600

HANDLE_RUN = "webapp.jobs.handle_run"
# Called by RQ when a job is abandoned (its whole worker died; the registry cleanup finds it).
ON_FAILURE = Callback("webapp.jobs.run_job_failed")
JOB_PREFIX = "run-"


def job_id(run_id: int) -> str:
    return f"{JOB_PREFIX}{run_id}"


def run_id_of(job_id_: str) -> int | None:
    """The run id of a `run-<id>` job, or None for any other job."""
    if not job_id_.startswith(JOB_PREFIX):
        return None
    raw = job_id_.removeprefix(JOB_PREFIX)
    return int(raw) if raw.isdigit() else None


def enqueue_run(run, delay: timedelta | None = None) -> None:
    """Enqueue `handle_run(run.id)` for a committed run row, as job run-<id> on its queue."""
    queue = get_queue(_queue_name(run))
    options = dict(
        job_id=job_id(run.id),
        job_timeout=JOB_TIMEOUT,
        retry=JOB_RETRY,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        on_failure=ON_FAILURE,
    )
    if delay is not None:
        queue.enqueue_in(delay, HANDLE_RUN, run.id, **options)
    else:
        queue.enqueue(HANDLE_RUN, run.id, **options)


def _queue_name(run) -> str:
    return RunKind(run.kind).queue


def job_of(run) -> Job | None:
    """The run's job in Redis, if RQ still has it."""
    try:
        return Job.fetch(job_id(run.id), connection=get_queue(_queue_name(run)).connection)
    except NoSuchJobError:
        return None


def release_if_scheduled(run) -> bool:
    """Queue at once a run whose job waits in the scheduled registry (a delayed follow-up)."""
    queue = get_queue(_queue_name(run))
    scheduled = ScheduledJobRegistry(queue=queue)
    if job_id(run.id) not in scheduled.get_job_ids():
        return False
    job = job_of(run)
    scheduled.remove(job_id(run.id))
    if job is None:
        return False
    queue.enqueue_job(job)
    return True


# -------------------------------------------------------- enqueue after the commit
_SESSION_KEY = "crewclock_after_commit"


def after_commit(session, key, action: Callable[[], object]) -> None:
    """Run `action` once after `session` commits (never if it rolls back); one per key.

    Jobs must find their rows, so work is enqueued only once the transaction is durable.
    """
    session.info.setdefault(_SESSION_KEY, {})[key] = action


@sa.event.listens_for(sa.orm.Session, "after_commit")
def _after_commit(session) -> None:
    actions = session.info.pop(_SESSION_KEY, None)
    for key, action in (actions or {}).items():
        try:
            action()
        except Exception:  # Redis down: the rows are safe; a later enqueue or sweep runs them
            log.warning("could not enqueue %s after the commit", key)


@sa.event.listens_for(sa.orm.Session, "after_rollback")
def _after_rollback(session) -> None:
    session.info.pop(_SESSION_KEY, None)
