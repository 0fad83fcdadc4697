"""Step 5's labour line item type: listed from Procore, saved, and sent on every entry."""

import os

import pytest

from tests.integration.push_support import *  # noqa: F403 (fixtures)
from tests.integration.setup_support import SandboxFetcher, demo_ids, sandbox_fixture
from webapp import jobs
from webapp.extensions import db
from webapp.models import IntegrationSettings
from webapp.procore.errors import ProcoreUnavailable
from webapp.services import imports

SETUP = "/settings/integrations/procore/setup"
HX = {"HX-Request": "true"}
STEP5 = {
    "users_direction": "procore_to_crewclock",
    "projects_direction": "procore_to_crewclock",
    "cost_codes_direction": "procore_to_crewclock",
    "timecard_trigger": "approved",
}
demo_sandbox = sandbox_fixture("demo")


@pytest.fixture
def chosen(demo_sandbox, company, monkeypatch):
    """A company that chose the demo sandbox's main Procore company in step 1."""
    ids = demo_ids(demo_sandbox)
    settings = imports.settings_for(company.id)
    settings.procore_company_id = ids["company"]
    db.session.commit()
    monkeypatch.setattr(
        imports, "client_page_fetcher", lambda company_id: SandboxFetcher(ids["company"])
    )
    monkeypatch.setattr(jobs, "_app_pid", os.getpid())
    types = ids["store"].select("line_item_types", company_id=ids["company"])
    return {**{t["name"]: t["id"] for t in types}, "_ids": ids}


def _saved(company) -> IntegrationSettings:
    db.session.expire_all()
    return db.session.get(IntegrationSettings, company.id)


def test_step5_lists_the_procore_line_item_types_and_saves_the_labour_choice(
    admin_client, company, admin, chosen
):
    page = admin_client.get(f"{SETUP}/step/5", headers=HX).get_data(as_text=True)
    assert "Labour line item type (optional)" in page
    assert f'<option value="{chosen["Labor"]}">Labor (L)</option>' in page
    assert f'value="{chosen["Materials"]}">Materials (M) (not a labour type)' in page

    response = admin_client.post(
        f"{SETUP}/sync",
        data={**STEP5, "labor_line_item_type_id": str(chosen["Labor"])},
        headers=HX,
    )
    assert response.status_code == 200
    settings = _saved(company)
    assert settings.labor_line_item_type_id == chosen["Labor"]
    assert settings.labor_line_item_type_name == "Labor"
    page = admin_client.get(f"{SETUP}/step/5", headers=HX).get_data(as_text=True)
    assert f'<option value="{chosen["Labor"]}" selected>Labor (L)</option>' in page


def test_step5_suggests_labour_types_by_name_or_code_and_labor_base_type(
    admin_client, company, admin, chosen, monkeypatch
):
    """Procore's documented base types have no labour value: the labour cost type is found by
    its name or code (any case), and base_type "labor" still counts where Procore sends it."""
    listed = [
        {"id": 11, "name": "Equipment", "code": "E", "base_type": "equipment"},
        {"id": 12, "name": "LABOUR", "code": "X1", "base_type": "other"},
        {"id": 13, "name": "Field crew", "code": "lab", "base_type": "other"},
        {"id": 14, "name": "Site work", "code": "SW", "base_type": "labor"},
        {"id": 15, "name": "Other costs", "code": "O", "base_type": "other"},
    ]
    monkeypatch.setattr(
        imports,
        "client_page_fetcher",
        lambda company_id: lambda path, params, page, per_page: (listed, len(listed)),
    )
    page = admin_client.get(f"{SETUP}/step/5", headers=HX).get_data(as_text=True)
    for labour in ('value="13">Field crew (lab)</option>', 'value="12">LABOUR (X1)</option>',
                   'value="14">Site work (SW)</option>'):  # fmt: skip
        assert labour in page
    assert 'value="11">Equipment (E) (not a labour type)</option>' in page
    assert 'value="15">Other costs (O) (not a labour type)</option>' in page
    assert page.index("Field crew") < page.index("LABOUR") < page.index("Site work")
    assert page.index("Site work") < page.index("Equipment")
    assert "selected" not in page.split('id="labor_line_item_type_id"')[1].split("</select>")[0]


def test_choosing_none_clears_the_saved_line_item_type(admin_client, company, admin, chosen):
    admin_client.post(
        f"{SETUP}/sync", data={**STEP5, "labor_line_item_type_id": chosen["Labor"]}, headers=HX
    )
    response = admin_client.post(
        f"{SETUP}/sync", data={**STEP5, "labor_line_item_type_id": ""}, headers=HX
    )
    assert response.status_code == 200
    settings = _saved(company)
    assert settings.labor_line_item_type_id is None
    assert settings.labor_line_item_type_name is None


@pytest.mark.parametrize("forged", ["999999999", "abc"])
def test_forged_line_item_type_is_refused_with_422_and_nothing_saved(
    admin_client, company, admin, chosen, forged
):
    response = admin_client.post(
        f"{SETUP}/sync",
        data={**STEP5, "projects_direction": "both", "labor_line_item_type_id": forged},
        headers=HX,
    )
    assert response.status_code == 422
    assert "Choose a line item type from the list, or none." in response.get_data(as_text=True)
    settings = _saved(company)
    assert settings.labor_line_item_type_id is None
    assert settings.projects_direction.value == "procore_to_crewclock"
    assert settings.setup_completed_at is None


def test_another_companys_line_item_type_is_refused(admin_client, company, admin, chosen):
    ids = chosen["_ids"]
    foreign = next(
        t for t in ids["store"].select("line_item_types") if t["company_id"] != ids["company"]
    )
    response = admin_client.post(
        f"{SETUP}/sync", data={**STEP5, "labor_line_item_type_id": foreign["id"]}, headers=HX
    )
    assert response.status_code == 422
    assert _saved(company).labor_line_item_type_id is None


def test_procore_error_shows_in_the_field_and_the_other_settings_still_save(
    admin_client, company, admin, chosen, monkeypatch
):
    admin_client.post(
        f"{SETUP}/sync", data={**STEP5, "labor_line_item_type_id": chosen["Labor"]}, headers=HX
    )

    def broken(company_id):
        def fetch(path, params, page, per_page):
            raise ProcoreUnavailable(status=503)

        return fetch

    monkeypatch.setattr(imports, "client_page_fetcher", broken)
    page = admin_client.get(f"{SETUP}/step/5", headers=HX)
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Procore could not list the line item types just now." in text
    assert "Saved: Labor. It stays as it is." in text

    response = admin_client.post(f"{SETUP}/sync", data={**STEP5, "projects_direction": "both"})
    assert response.status_code == 200
    settings = _saved(company)
    assert settings.projects_direction.value == "both"
    assert settings.labor_line_item_type_id == chosen["Labor"]


def test_pushed_entry_carries_the_configured_line_item_type(world):
    labor = world.sandbox.one("line_item_types", name="Labor")
    world.settings.labor_line_item_type_id = labor["id"]
    world.settings.labor_line_item_type_name = labor["name"]
    db.session.commit()
    world.approve(world.card(world.workers[0], entries=2))
    world.push()

    entries = world.sandbox.entries()
    assert len(entries) == 2
    assert {e["line_item_type_id"] for e in entries} == {labor["id"]}


def test_pushed_entry_has_no_line_item_type_when_none_is_configured(world):
    world.approve(world.card(world.workers[0], entries=1))
    world.push()

    entries = world.sandbox.entries()
    assert len(entries) == 1
    assert entries[0]["line_item_type_id"] is None


def test_bulk_created_entries_carry_the_line_item_type_too(world):
    labor = world.sandbox.one("line_item_types", name="Labor")
    world.settings.labor_line_item_type_id = labor["id"]
    world.settings.use_bulk_timecards = True
    db.session.commit()
    world.approve(world.card(world.workers[0], entries=3))
    world.push()

    entries = world.sandbox.entries()
    assert len(entries) == 3
    assert world.sandbox.requests_to("POST", "bulk_create") == 1
    assert {e["line_item_type_id"] for e in entries} == {labor["id"]}
