"""E3: every state change needs the CSRF token (400 and nothing changed without it), and no
GET changes the database. E9: every answer carries the security headers, and no page has
inline script or style that the CSP would block."""

import pytest

from tests.security.support import (
    GET_ROUTES,
    INLINE_HANDLER,
    INLINE_SCRIPT,
    INLINE_STYLE,
    ROUTE_APP,
    UNSAFE_ROUTES,
    diff,
    hx_headers,
    is_webhook_receiver,
    plausible_form,
    route_ids,
    sign_in,
    snapshot,
)

CSRF_ROUTES = [r for r in UNSAFE_ROUTES if not is_webhook_receiver(r.rule, r.endpoint)]
CSRF_MESSAGE = "missing its security token"


def assert_security_headers(response, what: str) -> None:
    csp = response.headers.get("Content-Security-Policy", "")
    assert "default-src" in csp and "script-src 'self'" in csp, f"{what}: CSP is {csp!r}"
    assert "unsafe-eval" not in csp and "unsafe-inline" not in csp, f"{what}: CSP is {csp!r}"
    assert response.headers.get("X-Content-Type-Options") == "nosniff", what
    assert response.headers.get("Referrer-Policy"), what


@pytest.mark.parametrize("route", CSRF_ROUTES, ids=route_ids(CSRF_ROUTES))
def test_state_changes_without_a_csrf_token_answer_400_and_change_nothing(route, world, client):
    url = route.url(world.a)
    sign_in(client, world.a, "admin")
    before = snapshot()

    for headers in ({}, {"HX-Request": "true"}, {"X-CSRFToken": "forged-token"}):
        response = client.open(
            url, method=route.method, data=plausible_form(world.a), headers=headers, csrf=False
        )
        assert response.status_code == 400, f"{route.id} with {headers}: {response.status_code}"
        assert diff(before, snapshot()) == []

    with_token = client.open(url, method=route.method, data=plausible_form(world.a))
    assert CSRF_MESSAGE not in with_token.get_data(as_text=True)


def test_only_the_webhook_receiver_is_exempt_from_csrf():
    from webapp.extensions import csrf

    exempt_views = set(csrf._exempt_views)
    allowed = {
        f"{ROUTE_APP.view_functions[r.endpoint].__module__}.{r.endpoint.rsplit('.', 1)[-1]}"
        for r in UNSAFE_ROUTES
        if is_webhook_receiver(r.rule, r.endpoint)
    }
    assert exempt_views <= allowed, f"CSRF-exempt views outside the allow-list: {exempt_views}"
    assert not csrf._exempt_blueprints


@pytest.mark.parametrize("route", GET_ROUTES, ids=route_ids(GET_ROUTES))
def test_get_changes_nothing_and_answers_with_security_headers(route, world, app):
    url = route.url(world.a)
    before = snapshot()
    for role in ("admin", "worker"):
        client = app.test_client()
        sign_in(client, world.a, role)
        for fragment in (False, True):
            response = client.get(url, headers=hx_headers(fragment))
            what = f"GET {url} as {role}{' (fragment)' if fragment else ''}"
            assert response.status_code < 500, what
            assert_security_headers(response, what)
            if response.mimetype == "text/html":
                html = response.get_data(as_text=True)
                assert not INLINE_SCRIPT.search(html), f"{what}: inline <script>"
                assert not INLINE_STYLE.search(html), f"{what}: style= attribute"
                assert not INLINE_HANDLER.search(html), f"{what}: on*= handler"
    assert diff(before, snapshot()) == []


def test_error_pages_login_static_files_and_posts_carry_security_headers(world, client):
    assert_security_headers(client.get("/login"), "login page")
    assert_security_headers(client.get("/static/css/app.css"), "stylesheet")
    assert_security_headers(client.get("/no-such-page"), "404 page")
    assert_security_headers(
        client.post("/login", data={"identifier": "x", "password": "y"}, csrf=False), "CSRF 400"
    )
    sign_in(client, world.a, "worker")
    assert_security_headers(client.get("/users/"), "403 page")
    assert_security_headers(
        client.post("/time/entries", data={"hours": "nope"}, headers=hx_headers(True)), "422"
    )
