"""RQ job functions: ids in, call a service inside an app context, record, re-raise.

Jobs run in worker processes that build their own app; each job is safe to run twice.
"""

import os
from datetime import timedelta
from functools import wraps

from rq import Retry

# Defaults every enqueue uses (reliability.md §2.7).
JOB_TIMEOUT = 30 * 60
JOB_RETRY = Retry(max=3, interval=[30, 120, 600])
RESULT_TTL = 3600
FAILURE_TTL = 7 * 24 * 3600

_app = None
_app_pid = None


def job_app():
    """The Flask app for job code: the current one, or one built once per worker process."""
    from flask import current_app

    global _app
    try:
        return current_app._get_current_object()
    except RuntimeError:
        pass
    if _app is None:
        from webapp import create_app

        _app = create_app()
    return _app


def app_job(func):
    """Run a job function inside the app context, with a DB pool that is this process's own."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        global _app_pid
        from webapp.extensions import db

        app = job_app()
        with app.app_context():
            if _app_pid != os.getpid():
                # A forked work horse must not share pooled connections with its parent.
                db.engine.dispose(close=False)
                _app_pid = os.getpid()
            try:
                return func(*args, **kwargs)
            finally:
                db.session.remove()

    return wrapper


@app_job
def ping(company_id: int) -> int:
    """A no-op job used by the worker health check."""
    return company_id


def enqueue_run(job, run) -> None:
    """Enqueue `job(company_id, run_id)` for a committed run row, with job id run-<id>."""
    from webapp.redis_runtime import get_queue

    get_queue("imports").enqueue(
        job,
        run.company_id,
        run.id,
        job_id=f"run-{run.id}",
        job_timeout=JOB_TIMEOUT,
        retry=JOB_RETRY,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
    )


# A run still queued this long after its click, with no job in Redis, lost its enqueue.
LOST_ENQUEUE_AFTER = timedelta(seconds=5)


def enqueue_if_lost(job, run) -> bool:
    """Enqueue again a queued run whose job never reached Redis (it was down at the click)."""
    from webapp.models import RunStatus
    from webapp.models.base import utcnow
    from webapp.redis_runtime import get_queue

    if run.status != RunStatus.QUEUED or run.created_at > utcnow() - LOST_ENQUEUE_AFTER:
        return False
    if get_queue("imports").fetch_job(f"run-{run.id}") is not None:
        return False
    enqueue_run(job, run)
    return True


def _run_import_service(service, company_id: int, run_id: int):
    from webapp.services import imports

    run = imports.get_run(company_id, run_id)
    if run is None:
        return None
    from webapp.procore.errors import ProcoreAuthError

    try:
        service(run_id, imports.client_page_fetcher(company_id))
    except ProcoreAuthError as exc:
        # Needs an admin to reconnect: retrying cannot help, so fail without re-raising.
        imports.record_failure(run_id, f"Procore needs reconnecting: {exc}")
        return None
    except Exception as exc:
        imports.record_failure(run_id, f"{type(exc).__name__}: {exc}")
        raise
    return run_id


@app_job
def stage_procore_records(company_id: int, run_id: int):
    """List one kind of Procore record into staging for the set-up wizard's tables."""
    from webapp.services import imports

    return _run_import_service(imports.stage_records, company_id, run_id)


@app_job
def import_from_procore(company_id: int, run_id: int):
    """The set-up import: create or link the users, projects and cost codes chosen."""
    from webapp.services import imports

    return _run_import_service(imports.run_import, company_id, run_id)


@app_job
def push_timecards(company_id: int):
    """Send a company's queued time entries to Procore (one drain per company at a time)."""
    from webapp.services.push import run_push_job

    result = run_push_job(company_id)
    return None if result is None else result.run_id


@app_job
def run_sync(company_id: int, run_id: int):
    """One sync run (incremental, full reconciliation or webhook events) of a company."""
    from webapp.services.sync_runs import execute_run

    run = execute_run(company_id, run_id)
    return None if run is None else run.id


@app_job
def check_hours(company_id: int, run_id: int):
    """The weekly hours check: one week's hours in Crewclock against Procore's."""
    from webapp.services.hours_check import run_check

    run = run_check(company_id, run_id)
    return None if run is None else run.id


@app_job
def check_permissions(company_id: int, run_id: int):
    """'Check permissions' on the Procore card: a few read-only calls, one row each."""
    from webapp.services.permissions_check import run_check

    run = run_check(company_id, run_id)
    return None if run is None else run.id
