"""Sync of linked users and projects against the sandbox (reliability.md D1, D2, D4, D6, D7)."""

from datetime import timedelta

import pytest
import requests

from tests.integration.sync_support import *  # noqa: F403
from tests.integration.sync_support import BASE
from webapp.extensions import db
from webapp.models import RunStatus, SyncDirection, SyncRunItem, User
from webapp.models.sync import ConflictPolicy, SyncConflict, SyncCursor
from webapp.procore.errors import ProcoreUnavailable
from webapp.services import sync


def _settle(world):
    """The first sync after set-up: a full listing that agrees a base with Procore."""
    run = world.run()
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def test_first_sync_agrees_with_procore_and_changes_nothing(world):
    run = _settle(world)
    assert run.updated == 0
    assert run.unchanged == len(world.users) + len(world.projects)
    cursor = db.session.scalar(db.select(SyncCursor).where(SyncCursor.entity_type == "user"))
    assert cursor.cursor is not None


def test_procore_edit_reaches_the_linked_user_on_the_next_poll(world):
    _settle(world)
    procore_id, user = next(iter(world.users.items()))
    reply = world.sandbox.api(
        "PATCH",
        f"/rest/v1.0/companies/{world.sandbox.company_id}/users/{procore_id}",
        json={"user": {"first_name": "Renamed"}},
    )
    assert reply.status_code == 200
    run = world.run()
    db.session.refresh(user)
    assert user.first_name == "Renamed"
    assert run.updated == 1


def test_ten_idle_cycles_send_nothing_and_change_nothing(world):
    """D6: steady state is quiet, including our own writes echoing back."""
    _settle(world)
    procore_id, user = next(iter(world.users.items()))
    user.last_name = "Localedit"
    db.session.commit()
    first = world.run()  # sends the local edit once; the echo comes back next poll
    assert first.checkpoint["sent"] == 1
    world.sandbox.reset_stats()
    versions = {u.id: u.updated_at for u in db.session.scalars(db.select(User))}
    for _ in range(10):
        run = world.run()
        assert run.updated == 0 and run.failed == 0
    assert world.sandbox.writes() == 0
    assert {u.id: u.updated_at for u in db.session.scalars(db.select(User))} == versions
    assert world.sandbox.store.get("users", procore_id)["last_name"] == "Localedit"


def test_idle_incremental_cycle_costs_two_calls(world):
    _settle(world)
    run = world.run()
    assert run.api_calls <= 2


def test_records_updated_at_the_cursor_instant_are_picked_up(world):
    """D1: the overlap re-reads the cursor's instant; duplicates are absorbed."""
    _settle(world)
    cursor = db.session.scalar(db.select(SyncCursor).where(SyncCursor.entity_type == "project"))
    procore_id, project = next(iter(world.projects.items()))
    store = world.sandbox.store
    # Procore stamps the change exactly at our cursor (second precision).
    store.update("projects", procore_id, {"name": "At the cursor"})
    store.table("projects")[procore_id]["updated_at"] = cursor.cursor.strftime("%Y-%m-%dT%H:%M:%SZ")
    count = db.session.scalar(db.select(db.func.count(User.id)))
    world.run()
    world.run()
    db.session.refresh(project)
    assert project.name == "At the cursor"
    assert db.session.scalar(db.select(db.func.count(User.id))) == count


def test_failed_page_keeps_the_cursor_and_the_next_run_catches_up(world, monkeypatch):
    """D2: a run failing mid-listing does not advance the cursor; the rerun completes."""
    _settle(world)
    cursor = db.session.scalar(db.select(SyncCursor).where(SyncCursor.entity_type == "user"))
    before = cursor.cursor
    changed = list(world.users.items())[:3]
    for procore_id, _ in changed:
        world.sandbox.store.update("users", procore_id, {"job_title": "x", "first_name": "Page"})
    client_cls = type(world.sandbox.client())
    original = client_cls.iter_pages

    def failing(self, path, params=None, per_page=100, **kw):
        for page in original(self, path, params, 1, **kw):  # 1 per page: 3 pages
            if page.number == 3:
                raise ProcoreUnavailable("Procore is unavailable (HTTP 503)", status=503)
            yield page

    monkeypatch.setattr(client_cls, "iter_pages", failing)
    with pytest.raises(ProcoreUnavailable):
        world.run()
    db.session.expire_all()
    assert db.session.get(SyncCursor, cursor.id).cursor == before
    monkeypatch.setattr(client_cls, "iter_pages", original)
    run = world.run()
    assert run.status == RunStatus.SUCCEEDED
    for _, user in changed:
        db.session.refresh(user)
        assert user.first_name == "Page"


def test_deleted_in_procore_is_deactivated_only_after_a_complete_listing(world, monkeypatch):
    """D4: a hard delete in Procore soft-deletes the linked record on the full run; a
    listing that fails part-way deletes nothing."""
    _settle(world)
    procore_id, user = next(iter(world.users.items()))
    world.sandbox.store.delete("users", procore_id)
    client_cls = type(world.sandbox.client())
    original = client_cls.iter_pages

    def partial(self, path, params=None, per_page=100, **kw):
        yield from original(self, path, params, per_page, **kw)
        if path.endswith("/inactive"):
            raise ProcoreUnavailable("Procore is unavailable (HTTP 503)", status=503)

    monkeypatch.setattr(client_cls, "iter_pages", partial)
    with pytest.raises(ProcoreUnavailable):
        world.run(sync.FULL_KIND)
    db.session.refresh(user)
    assert user.active is True
    monkeypatch.setattr(client_cls, "iter_pages", original)
    run = world.run(sync.FULL_KIND)
    db.session.refresh(user)
    assert user.active is False
    assert run.deleted == 1
    assert world.link_of("user", user.id) is not None  # kept linked


def test_project_address_removed_in_procore_is_flagged_not_applied(world):
    _settle(world)
    procore_id, project = next(iter(world.projects.items()))
    world.sandbox.store.update("projects", procore_id, {"address": None, "name": "Renamed"})
    run = world.run()
    db.session.refresh(project)
    link = world.link_of("project", project.id)
    assert project.street is not None and project.name != "Renamed"  # not half-applied
    assert "Address incomplete" in link.sync_problem
    assert run.skipped == 1


def test_per_item_errors_are_recorded_and_only_those_are_retried(world):
    """D7: Procore accepts most of a batch; rejected items fail with Procore's message and
    the rerun sends only those."""
    _settle(world)
    users = list(world.users.values())
    for user in users:
        user.last_name = user.last_name + "x"
    # Make three of them fail: Procore refuses a blank last name.
    bad = users[2:5]
    for user in bad:
        user.last_name = " "
    db.session.commit()
    world.sandbox.reset_stats()
    run = world.run()
    assert run.status == RunStatus.PARTIAL
    assert run.failed == 3
    reasons = db.session.scalars(
        db.select(SyncRunItem.reason).where(
            SyncRunItem.run_id == run.id, SyncRunItem.outcome == "failed"
        )
    ).all()
    assert len(reasons) == 3 and all("blank" in r for r in reasons)
    assert run.checkpoint["sent"] == len(users) - 3
    rerun = world.run()
    sent = db.session.scalars(
        db.select(SyncRunItem.local_id).where(SyncRunItem.run_id == rerun.id)
    ).all()
    assert sorted(sent) == sorted(u.id for u in bad)


def test_both_sides_changed_procore_wins_by_default(world):
    _settle(world)
    procore_id, user = next(iter(world.users.items()))
    user.first_name = "Local"
    db.session.commit()
    world.sandbox.store.update("users", procore_id, {"first_name": "Remote"})
    world.run()
    db.session.refresh(user)
    assert user.first_name == "Remote"
    assert world.sandbox.store.get("users", procore_id)["first_name"] == "Remote"


def test_hold_for_review_queues_the_conflict_until_an_admin_resolves_it(world):
    _settle(world)
    sync.set_conflict_policy(world.company.id, ConflictPolicy.HOLD)
    db.session.commit()
    procore_id, user = next(iter(world.users.items()))
    user.first_name = "Local"
    db.session.commit()
    world.sandbox.store.update("users", procore_id, {"first_name": "Remote"})
    world.run()
    db.session.refresh(user)
    assert user.first_name == "Local"
    assert world.sandbox.store.get("users", procore_id)["first_name"] == "Remote"
    conflict = db.session.scalar(db.select(SyncConflict))
    assert conflict.procore_values["first_name"] == "Remote"
    assert sync.resolve_conflict(world.company.id, conflict.id, "crewclock", world.admin.id)
    db.session.commit()
    world.run()
    assert world.sandbox.store.get("users", procore_id)["first_name"] == "Local"


def test_unlinked_and_off_records_are_left_alone(world):
    _settle(world)
    procore_id, user = next(iter(world.users.items()))
    world.set_direction("user", SyncDirection.OFF)
    world.sandbox.store.update("users", procore_id, {"first_name": "Remote"})
    user.first_name = "Local"
    db.session.commit()
    world.sandbox.reset_stats()
    world.run()
    db.session.refresh(user)
    assert user.first_name == "Local"
    assert world.sandbox.store.get("users", procore_id)["first_name"] == "Remote"
    assert world.sandbox.writes() == 0


def test_three_failed_runs_in_a_row_pause_sync(world, monkeypatch):
    client_cls = type(world.sandbox.client())

    def down(self, *a, **kw):
        raise ProcoreUnavailable("Procore is unavailable (HTTP 503)", status=503)
        yield  # pragma: no cover

    monkeypatch.setattr(client_cls, "iter_pages", down)
    for _ in range(3):
        with pytest.raises(ProcoreUnavailable):
            world.run()
    state = sync.state_for(world.company.id)
    assert state.paused_at is not None and "3 sync runs failed" in state.pause_reason
    from webapp.services import sync_runs

    assert world.company.id not in sync_runs.companies_to_sync()


def test_sandbox_is_reachable(sandbox):
    assert requests.get(f"{BASE}/_sandbox/stats", timeout=5).status_code == 200


_ = timedelta
