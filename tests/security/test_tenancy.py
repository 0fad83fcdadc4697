"""E1: company A's admin naming company B's objects gets 404 (or 403), sees none of B's data,
and changes nothing of B's — on every route of the URL map, as a page and as a fragment."""

import pytest

from tests.security.support import (
    B_MARKER,
    GET_ROUTES,
    OBJECT_ROUTES,
    ROUTES,
    UNSAFE_ROUTES,
    cross_tenant_references,
    diff,
    dummy_tenant,
    hx_headers,
    plausible_form,
    route_ids,
    sign_in,
    snapshot,
)


@pytest.mark.parametrize("fragment", [False, True], ids=["page", "fragment"])
@pytest.mark.parametrize("route", OBJECT_ROUTES, ids=route_ids(OBJECT_ROUTES))
def test_another_companys_object_ids_answer_404_and_change_nothing(route, fragment, world, client):
    url = route.url(world.b)
    sign_in(client, world.a, "admin")
    before = snapshot(world.b.company_id)

    response = client.open(
        url, method=route.method, data=plausible_form(world.a), headers=hx_headers(fragment)
    )

    assert response.status_code in (403, 404), (
        f"{route.id} answered {response.status_code} to company A's admin for company B's {url}"
    )
    assert B_MARKER not in response.get_data(as_text=True)
    assert diff(before, snapshot(world.b.company_id)) == []


@pytest.mark.parametrize("route", UNSAFE_ROUTES, ids=route_ids(UNSAFE_ROUTES))
def test_another_companys_ids_in_a_form_never_tie_records_across_companies(route, world, client):
    """Every object id a form can carry names company B's object; nothing may point at it."""
    url = route.url(world.a)
    sign_in(client, world.a, "admin")
    before = snapshot(world.b.company_id)

    response = client.open(
        url, method=route.method, data=plausible_form(world.b) | {"company_id": world.b.company_id}
    )

    assert response.status_code < 500
    assert cross_tenant_references() == []
    assert diff(before, snapshot(world.b.company_id)) == []
    if route.endpoint != "auth.logout":
        assert B_MARKER not in response.get_data(as_text=True)


@pytest.mark.parametrize("route", GET_ROUTES, ids=route_ids(GET_ROUTES))
def test_another_companys_ids_in_the_query_string_show_none_of_its_data(route, world, client):
    url = route.url(world.a, query=plausible_form(world.b))
    sign_in(client, world.a, "admin")

    for fragment in (False, True):
        response = client.get(url, headers=hx_headers(fragment), follow_redirects=True)
        assert response.status_code < 500
        assert B_MARKER not in response.get_data(as_text=True), f"{url} shows company B's data"


def test_every_route_with_an_object_in_its_url_is_checked_for_tenancy():
    """A route whose URL names an object the suite cannot fill fails here (add it to the table)."""
    unknown = []
    for route in ROUTES:
        try:
            route.url(dummy_tenant())
        except AssertionError as problem:
            unknown.append(str(problem))
    assert unknown == []
