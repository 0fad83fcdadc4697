"""Invite links: an admin makes a signed link, the user sets a password with it, once."""

import logging
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from tests.conftest import PASSWORD, make_user
from webapp.extensions import db
from webapp.models import Role, RunStatus, SyncRun, User
from webapp.services import invites

HX = {"HX-Request": "true"}
NEW_PASSWORD = "brand-new-pass-1"
GONE = "This invite link has expired or was already used. Ask your admin for a new one."
LINK_RE = re.compile(r'value="(http://[^"]+/invite/[^"]+)"')


def without_password(user: User) -> User:
    user.password_hash = None
    db.session.commit()
    return user


@pytest.fixture
def imported_user(company):
    """A user the Procore import made: no password, so no way to log in yet."""
    return without_password(make_user(company, first_name="Ines", last_name="Imported"))


def create_link(admin_client, user: User, headers=None) -> str:
    """Click 'Create invite link' as the admin; the link's path (what the user opens)."""
    response = admin_client.post(f"/users/{user.id}/invite-link", headers=headers or HX)
    assert response.status_code == 200, response.get_data(as_text=True)
    return urlsplit(LINK_RE.search(response.get_data(as_text=True)).group(1)).path


def set_password(client, path: str, password=NEW_PASSWORD, confirm=None):
    return client.post(
        path, data={"password": password, "confirm": password if confirm is None else confirm}
    )


def hash_of(user_id: int) -> str | None:
    db.session.expire_all()
    return db.session.get(User, user_id).password_hash


def can_log_in(app, user: User, password: str) -> bool:
    response = app.test_client().post(
        "/login", data={"identifier": user.username, "password": password}
    )
    return response.status_code == 302


# ---------------------------------------------------------------- the admin's side


def test_edit_page_offers_an_invite_link_to_a_user_without_password(admin_client, imported_user):
    page = admin_client.get(f"/users/{imported_user.id}/edit").get_data(as_text=True)

    assert "Ines has no password yet and cannot log in" in page
    assert f'hx-post="/users/{imported_user.id}/invite-link"' in page
    assert "Create invite link" in page


def test_admin_creates_a_link_to_copy_with_the_no_email_note(admin_client, imported_user):
    response = admin_client.post(f"/users/{imported_user.id}/invite-link", headers=HX)

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html  # a fragment swapped into the edit page
    assert LINK_RE.search(html)
    assert "readonly" in html and 'data-copy="#invite-url"' in html
    assert "Crewclock sends no email: send this link to Ines yourself, by text or email." in html
    assert "works for 7 days" in html
    assert response.headers["Cache-Control"] == "no-store"
    assert hash_of(imported_user.id) is None  # making a link stores nothing


def test_users_list_row_action_leads_to_the_invite_link(admin_client, imported_user, worker_user):
    listing = admin_client.get("/users/").get_data(as_text=True)
    row = re.search(rf'<tr id="user-{imported_user.id}".*?</tr>', listing, re.S).group(0)
    other_row = re.search(rf'<tr id="user-{worker_user.id}".*?</tr>', listing, re.S).group(0)
    assert f'href="/users/{imported_user.id}/edit#invite">Invite link</a>' in row
    assert "Invite link" not in other_row  # has a password: the edit page still offers one

    # Without htmx (a plain form post) the link comes on a page of its own.
    response = admin_client.post(f"/users/{imported_user.id}/invite-link")

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" in page and "Invite link for Ines Imported" in page
    assert LINK_RE.search(page)


def test_users_list_marks_and_filters_users_with_no_password(
    admin_client, admin, imported_user, worker_user
):
    listing = admin_client.get("/users/").get_data(as_text=True)
    row = re.search(rf'<tr id="user-{imported_user.id}".*?</tr>', listing, re.S).group(0)
    other_row = re.search(rf'<tr id="user-{worker_user.id}".*?</tr>', listing, re.S).group(0)
    assert "No password yet" in row
    assert "No password yet" not in other_row

    filtered = admin_client.get("/users/?password=none").get_data(as_text=True)
    assert "Imported, Ines" in filtered
    assert "Worker, Will" not in filtered and "Admin, Ada" not in filtered
    assert 'name="password" value="none"' in filtered  # the search keeps the filter

    searched = admin_client.get("/users/?password=none&q=nobody", headers=HX)
    assert "No user without a password matches" in searched.get_data(as_text=True)


def test_filter_says_so_when_everyone_has_a_password(admin_client, worker_user):
    page = admin_client.get("/users/?password=none").get_data(as_text=True)
    assert "Everyone here has a password." in page


def test_no_link_for_a_deactivated_user(admin_client, imported_user):
    imported_user.active = False
    db.session.commit()

    response = admin_client.post(f"/users/{imported_user.id}/invite-link", headers=HX)

    assert response.status_code == 422
    assert "deactivated; reactivate them first" in response.get_data(as_text=True)
    assert not LINK_RE.search(response.get_data(as_text=True))


@pytest.mark.parametrize("role", [Role.MANAGER, Role.SUPERVISOR, Role.WORKER])
def test_only_admins_can_create_invite_links(app, company, imported_user, role):
    client = app.test_client()
    client.login(make_user(company, role))

    response = client.post(f"/users/{imported_user.id}/invite-link", headers=HX)

    assert response.status_code == 403
    assert not LINK_RE.search(response.get_data(as_text=True))


def test_another_companys_user_answers_404(admin_client, other_company):
    stranger = without_password(make_user(other_company, first_name="Otto"))

    response = admin_client.post(f"/users/{stranger.id}/invite-link", headers=HX)

    assert response.status_code == 404
    assert "Otto" not in response.get_data(as_text=True)


def test_creating_a_link_needs_the_csrf_token(admin_client, imported_user):
    response = admin_client.post(f"/users/{imported_user.id}/invite-link", csrf=False)
    assert response.status_code == 400
    assert not LINK_RE.search(response.get_data(as_text=True))


# ---------------------------------------------------------------- the invited user's side


def test_user_sets_a_password_with_the_link_and_is_logged_in(app, admin_client, imported_user):
    path = create_link(admin_client, imported_user)
    visitor = app.test_client()

    form = visitor.get(path)
    assert form.status_code == 200
    assert "Set your password, Ines" in form.get_data(as_text=True)
    assert form.headers["Referrer-Policy"] == "no-referrer"
    assert form.headers["Cache-Control"] == "no-store"

    response = set_password(visitor, path)

    assert response.status_code == 303
    assert response.headers["Location"] == "/time/"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    landing = visitor.get("/time/")
    assert landing.status_code == 200
    html = landing.get_data(as_text=True)
    assert "your password is set" in html and "Ines Imported · Worker" in html
    assert can_log_in(app, imported_user, NEW_PASSWORD)


def test_the_same_link_a_second_time_is_refused_and_changes_nothing(
    app, admin_client, imported_user
):
    path = create_link(admin_client, imported_user)
    visitor = app.test_client()
    set_password(visitor, path)
    password_hash = hash_of(imported_user.id)

    again = app.test_client()
    opened = again.get(path)
    posted = set_password(again, path, password="another-pass-2")

    for response in (opened, posted):
        assert response.status_code == 410
        assert GONE in response.get_data(as_text=True)
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert hash_of(imported_user.id) == password_hash
    assert not can_log_in(app, imported_user, "another-pass-2")
    assert can_log_in(app, imported_user, NEW_PASSWORD)


def test_link_stops_working_once_the_admin_sets_the_password(app, admin_client, worker_user):
    path = create_link(admin_client, worker_user)
    form = {
        "first_name": worker_user.first_name,
        "last_name": worker_user.last_name,
        "username": worker_user.username,
        "email": worker_user.email,
        "role": "worker",
        "time_zone": worker_user.time_zone,
        "password": "set-by-admin-1",
    }
    assert admin_client.post(f"/users/{worker_user.id}/edit", data=form).status_code == 303

    response = set_password(app.test_client(), path)

    assert response.status_code == 410
    assert can_log_in(app, worker_user, "set-by-admin-1")
    assert not can_log_in(app, worker_user, NEW_PASSWORD)


def test_a_link_for_a_user_with_a_password_replaces_it(app, admin_client, worker_user):
    path = create_link(admin_client, worker_user)
    assert can_log_in(app, worker_user, PASSWORD)  # the old one works until the link is used

    assert set_password(app.test_client(), path).status_code == 303

    assert can_log_in(app, worker_user, NEW_PASSWORD)
    assert not can_log_in(app, worker_user, PASSWORD)


def tampered(path: str) -> str:
    token = path.rsplit("/", 1)[1]
    head, tail = token[:-3], token[-3:]
    swapped = "".join("B" if c != "B" else "C" for c in tail)
    return f"/invite/{head}{swapped}"


def test_tampered_or_forged_tokens_are_refused(app, admin_client, imported_user):
    path = create_link(admin_client, imported_user)
    other_secret = URLSafeTimedSerializer("not-our-secret", salt=invites.INVITE_SALT)
    forged = other_secret.dumps({"u": imported_user.id, "c": imported_user.company_id, "p": "none"})
    visitor = app.test_client()

    for bad in (tampered(path), f"/invite/{forged}", "/invite/not-a-token", path + "x"):
        assert visitor.get(bad).status_code == 410, bad
        response = set_password(visitor, bad)
        assert response.status_code == 410, bad
        assert GONE in response.get_data(as_text=True)
    assert hash_of(imported_user.id) is None


def test_a_token_naming_another_company_is_refused(app, imported_user, other_company):
    with app.test_request_context():
        serializer = invites._serializer()  # our own secret: only the company id is wrong
        token = serializer.dumps({"u": imported_user.id, "c": other_company.id, "p": "none"})

    response = set_password(app.test_client(), f"/invite/{token}")

    assert response.status_code == 410
    assert hash_of(imported_user.id) is None


def link_made_days_ago(app, user: User, days: int, monkeypatch) -> str:
    """The path of a link signed `days` ago (only the signature's clock is moved back)."""
    now = int(datetime.now(UTC).timestamp())
    with monkeypatch.context() as patch, app.test_request_context():
        patch.setattr(TimestampSigner, "get_timestamp", lambda self: now - days * 86400)
        return f"/invite/{invites.make_invite_token(user)}"


def test_a_link_older_than_seven_days_is_refused(app, imported_user, monkeypatch):
    expired = link_made_days_ago(app, imported_user, 8, monkeypatch)
    still_valid = link_made_days_ago(app, imported_user, 6, monkeypatch)
    visitor = app.test_client()

    response = set_password(visitor, expired)

    assert response.status_code == 410
    assert GONE in response.get_data(as_text=True)
    assert hash_of(imported_user.id) is None
    assert set_password(visitor, still_valid).status_code == 303


def test_a_deactivated_users_link_is_refused(app, admin_client, imported_user):
    path = create_link(admin_client, imported_user)
    imported_user.active = False
    db.session.commit()

    response = set_password(app.test_client(), path)

    assert response.status_code == 410
    assert hash_of(imported_user.id) is None


def test_a_deleted_users_link_is_refused(app, admin_client, imported_user):
    path = create_link(admin_client, imported_user)
    db.session.execute(sa.delete(User).where(User.id == imported_user.id))
    db.session.commit()

    assert app.test_client().get(path).status_code == 410


@pytest.mark.parametrize(
    ("password", "confirm", "field", "message"),
    [
        ("short", "short", "password", "Use at least 8 characters."),
        ("", "", "password", "Use at least 8 characters."),
        (NEW_PASSWORD, "something-else", "confirm", "The two passwords do not match"),
    ],
)
def test_bad_passwords_answer_422_beside_the_field_and_save_nothing(
    app, admin_client, imported_user, password, confirm, field, message
):
    path = create_link(admin_client, imported_user)
    visitor = app.test_client()

    response = set_password(visitor, path, password=password, confirm=confirm)

    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f'id="{field}-error">{message}' in html
    assert "nothing was saved" in html
    assert hash_of(imported_user.id) is None
    assert visitor.get("/time/").status_code == 302  # not logged in
    assert set_password(visitor, path).status_code == 303  # the link still works


def test_setting_the_password_needs_the_csrf_token(app, admin_client, imported_user):
    path = create_link(admin_client, imported_user)

    response = app.test_client().post(
        path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}, csrf=False
    )

    assert response.status_code == 400
    assert hash_of(imported_user.id) is None


def test_someone_signed_in_is_not_switched_to_the_invited_account(
    app, admin_client, imported_user, worker_user
):
    path = create_link(admin_client, imported_user)
    colleague = app.test_client()
    colleague.login(worker_user)

    opened = colleague.get(path)
    posted = set_password(colleague, path)

    for response in (opened, posted):
        html = response.get_data(as_text=True)
        assert response.status_code == 403
        assert "You are signed in as Will Worker" in html
        assert "Log out first, then open the link again." in html
        assert "Set your password" not in html
    assert hash_of(imported_user.id) is None
    still = colleague.get("/time/").get_data(as_text=True)
    assert "Will Worker · Worker" in still

    colleague.post("/logout")
    assert set_password(colleague, path).status_code == 303
    assert "Ines Imported · Worker" in colleague.get("/time/").get_data(as_text=True)


def test_setting_the_password_starts_a_fresh_session(app, admin_client, imported_user):
    path = create_link(admin_client, imported_user)
    visitor = app.test_client()
    with visitor.session_transaction() as sess:
        sess["planted_by_attacker"] = "yes"

    assert set_password(visitor, path).status_code == 303

    with visitor.session_transaction() as sess:
        assert "planted_by_attacker" not in sess
        # Flask-Login's id is "<user id>:<session version>" (the version ends old sessions).
        assert sess.get("_user_id", "").split(":")[0] == str(imported_user.id)


def test_the_invited_user_already_signed_in_may_use_their_own_link(app, admin_client, worker_user):
    path = create_link(admin_client, worker_user)
    own = app.test_client()
    own.login(worker_user)

    assert own.get(path).status_code == 200
    assert set_password(own, path).status_code == 303
    assert can_log_in(app, worker_user, NEW_PASSWORD)


# ---------------------------------------------------------------- logs, set-up wizard, CLI


def test_request_logs_never_show_the_token(app, caplog):
    token = "eyJ1IjoxfQ.Zx1Q2w.s3cr3t-signature"
    with caplog.at_level(logging.INFO):
        logging.getLogger("werkzeug").info(
            '%s - - [%s] "%s" %s %s', "127.0.0.1", "now", f"GET /invite/{token} HTTP/1.1", 200, "-"
        )
        app.logger.warning("Redis unavailable during %s %s", "POST", f"/invite/{token}")

    assert token not in caplog.text
    assert caplog.text.count("/invite/[redacted]") == 2


def test_import_summary_points_to_users_without_password(admin_client, company):
    run = SyncRun(
        company_id=company.id,
        kind="import_setup",
        status=RunStatus.SUCCEEDED,
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
        created=3,
    )
    db.session.add(run)
    db.session.commit()

    page = admin_client.get(f"/settings/integrations/procore/setup/runs/{run.id}")

    html = page.get_data(as_text=True)
    assert "Imported users cannot log in until they set a password with an invite link" in html
    assert 'href="/users/?password=none"' in html


def test_cli_prints_a_working_invite_link(app, imported_user):
    app.config["PUBLIC_BASE_URL"] = "https://crewclock.example.test"

    result = app.test_cli_runner().invoke(args=["invite-link", imported_user.email.upper()])

    assert result.exit_code == 0, result.output
    link = re.search(r"https://crewclock\.example\.test(/invite/\S+)", result.output)
    assert "Invite link for Ines Imported" in result.output and link
    assert set_password(app.test_client(), link.group(1)).status_code == 303


def test_cli_says_when_nobody_has_that_name(app):
    result = app.test_cli_runner().invoke(args=["invite-link", "nobody@example.test"])
    assert result.exit_code != 0
    assert "No user has the email or username" in result.output
