"""The Procore webhook receiver and webhook-driven sync (reliability.md E5, D8)."""

import json
import os
import time

import requests
from rq import SimpleWorker

from procore_sandbox.testing import mount_sandbox
from tests.integration.sync_support import *  # noqa: F403
from tests.integration.sync_support import BASE, CREWCLOCK, Sandbox, build_world, make_sandbox
from webapp.extensions import db
from webapp.models import RunStatus, SyncRun
from webapp.models.sync import ProcoreWebhookEvent
from webapp.redis_runtime import get_queue, get_redis
from webapp.services import sync

SECRET = "test-webhook-secret"


def event(world, procore_id, ulid="01J0ABCDEFGHJKMNPQRSTVWXYZ", event_type="update", **extra):
    return {
        "id": 7001234567890123456,
        "ulid": ulid,
        "timestamp": "2026-03-02T14:05:09.123456Z",
        "metadata": {"source_application_id": extra.pop("source", None)},
        "user_id": 1,
        "company_id": world.sandbox.company_id,
        "project_id": None,
        "api_version": "v2.0",
        "event_type": event_type,
        "resource_name": "Company Users",
        "resource_id": procore_id,
        **extra,
    }


def post(client, body, secret=SECRET, raw=None):
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["Authorization"] = secret
    data = raw if raw is not None else json.dumps(body)
    return client.post("/webhooks/procore", data=data, headers=headers, csrf=False)


def stored() -> int:
    return db.session.scalar(db.select(db.func.count(ProcoreWebhookEvent.id)))


def test_webhook_without_or_with_wrong_secret_is_401_and_stores_nothing(client, world):
    body = event(world, 1)
    assert post(client, body, secret=None).status_code == 401
    assert post(client, body, secret="wrong").status_code == 401
    assert stored() == 0


def test_oversized_or_malformed_webhook_is_rejected_and_stores_nothing(client, world):
    assert post(client, None, raw="x" * 20_000).status_code == 413
    assert post(client, None, raw="{not json").status_code == 400
    assert post(client, {"event_type": "update"}).status_code == 400
    assert stored() == 0


def test_replayed_event_is_stored_once_and_answered_fast(client, world):
    procore_id = next(iter(world.users))
    started = time.perf_counter()
    replies = [post(client, event(world, procore_id)) for _ in range(3)]
    assert time.perf_counter() - started < 3.0
    assert [r.status_code for r in replies] == [202, 200, 200]
    assert stored() == 1
    runs = db.session.scalars(db.select(SyncRun).where(SyncRun.kind == sync.WEBHOOK_KIND)).all()
    assert len(runs) == 1 and runs[0].status == RunStatus.QUEUED


def _work(app):
    """Run queued sync jobs in this process (the sandbox is mounted here)."""
    from webapp import jobs

    jobs._app_pid = os.getpid()  # same process: keep the in-memory database's connection
    worker = SimpleWorker([get_queue("sync")], connection=get_redis())
    worker.work(burst=True)


def test_duplicated_update_then_delete_ends_in_procores_current_state(
    client, world, app, monkeypatch
):
    """D8: the same ulid three times, then an update arriving after the delete."""
    world.run()
    procore_id, user = next(iter(world.users.items()))
    world.sandbox.store.update("users", procore_id, {"first_name": "Hooked"})
    for _ in range(3):
        post(client, event(world, procore_id, ulid="01J0AAAAAAAAAAAAAAAAAAAAAA"))

    monkeypatch.setattr(
        "webapp.services.connections.procore_client_for",
        lambda company_id, stats=None: world.sandbox.client(),
    )
    _work(app)
    db.session.expire_all()
    assert db.session.get(type(user), user.id).first_name == "Hooked"
    world.sandbox.store.delete("users", procore_id)
    post(client, event(world, procore_id, ulid="01J0BBBBBBBBBBBBBBBBBBBBBB", event_type="delete"))
    post(client, event(world, procore_id, ulid="01J0CCCCCCCCCCCCCCCCCCCCCC"))  # late update
    _work(app)
    db.session.expire_all()
    assert db.session.get(type(user), user.id).active is False
    assert world.link_of("user", user.id) is not None


def test_our_own_change_coming_back_by_webhook_costs_no_call(client, world, app, monkeypatch):
    world.run()
    procore_id = next(iter(world.users))
    own = event(world, procore_id, source=app.config["PROCORE_CLIENT_ID"])
    post(client, own)

    monkeypatch.setattr(
        "webapp.services.connections.procore_client_for",
        lambda company_id, stats=None: world.sandbox.client(),
    )
    world.sandbox.reset_stats()
    _work(app)
    stats = requests.get(f"{BASE}/_sandbox/stats", timeout=5).json()["requests"]
    assert not any("/users/" in key for key in stats)
    assert db.session.scalar(db.select(ProcoreWebhookEvent.outcome)) == "ignored: our own change"


def test_edit_in_the_sandbox_ui_reaches_crewclock_through_the_webhook(app, company, monkeypatch):
    """A person edits a user in Procore's UI; the hook we registered delivers the event to
    our receiver, one worker fetches the user, and the change shows here within 5 s."""
    sandbox_app, company_id = make_sandbox(app, webhooks=True)
    sandbox_app.config["SERVER_NAME"] = None
    with mount_sandbox(sandbox_app, BASE), mount_sandbox(app, CREWCLOCK):
        token = requests.post(f"{BASE}/_sandbox/token", json={}, timeout=5).json()
        sandbox = Sandbox(sandbox_app, company_id, token["access_token"])
        world = build_world(company, sandbox)

        monkeypatch.setattr(
            "webapp.services.connections.procore_client_for",
            lambda company_id, stats=None: sandbox.client(),
        )
        world.run()  # registers the hook and its triggers
        assert sync.state_for(company.id).hook_id is not None
        db.session.commit()
        procore_id, user = next(iter(world.users.items()))
        record = sandbox.store.get("users", procore_id)
        started = time.monotonic()
        ui = sandbox_app.test_client()
        reply = ui.post(
            f"/companies/{company_id}/users/{procore_id}",
            data={
                "first_name": "Edited",
                "last_name": record["last_name"],
                "email_address": record["email_address"],
                "is_active": "on",
            },
        )
        assert reply.status_code == 302, reply.get_data(as_text=True)[:500]
        deliverer = sandbox_app.extensions["sandbox_webhooks"]
        assert deliverer.wait_idle(5)
        _work(app)
        db.session.expire_all()
        assert db.session.get(type(user), user.id).first_name == "Edited"
        assert time.monotonic() - started < 5.0


# -- hook registration ---------------------------------------------------------------------
SYNC_PAGE = "/settings/integrations/procore/sync"


def webhook_calls() -> dict:
    """Webhook management requests the sandbox served since the last stats reset."""
    stats = requests.get(f"{BASE}/_sandbox/stats", timeout=5).json()["requests"]
    return {key: n for key, n in stats.items() if "/webhooks/" in key}


def sandbox_triggers(world) -> set[tuple[str, str]]:
    return {
        (t["resource_name"], t["event_type"]) for t in world.sandbox.store.select("hook_triggers")
    }


def hook_items(run) -> dict[str, str]:
    from webapp.models import SyncRunItem

    rows = db.session.scalars(
        db.select(SyncRunItem).where(
            SyncRunItem.run_id == run.id, SyncRunItem.entity_type == "webhook"
        )
    )
    return {row.label: row.reason for row in rows}


def test_hook_subscribes_only_what_procore_offers_and_later_runs_leave_it_alone(world):
    """Procore offers no delete events for company users and projects: the first run
    subscribes everything else, says so on the run, and no later run registers again."""
    first = world.run()
    assert first.status == RunStatus.SUCCEEDED, first.error
    state = sync.state_for(world.company.id)
    assert state.hook_id is not None and state.hook_error is None
    assert sandbox_triggers(world) == {
        ("Company Users", "create"),
        ("Company Users", "update"),
        ("Projects", "create"),
        ("Projects", "update"),
        ("Standard Cost Codes", "create"),
        ("Standard Cost Codes", "update"),
        ("Standard Cost Codes", "delete"),
    }
    notes = hook_items(first)
    assert set(notes) == {
        "Webhook trigger: Company Users delete",
        "Webhook trigger: Projects delete",
    }
    assert "full reconciliation" in notes["Webhook trigger: Company Users delete"]

    world.sandbox.reset_stats()
    for _ in range(2):
        run = world.run()
        assert run.status == RunStatus.SUCCEEDED, run.error
    assert webhook_calls() == {}
    assert len(world.sandbox.store.select("hooks")) == 1


def test_a_refused_trigger_does_not_stop_the_others_and_the_admin_sees_procores_words(
    world, client
):
    """Procore refuses one trigger its list offered: the rest are subscribed, the hook is
    kept, and the run's records and the sync panel carry Procore's own message."""
    said = "Company Users create webhooks are not enabled for this company"
    world.sandbox.faults.add_rule(
        {
            "method": "POST",
            "path": r"/webhooks/hooks/\d+/triggers$",
            "status": 422,
            "count": 1,
            "body": {"message": said},
        }
    )
    first = world.run()
    assert first.status == RunStatus.SUCCEEDED, first.error
    state = sync.state_for(world.company.id)
    assert state.hook_id is not None
    triggers = sandbox_triggers(world)
    assert ("Company Users", "create") not in triggers
    assert len(triggers) == 6  # every other offered trigger went through
    assert said in hook_items(first)["Webhook trigger: Company Users create"]

    client.login(world.admin)
    assert said in client.get(SYNC_PAGE).get_data(as_text=True)
    detail = client.get(f"{SYNC_PAGE}/runs/{first.id}").get_data(as_text=True)
    assert said in detail and "Webhook trigger: Company Users create" in detail

    world.sandbox.reset_stats()
    world.run()
    assert webhook_calls() == {}


# -- our own writes coming back when Procore does not name the writing app -----------------
def _edit_in_procore_ui(sandbox_app, company_id, procore_id, **changes):
    record = sandbox_app.extensions["procore_sandbox"].store.get("users", procore_id)
    form = {
        "first_name": record["first_name"],
        "last_name": record["last_name"],
        "email_address": record["email_address"],
        "is_active": "on",
        **changes,
    }
    reply = sandbox_app.test_client().post(f"/companies/{company_id}/users/{procore_id}", data=form)
    assert reply.status_code == 302, reply.get_data(as_text=True)[:500]


def test_own_writes_echo_back_unnamed_yet_cost_nothing_and_real_edits_still_arrive(
    app, company, monkeypatch
):
    """Procore may send metadata.source_application_id = null (the demo sandbox does): the
    echo of our push is still known as ours (no call, no write, on it or on the idle cycles
    after), while an edit made in Procore right after our push still reaches Crewclock."""
    sandbox_app, company_id = make_sandbox(app, webhooks=True)
    sandbox_app.config["SERVER_NAME"] = None
    with mount_sandbox(sandbox_app, BASE), mount_sandbox(app, CREWCLOCK):
        token = requests.post(f"{BASE}/_sandbox/token", json={}, timeout=5).json()
        sandbox = Sandbox(sandbox_app, company_id, token["access_token"])
        config = requests.get(f"{BASE}/_sandbox/config", timeout=5).json()
        assert config["webhook_null_source_application"] is True
        world = build_world(company, sandbox)

        monkeypatch.setattr(
            "webapp.services.connections.procore_client_for",
            lambda company_id, stats=None: sandbox.client(),
        )
        deliverer = sandbox_app.extensions["sandbox_webhooks"]
        world.run()  # registers the hook; agrees a base with Procore
        procore_id, user = next(iter(world.users.items()))

        user.last_name = "Localedit"
        db.session.commit()
        # Deliveries wait until our run is over: in this one process the receiver would
        # share the run's in-memory database connection.
        deliverer.set_paused(True)
        pushed = world.run()
        assert pushed.checkpoint["sent"] == 1
        deliverer.set_paused(False)
        assert deliverer.wait_idle(5)
        echo = db.session.scalar(
            db.select(ProcoreWebhookEvent).where(ProcoreWebhookEvent.resource_id == procore_id)
        )
        assert echo is not None and echo.source_application_id is None

        sandbox.reset_stats()
        versions = {u.id: u.updated_at for u in db.session.scalars(db.select(type(user)))}
        _work(app)
        for _ in range(3):
            idle = world.run()
            assert idle.updated == 0 and idle.failed == 0 and idle.checkpoint["sent"] == 0
        stats = requests.get(f"{BASE}/_sandbox/stats", timeout=5).json()["requests"]
        # Only the idle cycles' two listings each: the echo fetched nothing, nothing was written.
        assert stats == {
            "GET /rest/{version}/companies/{company_id}/users": 3,
            "GET /rest/v1.1/projects": 3,
        }
        hook_runs = db.session.scalars(
            db.select(SyncRun).where(SyncRun.kind == sync.WEBHOOK_KIND)
        ).all()
        assert hook_runs and all(r.api_calls == 0 and r.updated == 0 for r in hook_runs)
        db.session.refresh(echo)
        assert echo.outcome == "ignored: our own change"
        db.session.expire_all()
        assert {u.id: u.updated_at for u in db.session.scalars(db.select(type(user)))} == versions

        # Our next push, then a person edits the same user in Procore right after, before
        # any webhook run: one of the two unnamed events is ours, the other is fetched.
        user = db.session.get(type(user), user.id)
        user.phone = "+1 510 555 0000"
        db.session.commit()
        deliverer.set_paused(True)
        assert world.run().checkpoint["sent"] == 1
        _edit_in_procore_ui(sandbox_app, company_id, procore_id, first_name="Edited")
        deliverer.set_paused(False)
        assert deliverer.wait_idle(5)
        _work(app)
        db.session.expire_all()
        user = db.session.get(type(user), user.id)
        assert user.first_name == "Edited"
        assert user.last_name == "Localedit" and user.phone == "+1 510 555 0000"


def test_where_procore_names_our_app_an_unnamed_edit_after_our_push_is_fetched(
    client, world, app, monkeypatch
):
    """Once Procore has named us as the writing app, an unnamed event is someone else's even
    when it reaches us before the echo of our own push."""

    monkeypatch.setattr(
        "webapp.services.connections.procore_client_for",
        lambda company_id, stats=None: world.sandbox.client(),
    )
    world.run()
    ids = iter(world.users.items())
    named_id, _ = next(ids)
    ours = app.config["PROCORE_CLIENT_ID"]
    post(client, event(world, named_id, ulid="01J0AAAAAAAAAAAAAAAAAAAAAA", source=ours))
    _work(app)

    procore_id, user = next(ids)
    user.last_name = "Localedit"
    db.session.commit()
    assert world.run().checkpoint["sent"] == 1
    world.sandbox.store.update("users", procore_id, {"first_name": "Person"})
    post(client, event(world, procore_id, ulid="01J0BBBBBBBBBBBBBBBBBBBBBB"))  # unnamed
    _work(app)
    db.session.expire_all()
    assert db.session.get(type(user), user.id).first_name == "Person"
