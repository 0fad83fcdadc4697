"""RQ entry points only: ids in, RunRunner or a service inside an app context.

Jobs run in worker processes that build their own app; each job is safe to run twice.
"""

import os

from flask import current_app, has_app_context
from rq.exceptions import AbandonedJobError

from webapp import create_app
from webapp.extensions import db
from webapp.runs import queueing, service
from webapp.runs.runner import RunRunner

# The modules whose run kinds the runner executes (each registers its kinds on import).
from webapp.services import hours_check, imports, permissions_check, push, sync_runs  # noqa: F401

_app = None
_app_pid = None


def job_app():
    """The Flask app for job code: the current one, or one built once per worker process."""
    global _app
    try:
        return current_app._get_current_object()
    except RuntimeError:
        pass
    if _app is None:
        _app = create_app()
    return _app


def handle_run(run_id: int):
    """Execute one run of any kind (job id run-<id>)."""
    global _app_pid
    app = job_app()
    with app.app_context():
        if _app_pid != os.getpid():
            # A forked work horse must not share pooled connections with its parent.
            db.engine.dispose(close=False)
            _app_pid = os.getpid()
        try:
            ctx = RunRunner().handle(run_id)
            return None if ctx is None else run_id
        finally:
            db.session.remove()


def run_job_failed(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ's failure callback: a job abandoned by a worker that died closes its run."""
    if not issubclass(exc_type, AbandonedJobError):
        return  # the job itself failed: the runner already recorded why on the run
    run_id = queueing.run_id_of(job.id)
    if run_id is not None:
        close_dead_run(run_id, bool(job.retries_left), "its worker stopped answering")


def close_dead_run(run_id: int, will_retry: bool, detail: str) -> None:
    """Close the run of a job whose worker process died (queued again or failed)."""
    why = f"{service.DIED} ({detail})."
    if has_app_context():  # RQ's maintenance inside worker.py, or a test's registry cleanup
        service.close_dead(run_id, why, will_retry)
        return
    with job_app().app_context():
        try:
            service.close_dead(run_id, why, will_retry)
        finally:
            db.session.remove()
