"""E2: admin-only areas answer 403 to every other role, approvals refuse workers, and every
route but the public ones sends a signed-out visitor to the login page."""

import pytest

from tests.security.support import (
    BLUEPRINTS,
    PUBLIC_ENDPOINTS,
    ROUTES,
    diff,
    hx_headers,
    is_webhook_receiver,
    plausible_form,
    route_ids,
    sign_in,
    snapshot,
)

# Who may use each blueprint. A new blueprint fails test_every_blueprint_has_an_access_policy
# until its author says here who may use it, so the role checks below cover it.
BLUEPRINT_POLICY = {
    "auth": "public",
    "timecards": "signed-in",  # finer rules (own card, supervised projects) tested per route
    "push": "signed-in",
    "people": "admin",
    "projects": "admin",
    "costcodes": "admin",
    "settings": "admin",
    "integrations": "admin",
    "setup": "admin",
    "sync": "admin",
    "sync.webhooks": "public",  # Procore's deliveries: authenticated by WEBHOOK_SECRET
}
ADMIN_AREAS = ("/settings", "/users", "/projects", "/cost-codes")
NON_ADMIN_ROLES = ("manager", "supervisor", "worker")


def is_admin_only(route) -> bool:
    blueprint = route.endpoint.rsplit(".", 1)[0]
    return route.rule.startswith(ADMIN_AREAS) or BLUEPRINT_POLICY.get(blueprint) == "admin"


def is_approval(route) -> bool:
    return any(word in route.endpoint for word in ("approv", "reject"))


ADMIN_ROUTES = [r for r in ROUTES if is_admin_only(r)]
APPROVAL_ROUTES = [r for r in ROUTES if is_approval(r)]
PRIVATE_ROUTES = [
    r
    for r in ROUTES
    if r.endpoint not in PUBLIC_ENDPOINTS and not is_webhook_receiver(r.rule, r.endpoint)
]


def test_every_blueprint_has_an_access_policy():
    missing = [name for name in BLUEPRINTS if name not in BLUEPRINT_POLICY]
    assert missing == [], (
        f"Blueprints {missing} have no entry in BLUEPRINT_POLICY in tests/security/test_roles.py;"
        " say who may use them so the role checks cover their routes."
    )


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=route_ids(ADMIN_ROUTES))
def test_admin_only_routes_answer_403_to_managers_supervisors_and_workers(route, world, app):
    url = route.url(world.a)
    before = snapshot()
    for role in NON_ADMIN_ROLES:
        for fragment in (False, True):
            client = app.test_client()
            sign_in(client, world.a, role)
            response = client.open(
                url, method=route.method, data=plausible_form(world.a), headers=hx_headers(fragment)
            )
            assert response.status_code == 403, f"{route.id} as {role}: {response.status_code}"
    assert diff(before, snapshot()) == []


@pytest.mark.parametrize("route", APPROVAL_ROUTES, ids=route_ids(APPROVAL_ROUTES))
def test_workers_cannot_reach_approvals(route, world, client):
    url = route.url(world.a)
    sign_in(client, world.a, "worker")
    before = snapshot()

    response = client.open(url, method=route.method, data={"note": "Not yours to reject."})

    assert response.status_code in (403, 404)
    assert diff(before, snapshot()) == []


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_supervisors_cannot_approve_cards_outside_their_projects(action, world, client):
    sign_in(client, world.a, "supervisor")
    before = snapshot()

    card = world.a.ids["unsupervised_card"]
    response = client.post(f"/time/cards/{card}/{action}", data={"note": "Not my project."})

    assert response.status_code in (403, 404)
    assert diff(before, snapshot()) == []


@pytest.mark.parametrize("route", PRIVATE_ROUTES, ids=route_ids(PRIVATE_ROUTES))
def test_signed_out_visitors_are_sent_to_log_in_and_change_nothing(route, world, client):
    before = snapshot()

    response = client.open(route.url(world.a), method=route.method, data=plausible_form(world.a))

    assert response.status_code in (302, 401), f"{route.id}: {response.status_code}"
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/login")
    assert diff(before, snapshot()) == []
