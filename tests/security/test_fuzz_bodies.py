"""E7: Hypothesis-made form and JSON bodies, posted by an admin to every state-changing route,
never cause a 500, never move a record to another company, never cross-link companies, and
never change a user's role except through the user-edit form's own role field."""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.support import (
    UNSAFE_ROUTES,
    cross_tenant_references,
    diff,
    is_webhook_receiver,
    owners,
    plausible_form,
    roles,
    route_ids,
    sign_in,
    snapshot,
)

EXAMPLES = int(os.environ.get("SECURITY_FUZZ_EXAMPLES", "30"))
FUZZ_ROUTES = [
    r
    for r in UNSAFE_ROUTES
    if r.endpoint not in ("auth.logout", "auth.login")
    and not is_webhook_receiver(r.rule, r.endpoint)
]
MASS_ASSIGNMENT = ("company_id", "role", "id")

scalars = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["", "on", "0", "1", "-1", "1e309", "NaN", "2026-02-30", "25:61", "admin"]),
    st.dates().map(lambda d: d.isoformat()),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)


def body_strategy(field_names):
    names = st.sampled_from(field_names) | st.text(min_size=1, max_size=12)
    form = st.dictionaries(names, st.one_of(scalars, st.lists(scalars, max_size=3)), max_size=12)
    json_body = st.dictionaries(names, json_values, max_size=10)
    extras = st.fixed_dictionaries({}, optional={k: scalars for k in MASS_ASSIGNMENT})
    return st.tuples(st.sampled_from(["form", "json"]), form, json_body, extras)


@pytest.mark.parametrize("route", FUZZ_ROUTES, ids=route_ids(FUZZ_ROUTES))
def test_generated_bodies_never_500_nor_reassign_company_or_role(route, world, client):
    url = route.url(world.a)
    sign_in(client, world.a, "admin")
    known = sorted(plausible_form(world.a)) + list(MASS_ASSIGNMENT)
    edited_user = world.a.users["worker"] if route.endpoint == "people.edit" else None

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(body=body_strategy(known))
    def post_one(body):
        kind, form, json_body, extras = body
        owners_before, roles_before = owners(), roles()
        b_before = snapshot(world.b.company_id)
        if kind == "form":
            response = client.open(url, method=route.method, data=form | extras)
        else:
            response = client.open(url, method=route.method, json=json_body | extras)

        assert response.status_code < 500
        owners_after = owners()
        moved = {
            k: (v, owners_after[k])
            for k, v in owners_before.items()
            if k in owners_after and owners_after[k] != v
        }
        assert moved == {}, f"records changed company: {moved}"
        new_rows = {k: v for k, v in owners_after.items() if k not in owners_before}
        assert set(new_rows.values()) <= {world.a.company_id}, (
            f"rows made in another company: {new_rows}"
        )
        roles_after = roles()
        changed = {
            uid: (old, roles_after[uid])
            for uid, old in roles_before.items()
            if uid in roles_after and roles_after[uid] != old and uid != edited_user
        }
        assert changed == {}, f"roles changed: {changed}"
        assert cross_tenant_references() == []
        assert diff(b_before, snapshot(world.b.company_id)) == []

    post_one()


@pytest.mark.parametrize("route", FUZZ_ROUTES, ids=route_ids(FUZZ_ROUTES))
def test_a_valid_form_with_company_id_role_and_id_added_keeps_them_unassigned(route, world, client):
    """The request that would succeed, plus mass-assignment fields naming company B / admin."""
    url = route.url(world.a)
    sign_in(client, world.a, "admin")
    roles_before, owners_before = roles(), owners()
    extras = {"company_id": world.b.company_id, "role": "admin", "id": world.b.ids["project"]}
    form = plausible_form(world.a) | extras
    if route.endpoint != "people.edit":
        form["role"] = "admin"

    response = client.open(url, method=route.method, data=form)

    assert response.status_code < 500
    owners_after = owners()
    assert all(owners_after.get(k, v) == v for k, v in owners_before.items())
    assert {v for k, v in owners_after.items() if k not in owners_before} <= {world.a.company_id}
    roles_after = roles()
    for uid, old in roles_before.items():
        legit = route.endpoint == "people.edit" and uid == world.a.users["worker"]
        if not legit:
            assert roles_after.get(uid, old) == old, f"{route.id} changed user {uid}'s role"
    new_users = set(roles_after) - set(roles_before)
    if route.endpoint != "people.create":
        assert new_users == set()
    assert cross_tenant_references() == []
