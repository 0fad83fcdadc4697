"""The entry row's project and cost code pickers stay small for companies with many of them."""

import re
from datetime import timedelta

import sqlalchemy as sa

from tests.conftest import make_company
from tests.integration.test_timecards import (
    HX,
    MONDAY,
    add_entry,
    card_of,
    entry_fields,
    login_as,
    setup_crew,
)
from webapp.extensions import db
from webapp.models import CostCode, Project
from webapp.models.project import project_cost_code

LIMIT = 50 * 1024  # reliability.md F5
# Long names, as real ones often are: 600 of them in one select are well over 50 KB.
DAY = timedelta(days=1)
PADDING = "Mixed-use residential and retail podium, phase two, north parcel"


def add_towers(company, count=600, **fields) -> list[Project]:
    """`count` active projects named "Tower 000 …" (by name they sort after the crew's)."""
    db.session.execute(
        sa.insert(Project),
        [
            {
                "company_id": company.id,
                "name": f"Tower {n:03d} {PADDING}",
                "number": f"T-{n:03d}",
                **fields,
            }
            for n in range(count)
        ],
    )
    db.session.commit()
    return list(
        db.session.scalars(
            sa.select(Project)
            .where(Project.company_id == company.id, Project.name.like("Tower %"))
            .order_by(Project.name)
        )
    )


def add_codes(company, project, count=150) -> list[CostCode]:
    """`count` active cost codes assigned to `project`."""
    db.session.execute(
        sa.insert(CostCode),
        [
            {"company_id": company.id, "code": f"99-{n:03d}", "name": f"Finish item {n:03d}"}
            for n in range(count)
        ],
    )
    codes = list(
        db.session.scalars(
            sa.select(CostCode)
            .where(CostCode.company_id == company.id, CostCode.code.like("99-%"))
            .order_by(CostCode.code)
        )
    )
    db.session.execute(
        sa.insert(project_cost_code),
        [{"project_id": project.id, "cost_code_id": c.id} for c in codes],
    )
    db.session.commit()
    return codes


def project_options(html: str) -> list[str]:
    """The labels of the project select's options, in order."""
    select = re.search(r'<select name="project_id".*?</select>', html, re.S)
    assert select, "no project select"
    return [label.strip() for label in re.findall(r"<option[^>]*>([^<]*)</option>", select[0])]


def match_ids(html: str, field: str) -> list[int]:
    """The ids the search results' buttons would choose."""
    return [int(i) for i in re.findall(rf'"{field}": "(\d+)"', html)]


def test_large_company_my_time_stays_small_and_lists_recent_projects_first(app):
    crew = setup_crew()
    towers = add_towers(crew.company)
    client = login_as(app, crew.worker)
    last_week, long_ago = MONDAY - timedelta(days=7), MONDAY - timedelta(days=42)
    for day, project in [(long_ago, towers[5]), (last_week, towers[250])]:
        response = add_entry(client, project, week=day, work_date=day)
        assert response.status_code == 200
    response = add_entry(client, crew.hours_project, week=last_week, work_date=last_week + 1 * DAY)
    assert response.status_code == 200

    response = client.get("/time/", query_string={"week": MONDAY.isoformat()})
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert len(response.data) < LIMIT, len(response.data)
    # Most recently used first (it is preselected), then the other recent one; nothing else.
    assert project_options(html) == [crew.hours_project.name, towers[250].name]
    assert towers[5].name not in html  # six weeks ago is not recent
    assert towers[0].name not in html  # unused projects are found by search, not listed
    assert 'name="project_q"' in html


def test_large_company_entry_form_fragment_stays_small_and_preselects_the_last_project(app):
    crew = setup_crew()
    towers = add_towers(crew.company)
    client = login_as(app, crew.worker)
    assert add_entry(client, towers[599], week=MONDAY, work_date=MONDAY).status_code == 200

    response = client.get("/time/entries/form", query_string={"week": MONDAY}, headers=HX)
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert len(response.data) < LIMIT, len(response.data)
    assert project_options(html) == [towers[599].name]
    assert f'<option value="{towers[599].id}" selected>' in html
    assert 'name="project_q"' in html


def test_large_company_without_recent_time_asks_to_search_for_a_project(app):
    crew = setup_crew()
    add_towers(crew.company)
    client = login_as(app, crew.worker)

    html = client.get("/time/", query_string={"week": MONDAY}).get_data(as_text=True)

    assert project_options(html) == ["— search for a project below —"]
    response = add_entry(client, crew.hours_project, project_id="")
    assert response.status_code == 422 and "Choose a project." in response.get_data(as_text=True)


def test_small_company_keeps_a_plain_select_of_every_active_project(app):
    crew = setup_crew()
    html = (
        login_as(app, crew.worker)
        .get("/time/", query_string={"week": MONDAY})
        .get_data(as_text=True)
    )
    assert project_options(html) == [crew.hours_project.name, crew.clock_project.name]
    assert 'name="project_q"' not in html


def test_project_search_returns_capped_matches_from_your_company_only(app):
    crew = setup_crew()
    towers = add_towers(crew.company)
    closed = Project(company_id=crew.company.id, name="Tower Closed Site", active=False)
    other = make_company("Rival Builders")
    theirs = Project(company_id=other.id, name="Tower Rival Plaza")
    db.session.add_all([closed, theirs])
    db.session.commit()
    client = login_as(app, crew.worker)

    html = client.get(
        "/time/entries/projects", query_string={"project_q": "TOWER"}, headers=HX
    ).get_data(as_text=True)
    assert match_ids(html, "project_id") == [t.id for t in towers[:20]]
    assert "type more to narrow" in html
    assert "Rival" not in html and "Closed" not in html

    html = client.get(
        "/time/entries/projects", query_string={"project_q": "t-123"}, headers=HX
    ).get_data(as_text=True)
    assert match_ids(html, "project_id") == [towers[123].id]  # by number too
    assert "type more" not in html

    html = client.get(
        "/time/entries/projects", query_string={"project_q": "Rival Plaza"}, headers=HX
    ).get_data(as_text=True)
    assert match_ids(html, "project_id") == []
    assert "No active project matches" in html

    html = client.get(
        "/time/entries/projects", query_string={"project_q": "100%"}, headers=HX
    ).get_data(as_text=True)
    assert match_ids(html, "project_id") == []  # % is a character, not a wildcard


def test_project_found_by_search_loads_its_codes_and_saves_an_entry(app):
    crew = setup_crew()
    towers = add_towers(crew.company)
    picked = towers[321]
    picked.cost_codes = [crew.code_b]
    db.session.commit()
    client = login_as(app, crew.worker)

    results = client.get(
        "/time/entries/projects", query_string={"project_q": "Tower 321"}, headers=HX
    ).get_data(as_text=True)
    assert match_ids(results, "project_id") == [picked.id]
    # The result's button reloads the row with its own project id over the select's value.
    row = client.get(
        "/time/entries/form",
        query_string={"week": MONDAY, "project_id": picked.id, "project_q": "Tower 321"},
        headers=HX,
    ).get_data(as_text=True)
    assert f'<option value="{picked.id}" selected>' in row
    assert "09-250 Drywall" in row and "03-300 Concrete" not in row

    response = add_entry(client, picked, cost_code_id=crew.code_b.id, hours="6")
    assert response.status_code == 200
    entry = card_of(crew.worker).entries[0]
    assert (entry.project_id, entry.cost_code_id, str(entry.hours)) == (
        picked.id,
        crew.code_b.id,
        "6.00",
    )


def test_large_company_still_refuses_another_companys_or_inactive_project(app):
    crew = setup_crew()
    add_towers(crew.company)
    other = make_company("Rival Builders")
    theirs = Project(company_id=other.id, name="Rival Plaza")
    db.session.add(theirs)
    db.session.commit()
    client = login_as(app, crew.worker)

    response = add_entry(client, theirs)
    assert response.status_code == 422 and "Choose a project." in response.get_data(as_text=True)
    response = add_entry(client, crew.inactive_project)
    assert response.status_code == 422 and "is inactive" in response.get_data(as_text=True)
    assert card_of(crew.worker) is None


def test_project_with_many_cost_codes_offers_recent_codes_and_a_capped_search(app):
    crew = setup_crew()
    codes = add_codes(crew.company, crew.hours_project)
    client = login_as(app, crew.worker)
    last_week = MONDAY - timedelta(days=7)
    response = add_entry(
        client, crew.hours_project, week=last_week, work_date=last_week, cost_code_id=codes[140].id
    )
    assert response.status_code == 200

    row = client.get(
        "/time/entries/form",
        query_string={"week": MONDAY, "project_id": crew.hours_project.id},
        headers=HX,
    ).get_data(as_text=True)
    assert "99-140 Finish item 140" in row and "99-000" not in row
    assert 'name="cost_code_q"' in row

    html = client.get(
        "/time/entries/cost-codes",
        query_string={"project_id": crew.hours_project.id, "cost_code_q": "finish"},
        headers=HX,
    ).get_data(as_text=True)
    assert match_ids(html, "cost_code_id") == [c.id for c in codes[:20]]
    assert "type more to narrow" in html
    html = client.get(
        "/time/entries/cost-codes",
        query_string={"project_id": crew.hours_project.id, "cost_code_q": "26-050"},
        headers=HX,
    ).get_data(as_text=True)
    assert match_ids(html, "cost_code_id") == []  # not assigned to the project

    # Choosing a searched code keeps it selected in the reloaded row, and it saves.
    row = client.get(
        "/time/entries/form",
        query_string={
            "week": MONDAY,
            "project_id": crew.hours_project.id,
            "cost_code_id": codes[77].id,
        },
        headers=HX,
    ).get_data(as_text=True)
    assert f'<option value="{codes[77].id}" selected>99-077 Finish item 077</option>' in row
    response = client.post(
        "/time/entries",
        data=entry_fields(crew.hours_project, cost_code_id=codes[77].id),
        headers=HX,
    )
    assert response.status_code == 200
    assert card_of(crew.worker).entries[0].cost_code_id == codes[77].id


def test_cost_code_search_of_another_companys_project_is_not_found(app):
    crew = setup_crew()
    other = make_company("Rival Builders")
    theirs = Project(company_id=other.id, name="Rival Plaza")
    db.session.add(theirs)
    db.session.commit()
    client = login_as(app, crew.worker)
    response = client.get(
        "/time/entries/cost-codes",
        query_string={"project_id": theirs.id, "cost_code_q": "03"},
        headers=HX,
    )
    assert response.status_code == 404
