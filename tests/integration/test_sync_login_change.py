"""Sync changing a linked user's email (their login) tells them and the admins, and an admin
may keep Crewclock's email when users sync both ways."""

from tests.conftest import PASSWORD
from tests.integration.sync_support import *  # noqa: F403 (fixtures)
from webapp.extensions import db
from webapp.models import IntegrationSettings, RunStatus, SyncDirection, SyncRunItem

HX = {"HX-Request": "true"}
NEW_EMAIL = "james.renamed@summit.example.com"


def _settled_user(world):
    assert world.run().status == RunStatus.SUCCEEDED
    procore_id, user = next(iter(world.users.items()))
    user.set_password(PASSWORD)
    db.session.commit()
    return procore_id, user


def _procore_changes_email(world, procore_id: int) -> None:
    reply = world.sandbox.api(
        "PATCH",
        f"/rest/v1.0/companies/{world.sandbox.company_id}/users/{procore_id}",
        json={"user": {"email_address": NEW_EMAIL}},
    )
    assert reply.status_code == 200, reply.text


def _reasons(run) -> list[str]:
    return [
        item.reason or ""
        for item in db.session.scalars(db.select(SyncRunItem).where(SyncRunItem.run_id == run.id))
    ]


def test_login_email_changed_by_procore_is_told_to_the_user_and_the_admins(world, client):
    procore_id, user = _settled_user(world)
    old_email = user.email
    _procore_changes_email(world, procore_id)

    run = world.run()

    db.session.refresh(user)
    assert user.email == NEW_EMAIL
    assert any(
        f"Login email changed by Procore: {user.name} now logs in with {NEW_EMAIL} "
        f"instead of {old_email}" in reason
        for reason in _reasons(run)
    )
    detail = client.get("/login")  # (anonymous) no notice on the login page
    assert "Your login email was changed" not in detail.get_data(as_text=True)

    client.post("/login", data={"identifier": NEW_EMAIL, "password": PASSWORD})
    page = client.get("/time/", follow_redirects=True).get_data(as_text=True)
    assert f"Your login email was changed from {old_email} to" in page
    assert NEW_EMAIL in page
    assert client.post("/account/login-notices/dismiss").status_code == 303
    page = client.get("/time/", follow_redirects=True).get_data(as_text=True)
    assert "Your login email was changed" not in page  # dismissed: gone for good

    client.post("/logout")
    client.login(world.admin)
    card = client.get("/settings/integrations/").get_data(as_text=True)
    assert "Login emails changed by sync" in card
    assert f"{user.name}: {old_email} → {NEW_EMAIL} (they have seen the notice)" in card
    history = client.get(f"/settings/integrations/procore/sync/runs/{run.id}")
    assert "Login email changed by Procore" in history.get_data(as_text=True)


def test_admin_can_keep_crewclocks_email_when_users_sync_both_ways(world, client):
    world.settings.keep_crewclock_email = True
    db.session.commit()
    procore_id, user = _settled_user(world)
    old_email = user.email
    _procore_changes_email(world, procore_id)

    run = world.run()

    db.session.refresh(user)
    assert user.email == old_email  # the login did not change
    remote = world.sandbox.store.get("users", procore_id)
    assert remote["email_address"] == old_email  # sent back to Procore
    assert any("Crewclock kept" in reason for reason in _reasons(run))
    client.login(user)
    page = client.get("/time/", follow_redirects=True).get_data(as_text=True)
    assert "Your login email was changed" not in page
    client.post("/logout")
    client.login(world.admin)
    card = client.get("/settings/integrations/").get_data(as_text=True)
    assert f"Procore changed the email to {NEW_EMAIL}; Crewclock kept {old_email}" in card
    assert world.run().updated == 0  # quiet afterwards: no ping-pong


def test_keeping_crewclocks_email_needs_users_to_sync_both_ways(world, client):
    client.login(world.admin)
    response = client.post(
        "/settings/integrations/procore/setup/sync",
        data={
            "users_direction": SyncDirection.PROCORE_TO_CREWCLOCK.value,
            "projects_direction": "procore_to_crewclock",
            "cost_codes_direction": "procore_to_crewclock",
            "timecard_trigger": "approved",
            "keep_crewclock_email": "on",
        },
        headers=HX,
    )
    assert response.status_code == 422
    assert "only when users sync Both ways" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(IntegrationSettings, world.company.id).keep_crewclock_email is False
