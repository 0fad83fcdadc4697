"""One dropdown change or one odd listing never deactivates most of the company."""

from tests.integration.sync_support import *  # noqa: F403 (fixtures)
from webapp.extensions import db
from webapp.models import IntegrationSettings, ProcoreConnection, Project, RunStatus, User
from webapp.services import sync

HX = {"HX-Request": "true"}
CARD = "/settings/integrations/"
RIDGELINE = "Ridgeline Concrete LLC"


def _other_procore_company(world) -> int:
    other = next(
        c for c in world.sandbox.store.select("companies") if c["id"] != world.sandbox.company_id
    )
    conn = db.session.get(ProcoreConnection, world.company.id)
    conn.available_companies = [
        {"id": world.sandbox.company_id, "name": "Summit Builders Inc."},
        {"id": other["id"], "name": other["name"]},
    ]
    db.session.commit()
    return other["id"]


def _active_users(world) -> int:
    db.session.expire_all()
    return sum(1 for u in world.users.values() if db.session.get(User, u.id).active)


def test_changing_the_procore_company_while_records_are_linked_is_refused(world, client):
    other = _other_procore_company(world)
    client.login(world.admin)

    response = client.post(
        "/settings/integrations/procore/setup/company",
        data={"procore_company_id": other},
        headers=HX,
    )

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "linked to" in page and "Unlink them first" in page
    db.session.expire_all()
    assert db.session.get(IntegrationSettings, world.company.id).procore_company_id == (
        world.sandbox.company_id
    )
    linked = len(world.users)
    world.run(sync.FULL_KIND)  # the nightly reconciliation still sees the right company
    assert _active_users(world) == linked
    assert all(db.session.get(Project, p.id).active for p in world.projects.values())


def test_reconciliation_missing_most_users_holds_them_until_an_admin_confirms(world, client):
    world.run(sync.FULL_KIND)
    gone = list(world.users)[:10]
    for procore_id in gone:
        world.sandbox.store.delete("users", procore_id)
    linked = len(world.users)

    run = world.run(sync.FULL_KIND)

    assert _active_users(world) == linked  # nothing deactivated yet
    assert run.status == RunStatus.PARTIAL and run.deleted == 0
    assert f"10 of {linked} linked users are missing" in run.error
    client.login(world.admin)
    card = client.get(CARD).get_data(as_text=True)
    assert "Deactivations held for your confirmation." in card
    assert f"10 of {linked} linked users are missing" in card
    confirm = f"/settings/integrations/procore/held-deletions/{run.id}/confirm"
    assert confirm in card

    response = client.post(confirm, headers=HX)

    assert response.status_code == 200
    assert "Confirmed: 10 records deleted in Procore deactivated here." in response.get_data(
        as_text=True
    )
    assert _active_users(world) == linked - 10
    assert all(not db.session.get(User, world.users[pid].id).active for pid in gone)
    assert "Deactivations held" not in client.get(CARD).get_data(as_text=True)
    assert client.post(confirm, headers=HX).status_code == 409  # nothing left to confirm


def test_a_few_deletions_still_apply_without_confirmation(world):
    world.run(sync.FULL_KIND)
    gone = list(world.users)[:2]
    for procore_id in gone:
        world.sandbox.store.delete("users", procore_id)

    run = world.run(sync.FULL_KIND)

    assert run.deleted == 2 and run.status == RunStatus.SUCCEEDED
    assert sync.held_deletions(world.company.id) is None
