"""Sync now, the scheduler and the history page (reliability.md C5, C6)."""

from datetime import UTC, datetime

from tests.conftest import make_user
from tests.integration.sync_support import *  # noqa: F403
from webapp.extensions import db
from webapp.models import Role, RunStatus, SyncRun
from webapp.redis_runtime import get_queue
from webapp.services import sync, sync_runs

PAGE = "/settings/integrations/procore/sync"


def test_sync_now_five_times_while_the_scheduler_fires_queues_one_run(world, client):
    """C5: one run per (company, kind); other clicks hear it is already running."""
    client.login(world.admin)
    replies = [client.post(f"{PAGE}/now", headers={"HX-Request": "true"}) for _ in range(5)]
    sync_runs.tick(company_ids=[world.company.id])
    assert [r.status_code for r in replies] == [200, 409, 409, 409, 409]
    assert "already running" in replies[1].get_data(as_text=True)
    runs = db.session.scalars(db.select(SyncRun).where(SyncRun.kind == sync.SYNC_KIND)).all()
    assert len(runs) == 1
    assert len(get_queue("sync").get_job_ids()) == 2  # the one sync + the scheduled full run


def test_two_schedulers_enqueue_each_periodic_sync_once_per_bucket(world):
    """C6: both schedulers tick in the same bucket; each kind is enqueued once."""
    now = datetime(2026, 3, 2, 12, 0, 5, tzinfo=UTC)
    first = sync_runs.tick(now, company_ids=[world.company.id])
    second = sync_runs.tick(now, company_ids=[world.company.id])
    assert len(first) == 2 and second == []
    assert len(get_queue("sync").get_job_ids()) == 2
    for run in db.session.scalars(db.select(SyncRun)):
        run.status = RunStatus.SUCCEEDED  # the worker finished them
    db.session.commit()
    later = datetime(2026, 3, 2, 12, 16, 0, tzinfo=UTC)  # next 15-minute bucket
    assert [s.split(":")[1] for s in sync_runs.tick(later, [world.company.id])] == ["sync"]


def test_history_page_lists_runs_and_drills_into_failed_records(world, client):
    world.run()
    procore_id, project = next(iter(world.projects.items()))
    world.sandbox.store.update("projects", procore_id, {"city": None})
    run = world.run()
    client.login(world.admin)
    page = client.get(PAGE).get_data(as_text=True)
    assert f"#{run.id} Incremental" in page and "Sync now" in page
    detail = client.get(f"{PAGE}/runs/{run.id}").get_data(as_text=True)
    assert "Address incomplete" in detail and project.name in detail
    csv_text = client.get(f"{PAGE}/history.csv").get_data(as_text=True)
    assert "Address incomplete" in csv_text and csv_text.startswith("run_id,")


def test_history_is_admin_only_and_scoped_to_the_company(world, client, other_company):
    run = world.run()
    worker = make_user(world.company, Role.WORKER)
    client.login(worker)
    assert client.get(PAGE).status_code == 403
    outsider = make_user(other_company, Role.ADMIN)
    client.post("/logout")
    client.login(outsider)
    assert client.get(f"{PAGE}/runs/{run.id}").status_code == 404


def test_integrations_card_shows_last_sync_and_needs_attention(world, client):
    world.run()
    state = sync.state_for(world.company.id)
    state.paused_at, state.pause_reason = state.last_success_at, "3 sync runs failed in a row."
    db.session.commit()
    client.login(world.admin)
    card = client.get("/settings/integrations/").get_data(as_text=True)
    assert "Last successful sync:" in card and "Sync paused" in card
    page = client.get(PAGE).get_data(as_text=True)
    assert "Sync is paused" in page and "Resume sync" in page


def test_paused_sync_alerts_admins_on_every_page_and_not_workers(client, company, admin):
    from tests.conftest import make_user
    from webapp.models import Role, SyncState
    from webapp.models.base import utcnow

    db.session.add(
        SyncState(company_id=company.id, paused_at=utcnow(), pause_reason="3 sync runs failed")
    )
    db.session.commit()
    client.login(admin)
    page = client.get("/users/").get_data(as_text=True)
    assert "Procore sync paused itself after repeated failures: 3 sync runs failed" in page
    assert "Review and resume" in page
    client.post("/logout")
    client.login(make_user(company, Role.WORKER))
    assert "sync paused itself" not in client.get("/time/").get_data(as_text=True)
