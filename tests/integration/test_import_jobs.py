"""Import jobs through the real ProcoreClient against the sandbox: calls, crashes, RQ."""

import os

import pytest
import requests
import sqlalchemy as sa
from rq import SimpleWorker

from procore_sandbox.app import create_app as create_sandbox_app
from procore_sandbox.config import SandboxConfig
from procore_sandbox.testing import mount_sandbox
from webapp import jobs
from webapp.extensions import db
from webapp.models import CostCode, Project, RunStatus, SyncRun, User
from webapp.redis_runtime import get_queue, get_redis
from webapp.runs import queueing
from webapp.services import imports
from webapp.services.connections import complete_connection

ADMIN_EMAIL = {"demo": "dana.admin@summit.example.com", "large": "dana.admin@large.example.com"}


def _connect(app, company, admin, seed):
    base = app.config["PROCORE_API_URL"]
    sandbox = create_sandbox_app(SandboxConfig(seed=seed, webhooks_enabled=False))
    store = sandbox.extensions["procore_sandbox"].store
    mount = mount_sandbox(sandbox, base)
    mount.__enter__()
    token = requests.post(f"{base}/_sandbox/token", json={"email": ADMIN_EMAIL[seed]}, timeout=5)
    complete_connection(company.id, admin.id, token.json())
    main = next(c for c in store.table("companies").values() if c["my_company"])
    ccl = next(c for c in store.table("cost_code_lists").values() if c["company_id"] == main["id"])
    assert imports.choose_procore_company(company.id, main["id"]) is None
    settings = imports.settings_for(company.id)
    settings.standard_cost_code_list_id = ccl["id"]
    db.session.commit()
    requests.post(f"{base}/_sandbox/stats/reset", timeout=5)
    return mount, base, store


@pytest.fixture
def demo_connection(app, company, admin, monkeypatch):
    monkeypatch.setattr(jobs, "_app_pid", os.getpid())  # in-process: keep the SQLite pool
    mount, base, store = _connect(app, company, admin, "demo")
    yield base, store
    mount.__exit__(None, None, None)


def _new_run(company, admin, kind=imports.IMPORT_KIND):
    run, _ = imports.create_run(company.id, kind, admin.id)
    db.session.commit()
    return run


def _stats(base):
    return requests.get(f"{base}/_sandbox/stats", timeout=5).json()


def _count(model, company):
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(model).where(model.company_id == company.id)
    )


def test_import_job_uses_one_procore_call_per_page_of_each_list(demo_connection, company, admin):
    base, _ = demo_connection
    run = _new_run(company, admin)
    jobs.handle_run(run.id)
    db.session.expire_all()
    stats = _stats(base)
    # demo: 24 active users, 8 projects, 45 standard codes -> one page each at 100 per page.
    assert stats["total"] == 3, stats["requests"]
    run = db.session.get(SyncRun, run.id)
    assert run.status == RunStatus.SUCCEEDED and run.api_calls == 3
    assert (_count(User, company), _count(Project, company), _count(CostCode, company)) == (
        21,
        7,
        45,
    )


def test_killed_import_resumes_at_its_checkpoint_without_duplicates(
    demo_connection, company, admin, monkeypatch
):
    base, _ = demo_connection
    monkeypatch.setattr(imports, "PER_PAGE", 5)  # 24 users -> 5 pages
    real = imports.client_page_fetcher
    pages_asked, crashed = [], []

    def crashing_fetcher(company_id):
        fetch = real(company_id)

        def wrapped(path, params, page, per_page):
            pages_asked.append((path, page))
            if path.endswith("/users") and page == 3 and not crashed:
                crashed.append(True)
                raise SystemExit("worker killed")  # like SIGKILL: nothing after this runs
            return fetch(path, params, page, per_page)

        return wrapped

    monkeypatch.setattr(imports, "client_page_fetcher", crashing_fetcher)
    run = _new_run(company, admin)
    with pytest.raises(SystemExit):
        jobs.handle_run(run.id)
    db.session.expire_all()
    assert _count(User, company) == 1  # pages 1-2 staged, nothing applied yet

    jobs.handle_run(run.id)  # RQ's retry of the same job
    db.session.expire_all()
    user_pages = [page for path, page in pages_asked if path.endswith("/users")]
    assert user_pages == [1, 2, 3, 3, 4, 5]  # resumed at page 3, pages 1-2 not re-read
    assert _count(User, company) == 21
    emails = db.session.scalars(sa.select(User.email)).all()
    assert len(emails) == len(set(emails))
    assert db.session.get(SyncRun, run.id).status == RunStatus.SUCCEEDED


def test_import_enqueued_after_commit_runs_on_a_real_rq_worker(demo_connection, company, admin):
    run = _new_run(company, admin)
    queueing.enqueue_run(run)
    assert get_queue("imports").fetch_job(f"run-{run.id}") is not None
    SimpleWorker([get_queue("imports")], connection=get_redis()).work(burst=True)
    db.session.expire_all()
    assert db.session.get(SyncRun, run.id).status == RunStatus.SUCCEEDED
    assert _count(Project, company) == 7


def test_failed_import_records_the_reason_and_reraises(demo_connection, company, admin):
    base, _ = demo_connection
    requests.post(
        f"{base}/_sandbox/faults",
        json={"path": "/rest/v1.1/projects", "status": 403, "count": 5},
        timeout=5,
    )
    run = _new_run(company, admin)
    with pytest.raises(Exception):  # noqa: B017 - the client's error type is not ours to pin
        jobs.handle_run(run.id)
    db.session.expire_all()
    failed = db.session.get(SyncRun, run.id)
    assert failed.status == RunStatus.FAILED and failed.error


def test_multi_page_import_needs_exactly_one_call_per_page(
    demo_connection, company, admin, monkeypatch
):
    base, _ = demo_connection
    monkeypatch.setattr(imports, "PER_PAGE", 10)
    run = _new_run(company, admin)
    jobs.handle_run(run.id)
    # ⌈24/10⌉ users + ⌈8/10⌉ projects + ⌈45/10⌉ codes, and no extra "empty last page" call.
    assert _stats(base)["total"] == 3 + 1 + 5
    assert _count(CostCode, company) == 45


def test_import_whose_connection_needs_reconnect_fails_once_without_queueing_retries(
    demo_connection, company, admin
):
    from webapp.models import ConnectionStatus, ProcoreConnection

    connection = db.session.get(ProcoreConnection, company.id)
    connection.status = ConnectionStatus.NEEDS_REAUTH
    db.session.commit()
    run = _new_run(company, admin)
    queueing.enqueue_run(run)
    SimpleWorker([get_queue("imports")], connection=get_redis()).work(burst=True)
    db.session.expire_all()
    failed = db.session.get(SyncRun, run.id)
    assert failed.status == RunStatus.FAILED and "reconnect" in failed.error
    # Nothing left for RQ to retry: reconnecting is the only way forward.
    assert get_queue("imports").scheduled_job_registry.count == 0
    assert len(get_queue("imports")) == 0
