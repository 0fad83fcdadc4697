"""Standard cost code show, project cost code segments and line item types, as Procore
documents them."""

from __future__ import annotations

STD = "/rest/v1.0/standard_cost_codes"


def _list(procore) -> dict:
    return procore.store.select("cost_code_lists", company_id=procore.company_id)[0]


def _standard_code(procore, full_code: str) -> dict:
    codes = procore.store.select("standard_cost_codes", company_id=procore.company_id)
    return next(c for c in codes if c["full_code"] == full_code)


def test_standard_code_show_needs_its_list_and_is_not_found_in_another(procore):
    # procore-api.md §8.4: GET /standard_cost_codes/{id} requires company_id and
    # standard_cost_code_list_id.
    code = _standard_code(procore, "03-200")
    missing = procore.get(f"{STD}/{code['id']}", params={"company_id": procore.company_id})
    assert missing.status_code == 400
    assert "standard_cost_code_list_id" in missing.json()["message"]

    shown = procore.get(
        f"{STD}/{code['id']}",
        params={
            "company_id": procore.company_id,
            "standard_cost_code_list_id": _list(procore)["id"],
        },
    )
    assert shown.status_code == 200 and shown.json()["full_code"] == "03-200"

    other = procore.store.insert(
        "cost_code_lists",
        {"company_id": procore.company_id, "name": "ERP list", "is_erp_list": True},
    )
    elsewhere = procore.get(
        f"{STD}/{code['id']}",
        params={"company_id": procore.company_id, "standard_cost_code_list_id": other["id"]},
    )
    assert elsewhere.status_code == 404


def _project_with_codes(procore) -> dict:
    return procore.first_project()


def _project_code(procore, project_id: int, full_code: str) -> dict:
    listed = procore.get("/rest/v1.0/cost_codes", params={"project_id": project_id}).json()
    return next(c for c in listed if c["full_code"] == full_code)


def test_project_cost_code_create_takes_the_segment_and_refuses_the_full_code(procore):
    # procore-api.md §8.5: POST /cost_codes takes `code` as the segment only (for 02-300 send
    # "300" with parent_id); full_code is built from the parent's. §7.2: a refusal is a 422
    # with {"errors": {field: [messages]}}.
    project = _project_with_codes(procore)
    division = _project_code(procore, project["id"], "03")
    created = procore.post(
        "/rest/v1.0/cost_codes",
        json={"project_id": project["id"],
              "cost_code": {"code": "950", "name": "Curing", "parent_id": division["id"]}},
    )  # fmt: skip
    assert created.status_code == 201
    assert (created.json()["code"], created.json()["full_code"]) == ("950", "03-950")
    assert created.json()["parent"] == {"id": division["id"]}
    root = procore.post(
        "/rest/v1.0/cost_codes",
        json={"project_id": project["id"], "cost_code": {"code": "77", "name": "Extras"}},
    )
    assert root.status_code == 201 and root.json()["full_code"] == "77"

    refused = procore.post(
        "/rest/v1.0/cost_codes",
        json={"project_id": project["id"],
              "cost_code": {"code": "03-960", "name": "Full code", "parent_id": division["id"]}},
    )  # fmt: skip
    assert refused.status_code == 422
    assert list(refused.json()["errors"]) == ["code"]
    listed = procore.get("/rest/v1.0/cost_codes", params={"project_id": project["id"]}).json()
    assert not any(c["full_code"].endswith("960") for c in listed)


def test_line_item_types_use_only_the_documented_base_types(procore):
    # procore-api.md §8.5 (last paragraphs): OAS26's base_type enum is equipment, materials,
    # commitment, owner_cost, professional_services, other; `labor` is not in it (the sources
    # disagree), so the sandbox seeds and accepts only the enum.
    documented = {"equipment", "materials", "commitment", "owner_cost", "professional_services",
                  "other"}  # fmt: skip
    listed = procore.get(
        "/rest/v1.0/line_item_types", params={"company_id": procore.company_id}
    ).json()
    assert {t["name"] for t in listed} >= {"Labor", "Materials"}
    assert {t["base_type"] for t in listed} <= documented

    refused = procore.post(
        "/rest/v1.0/line_item_types",
        json={"company_id": procore.company_id,
              "line_item_type": {"name": "Crew labour", "code": "CL", "base_type": "labor"}},
    )  # fmt: skip
    assert refused.status_code == 422 and "base_type" in refused.json()["errors"]
    synced = procore.patch(
        "/rest/v1.0/line_item_types/sync",
        json={"company_id": procore.company_id,
              "updates": [{"origin_id": "lit-1", "name": "Crew", "code": "CR",
                           "base_type": "labor"}]},
    )  # fmt: skip
    assert synced.json()["entities"] == []
    assert "base_type" in synced.json()["errors"][0]["errors"]
    accepted = procore.post(
        "/rest/v1.0/line_item_types",
        json={"company_id": procore.company_id,
              "line_item_type": {"name": "Crew labour", "code": "CL", "base_type": "other"}},
    )  # fmt: skip
    assert accepted.status_code == 201
