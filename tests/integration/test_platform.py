"""What every page owes its users: security headers, cookies, a notice when Redis is down."""

import redis

from tests.conftest import free_port
from webapp.redis_runtime import start_embedded_redis


def test_pages_send_security_headers(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "unsafe-eval" not in csp and "unsafe-inline" not in csp
    assert "default-src 'self'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_session_cookie_is_httponly_and_samesite_lax(client, admin):
    response = client.login(admin)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_login_is_throttled_after_repeated_failures(client, admin):
    for _ in range(5):
        assert (
            client.post(
                "/login", data={"identifier": admin.username, "password": "wrong"}
            ).status_code
            == 401
        )
    response = client.post("/login", data={"identifier": admin.username, "password": "pass-word-1"})
    assert response.status_code == 429
    assert b"Too many failed attempts" in response.data


def test_login_with_email_or_username(client, admin):
    response = client.post(
        "/login", data={"identifier": admin.email.upper(), "password": "pass-word-1"}
    )
    assert response.status_code == 302


def test_login_still_answers_plainly_when_redis_is_down(app, admin_client):
    app.extensions["redis"] = redis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2
    )
    response = admin_client.post("/login", data={"identifier": "nobody", "password": "x"})
    # Login failures are counted in Redis; with Redis gone the page still answers plainly.
    assert response.status_code == 401


def test_embedded_redis_server_starts_and_answers(tmp_path):
    port = free_port()
    process = start_embedded_redis(port, tmp_path / "redis")
    try:
        assert redis.Redis(host="127.0.0.1", port=port).ping()
        # A second start finds the running server and reuses it.
        assert start_embedded_redis(port, tmp_path / "redis") is None
    finally:
        process.terminate()
        process.wait(5)
