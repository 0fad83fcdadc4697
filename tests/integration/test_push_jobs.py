"""The push job: enqueued after the commit, one at a time per company, run by a real worker."""

import os

import pytest
import redis
from rq import SimpleWorker

from tests.integration.push_support import *  # noqa: F403 (fixtures)
from webapp.extensions import db
from webapp.models import RunStatus, SyncRun
from webapp.redis_runtime import get_queue, get_redis
from webapp.runs import service
from webapp.runs.kinds import RunKind
from webapp.runs.runner import RunBusy, RunLease, RunRunner
from webapp.services import push


def test_approval_enqueues_one_push_job_after_commit_and_a_worker_sends_it(world, app, monkeypatch):
    app.config["PUSH_AUTO_ENQUEUE"] = True
    client = world.sandbox.client()
    monkeypatch.setattr(
        "webapp.services.connections.procore_client_for", lambda company_id, stats=None: client
    )
    # In-process worker: keep the test's in-memory database connection (no fork here).
    monkeypatch.setattr("webapp.jobs._app_pid", os.getpid())
    queue = get_queue("push")
    card = world.card(world.workers[0], entries=2)
    assert queue.count == 0
    world.approve(card)
    assert queue.count == 1  # many commits in a row would still leave one waiting job

    SimpleWorker([queue], connection=get_redis()).work(burst=True)
    assert len(world.sandbox.entries()) == 2
    assert push.card_sync_states(world.company.id, [card.id])[card.id].label == "Sent"


def test_rolled_back_change_enqueues_nothing(world, app):
    app.config["PUSH_AUTO_ENQUEUE"] = True
    card = world.card(world.workers[0], entries=1)
    push.queue_status_change(card, card.status, push.TimeCardStatus.APPROVED)
    db.session.rollback()
    assert get_queue("push").count == 0


def test_second_push_for_the_same_company_waits_for_the_lease_holder(world):
    world.approve(world.card(world.workers[0], entries=1))
    run, _ = service.start(world.company.id, RunKind.PUSH, trigger="auto", enqueue=False)
    other = SyncRun(id=run.id + 1000, company_id=world.company.id, kind=RunKind.PUSH)
    holder = RunLease(get_redis(), other)  # another worker draining this company
    assert holder.acquire()
    with pytest.raises(RunBusy):  # RQ retries the job once the holder is done
        RunRunner().handle(run.id, client=world.sandbox.client())
    assert world.sandbox.entries() == []
    db.session.expire_all()
    assert db.session.get(SyncRun, run.id).status == RunStatus.QUEUED  # still waiting
    holder.release()

    result = RunRunner().handle(run.id, client=world.sandbox.client()).result
    assert result.created == 1 and len(world.sandbox.entries()) == 1


def test_redis_down_after_commit_keeps_the_outbox_rows(world, app):
    app.config["PUSH_AUTO_ENQUEUE"] = True
    app.extensions["redis"] = redis.Redis.from_url("redis://127.0.0.1:1/0")
    card = world.approve(world.card(world.workers[0], entries=1))  # no error for the user
    app.extensions.pop("redis")
    assert push.card_sync_states(world.company.id, [card.id])[card.id].label == "Pending"
    assert get_queue("push").count == 0
    assert push.enqueue_all_due() == 1  # the safety net picks the company up again
    assert get_queue("push").count == 1


def test_safety_net_leaves_companies_that_need_reconnecting_alone(world, app):
    from webapp.models import ConnectionStatus, ProcoreConnection

    app.config["PUSH_AUTO_ENQUEUE"] = True
    app.extensions["redis"] = redis.Redis.from_url("redis://127.0.0.1:1/0")
    world.approve(world.card(world.workers[0], entries=1))
    app.extensions.pop("redis")
    db.session.get(ProcoreConnection, world.company.id).status = ConnectionStatus.NEEDS_REAUTH
    db.session.commit()
    # A push could only record another failed run every scheduler tick; wait for Reconnect.
    assert push.enqueue_all_due() == 0
    assert get_queue("push").count == 0
