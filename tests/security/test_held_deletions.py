"""Confirming deactivations a reconciliation held back: admin-only, CSRF-checked, and only
for the admin's own company."""

from tests.conftest import make_user
from tests.integration.sync_support import *  # noqa: F403 (fixtures)
from webapp.extensions import db
from webapp.models import Role, User
from webapp.services import sync

HX = {"HX-Request": "true"}


def _active_users(world) -> int:
    db.session.expire_all()
    return sum(1 for u in world.users.values() if db.session.get(User, u.id).active)


def test_confirming_held_deletions_is_admin_only_csrf_checked_and_company_scoped(
    world, client, other_company
):
    world.run(sync.FULL_KIND)
    for procore_id in list(world.users)[:10]:
        world.sandbox.store.delete("users", procore_id)
    run = world.run(sync.FULL_KIND)
    confirm = f"/settings/integrations/procore/held-deletions/{run.id}/confirm"
    linked = len(world.users)

    client.login(make_user(world.company, Role.WORKER))
    assert client.post(confirm, headers=HX).status_code == 403
    client.post("/logout")
    client.login(make_user(other_company, Role.ADMIN))
    assert client.post(confirm, headers=HX).status_code == 404
    client.post("/logout")
    client.login(world.admin)
    assert client.post(confirm, headers=HX, csrf=False).status_code == 400

    assert _active_users(world) == linked
    assert sync.held_deletions(world.company.id) is not None
