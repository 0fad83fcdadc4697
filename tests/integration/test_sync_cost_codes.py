"""Crewclock -> Procore for linked cost codes: the standard cost codes sync action."""

import pytest

from tests.integration.sync_support import *  # noqa: F403
from tests.integration.sync_support import World, build_world
from webapp.extensions import db
from webapp.models import (
    CostCode,
    EntityType,
    ProcoreLink,
    ProcoreStagedRecord,
    RunStatus,
    SyncDirection,
    SyncRunItem,
)
from webapp.procore import mapping
from webapp.procore.errors import ProcoreError
from webapp.services import sync


def _link_cost_codes(world: World) -> dict:
    """Link every standard code of the company's list as the set-up import does: our code is
    Procore's full code, each code under its linked division, links on the raw-payload hash."""
    sandbox = world.sandbox
    ccl = sandbox.one("cost_code_lists")
    world.settings.standard_cost_code_list_id = ccl["id"]
    path = "/rest/v1.0/standard_cost_codes"
    params = {"company_id": sandbox.company_id, "standard_cost_code_list_id": ccl["id"]}
    codes = {}
    listed = list(sandbox.client().iter_items(path, params))
    for payload in listed:
        code = CostCode(company_id=world.company.id, **mapping.cost_code_fields(payload))
        db.session.add(code)
        db.session.flush()
        db.session.add(
            ProcoreLink(
                company_id=world.company.id,
                entity_type=EntityType.COST_CODE,
                local_id=code.id,
                procore_id=payload["id"],
                payload_hash=mapping.payload_hash(payload),
            )
        )
        db.session.add(
            ProcoreStagedRecord(
                company_id=world.company.id,
                entity_type="cost_code",
                procore_id=payload["id"],
                payload=payload,
                parent_procore_id=mapping.cost_code_parent_id(payload),
            )
        )
        codes[payload["id"]] = code
    for payload in listed:
        parent = mapping.cost_code_parent_id(payload)
        if parent is not None:
            codes[payload["id"]].parent_id = codes[parent].id
    db.session.commit()
    return codes


@pytest.fixture
def codes_world(company, sandbox):
    world = build_world(company, sandbox)
    world.codes = _link_cost_codes(world)
    world.set_direction("cost_code", SyncDirection.BOTH)
    first = world.run(sync.FULL_KIND)  # agrees a base with Procore for every link
    assert first.status == RunStatus.SUCCEEDED, first.error
    return world


def _child(world: World, nth: int = 0) -> tuple[int, CostCode]:
    children = [(pid, c) for pid, c in world.codes.items() if c.parent_id is not None]
    return children[nth]


def test_renamed_linked_cost_code_reaches_procore_under_its_division(codes_world):
    world = codes_world
    procore_id, code = _child(world)
    division = db.session.get(CostCode, code.parent_id)
    before = world.sandbox.store.get("standard_cost_codes", procore_id)
    code.code = f"{division.code}-950"
    code.name = "Renamed here"
    db.session.commit()
    run = world.run()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.checkpoint["sent"] == 1
    after = world.sandbox.store.get("standard_cost_codes", procore_id)
    assert after["name"] == "Renamed here"
    assert after["full_code"] == code.code
    assert after["code"] == "950"
    assert after["parent_id"] == before["parent_id"]


def test_idle_cycles_after_a_cost_code_send_write_nothing(codes_world):
    world = codes_world
    procore_id, code = _child(world, 1)
    code.name = "Sent once"
    db.session.commit()
    assert world.run().checkpoint["sent"] == 1
    world.sandbox.reset_stats()
    for kind in (sync.FULL_KIND, sync.SYNC_KIND, sync.FULL_KIND):
        run = world.run(kind)  # the full listing reads our own write back (the echo)
        assert run.updated == 0 and run.failed == 0
    assert world.sandbox.writes() == 0
    db.session.refresh(code)
    assert code.name == "Sent once"
    assert world.sandbox.store.get("standard_cost_codes", procore_id)["name"] == "Sent once"


def test_procore_to_crewclock_direction_sends_no_cost_codes(codes_world):
    world = codes_world
    world.set_direction("cost_code", SyncDirection.PROCORE_TO_CREWCLOCK)
    procore_id, code = _child(world)
    original = world.sandbox.store.get("standard_cost_codes", procore_id)["name"]
    code.name = "Local only"
    db.session.commit()
    world.sandbox.reset_stats()
    world.run()
    world.run(sync.FULL_KIND)
    assert world.sandbox.writes() == 0
    assert world.sandbox.store.get("standard_cost_codes", procore_id)["name"] == original


def test_off_sends_no_cost_codes(codes_world):
    world = codes_world
    world.set_direction("cost_code", SyncDirection.OFF)
    procore_id, code = _child(world)
    original = world.sandbox.store.get("standard_cost_codes", procore_id)["name"]
    code.name = "Local only"
    db.session.commit()
    world.sandbox.reset_stats()
    world.run(sync.FULL_KIND)
    assert world.sandbox.writes() == 0
    assert world.sandbox.store.get("standard_cost_codes", procore_id)["name"] == original


def test_crewclock_to_procore_sends_a_rename_made_right_after_set_up(company, sandbox):
    """One-way out: the full listing agrees the first base (nothing applied here), then
    our rename goes out."""
    world = build_world(company, sandbox)
    world.codes = _link_cost_codes(world)
    world.set_direction("cost_code", SyncDirection.CREWCLOCK_TO_PROCORE)
    procore_id, code = _child(world)
    code.name = "Ours wins"
    db.session.commit()
    world.sandbox.store.update("standard_cost_codes", procore_id, {"name": "Theirs"})
    run = world.run(sync.FULL_KIND)
    assert run.status == RunStatus.SUCCEEDED, run.error
    db.session.refresh(code)
    assert code.name == "Ours wins"
    assert world.sandbox.store.get("standard_cost_codes", procore_id)["name"] == "Ours wins"


def test_per_item_cost_code_errors_are_recorded_and_the_rest_go(codes_world):
    world = codes_world
    children = [c for _, c in world.codes.items() if c.parent_id is not None][:5]
    for code in children:
        code.name = code.name + " (rev)"
    blank, moved = children[1], children[3]
    blank.name = " "  # Procore refuses a blank name
    moved.code = "ZZ-" + moved.code  # no longer under its division's code
    db.session.commit()
    run = world.run()
    assert run.status == RunStatus.PARTIAL
    assert run.failed == 2 and run.checkpoint["sent"] == 3
    reasons = dict(
        db.session.execute(
            db.select(SyncRunItem.local_id, SyncRunItem.reason).where(
                SyncRunItem.run_id == run.id, SyncRunItem.outcome == "failed"
            )
        ).all()
    )
    assert "blank" in reasons[blank.id]
    assert "division's code" in reasons[moved.id]
    by_local = {c.id: pid for pid, c in world.codes.items()}
    for code in children:
        if code not in (blank, moved):
            assert world.sandbox.store.get("standard_cost_codes", by_local[code.id])["name"] == (
                code.name
            )
    rerun = world.run()
    retried = db.session.scalars(
        db.select(SyncRunItem.local_id).where(SyncRunItem.run_id == rerun.id)
    ).all()
    assert sorted(retried) == sorted([blank.id, moved.id])


def test_a_413_halves_the_batch_until_procore_takes_it(codes_world, monkeypatch):
    world = codes_world
    children = [c for _, c in world.codes.items() if c.parent_id is not None][:6]
    for code in children:
        code.name = code.name + " (bulk)"
    db.session.commit()
    client_cls = type(world.sandbox.client())
    original = client_cls.patch
    sizes = []

    def small_bodies_only(self, path, json=None, params=None, **kw):
        if path.endswith("standard_cost_codes/sync"):
            sizes.append(len(json["updates"]))
            if len(json["updates"]) > 2:
                raise ProcoreError(status=413, method="PATCH", path=path)
        return original(self, path, json, params, **kw)

    monkeypatch.setattr(client_cls, "patch", small_bodies_only)
    run = world.run()
    assert run.checkpoint["sent"] == 6 and run.failed == 0
    assert sizes == [6, 3, 1, 2, 3, 1, 2]  # halved until each call fits
    by_local = {c.id: pid for pid, c in world.codes.items()}
    for code in children:
        assert world.sandbox.store.get("standard_cost_codes", by_local[code.id])["name"] == (
            code.name
        )


def test_cost_code_changed_on_both_sides_takes_procores_version_by_default(codes_world):
    world = codes_world
    procore_id, code = _child(world)
    code.name = "Ours"
    db.session.commit()
    world.sandbox.store.update("standard_cost_codes", procore_id, {"name": "Theirs"})
    world.run()
    db.session.refresh(code)
    assert code.name == "Theirs"
    assert world.sandbox.store.get("standard_cost_codes", procore_id)["name"] == "Theirs"
