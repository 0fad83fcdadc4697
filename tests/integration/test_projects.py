"""Projects admin pages: CRUD, validation, supervisors, cost codes used, search, tenancy, roles."""

from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.conftest import make_user
from webapp.extensions import db
from webapp.models import CostCode, Project, Role, TimeEntryMode

HX = {"HX-Request": "true"}


def project_form(**overrides) -> dict:
    form = {
        "name": "Riverside Tower",
        "number": "2024-017",
        "street": "100 River Rd",
        "city": "Austin",
        "state": "TX",
        "zip": "78701",
        "country": "us",
        "latitude": "30.2672",
        "longitude": "-97.7431",
        "active": "on",
        "time_entry_mode": "start_stop",
    }
    form.update(overrides)
    return form


def project_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Project))


def make_project(company, name="Job", **fields) -> Project:
    project = Project(company_id=company.id, name=name, **fields)
    db.session.add(project)
    db.session.commit()
    return project


def make_code(company, code="03-300", name="Concrete", **fields) -> CostCode:
    cost_code = CostCode(company_id=company.id, code=code, name=name, **fields)
    db.session.add(cost_code)
    db.session.commit()
    return cost_code


def test_admin_creates_project_with_address_coordinates_and_mode(admin_client, company):
    response = admin_client.post("/projects/new", data=project_form())
    assert response.status_code == 303
    project = db.session.scalar(sa.select(Project))
    assert response.headers["Location"] == f"/projects/{project.id}/edit"
    assert project.company_id == company.id
    assert project.country == "US" and project.has_full_address
    assert project.latitude == Decimal("30.267200")
    assert project.longitude == Decimal("-97.743100")
    assert project.time_entry_mode == TimeEntryMode.START_STOP and project.active
    html = admin_client.get("/projects/").get_data(as_text=True)
    assert "Riverside Tower" in html and "Start/stop times with a break" in html


def test_project_without_coordinates_or_active_tick_is_saved_inactive(admin_client):
    form = project_form(latitude="", longitude="", time_entry_mode="hours")
    del form["active"]
    assert admin_client.post("/projects/new", data=form).status_code == 303
    project = db.session.scalar(sa.select(Project))
    assert project.latitude is None and project.longitude is None
    assert project.active is False and project.time_entry_mode == TimeEntryMode.HOURS


def test_admin_edits_project(admin_client, company):
    project = make_project(company, "Old name")
    response = admin_client.post(
        f"/projects/{project.id}/edit", data=project_form(name="New name", city="Dallas")
    )
    assert response.status_code == 303
    db.session.refresh(project)
    assert project.name == "New name" and project.city == "Dallas"


def test_edit_page_shows_values_and_leaves_a_procore_badge_slot(admin_client, company):
    project = make_project(company, "Harbor Bridge", number="77")
    html = admin_client.get(f"/projects/{project.id}/edit").get_data(as_text=True)
    assert 'value="Harbor Bridge"' in html and 'value="77"' in html
    assert "Cost codes used on this project" in html


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": "  "}, "name", "Name is required."),
        ({"country": "USA"}, "country", "two-letter ISO country code"),
        ({"country": "XX"}, "country", "two-letter ISO country code"),
        ({"latitude": "91"}, "latitude", "between -90 and 90"),
        ({"longitude": "-180.5"}, "longitude", "between -180 and 180"),
        ({"latitude": "north"}, "latitude", "must be a number"),
        ({"latitude": "NaN"}, "latitude", "must be a number"),
        ({"longitude": ""}, "longitude", "Enter both latitude and longitude"),
        ({"time_entry_mode": "daily"}, "time_entry_mode", "Choose how workers enter time."),
        ({"zip": "1" * 21}, "zip", "at most 20 characters"),
    ],
)
def test_invalid_project_form_is_refused_with_message_beside_field(
    admin_client, overrides, field, message
):
    response = admin_client.post("/projects/new", data=project_form(**overrides), headers=HX)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="{field}-error"' in html and message in html
    assert "<html" not in html
    assert project_count() == 0


def test_invalid_edit_saves_nothing(admin_client, company):
    project = make_project(company, "Keep me")
    response = admin_client.post(
        f"/projects/{project.id}/edit", data=project_form(name="Changed", latitude="100")
    )
    assert response.status_code == 422
    db.session.expire_all()
    assert db.session.get(Project, project.id).name == "Keep me"


def test_supervisors_are_chosen_from_approver_roles(admin_client, company, admin):
    supervisor = make_user(company, Role.SUPERVISOR, first_name="Sue")
    manager = make_user(company, Role.MANAGER, first_name="Manny")
    worker = make_user(company, Role.WORKER, first_name="Wally")
    html = admin_client.get("/projects/new").get_data(as_text=True)
    assert "Sue" in html and "Manny" in html and "Wally" not in html
    form = project_form()
    form["supervisor_ids"] = [str(supervisor.id), str(manager.id)]
    assert admin_client.post("/projects/new", data=form).status_code == 303
    project = db.session.scalar(sa.select(Project))
    assert {u.id for u in project.supervisors} == {supervisor.id, manager.id}
    form["supervisor_ids"] = [str(worker.id)]
    response = admin_client.post(f"/projects/{project.id}/edit", data=form, headers=HX)
    assert response.status_code == 422
    assert 'id="supervisor_ids-error"' in response.get_data(as_text=True)


def test_another_companys_supervisor_is_refused(admin_client, company, other_company):
    outsider = make_user(other_company, Role.SUPERVISOR)
    form = project_form()
    form["supervisor_ids"] = [str(outsider.id)]
    response = admin_client.post("/projects/new", data=form, headers=HX)
    assert response.status_code == 422
    assert project_count() == 0


def test_company_id_cannot_be_set_from_the_form(admin_client, company, other_company):
    admin_client.post("/projects/new", data=project_form(company_id=str(other_company.id)))
    assert db.session.scalar(sa.select(Project)).company_id == company.id


def test_assign_and_unassign_a_cost_code(admin_client, company):
    project = make_project(company)
    code = make_code(company)
    response = admin_client.post(
        f"/projects/{project.id}/cost-codes", data={"cost_code_id": str(code.id)}, headers=HX
    )
    assert response.status_code == 200
    assert "03-300 Concrete is now used on this project." in response.get_data(as_text=True)
    db.session.expire_all()
    assert [c.id for c in db.session.get(Project, project.id).cost_codes] == [code.id]
    response = admin_client.post(f"/projects/{project.id}/cost-codes/{code.id}/remove", headers=HX)
    assert "uses no cost codes yet" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Project, project.id).cost_codes == []


def test_cost_code_section_filters_by_code_or_name(admin_client, company):
    project = make_project(company)
    make_code(company, "03-300", "Concrete")
    make_code(company, "09-900", "Painting")
    html = admin_client.get(
        f"/projects/{project.id}/cost-codes", query_string={"code_q": "paint"}, headers=HX
    ).get_data(as_text=True)
    assert "09-900 Painting" in html and "Concrete" not in html and "<html" not in html
    page = admin_client.get(f"/projects/{project.id}/edit", query_string={"code_q": "03-"})
    assert "03-300 Concrete" in page.get_data(as_text=True)
    assert "Painting" not in page.get_data(as_text=True)


def test_assign_without_choosing_a_code_is_refused(admin_client, company):
    project = make_project(company)
    response = admin_client.post(
        f"/projects/{project.id}/cost-codes", data={"cost_code_id": ""}, headers=HX
    )
    assert response.status_code == 422
    assert "Choose a cost code from the list." in response.get_data(as_text=True)


def test_another_companys_cost_code_cannot_be_assigned(admin_client, company, other_company):
    project = make_project(company)
    foreign = make_code(other_company)
    response = admin_client.post(
        f"/projects/{project.id}/cost-codes", data={"cost_code_id": str(foreign.id)}, headers=HX
    )
    assert response.status_code == 422
    db.session.expire_all()
    assert db.session.get(Project, project.id).cost_codes == []


def test_assign_all_active_codes_adds_only_missing_active_ones(
    admin_client, company, other_company
):
    project = make_project(company)
    first = make_code(company, "01-100", "General")
    make_code(company, "02-200", "Sitework")
    make_code(company, "09-900", "Retired", active=False)
    make_code(other_company, "05-500", "Not ours")
    admin_client.post(f"/projects/{project.id}/cost-codes", data={"cost_code_id": str(first.id)})
    response = admin_client.post(f"/projects/{project.id}/cost-codes/all", headers=HX)
    assert "1 active cost codes added." in response.get_data(as_text=True)
    db.session.expire_all()
    codes = sorted(c.code for c in db.session.get(Project, project.id).cost_codes)
    assert codes == ["01-100", "02-200"]


def test_cost_code_actions_without_htmx_redirect_back_to_the_project(admin_client, company):
    project = make_project(company)
    response = admin_client.post(f"/projects/{project.id}/cost-codes/all")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/projects/{project.id}/edit#cost-codes")


def test_projects_table_shows_cost_code_counts_and_search(admin_client, company):
    alpha = make_project(company, "Alpha School", number="A-1", city="Boise")
    make_project(company, "Beta Mall", number="B-2", city="Reno")
    codes = [make_code(company, f"0{i}-000", f"Code {i}") for i in range(3)]
    alpha.cost_codes.extend(codes)
    db.session.commit()
    html = admin_client.get("/projects/", query_string={"q": "boise"}).get_data(as_text=True)
    assert "Alpha School" in html and "Beta Mall" not in html
    assert '<td class="num">3</td>' in html
    html = admin_client.get("/projects/", query_string={"q": "b-2"}).get_data(as_text=True)
    assert "Beta Mall" in html and "Alpha School" not in html


def test_projects_table_paginates_and_hides_other_companies(admin_client, company, other_company):
    db.session.add_all(Project(company_id=company.id, name=f"Site {i:03d}") for i in range(60))
    db.session.add(Project(company_id=other_company.id, name="Site 999 elsewhere"))
    db.session.commit()
    first = admin_client.get("/projects/").get_data(as_text=True)
    assert "60 total · page 1 of 2" in first and "Site 049" in first and "Site 050" not in first
    second = admin_client.get("/projects/", query_string={"page": 2}).get_data(as_text=True)
    assert "Site 050" in second and "Site 059" in second and "elsewhere" not in second


def test_empty_projects_page_says_what_to_do(admin_client):
    html = admin_client.get("/projects/").get_data(as_text=True)
    assert "No projects yet." in html and "Add a project" in html


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/projects/{id}/edit"),
        ("POST", "/projects/{id}/edit"),
        ("GET", "/projects/{id}/cost-codes"),
        ("POST", "/projects/{id}/cost-codes"),
        ("POST", "/projects/{id}/cost-codes/all"),
        ("POST", "/projects/{id}/cost-codes/{code}/remove"),
    ],
)
def test_another_companys_project_is_not_found(admin_client, company, other_company, method, path):
    foreign = make_project(other_company, "Theirs")
    code = make_code(other_company)
    foreign.cost_codes.append(code)
    db.session.commit()
    response = admin_client.open(
        path.format(id=foreign.id, code=code.id),
        method=method,
        data=dict(project_form(), cost_code_id=str(code.id)),
    )
    assert response.status_code == 404
    db.session.expire_all()
    again = db.session.get(Project, foreign.id)
    assert again.name == "Theirs" and [c.id for c in again.cost_codes] == [code.id]


def test_removing_another_companys_code_from_own_project_is_not_found(
    admin_client, company, other_company
):
    project = make_project(company)
    foreign = make_code(other_company)
    response = admin_client.post(f"/projects/{project.id}/cost-codes/{foreign.id}/remove")
    assert response.status_code == 404


@pytest.mark.parametrize("role", [Role.MANAGER, Role.SUPERVISOR, Role.WORKER])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/projects/"),
        ("GET", "/projects/new"),
        ("POST", "/projects/new"),
        ("GET", "/projects/{id}/edit"),
        ("POST", "/projects/{id}/edit"),
        ("GET", "/projects/{id}/cost-codes"),
        ("POST", "/projects/{id}/cost-codes"),
        ("POST", "/projects/{id}/cost-codes/all"),
        ("POST", "/projects/{id}/cost-codes/{code}/remove"),
    ],
)
def test_non_admins_are_forbidden(client, company, role, method, path):
    project = make_project(company, "Mine")
    code = make_code(company)
    client.login(make_user(company, role))
    response = client.open(
        path.format(id=project.id, code=code.id),
        method=method,
        data=dict(project_form(name="Hijack"), cost_code_id=str(code.id)),
    )
    assert response.status_code == 403
    db.session.expire_all()
    assert project_count() == 1
    assert db.session.get(Project, project.id).name == "Mine"
    assert db.session.get(Project, project.id).cost_codes == []
