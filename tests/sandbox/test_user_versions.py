"""Company users in each documented version and shape (list "normal", show, v1.3 views)."""

from __future__ import annotations

import pytest

# procore-api.md §8.2: the v1.0 "normal" list item (OAS24 CompanyUser7).
NORMAL = {
    "id", "first_name", "last_name", "name", "initials", "email_address", "email_signature",
    "job_title", "employee_id", "is_employee", "is_active", "business_phone",
    "business_phone_extension", "mobile_phone", "fax_number", "address", "city", "state_code",
    "zip", "country_code", "notes", "avatar", "business_id", "contact_id",
    "erp_integrated_accountant", "last_login_at", "welcome_email_sent_at", "created_at",
    "updated_at", "origin_id", "origin_data", "work_classification_id", "vendor",
    "permission_template", "company_permission_template",
}  # fmt: skip
# procore-api.md §8.2: show/create/update (CompanyUser2) = the same scalars plus these, without
# the two permission-template objects.
SHOW = (NORMAL - {"permission_template", "company_permission_template"}) | {
    "is_insurance_manager", "default_permission_template_id", "company_permission_template_id",
    "locale",
}  # fmt: skip


def users(procore, version: str = "v1.0") -> str:
    return f"/rest/{version}/companies/{procore.company_id}/users"


@pytest.mark.parametrize("version", ["v1.0", "v1.1", "v1.2", "v1.3"])
def test_list_items_have_the_documented_normal_fields(procore, version):
    # procore-api.md §8.2: list item fields (v1.0 "normal"; v1.3's default view is normal).
    listed = procore.get(users(procore, version), params={"per_page": 5}).json()
    assert listed and all(set(u) == NORMAL for u in listed)


def test_show_create_update_and_sync_answer_the_show_shape(procore):
    # procore-api.md §8.2 (Show/create/update response, CompanyUser2) and §9.2 (sync entities
    # are show-shaped users).
    first = procore.get(users(procore), params={"per_page": 1}).json()[0]
    assert set(procore.get(f"{users(procore)}/{first['id']}").json()) == SHOW
    created = procore.post(
        users(procore), json={"user": {"last_name": "Shape", "email_address": "s@example.com"}}
    )
    assert created.status_code == 201 and set(created.json()) == SHOW
    updated = procore.patch(f"{users(procore)}/{first['id']}", json={"user": {"job_title": "X"}})
    assert set(updated.json()) == SHOW
    synced = procore.patch(f"{users(procore)}/sync", json={"updates": [{"id": first["id"]}]})
    assert set(synced.json()["entities"][0]) == SHOW


def test_v13_views_ids_only_and_normal_and_an_unknown_view_is_refused(procore):
    # procore-api.md §8.2: v1.3 adds `view` (extended|ids_only|normal, default normal).
    ids = procore.get(users(procore, "v1.3"), params={"view": "ids_only", "per_page": 5})
    assert ids.status_code == 200
    assert ids.json() and all(set(u) == {"id"} for u in ids.json())
    normal = procore.get(users(procore, "v1.3"), params={"view": "normal", "per_page": 5})
    assert [u["id"] for u in normal.json()] == [u["id"] for u in ids.json()]
    assert all(set(u) == NORMAL for u in normal.json())
    extended = procore.get(users(procore, "v1.3"), params={"view": "extended", "per_page": 5})
    assert extended.status_code == 200 and all(set(u) >= NORMAL for u in extended.json())
    assert procore.get(users(procore, "v1.3"), params={"view": "everything"}).status_code == 400
    # v1.0 has no `view`: the parameter is ignored, not honoured.
    old = procore.get(users(procore), params={"view": "ids_only", "per_page": 5}).json()
    assert all(set(u) == NORMAL for u in old)
