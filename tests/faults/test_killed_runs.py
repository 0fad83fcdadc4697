"""A worker SIGKILLed mid-run closes the run, for every kind of run (real processes).

Every kind's job is `run-<id>`, so RQ's registry cleanup (run by any live worker once the
dead worker's heartbeat has expired) reaches the run through the job's failure callback and
closes it: queued again while RQ's retry has tries left, and the retry then finishes it.
Before this, only imports were closed; a killed sync waited ~45 minutes for the next start
to abandon it and a killed push stayed "running" forever.
"""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from rq import Queue

from tests.faults.conftest import wait_for
from tests.faults.test_push_crash import WEEK, _linked_world
from webapp.extensions import db
from webapp.models import RunStatus, TimeCardStatus, WorkType
from webapp.models.sync import ProcoreWebhookEvent
from webapp.runs import queueing, service
from webapp.runs.kinds import RunKind
from webapp.services import hours_check
from webapp.services import timecards as tc

pytestmark = pytest.mark.slow  # real processes, killed for real

HEARTBEAT_TTL = 5  # seconds, the test worker's (RQ's default is 60 + the monitoring interval)
MAINTENANCE_INTERVAL = 2
KNOBS = {
    "FAULTS_HEARTBEAT_TTL": HEARTBEAT_TTL,
    "FAULTS_MAINTENANCE_INTERVAL": MAINTENANCE_INTERVAL,
    "FAULTS_PUSH_SETTLE_SECONDS": 0,
}
KINDS = [
    RunKind.IMPORT,
    RunKind.STAGE_USERS,
    RunKind.PUSH,
    RunKind.SYNC,
    RunKind.SYNC_FULL,
    RunKind.SYNC_WEBHOOK,
    RunKind.HOURS_CHECK,
    RunKind.PERMISSIONS_CHECK,
]


def _hold_every_procore_call(stack, seconds: float) -> None:
    requests.post(
        f"{stack.sandbox.url}/_sandbox/faults",
        json={"method": "*", "path": r"^/rest/", "delay": seconds},
        timeout=5,
    ).raise_for_status()


def _start(stack, kind: RunKind):
    """Make work for `kind` and start its run (committed, then enqueued as run-<id>)."""
    company, admin, worker, project, code = _linked_world(stack)
    if kind is RunKind.PUSH:
        card = tc.get_or_create_card(company.id, worker, WEEK, worker)
        tc.create_entry(
            card,
            tc.EntryData(
                work_date=WEEK + timedelta(days=1),
                project_id=project.id,
                cost_code_id=code.id,
                hours=Decimal("8.00"),
                work_type=WorkType.REGULAR,
                notes="Formwork",
            ),
            worker,
        )
        tc.change_status(card, TimeCardStatus.SUBMITTED, worker)
        tc.change_status(card, TimeCardStatus.APPROVED, admin)
    if kind is RunKind.SYNC_WEBHOOK:
        james = next(
            u
            for u in stack.sandbox.store.table("users").values()
            if u.get("email_address") == "james.smith@summit.example.com"
        )
        db.session.add(
            ProcoreWebhookEvent(
                company_id=company.id,
                dedupe_key="id:1",
                resource_name="Company Users",
                resource_id=james["id"],
                event_type="update",
            )
        )
        db.session.commit()
    if kind is RunKind.HOURS_CHECK:
        return hours_check.start_check(company.id, WEEK, admin.id)
    # (The approval above may have queued the push already: start returns that run.)
    run, _ = service.start(company.id, kind, trigger="manual", started_by_id=admin.id)
    return run


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_sigkilled_worker_closes_the_run_of_every_kind_and_the_retry_finishes_it(stack, kind):
    _hold_every_procore_call(stack, 30)
    run = _start(stack, kind)
    calls_before = len(stack.requests.seen)
    first = stack.start_worker(kind.queue, **KNOBS)
    wait_for(
        lambda: (
            stack.run(run.id).status == RunStatus.RUNNING
            and len(stack.requests.seen) > calls_before
        ),
        60,
        f"the {kind} run to be waiting on Procore",
    )
    stack.kill(first)  # the whole worker and its work horse, mid-call
    assert stack.run(run.id).status == RunStatus.RUNNING

    killed_at = time.monotonic()
    stack.start_worker(kind.queue, **KNOBS)  # any live worker's maintenance finds the job
    closed = wait_for(
        lambda: (r := stack.run(run.id)).status != RunStatus.RUNNING and r,
        HEARTBEAT_TTL + MAINTENANCE_INTERVAL + 20,  # + the second worker's start-up
        f"the killed {kind} run to be closed",
        0.2,
    )
    assert time.monotonic() - killed_at <= HEARTBEAT_TTL + MAINTENANCE_INTERVAL + 20
    assert closed.status == RunStatus.QUEUED  # RQ retries it: the run waits for that retry
    assert "The worker process running it died" in closed.error
    queue = Queue(kind.queue, connection=stack.redis())
    assert queueing.job_id(run.id) in queue.scheduled_job_registry.get_job_ids()

    requests.delete(f"{stack.sandbox.url}/_sandbox/faults", timeout=5).raise_for_status()
    stack.fast_forward()  # the retry's interval has passed
    done = stack.wait_run(run.id, [RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED])
    assert done.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL), done.error
    assert not done.error or "worker process" not in done.error
