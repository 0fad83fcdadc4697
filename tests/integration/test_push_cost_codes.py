"""A cost code missing from the Procore project is created there the way Procore builds codes:
the segment under its division, the division first when the project lacks it too."""

from tests.integration.push_support import *  # noqa: F403 (fixtures)
from tests.integration.push_support import remote_project_id
from webapp.extensions import db
from webapp.models import CostCode, EntityType, SyncDirection
from webapp.services import push


def _writes_codes(world) -> None:
    world.settings.cost_codes_direction = SyncDirection.BOTH
    db.session.commit()


def _drop_remote(world, *full_codes: str) -> None:
    project_id = remote_project_id(world)
    for row in world.sandbox.store.select("cost_codes", project_id=project_id):
        if row["full_code"] in full_codes:
            world.sandbox.store.delete("cost_codes", row["id"])


def _remote(world, full_code: str) -> list[dict]:
    return world.sandbox.store.select(
        "cost_codes", project_id=remote_project_id(world), full_code=full_code
    )


def test_missing_code_is_created_as_its_segment_under_the_projects_division(world):
    _drop_remote(world, "03-100")
    _writes_codes(world)
    card = world.approve(world.card(world.workers[0], entries=1))
    world.push()

    assert push.card_sync_states(world.company.id, [card.id])[card.id].label == "Sent"
    [entry] = world.sandbox.entries()
    created = world.sandbox.store.get("cost_codes", entry["cost_code_id"])
    [division] = _remote(world, "03")
    assert (created["code"], created["full_code"]) == ("100", "03-100")
    assert created["parent_id"] == division["id"]
    assert len(_remote(world, "03-100")) == 1


def test_missing_division_is_created_first_from_our_own(world):
    division = CostCode(company_id=world.company.id, code="03", name="Concrete")
    db.session.add(division)
    db.session.flush()
    world.cost_code.parent_id = division.id
    db.session.commit()
    world.link(
        EntityType.COST_CODE,
        division.id,
        world.sandbox.one("standard_cost_codes", full_code="03")["id"],
    )
    _drop_remote(world, "03", "03-100", "03-200", "03-300")
    _writes_codes(world)
    card = world.approve(world.card(world.workers[0], entries=1))
    world.push()

    assert push.card_sync_states(world.company.id, [card.id])[card.id].label == "Sent"
    [remote_division] = _remote(world, "03")
    assert remote_division["parent_id"] is None and remote_division["name"] == "Concrete"
    [created] = _remote(world, "03-100")
    assert created["code"] == "100" and created["parent_id"] == remote_division["id"]
    assert world.sandbox.entries()[0]["cost_code_id"] == created["id"]


def test_division_known_nowhere_is_not_mapped_with_what_to_add(world):
    _drop_remote(world, "03", "03-100")
    _writes_codes(world)
    card = world.approve(world.card(world.workers[0], entries=1))
    world.push()

    badge = push.card_sync_states(world.company.id, [card.id])[card.id]
    assert badge.label == "Not mapped"
    assert "belongs under 03" in badge.reason and "Add 03" in badge.reason
    assert world.sandbox.entries() == []
    assert _remote(world, "03-100") == []
