"""Issue 17 item 11: sessions end when they should. Logging out, a new password (set by an
admin, by the user, or through an invite link) and deactivation end every session of that
user, including copies of the session cookie."""

import re
from urllib.parse import urlsplit

from tests.security.support import sign_in
from webapp.extensions import db
from webapp.models import User

NEW_PASSWORD = "brand-new-pass-9"
INVITE_LINK = re.compile(r'value="(http[^"]+/invite/[^"]+)"')


def stolen_copy(app, client):
    """A second browser holding a copy of `client`'s session cookie."""
    name = app.config["SESSION_COOKIE_NAME"]
    thief = app.test_client()
    thief.set_cookie(name, client.get_cookie(name).value)
    return thief


def is_signed_in(client) -> bool:
    response = client.get("/time/")
    if response.status_code == 302:
        assert "/login" in response.headers["Location"]
        return False
    assert response.status_code == 200
    return True


def test_logging_out_ends_a_copied_session_cookie_too(world, client, app):
    sign_in(client, world.a, "worker")
    thief = stolen_copy(app, client)
    assert is_signed_in(thief)

    client.post("/logout")

    assert not is_signed_in(thief)


def test_an_admin_setting_a_new_password_ends_the_users_sessions(world, client, app):
    sign_in(client, world.a, "worker")
    thief = stolen_copy(app, client)
    admin = app.test_client()
    sign_in(admin, world.a, "admin")
    worker = db.session.get(User, world.a.users["worker"])
    form = {
        "first_name": worker.first_name,
        "last_name": worker.last_name,
        "username": worker.username,
        "email": worker.email,
        "role": "worker",
        "time_zone": worker.time_zone,
        "password": NEW_PASSWORD,
    }
    db.session.remove()

    saved = admin.post(f"/users/{world.a.users['worker']}/edit", data=form)

    assert saved.status_code == 303
    assert not is_signed_in(client)
    assert not is_signed_in(thief)
    assert is_signed_in(admin)  # the admin's own session is untouched
    fresh = app.test_client()
    fresh.post("/login", data={"identifier": world.a.usernames["worker"], "password": NEW_PASSWORD})
    assert is_signed_in(fresh)


def test_changing_your_own_password_keeps_this_session_and_ends_the_others(world, client, app):
    sign_in(client, world.a, "admin")
    other_device = app.test_client()
    sign_in(other_device, world.a, "admin")
    me = db.session.get(User, world.a.users["admin"])
    form = {
        "first_name": me.first_name,
        "last_name": me.last_name,
        "username": me.username,
        "email": me.email,
        "role": "admin",
        "time_zone": me.time_zone,
        "password": NEW_PASSWORD,
    }
    db.session.remove()

    assert client.post(f"/users/{me.id}/edit", data=form).status_code == 303

    assert is_signed_in(client)
    assert not is_signed_in(other_device)


def test_setting_a_password_through_an_invite_link_ends_older_sessions(world, client, app):
    sign_in(client, world.a, "worker")
    thief = stolen_copy(app, client)
    admin = app.test_client()
    sign_in(admin, world.a, "admin")
    link = admin.post(
        f"/users/{world.a.users['worker']}/invite-link", headers={"HX-Request": "true"}
    )
    path = urlsplit(INVITE_LINK.search(link.get_data(as_text=True)).group(1)).path
    invitee = app.test_client()

    done = invitee.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})

    assert done.status_code == 303
    assert is_signed_in(invitee)
    assert not is_signed_in(client)
    assert not is_signed_in(thief)


def test_deactivating_ends_the_users_sessions_and_reactivating_does_not_revive_them(
    world, client, app
):
    sign_in(client, world.a, "worker")
    thief = stolen_copy(app, client)
    admin = app.test_client()
    sign_in(admin, world.a, "admin")
    worker_id = world.a.users["worker"]

    assert admin.post(f"/users/{worker_id}/deactivate").status_code == 303
    assert admin.post(f"/users/{worker_id}/reactivate").status_code == 303

    assert not is_signed_in(client)
    assert not is_signed_in(thief)
    sign_in(client, world.a, "worker")  # the password still works: only sessions ended
    assert is_signed_in(client)
