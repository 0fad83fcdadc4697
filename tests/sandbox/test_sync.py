"""Sync endpoints: upsert by id or origin_id, per-item errors, size limits."""

from __future__ import annotations


def sync_users(procore, updates):
    return procore.patch(
        f"/rest/v1.0/companies/{procore.company_id}/users/sync", json={"updates": updates}
    )


def test_sync_creates_updates_and_reports_item_errors_with_200(procore):
    existing = procore.store.select("users", company_id=procore.company_id)[2]
    reply = sync_users(
        procore,
        [
            {"origin_id": "ext-1", "last_name": "New", "email_address": "new1@example.com"},
            {"id": existing["id"], "job_title": "Superintendent"},
            {"id": 1, "last_name": "Ghost"},
            {"origin_id": "ext-2", "first_name": "No last name", "email_address": "n2@example.com"},
        ],
    )
    assert reply.status_code == 200
    body = reply.json()
    assert [e["origin_id"] for e in body["entities"]] == ["ext-1", None]
    assert body["entities"][1]["job_title"] == "Superintendent"
    assert body["errors"][0]["id"] == 1
    assert body["errors"][0]["errors"] == {"id": ["Entity with this ID not found"]}
    assert body["errors"][1]["origin_id"] == "ext-2" and "last_name" in body["errors"][1]["errors"]


def test_sync_by_origin_id_updates_instead_of_duplicating(procore):
    first = sync_users(
        procore, [{"origin_id": "ext-9", "last_name": "Once", "email_address": "o@example.com"}]
    )
    second = sync_users(procore, [{"origin_id": "ext-9", "last_name": "Twice"}])
    assert first.json()["entities"][0]["id"] == second.json()["entities"][0]["id"]
    matches = procore.store.select("users", company_id=procore.company_id, origin_id="ext-9")
    assert [u["last_name"] for u in matches] == ["Twice"]


def test_origin_id_is_unique_per_company(procore):
    sync_users(
        procore, [{"origin_id": "ext-5", "last_name": "A", "email_address": "a@example.com"}]
    )
    other = procore.store.select("users", company_id=procore.company_id)[0]
    clash = sync_users(procore, [{"id": other["id"], "origin_id": "ext-5"}])
    assert clash.json()["errors"][0]["errors"] == {"origin_id": ["has already been taken"]}


def test_sync_with_id_and_origin_id_changes_the_origin_id(procore):
    user = procore.store.select("users", company_id=procore.company_id)[1]
    reply = sync_users(procore, [{"id": user["id"], "origin_id": "renamed"}])
    assert reply.json()["entities"][0]["origin_id"] == "renamed"


def test_more_than_1000_updates_are_refused(procore):
    updates = [{"origin_id": f"x{i}", "last_name": "L"} for i in range(1001)]
    assert sync_users(procore, updates).status_code == 400
    ccl = procore.store.select("cost_code_lists", company_id=procore.company_id)[0]
    reply = procore.patch(
        "/rest/v1.0/standard_cost_codes/sync",
        json={"company_id": procore.company_id, "standard_cost_code_list_id": ccl["id"],
              "updates": [{"code": str(i), "name": "n"} for i in range(1001)]},
    )  # fmt: skip
    assert reply.status_code == 413
    assert procore.store.select("users", origin_id="x0") == []


def test_project_and_cost_code_sync(procore):
    projects = procore.patch(
        "/rest/v1.0/projects/sync",
        json={"company_id": procore.company_id,
              "updates": [{"origin_id": "p-1", "name": "Depot"}, {"id": 0, "name": "x"}]},
    )  # fmt: skip
    body = projects.json()
    assert body["entities"][0]["name"] == "Depot"
    assert body["errors"][0]["errors"] == {"id": ["Entity with this ID not found"]}
    project_id = body["entities"][0]["id"]
    codes = procore.patch(
        "/rest/v1.0/cost_codes/sync",
        params={"project_id": project_id},
        json={"updates": [{"origin_id": "cc-1", "code": "100", "name": "Framing"},
                          {"origin_id": "cc-2", "code": "100", "name": "Duplicate code"}]},
    )  # fmt: skip
    assert [c["full_code"] for c in codes.json()["entities"]] == ["100"]
    assert codes.json()["errors"][0]["errors"] == {"code": ["has already been taken"]}


def test_copy_from_standard_list_fills_a_new_project(procore):
    project = procore.post(
        "/rest/v1.0/projects",
        json={"company_id": procore.company_id, "project": {"name": "Empty"}},
    ).json()
    ccl = procore.store.select("cost_code_lists", company_id=procore.company_id)[0]
    reply = procore.post(
        "/rest/v1.0/cost_codes/copy_from_standard_list",
        json={"project_id": project["id"], "standard_cost_code_list_id": ccl["id"]},
    )
    assert reply.status_code == 201
    listed = procore.get("/rest/v1.0/cost_codes", params={"project_id": project["id"]})
    standard = procore.store.select("standard_cost_codes", standard_cost_code_list_id=ccl["id"])
    assert listed.headers["Total"] == str(len(standard))
    child = next(c for c in listed.json() if c["full_code"] == "03-200")
    assert child["parent"] is not None


def sync_standard_codes(procore, updates):
    ccl = procore.store.select("cost_code_lists", company_id=procore.company_id)[0]
    return procore.patch(
        "/rest/v1.0/standard_cost_codes/sync",
        json={"company_id": procore.company_id, "standard_cost_code_list_id": ccl["id"],
              "updates": updates},
    )  # fmt: skip


def _standard_code(procore, full_code):
    codes = procore.store.select("standard_cost_codes", company_id=procore.company_id)
    return next(c for c in codes if c["full_code"] == full_code)


def test_standard_code_sync_takes_the_code_with_its_parents_prefix(procore):
    division = _standard_code(procore, "03")
    child = _standard_code(procore, "03-200")
    reply = sync_standard_codes(
        procore,
        [{"origin_id": "std-new", "parent_id": division["id"], "code": "03-950", "name": "New"},
         {"id": child["id"], "parent_id": division["id"], "code": "03-975", "name": "Moved"},
         {"id": child["id"], "name": "Renamed only"}],
    )  # fmt: skip
    body = reply.json()
    assert reply.status_code == 200 and body["errors"] == []
    created, moved, renamed = body["entities"]
    assert (created["code"], created["full_code"]) == ("950", "03-950")
    assert (moved["code"], moved["full_code"]) == ("975", "03-975")
    assert (renamed["full_code"], renamed["name"]) == ("03-975", "Renamed only")


def test_standard_code_sync_refuses_a_code_outside_its_parents_prefix(procore):
    division = _standard_code(procore, "03")
    child = _standard_code(procore, "03-200")
    reply = sync_standard_codes(
        procore,
        [{"id": child["id"], "parent_id": division["id"], "code": "300", "name": "Segment"},
         {"id": child["id"], "code": "04-300"},
         {"id": child["id"], "code": "03-"},
         {"origin_id": "std-x", "parent_id": division["id"], "code": "030-1", "name": "x"}],
    )  # fmt: skip
    body = reply.json()
    assert reply.status_code == 200 and body["entities"] == []
    assert [e["code"] for e in body["errors"]] == ["300", "04-300", "03-", "030-1"]
    for error in body["errors"]:
        assert "must start with its parent's full code (03-...)" in error["errors"]["code"][0]
    assert procore.store.get("standard_cost_codes", child["id"])["full_code"] == "03-200"
    assert procore.store.select("standard_cost_codes", origin_id="std-x") == []


def test_standard_code_sync_takes_a_root_code_as_it_is(procore):
    reply = sync_standard_codes(procore, [{"origin_id": "div-99", "code": "99", "name": "Div"}])
    entity = reply.json()["entities"][0]
    assert (entity["code"], entity["full_code"], entity["parent_id"]) == ("99", "99", None)
