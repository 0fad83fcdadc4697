"""C4: a deploy SIGTERMs the worker while an import is mid-flight (real processes).

RQ's answer to SIGTERM is a warm shutdown: the worker takes no new job, lets its work horse
finish the one it holds, then exits. A second SIGTERM (the grace period ran out) is a cold
shutdown that kills the horse; the maintenance sweep must then re-queue the job. Either way
the run ends as if nothing happened, and no job stays in StartedJobRegistry longer than the
heartbeat TTL plus the maintenance interval.
"""

import signal
import time

import psutil
import pytest
import requests
from rq import Queue
from rq.registry import StartedJobRegistry

from tests.faults.conftest import connect_company, wait_for
from tests.faults.test_worker_crashes import _assert_users_match_procore
from webapp.extensions import db
from webapp.models import RunStatus
from webapp.runs import queueing
from webapp.services import imports

pytestmark = pytest.mark.slow  # real processes, signalled for real

USERS = "/users"


def _slow_users_page(stack, page: int, seconds: float) -> None:
    """Delay the `page`-th users request at the sandbox (rules match in order)."""
    rules = [{"delay": 0.01, "count": page - 1}, {"delay": seconds, "count": 1}]
    for rule in rules:
        requests.post(
            f"{stack.sandbox.url}/_sandbox/faults",
            json={"method": "GET", "path": r"/companies/\d+/users$", **rule},
            timeout=5,
        ).raise_for_status()


def _import_mid_page_3(stack, seconds: float):
    """An import whose users page 3 (of 5) is held `seconds` at the sandbox, now in flight."""
    company, admin, _ = connect_company(stack)
    run, created = imports.create_run(company.id, imports.IMPORT_KIND, admin.id)
    db.session.commit()
    assert created
    _slow_users_page(stack, 3, seconds)
    queueing.enqueue_run(run)
    worker = stack.start_worker("imports", FAULTS_IMPORT_PER_PAGE=5)  # 24 users -> 5 pages
    wait_for(lambda: 3 in stack.requests.pages(USERS), 60, "users page 3 to be requested")
    return company, run, worker


def test_sigterm_mid_import_lets_the_job_finish_then_the_worker_exits_clean(stack):
    company, run, worker = _import_mid_page_3(stack, 3.0)
    family = psutil.Process(worker.pid).children(recursive=True)  # work horse, scheduler
    assert stack.run(run.id).status == RunStatus.RUNNING  # page 3 is in flight

    worker.send_signal(signal.SIGTERM)  # the deploy's stop signal, to the worker alone
    assert worker.wait(30) == 0  # warm shutdown: it waited for the horse, then left
    assert "warm shut down requested" in stack.log(worker)
    _, alive = psutil.wait_procs(family, timeout=5)
    assert not alive  # no orphaned work horse or scheduler keeps running after the deploy

    done = stack.run(run.id)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert stack.requests.pages(USERS) == [1, 2, 3, 4, 5]  # finished once, no page twice
    _assert_users_match_procore(stack, company, run.id)
    queue = Queue("imports", connection=stack.redis())
    assert StartedJobRegistry(queue=queue).get_job_ids() == []  # nothing left to be swept
    assert queue.fetch_job(f"run-{run.id}").get_status() == "finished"
    assert queue.count == 0  # and nothing re-queued behind it to run a second time


# worker.py's worker: horse heartbeat TTL (job_monitoring_interval 30 + RQ's 60) + maintenance.
HEARTBEAT_TTL_PLUS_MAINTENANCE = 90 + 60


def test_sigterm_twice_kills_the_job_which_is_requeued_and_finished_by_the_next_worker(stack):
    company, run, worker = _import_mid_page_3(stack, 6.0)
    family = psutil.Process(worker.pid).children(recursive=True)

    # The deploy's grace period runs out: a second SIGTERM is RQ's cold shutdown, which
    # kills the work horse mid-page (RQ ignores a repeat within 1 s, so wait past that).
    worker.send_signal(signal.SIGTERM)
    wait_for(lambda: "warm shut down requested" in stack.log(worker), 5, "the warm shutdown")
    time.sleep(1.2)
    worker.send_signal(signal.SIGTERM)
    worker.wait(10)  # it exits (TimeoutExpired otherwise)
    assert "cold shut down" in stack.log(worker)
    _, alive = psutil.wait_procs(family, timeout=5)
    assert not alive
    assert stack.run(run.id).status == RunStatus.RUNNING  # page 3 never finished

    queue = Queue("imports", connection=stack.redis())
    started = StartedJobRegistry(queue=queue)
    assert started.get_job_ids() == [f"run-{run.id}"]  # held until the heartbeat runs out
    stack.fast_forward(HEARTBEAT_TTL_PLUS_MAINTENANCE)  # maintenance: abandoned -> retry
    assert started.get_job_ids() == []  # no longer than heartbeat TTL + maintenance interval
    assert queue.count == 1  # re-queued, once

    stack.start_worker("imports", FAULTS_IMPORT_PER_PAGE=5)  # the new release's worker
    done = stack.wait_run(run.id, [RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED])
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert stack.requests.pages(USERS) == [1, 2, 3, 3, 4, 5]  # resumed at the page in flight
    _assert_users_match_procore(stack, company, run.id)
    wait_for(lambda: not started.get_job_ids(), 10, "the finished job to leave the registry")
