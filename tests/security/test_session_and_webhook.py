"""E4: session cookie flags and a fresh session on login. E5: the Procore webhook receiver
refuses missing or wrong secrets (401) and oversized bodies (413), and a replay is a no-op."""

import json
import os
from http.cookies import SimpleCookie

import pytest
from cryptography.fernet import Fernet

from config import ProductionConfig
from tests.security.support import (
    PASSWORD,
    ROUTES,
    build_tenant,
    diff,
    is_webhook_receiver,
    sign_in,
    snapshot,
)
from webapp.extensions import db
from webapp.models import User


def session_cookie(response, name: str) -> dict:
    """The attributes of the `name` cookie the response sets (lower-cased keys)."""
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(f"{name}="):
            morsel = SimpleCookie(header)[name]
            flags = {part.strip().lower() for part in header.split(";")}
            return {
                "value": morsel.value,
                "httponly": "httponly" in flags,
                "secure": "secure" in flags,
                "samesite": morsel["samesite"].lower(),
                "path": morsel["path"],
                "domain": morsel["domain"],
            }
    raise AssertionError(f"no {name} cookie set; got {response.headers.getlist('Set-Cookie')}")


def test_login_sets_an_httponly_samesite_lax_session_cookie(world, client, app):
    response = client.post(
        "/login", data={"identifier": world.a.usernames["worker"], "password": PASSWORD}
    )

    cookie = session_cookie(response, app.config["SESSION_COOKIE_NAME"])
    assert cookie["httponly"]
    assert cookie["samesite"] == "lax"


def test_login_starts_a_fresh_session_so_a_planted_one_is_worthless(world, client, app):
    name = app.config["SESSION_COOKIE_NAME"]
    with client.session_transaction() as sess:
        sess["planted_by_attacker"] = "yes"
    planted = client.get_cookie(name).value

    sign_in(client, world.a, "worker")

    assert client.get_cookie(name).value != planted
    with client.session_transaction() as sess:
        assert "planted_by_attacker" not in sess
        # Flask-Login's id is "<user id>:<session version>" (the version ends old sessions).
        assert sess.get("_user_id", "").split(":")[0] == str(world.a.users["worker"])


def test_production_session_cookie_is_secure_and_host_prefixed(app, tmp_path, monkeypatch):
    class RealSecrets(ProductionConfig):
        SECRET_KEY = os.urandom(16).hex()
        TOKEN_ENCRYPTION_KEYS = Fernet.generate_key().decode()
        WEBHOOK_SECRET = os.urandom(16).hex()
        PROCORE_CLIENT_SECRET = os.urandom(16).hex()

    monkeypatch.setenv("DATABASE_URL", "postgresql://db.invalid/crewclock")
    from webapp import create_app

    production = create_app(
        RealSecrets,
        instance_path=tmp_path / "production",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'production.db'}",
        SQLALCHEMY_ENGINE_OPTIONS={},
        REDIS_URL=app.config["REDIS_URL"],
        WTF_CSRF_ENABLED=False,
    )
    with production.app_context():
        db.create_all()
        username = db.session.get(User, build_tenant("Prod", 3000).users["worker"]).username
        db.session.commit()
        response = production.test_client().post(
            "/login",
            data={"identifier": username, "password": PASSWORD},
            base_url="https://crewclock.example.test",
        )
        db.session.remove()
        db.engine.dispose()

    assert response.status_code == 302
    cookie = session_cookie(response, "__Host-session")
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "lax"
    assert cookie["path"] == "/" and not cookie["domain"]


# ---------------------------------------------------------------- webhook receiver (E5)

WEBHOOK_ROUTES = [r for r in ROUTES if r.unsafe and is_webhook_receiver(r.rule, r.endpoint)]


@pytest.fixture
def webhook_url():
    assert WEBHOOK_ROUTES, "the Procore webhook receiver route is missing from the URL map"
    return WEBHOOK_ROUTES[0].rule


def event(ulid: str = "01J0000000000000000000ABCD") -> dict:
    return {
        "ulid": ulid,
        "id": 42,
        "company_id": 1000,  # company A's Procore company in the world
        "resource_name": "Projects",
        "resource_id": 1010,
        "event_type": "update",
        "timestamp": "2026-01-05T12:00:00Z",
        "metadata": {},
    }


@pytest.mark.parametrize("authorization", [None, "", "wrong-secret", "Bearer wrong-secret"])
def test_webhook_without_the_right_secret_answers_401_and_stores_nothing(
    authorization, webhook_url, world, client
):
    before = snapshot()
    headers = {} if authorization is None else {"Authorization": authorization}

    response = client.post(webhook_url, json=event(), headers=headers, csrf=False)

    assert response.status_code == 401
    assert diff(before, snapshot()) == []


def test_webhook_with_an_oversized_body_answers_413_and_stores_nothing(
    webhook_url, world, client, app
):
    before = snapshot()
    body = json.dumps(event() | {"padding": "x" * (3 * 1024 * 1024)})

    response = client.post(
        webhook_url,
        data=body,
        content_type="application/json",
        headers={"Authorization": app.config["WEBHOOK_SECRET"]},
        csrf=False,
    )

    assert response.status_code == 413
    assert diff(before, snapshot()) == []


def test_a_replayed_webhook_event_changes_nothing(webhook_url, world, client, app):
    headers = {"Authorization": app.config["WEBHOOK_SECRET"]}
    first = client.post(webhook_url, json=event(), headers=headers, csrf=False)
    assert first.status_code in (200, 202)
    after_first = snapshot()

    for _ in range(3):
        again = client.post(webhook_url, json=event(), headers=headers, csrf=False)
        assert again.status_code in (200, 202)

    assert diff(after_first, snapshot()) == []
