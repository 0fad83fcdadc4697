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
