"""C1, C3, C8: workers killed mid-import, work horses dying, jobs timing out (real processes)."""

import pytest
import requests
import sqlalchemy as sa
from rq import Queue, Retry
from rq.registry import FailedJobRegistry

from tests.faults.conftest import connect_company, count, wait_for
from webapp.extensions import db
from webapp.models import EntityType, ProcoreLink, RunStatus, SyncRunItem, User
from webapp.runs import queueing
from webapp.services import imports

pytestmark = pytest.mark.slow  # real processes, killed for real

USERS = "/users"


def _start_import(stack, company, admin):
    run, created = imports.create_run(company.id, imports.IMPORT_KIND, admin.id)
    db.session.commit()
    assert created
    queueing.enqueue_run(run)
    return run.id


def _delay_user_pages(stack, seconds: float, count_: int | None = None) -> None:
    requests.post(
        f"{stack.sandbox.url}/_sandbox/faults",
        json={"method": "GET", "path": r"/companies/\d+/users$", "delay": seconds, "count": count_},
        timeout=5,
    ).raise_for_status()


def _clear_faults(stack) -> None:
    requests.delete(f"{stack.sandbox.url}/_sandbox/faults", timeout=5).raise_for_status()


def _assert_users_match_procore(stack, company, run_id) -> None:
    """Every active Procore user is imported once or skipped with a reason; no duplicates."""
    db.session.rollback()
    main = next(c for c in stack.sandbox.store.table("companies").values() if c["my_company"])
    active = {
        u["id"]
        for u in stack.sandbox.store.table("users").values()
        if u.get("is_active") and u.get("company_id") == main["id"]
    }
    linked = set(
        db.session.scalars(
            sa.select(ProcoreLink.procore_id).where(
                ProcoreLink.company_id == company.id, ProcoreLink.entity_type == EntityType.USER
            )
        )
    )
    skipped = set(
        db.session.scalars(
            sa.select(SyncRunItem.procore_id).where(
                SyncRunItem.run_id == run_id,
                SyncRunItem.entity_type == "user",
                SyncRunItem.outcome.in_(("skipped", "failed")),
            )
        )
    )
    assert linked and not linked & skipped
    assert linked | skipped == active
    emails = db.session.scalars(sa.select(User.email).where(User.company_id == company.id)).all()
    assert len(emails) == len(set(emails)) == 1 + len(linked)  # the admin + one per link
    assert count(User, company.id) == 21  # the demo seed's importable users + our admin


def test_worker_sigkilled_mid_user_import_resumes_at_the_page_in_flight(stack):
    company, admin, _ = connect_company(stack)
    _delay_user_pages(stack, 1.0)
    run_id = _start_import(stack, company, admin)
    worker = stack.start_worker("imports", FAULTS_IMPORT_PER_PAGE=5)  # 24 users -> 5 pages
    wait_for(lambda: 3 in stack.requests.pages(USERS), 60, "users page 3 to be requested")
    stack.kill(worker)  # page 3 is in flight; pages 1-2 are committed with the checkpoint

    assert stack.run(run_id).status == RunStatus.RUNNING
    _clear_faults(stack)
    stack.fast_forward()  # heartbeat expired, maintenance ran: AbandonedJobError -> retry
    stack.start_worker("imports", FAULTS_IMPORT_PER_PAGE=5)
    run = stack.wait_run(run_id, [RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED])

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert stack.requests.pages(USERS) == [1, 2, 3, 3, 4, 5]  # resumed at page 3
    _assert_users_match_procore(stack, company, run_id)


def test_dying_work_horse_is_retried_then_failed_and_the_run_says_so(stack):
    company, admin, _ = connect_company(stack)
    run_id = _start_import(stack, company, admin)
    worker = stack.start_worker("imports", FAULTS_IMPORT_PER_PAGE=5, FAULTS_EXIT_ON_PAGE=2)
    queue = Queue("imports", connection=stack.redis())
    failed = FailedJobRegistry(queue=queue)
    job_id = f"run-{run_id}"
    for _attempt in range(1 + queueing.JOB_RETRY.max):
        # Each attempt dies on page 2; the worker records it and schedules the retry.
        wait_for(
            lambda: (
                job_id in failed.get_job_ids()
                or job_id in queue.scheduled_job_registry.get_job_ids()
            ),
            60,
            "the dead work horse to be noticed",
        )
        stack.fast_forward()
    assert job_id in failed.get_job_ids()
    assert queue.fetch_job(job_id).retries_left == 0  # Retry.max retries, all used
    assert stack.requests.pages(USERS) == [1]  # every retry resumed after page 1
    assert stack.log(worker).count("Work-horse terminated unexpectedly") == 4
    assert worker.poll() is None  # the worker itself lives on

    run = stack.wait_run(run_id, [RunStatus.FAILED], timeout=10)
    assert "worker" in run.error.lower()
    client = stack.app.test_client()
    client.post("/login", data={"identifier": "ada", "password": "pass-word-1"})
    page = client.get(f"/settings/integrations/procore/setup/runs/{run_id}")
    assert "The import stopped" in page.get_data(as_text=True)


def test_job_over_its_timeout_is_killed_and_retried_from_a_whole_page(stack):
    company, admin, _ = connect_company(stack)
    run, _ = imports.create_run(company.id, imports.IMPORT_KIND, admin.id)
    db.session.commit()
    # Page 2 of users takes longer than the job may run, once (rules match in order).
    for rule in ({"delay": 0.01, "count": 1}, {"delay": 6, "count": 1}):
        requests.post(
            f"{stack.sandbox.url}/_sandbox/faults",
            json={"method": "GET", "path": r"/companies/\d+/users$", **rule},
            timeout=5,
        ).raise_for_status()
    Queue("imports", connection=stack.redis()).enqueue(  # as enqueue_run, with a short timeout
        queueing.HANDLE_RUN,
        run.id,
        job_id=f"run-{run.id}",
        job_timeout=3,
        retry=Retry(max=2),
        failure_ttl=queueing.FAILURE_TTL,
        on_failure=queueing.ON_FAILURE,
    )
    stack.start_worker("imports", FAULTS_IMPORT_PER_PAGE=5)
    done = stack.wait_run(run.id, [RunStatus.SUCCEEDED, RunStatus.PARTIAL], timeout=90)
    assert done.status == RunStatus.SUCCEEDED
    pages = stack.requests.pages(USERS)
    assert pages == [1, 2, 2, 3, 4, 5]  # killed on page 2, retried from page 2, not page 1
    job = Queue("imports", connection=stack.redis()).fetch_job(f"run-{run.id}")
    assert job.retries_left == 1  # killed once by the timeout, retried once
    _assert_users_match_procore(stack, company, run.id)
