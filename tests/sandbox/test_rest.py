"""REST conventions: auth and company scope, pagination headers, filters, error bodies."""

from __future__ import annotations

import requests

from procore_sandbox.testing import mount_sandbox

from .conftest import ADMIN_EMAIL, make_procore


def users_path(procore, company_id=None):
    return f"/rest/v1.0/companies/{company_id or procore.company_id}/users"


def test_requests_without_a_bearer_token_get_401(procore):
    reply = requests.get(procore.url(users_path(procore)))
    assert reply.status_code == 401
    assert reply.json()["message"] == "The access token is invalid"


def test_missing_company_header_is_refused(procore):
    reply = procore.get(users_path(procore), headers={"Authorization": f"Bearer {procore.token}"})
    assert reply.status_code == 400
    assert "Missing Procore-Company-Id header" in reply.json()["message"]


def test_me_and_companies_need_no_company_header_for_user_tokens(procore):
    headers = {"Authorization": f"Bearer {procore.token}"}
    companies = procore.get("/rest/v1.0/companies", headers=headers)
    assert [c["name"] for c in companies.json()] == [
        "Summit Builders Inc.",
        "Ridgeline Concrete LLC",
    ]
    assert procore.get("/rest/v1.0/me", headers=headers).status_code == 200


def test_me_asked_about_a_company_or_project_needs_the_company_header(procore):
    # procore-api.md §2.6 (Correction) and §3.1: /me needs no Procore-Company-Id "unless a
    # company_id or project_id parameter is also included"; the stricter reading refuses it
    # then, exactly like any other call without the header.
    bare = {"Authorization": f"Bearer {procore.token}"}
    project_id = procore.first_project()["id"]
    for params in ({"company_id": procore.company_id}, {"project_id": project_id}):
        reply = procore.get("/rest/v1.0/me", headers=bare, params=params)
        assert reply.status_code == 400, params
        assert "Missing Procore-Company-Id header" in reply.json()["message"]

    named = procore.get("/rest/v1.0/me", params={"company_id": procore.company_id})
    assert named.status_code == 200
    assert named.json()["name"] == "Dana Whitfield"
    assert procore.get("/rest/v1.0/me", params={"project_id": project_id}).status_code == 200
    # The header must be the company asked about.
    elsewhere = procore.get("/rest/v1.0/me", params={"company_id": procore.other_company_id})
    assert elsewhere.status_code == 404


def test_another_companys_records_are_not_found(procore):
    # Header names company A, path names company B: 404, never B's data.
    reply = procore.get(users_path(procore, procore.other_company_id))
    assert reply.status_code == 404
    # A user of company B asked for through company A's scope: 404.
    other_user = procore.store.select("users", company_id=procore.other_company_id)[1]
    reply = procore.get(f"{users_path(procore)}/{other_user['id']}")
    assert reply.status_code == 404


def test_user_without_access_cannot_pick_a_company_it_does_not_belong_to(procore):
    worker = procore.mint("sofia.nguyen@summit.example.com")
    headers = procore.headers(procore.other_company_id, worker["access_token"])
    reply = procore.get(users_path(procore, procore.other_company_id), headers=headers)
    assert reply.status_code == 404


def test_pagination_headers_and_links_keep_host_and_params(procore):
    reply = procore.get(users_path(procore), params={"per_page": 10, "page": 2, "sort": "name"})
    assert reply.status_code == 200
    assert len(reply.json()) == 10
    assert reply.headers["Total"] == "24" and reply.headers["Per-Page"] == "10"
    links = dict(
        (rel, url)
        for url, rel in (
            (part.split(";")[0].strip("<> "), part.split('rel="')[1].rstrip('"'))
            for part in reply.headers["Link"].split(", ")
        )
    )
    assert set(links) == {"first", "prev", "next", "last"}
    assert links["next"].startswith("http://procore.test/rest/v1.0/companies/")
    assert "page=3" in links["next"] and "per_page=10" in links["next"]
    assert "sort=name" in links["next"] and "page=1" in links["first"]
    assert "page=3" in links["last"]


def test_first_page_links_only_forward_and_last_page_only_back(procore):
    first = procore.get(users_path(procore), params={"per_page": 10})
    assert 'rel="next"' in first.headers["Link"] and 'rel="prev"' not in first.headers["Link"]
    last = procore.get(users_path(procore), params={"per_page": 10, "page": 3})
    assert len(last.json()) == 4
    assert 'rel="next"' not in last.headers["Link"] and 'rel="prev"' in last.headers["Link"]


def test_page_past_the_end_is_an_empty_array(procore):
    reply = procore.get(users_path(procore), params={"per_page": 10, "page": 9})
    assert reply.status_code == 200 and reply.json() == []
    assert reply.headers["Total"] == "24"


def test_per_page_is_capped_per_endpoint():
    p = make_procore(seed="large")
    with mount_sandbox(p.app, p.base):
        p.token = p.mint("dana.admin@large.example.com")["access_token"]
        users = p.get(users_path(p), params={"per_page": 5000})
        assert users.headers["Per-Page"] == "1000" and len(users.json()) == 1000
        projects = p.get(
            "/rest/v1.1/projects", params={"company_id": p.company_id, "per_page": 1000}
        )
        assert projects.headers["Per-Page"] == "300" and len(projects.json()) == 300
        default = p.get("/rest/v1.1/projects", params={"company_id": p.company_id})
        assert len(default.json()) == 100
        project_id = projects.json()[0]["id"]
        codes = p.get("/rest/v1.0/cost_codes", params={"project_id": project_id, "per_page": 500})
        assert codes.headers["Per-Page"] == "100"


def test_updated_at_filter_returns_only_changed_records(procore):
    user = procore.store.select("users", company_id=procore.company_id)[3]
    procore.store.clock_offset = 3600
    changed = procore.patch(
        f"{users_path(procore)}/{user['id']}", json={"user": {"job_title": "Lead"}}
    )
    stamp = changed.json()["updated_at"]
    for value in (f"{stamp}...{stamp}", f'"{stamp[:10]}"..."{stamp[:10]}"',
                  f"{stamp[:19]}+00:00...2099-01-01T00:00:00Z"):  # fmt: skip
        reply = procore.get(users_path(procore), params={"filters[updated_at]": value})
        assert [u["id"] for u in reply.json()] == [user["id"]], value
    bad = procore.get(users_path(procore), params={"filters[updated_at]": "yesterday"})
    assert bad.status_code == 400


def test_origin_id_id_and_search_filters(procore):
    created = procore.post(
        users_path(procore),
        json={
            "user": {
                "first_name": "Zed",
                "last_name": "Quill",
                "email_address": "zq@example.com",
                "origin_id": "crew-77",
            }
        },  # fmt: skip
    )
    assert created.status_code == 201
    by_origin = procore.get(users_path(procore), params={"filters[origin_id]": "crew-77"})
    assert [u["last_name"] for u in by_origin.json()] == ["Quill"]
    by_search = procore.get(users_path(procore), params={"filters[search]": "quil"})
    assert [u["email_address"] for u in by_search.json()] == ["zq@example.com"]

    projects = procore.get("/rest/v1.0/projects", params={"company_id": procore.company_id}).json()
    wanted = [projects[0]["id"], projects[2]["id"]]
    reply = procore.get(
        "/rest/v1.0/projects",
        params={"company_id": procore.company_id, "filters[id][]": wanted},
    )
    assert sorted(p["id"] for p in reply.json()) == sorted(wanted)


def test_inactive_users_are_listed_separately(procore):
    active = procore.get(users_path(procore), params={"per_page": 100}).json()
    inactive = procore.get(f"{users_path(procore)}/inactive").json()
    assert [u["last_name"] for u in inactive] == ["Kowalski"]
    assert "Kowalski" not in {u["last_name"] for u in active}


def test_create_user_validates_and_refuses_duplicate_email(procore):
    missing = procore.post(users_path(procore), json={"user": {"first_name": "No"}})
    assert missing.status_code == 422
    assert set(missing.json()["errors"]) == {"last_name", "email_address"}
    taken = procore.post(
        users_path(procore),
        json={"user": {"last_name": "Dup", "email_address": "SOFIA.NGUYEN@summit.example.com"}},
    )
    assert taken.status_code == 409
    unwrapped = procore.post(users_path(procore), json={"last_name": "X"})
    assert unwrapped.status_code == 400


def test_project_time_zone_and_country_are_validated(procore):
    reply = procore.post(
        "/rest/v1.0/projects",
        json={"company_id": procore.company_id,
              "project": {"name": "Depot", "time_zone": "Mars/Olympus", "country_code": "USA"}},
    )  # fmt: skip
    assert reply.status_code == 422
    assert set(reply.json()["errors"]) == {"time_zone", "country_code"}
    ok = procore.post(
        "/rest/v1.0/projects",
        json={"company_id": procore.company_id,
              "project": {"name": "Depot", "time_zone": "US/Pacific", "country_code": "US"}},
    )  # fmt: skip
    assert ok.status_code == 201 and ok.json()["active"] is True


def test_ids_exceed_32_bits(procore):
    users = procore.get(users_path(procore)).json()
    assert all(u["id"] > 2**32 for u in users)


def test_project_without_address_is_in_the_demo_seed(procore):
    projects = procore.get("/rest/v1.0/projects", params={"company_id": procore.company_id}).json()
    assert len(projects) == 8
    assert [p["name"] for p in projects if not p["address"]] == ["Yard Shop Expansion"]


def test_user_lists_follow_creates_deactivations_and_deletes_between_pages(procore):
    def listed(suffix=""):
        rows = procore.get(f"{users_path(procore)}{suffix}", params={"per_page": 1000}).json()
        return {u["last_name"] for u in rows}

    assert "Newcomer" not in listed()  # the per-company index is built here
    created = procore.post(
        users_path(procore),
        json={"user": {"last_name": "Newcomer", "email_address": "new.comer@summit.example.com"}},
    ).json()
    assert "Newcomer" in listed()

    procore.patch(f"{users_path(procore)}/{created['id']}", json={"user": {"is_active": False}})
    assert "Newcomer" not in listed() and "Newcomer" in listed("/inactive")

    procore.store.delete("users", created["id"])
    assert "Newcomer" not in listed("/inactive")


def test_a_login_deactivated_in_its_only_company_can_no_longer_act_there(procore):
    admin = next(
        u for u in procore.store.table("users").values() if u["email_address"] == ADMIN_EMAIL
    )
    assert procore.get(users_path(procore)).status_code == 200
    procore.store.update("users", admin["id"], {"is_active": False})
    fresh = procore.mint()["access_token"]
    assert procore.get(users_path(procore), headers=procore.headers(token=fresh)).status_code == 404
