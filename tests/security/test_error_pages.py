"""Issue 17 item 10: every error answers with the app's own page in its layout (also when
signed out), and htmx requests get a small fragment to swap, never Werkzeug's default page."""

import pytest
from werkzeug.exceptions import TooManyRequests, UnprocessableEntity

from tests.security.support import sign_in

HX = {"HX-Request": "true"}
WERKZEUG_DEFAULT = "<!doctype html>\n<html lang=en>\n<title>"


@pytest.fixture
def failing_app(app):
    """The app with views that fail in each way, and exceptions answered as in production."""

    def boom():
        raise RuntimeError("a bug")

    def unprocessable():
        raise UnprocessableEntity()

    def too_many():
        raise TooManyRequests(retry_after=30)

    app.add_url_rule("/test-only/boom", "test_boom", boom)
    app.add_url_rule("/test-only/422", "test_422", unprocessable)
    app.add_url_rule("/test-only/429", "test_429", too_many)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


CASES = [
    ("GET", "/no-such-page", 404, "Not found"),
    ("GET", "/logout", 405, "Not allowed here"),
    ("POST", "/login", 413, "Too large"),
    ("GET", "/test-only/422", 422, "Cannot use that input"),
    ("GET", "/test-only/429", 429, "Too many requests"),
    ("GET", "/test-only/boom", 500, "Something went wrong"),
]


def _request(client, method, path, headers=None):
    data = {"identifier": "x" * (3 * 1024 * 1024)} if path == "/login" else None
    return client.open(path, method=method, data=data, headers=headers or {})


@pytest.mark.parametrize(("method", "path", "status", "title"), CASES, ids=[c[1] for c in CASES])
@pytest.mark.parametrize("signed_in", [False, True], ids=["signed-out", "signed-in"])
def test_errors_show_the_apps_page_in_its_layout(
    failing_app, client, world, method, path, status, title, signed_in
):
    if signed_in:
        sign_in(client, world.a, "worker")

    response = _request(client, method, path)

    assert response.status_code == status
    html = response.get_data(as_text=True)
    assert not html.startswith(WERKZEUG_DEFAULT)
    assert 'class="topbar"' in html and title in html  # base.html's layout, our words
    assert ("Log out" in html) == signed_in


@pytest.mark.parametrize(("method", "path", "status", "title"), CASES, ids=[c[1] for c in CASES])
def test_htmx_requests_get_an_error_fragment_not_a_page(
    failing_app, client, world, method, path, status, title
):
    sign_in(client, world.a, "worker")

    response = _request(client, method, path, HX)

    assert response.status_code == status
    html = response.get_data(as_text=True)
    assert "<html" not in html and 'role="alert"' in html and title in html


def test_an_error_page_keeps_the_retry_after_and_allow_headers(failing_app, client):
    assert client.get("/test-only/429").headers["Retry-After"] == "30"
    assert "POST" in client.get("/logout").headers["Allow"]
