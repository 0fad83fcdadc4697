"""Cost codes admin pages: CRUD, validation, divisions, projects using a code, tenancy, roles."""

import pytest
import sqlalchemy as sa

from tests.conftest import make_user
from webapp.extensions import db
from webapp.models import CostCode, Project, Role

HX = {"HX-Request": "true"}


def code_form(**overrides) -> dict:
    form = {
        "code": "03-300",
        "name": "Cast-in-place concrete",
        "phase": "Structure",
        "active": "on",
    }
    form.update(overrides)
    return form


def code_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(CostCode))


def make_code(company, code="03-000", name="Concrete", **fields) -> CostCode:
    cost_code = CostCode(company_id=company.id, code=code, name=name, **fields)
    db.session.add(cost_code)
    db.session.commit()
    return cost_code


def make_project(company, name="Job", **fields) -> Project:
    project = Project(company_id=company.id, name=name, **fields)
    db.session.add(project)
    db.session.commit()
    return project


def test_admin_creates_cost_code_under_a_division(admin_client, company):
    division = make_code(company, "03", "Concrete")
    response = admin_client.post("/cost-codes/new", data=code_form(parent_id=str(division.id)))
    assert response.status_code == 303
    code = db.session.scalar(sa.select(CostCode).where(CostCode.code == "03-300"))
    assert code.company_id == company.id and code.parent_id == division.id
    assert code.phase == "Structure" and code.active
    html = admin_client.get("/cost-codes/").get_data(as_text=True)
    assert "Cast-in-place concrete" in html and "03 Concrete" in html


def test_admin_edits_cost_code_and_can_deactivate_it(admin_client, company):
    code = make_code(company, "01-100", "General")
    form = code_form(code="01-110", name="General conditions", phase="")
    del form["active"]
    assert admin_client.post(f"/cost-codes/{code.id}/edit", data=form).status_code == 303
    db.session.refresh(code)
    assert (code.code, code.name, code.phase, code.active) == (
        "01-110",
        "General conditions",
        None,
        False,
    )


def test_saving_a_code_unchanged_is_allowed(admin_client, company):
    code = make_code(company, "03-300", "Concrete")
    response = admin_client.post(f"/cost-codes/{code.id}/edit", data=code_form())
    assert response.status_code == 303


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"code": ""}, "code", "Code is required"),
        ({"code": "03*300"}, "code", "Use up to 50 letters"),
        ({"name": " "}, "name", "Name is required."),
        ({"phase": "p" * 101}, "phase", "at most 100 characters"),
        ({"parent_id": "abc"}, "parent_id", "Choose a division from the list."),
        ({"parent_id": "999999"}, "parent_id", "Choose a division from the list."),
    ],
)
def test_invalid_cost_code_form_is_refused_with_message_beside_field(
    admin_client, overrides, field, message
):
    response = admin_client.post("/cost-codes/new", data=code_form(**overrides), headers=HX)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="{field}-error"' in html and message in html
    assert "<html" not in html
    assert code_count() == 0


def test_code_must_be_unique_within_the_company_only(admin_client, company, other_company):
    make_code(other_company, "03-300")
    assert admin_client.post("/cost-codes/new", data=code_form()).status_code == 303
    response = admin_client.post("/cost-codes/new", data=code_form(name="Again"), headers=HX)
    assert response.status_code == 422
    assert "already uses this code" in response.get_data(as_text=True)
    assert code_count() == 2


def test_another_companys_division_is_refused(admin_client, other_company):
    foreign = make_code(other_company, "03")
    response = admin_client.post(
        "/cost-codes/new", data=code_form(parent_id=str(foreign.id)), headers=HX
    )
    assert response.status_code == 422
    assert code_count() == 1


def test_hierarchy_cannot_loop_or_go_three_deep(admin_client, company):
    division = make_code(company, "03", "Concrete")
    child = make_code(company, "03-300", "Cast", parent_id=division.id)
    # A code under a division cannot itself be a division...
    response = admin_client.post(
        "/cost-codes/new", data=code_form(code="03-310", parent_id=str(child.id)), headers=HX
    )
    assert "is itself under a division" in response.get_data(as_text=True)
    # ...a division with codes under it stays top-level, so no loop can form...
    response = admin_client.post(
        f"/cost-codes/{division.id}/edit",
        data=code_form(code="03", name="Concrete", parent_id=str(child.id)),
        headers=HX,
    )
    assert response.status_code == 422
    # ...and nothing is its own division.
    response = admin_client.post(
        f"/cost-codes/{division.id}/edit",
        data=code_form(code="03", name="Concrete", parent_id=str(division.id)),
        headers=HX,
    )
    assert "cannot be its own division" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(CostCode, division.id).parent_id is None


def test_assign_cost_code_to_projects_from_its_page(admin_client, company):
    code = make_code(company, "03-300")
    north = make_project(company, "North")
    south = make_project(company, "South")
    make_project(company, "Closed", active=False)
    html = admin_client.get(f"/cost-codes/{code.id}/edit").get_data(as_text=True)
    assert "North" in html and "South" in html and "Closed" not in html
    response = admin_client.post(
        f"/cost-codes/{code.id}/projects", data={"project_ids": [str(north.id), str(south.id)]}
    )
    assert response.status_code == 303
    db.session.expire_all()
    assert [c.id for c in db.session.get(Project, north.id).cost_codes] == [code.id]
    shown = [str(north.id), str(south.id)]
    admin_client.post(
        f"/cost-codes/{code.id}/projects",
        data={"project_ids": [str(south.id)], "shown_project_ids": shown},
    )
    db.session.expire_all()
    assert db.session.get(Project, north.id).cost_codes == []
    assert [c.id for c in db.session.get(Project, south.id).cost_codes] == [code.id]
    html = admin_client.get("/cost-codes/").get_data(as_text=True)
    assert '<td class="num">1</td>' in html


def test_filtered_checklist_leaves_projects_not_shown_alone(admin_client, company):
    code = make_code(company, "03-300")
    north = make_project(company, "North")
    south = make_project(company, "South")
    north.cost_codes.append(code)
    db.session.commit()
    html = admin_client.get(
        f"/cost-codes/{code.id}/projects", query_string={"project_q": "sou"}, headers=HX
    ).get_data(as_text=True)
    assert "South" in html and "North" not in html and "<html" not in html
    admin_client.post(
        f"/cost-codes/{code.id}/projects",
        data={"project_ids": [str(south.id)], "shown_project_ids": [str(south.id)]},
    )
    db.session.expire_all()
    assert [c.id for c in db.session.get(Project, north.id).cost_codes] == [code.id]
    assert [c.id for c in db.session.get(Project, south.id).cost_codes] == [code.id]


def test_another_companys_project_cannot_be_given_the_code(admin_client, company, other_company):
    code = make_code(company)
    mine = make_project(company, "Mine")
    foreign = make_project(other_company, "Theirs")
    response = admin_client.post(
        f"/cost-codes/{code.id}/projects",
        data={"project_ids": [str(mine.id), str(foreign.id)]},
        headers=HX,
    )
    assert response.status_code == 422
    assert "Choose projects from the list." in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Project, mine.id).cost_codes == []
    assert db.session.get(Project, foreign.id).cost_codes == []


def test_search_matches_code_name_and_phase(admin_client, company):
    make_code(company, "03-300", "Concrete", phase="Structure")
    make_code(company, "09-900", "Painting", phase="Finishes")
    for q, shown, hidden in (("03-3", "Concrete", "Painting"), ("paint", "Painting", "Concrete")):
        html = admin_client.get("/cost-codes/", query_string={"q": q}).get_data(as_text=True)
        assert shown in html and hidden not in html
    html = admin_client.get("/cost-codes/", query_string={"q": "finish"}).get_data(as_text=True)
    assert "Painting" in html and "Concrete" not in html


def test_cost_codes_paginate_in_code_order_and_hide_other_companies(
    admin_client, company, other_company
):
    db.session.add_all(
        CostCode(company_id=company.id, code=f"10-{i:03d}", name=f"Item {i:03d}") for i in range(75)
    )
    db.session.add(CostCode(company_id=other_company.id, code="10-999", name="Elsewhere"))
    db.session.commit()
    first = admin_client.get("/cost-codes/").get_data(as_text=True)
    assert "75 total · page 1 of 2" in first and "10-049" in first and "10-050" not in first
    second = admin_client.get("/cost-codes/", query_string={"page": "2"}, headers=HX)
    text = second.get_data(as_text=True)
    assert "10-050" in text and "10-074" in text and "Elsewhere" not in text
    assert "<html" not in text


def test_empty_cost_codes_page_says_what_to_do(admin_client):
    html = admin_client.get("/cost-codes/").get_data(as_text=True)
    assert "No cost codes yet." in html and "Add a cost code" in html


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/cost-codes/{id}/edit"),
        ("POST", "/cost-codes/{id}/edit"),
        ("GET", "/cost-codes/{id}/projects"),
        ("POST", "/cost-codes/{id}/projects"),
    ],
)
def test_another_companys_cost_code_is_not_found(admin_client, other_company, method, path):
    foreign = make_code(other_company, "03-300", "Theirs")
    project = make_project(other_company)
    response = admin_client.open(
        path.format(id=foreign.id),
        method=method,
        data=dict(code_form(name="Hijack"), project_ids=[str(project.id)]),
    )
    assert response.status_code == 404
    db.session.expire_all()
    assert db.session.get(CostCode, foreign.id).name == "Theirs"
    assert db.session.get(Project, project.id).cost_codes == []


@pytest.mark.parametrize("role", [Role.MANAGER, Role.SUPERVISOR, Role.WORKER])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/cost-codes/"),
        ("GET", "/cost-codes/new"),
        ("POST", "/cost-codes/new"),
        ("GET", "/cost-codes/{id}/edit"),
        ("POST", "/cost-codes/{id}/edit"),
        ("GET", "/cost-codes/{id}/projects"),
        ("POST", "/cost-codes/{id}/projects"),
    ],
)
def test_non_admins_are_forbidden(client, company, role, method, path):
    code = make_code(company, "01-000", "Mine")
    project = make_project(company)
    client.login(make_user(company, role))
    response = client.open(
        path.format(id=code.id),
        method=method,
        data=dict(code_form(code="02-000", name="Hijack"), project_ids=[str(project.id)]),
    )
    assert response.status_code == 403
    db.session.expire_all()
    assert code_count() == 1 and db.session.get(CostCode, code.id).name == "Mine"
    assert db.session.get(Project, project.id).cost_codes == []


def test_cost_codes_page_loads_divisions_without_a_query_per_row(app, admin_client, company):
    divisions = [
        CostCode(company_id=company.id, code=f"{d:02d}", name=f"Div {d}") for d in range(50)
    ]
    db.session.add_all(divisions)
    db.session.flush()
    db.session.add_all(
        CostCode(company_id=company.id, code=f"{d.code}-100", name="Item", parent_id=d.id)
        for d in divisions
    )
    db.session.commit()
    db.session.expire_all()
    statements = []
    sa.event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    html = admin_client.get("/cost-codes/", query_string={"q": "-100"}).get_data(as_text=True)
    assert "49 Div 49" in html and "00 Div 0" in html
    assert len(statements) <= 8, statements
