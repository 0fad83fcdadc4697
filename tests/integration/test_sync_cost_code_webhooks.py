"""Webhook events for linked standard cost codes: fetched by id within the chosen list."""

import pytest

from tests.integration.sync_support import *  # noqa: F403
from tests.integration.sync_support import build_world
from tests.integration.test_sync_cost_codes import _child, _link_cost_codes
from webapp.extensions import db
from webapp.models import CostCode, RunStatus, SyncDirection, SyncRunItem
from webapp.models.sync import ProcoreWebhookEvent
from webapp.services import sync, sync_runs


@pytest.fixture
def codes_world(company, sandbox):
    world = build_world(company, sandbox)
    world.codes = _link_cost_codes(world)
    world.set_direction("cost_code", SyncDirection.PROCORE_TO_CREWCLOCK)
    first = world.run(sync.FULL_KIND)
    assert first.status == RunStatus.SUCCEEDED, first.error
    return world


def _event(world, procore_id: int, event_type: str = "update", ulid="01J0CCCCCCCCCCCCCCCCCCCCCC"):
    sync_runs.receive_event(
        {
            "ulid": ulid,
            "company_id": world.sandbox.company_id,
            "event_type": event_type,
            "resource_name": "Standard Cost Codes",
            "resource_id": procore_id,
        }
    )


def _items(run) -> list[SyncRunItem]:
    return list(db.session.scalars(db.select(SyncRunItem).where(SyncRunItem.run_id == run.id)))


def test_procore_rename_of_a_linked_cost_code_arrives_by_webhook(codes_world):
    world = codes_world
    procore_id, code = _child(world)
    world.sandbox.store.update("standard_cost_codes", procore_id, {"name": "Renamed in Procore"})
    _event(world, procore_id)
    run = world.run(sync.WEBHOOK_KIND, trigger="webhook")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert db.session.get(CostCode, code.id).name == "Renamed in Procore"
    assert db.session.scalar(db.select(ProcoreWebhookEvent.outcome)) == "fetched"


def test_cost_code_gone_from_the_list_is_kept_until_the_full_reconciliation(codes_world):
    world = codes_world
    procore_id, code = _child(world)
    world.sandbox.store.delete("standard_cost_codes", procore_id)
    _event(world, procore_id, event_type="delete")
    run = world.run(sync.WEBHOOK_KIND, trigger="webhook")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert db.session.get(CostCode, code.id).active is True
    [item] = _items(run)
    assert item.outcome == "skipped" and "full reconciliation" in item.reason
    assert run.deleted == 0 and run.skipped == 1

    full = world.run(sync.FULL_KIND)
    assert full.deleted == 1
    assert db.session.get(CostCode, code.id).active is False


def test_procore_refusing_the_lookup_is_a_failed_item_with_procores_words(codes_world):
    world = codes_world
    procore_id, code = _child(world)
    world.sandbox.faults.add_rule(
        {
            "method": "GET",
            "path": r"/standard_cost_codes/\d+$",
            "status": 400,
            "body": {"message": "standard_cost_code_list_id is not valid here"},
            "count": 1,
        }
    )
    _event(world, procore_id)
    run = world.run(sync.WEBHOOK_KIND, trigger="webhook")
    assert run.status == RunStatus.PARTIAL and run.failed == 1
    [item] = _items(run)
    assert item.outcome == "failed" and item.local_id == code.id
    assert "standard_cost_code_list_id is not valid here" in item.reason
    assert db.session.get(CostCode, code.id).active is True
