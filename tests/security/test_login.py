"""Issue 17 items 12-13: the login throttle slows attackers without locking anyone else out
(per account and address, with growing waits, proxy-aware, and still on while Redis is down),
and the login's speed does not tell which accounts exist."""

import time

import pytest
import redis
from werkzeug.security import generate_password_hash

from tests.conftest import CSRFClient, free_port, make_test_app
from tests.security.support import PASSWORD, build_tenant
from webapp.auth import throttle
from webapp.extensions import db
from webapp.models import User

# ---------------------------------------------------------------- item 12: throttling


def attempt(client, identifier: str, password: str = "wrong-password", **environ):
    return client.post(
        "/login",
        data={"identifier": identifier, "password": password},
        environ_base=environ or {},
    )


def test_many_failures_from_one_address_do_not_lock_out_people_who_log_in_there(world, client):
    office = {"REMOTE_ADDR": "192.0.2.10"}
    worker = world.a.usernames["worker"]
    assert attempt(client, worker, PASSWORD, **office).status_code == 302
    client.post("/logout")

    for n in range(30):
        assert attempt(client, f"nobody-{n}@example.test", **office).status_code in (401, 429)

    assert attempt(client, worker, PASSWORD, **office).status_code == 302


def test_failures_on_an_account_do_not_stop_its_owner_elsewhere(world, client):
    worker = world.a.usernames["worker"]
    for _ in range(8):
        attempt(client, worker, REMOTE_ADDR="198.51.100.66")

    assert attempt(client, worker, REMOTE_ADDR="198.51.100.66").status_code == 429
    assert attempt(client, worker, PASSWORD, REMOTE_ADDR="192.0.2.20").status_code == 302


def test_repeated_failures_wait_longer_each_time_then_the_right_password_works(
    world, client, monkeypatch
):
    clock = {"now": 1_900_000_000.0}
    monkeypatch.setattr(throttle, "now", lambda: clock["now"])
    worker = world.a.usernames["worker"]
    waits = []
    for _ in range(throttle.PAIR_FREE + 3):
        response = attempt(client, worker)
        if response.status_code == 429:
            waits.append(int(response.headers["Retry-After"]))
            clock["now"] += waits[-1]
            response = attempt(client, worker)
        assert response.status_code == 401

    refused = attempt(client, worker, PASSWORD)
    assert refused.status_code == 429
    assert "Wait" in refused.get_data(as_text=True)
    assert waits == sorted(waits) and waits[-1] > waits[0]  # the wait grows
    clock["now"] += int(refused.headers["Retry-After"])
    assert attempt(client, worker, PASSWORD).status_code == 302


def test_the_throttle_still_holds_while_redis_is_down(world, client, app):
    app.extensions["redis"] = redis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2
    )
    worker = world.a.usernames["worker"]
    for _ in range(throttle.PAIR_FREE):
        assert attempt(client, worker, REMOTE_ADDR="198.51.100.77").status_code == 401

    assert attempt(client, worker, PASSWORD, REMOTE_ADDR="198.51.100.77").status_code == 429
    # ... and logging in still works for everyone else.
    admin = world.a.usernames["admin"]
    assert attempt(client, admin, PASSWORD, REMOTE_ADDR="198.51.100.78").status_code == 302


@pytest.fixture
def proxied_app(redis_url, tmp_path):
    """The app behind one trusted reverse proxy (TRUSTED_PROXIES=1)."""
    application = make_test_app(
        f"sqlite:///{tmp_path / 'proxied.db'}",
        redis_url,
        instance_path=tmp_path / "proxied",
        TRUSTED_PROXIES=1,
    )
    application.test_client_class = CSRFClient
    redis.Redis.from_url(redis_url).flushdb()
    with application.app_context():
        db.create_all()
        tenant = build_tenant("Proxied", 5000)
        db.session.commit()
        yield application, tenant
        db.session.remove()
        db.engine.dispose()


def test_behind_a_trusted_proxy_each_client_address_is_throttled_on_its_own(proxied_app):
    app, tenant = proxied_app
    client = app.test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for n in range(30):
        client.post(
            "/login",
            data={"identifier": f"guess-{n}", "password": "x"},
            headers={"X-Forwarded-For": "203.0.113.9"},
            environ_base=proxy,
        )

    response = client.post(
        "/login",
        data={"identifier": tenant.usernames["worker"], "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.7"},
        environ_base=proxy,
    )

    assert response.status_code == 302


def test_without_trusted_proxies_x_forwarded_for_cannot_dodge_the_throttle(world, client):
    worker = world.a.usernames["worker"]
    for n in range(throttle.PAIR_FREE):
        client.post(
            "/login",
            data={"identifier": worker, "password": "wrong"},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        )

    response = client.post(
        "/login",
        data={"identifier": worker, "password": PASSWORD},
        headers={"X-Forwarded-For": "203.0.113.200"},
    )

    assert response.status_code == 429


# ---------------------------------------------------------------- item 13: enumeration


def test_a_missing_account_takes_as_long_to_refuse_as_a_wrong_password(world, client):
    worker = db.session.get(User, world.a.users["worker"])
    worker.password_hash = generate_password_hash(PASSWORD)  # the real (slow) default
    db.session.commit()
    username = worker.username
    db.session.remove()

    def seconds(identifier: str) -> float:
        started = time.perf_counter()
        assert attempt(client, identifier).status_code == 401
        return time.perf_counter() - started

    existing = min(seconds(username) for _ in range(3))
    missing = min(seconds(f"no-such-user-{n}") for n in range(3))

    assert missing > existing * 0.5, f"missing {missing:.3f}s vs existing {existing:.3f}s"
