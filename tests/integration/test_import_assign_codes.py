"""The set-up import gives its projects the standard list's cost codes, so workers can enter
time on them straight away, without touching projects that already have codes."""

import sqlalchemy as sa

from tests.integration.setup_support import SandboxFetcher, demo_ids, sandbox_fixture
from webapp.extensions import db
from webapp.models import CostCode, Project, RunStatus, SyncRunItem, project_cost_code
from webapp.services import imports, timecards

demo_sandbox = sandbox_fixture("demo")


def _configure(company, ids):
    settings = imports.settings_for(company.id)
    settings.procore_company_id = ids["company"]
    settings.standard_cost_code_list_id = ids["list"]
    db.session.commit()


def _import(company, fetcher):
    run, _ = imports.create_run(company.id, imports.IMPORT_KIND, None)
    db.session.commit()
    return imports.run_import(run.id, fetcher)


def _codes_of(project_id):
    return set(
        db.session.scalars(
            sa.select(project_cost_code.c.cost_code_id).where(
                project_cost_code.c.project_id == project_id
            )
        )
    )


def _pair_count():
    return db.session.scalar(sa.select(sa.func.count()).select_from(project_cost_code))


def _bookable_codes(company) -> set[int]:
    """Active codes that are not divisions (a division groups codes; time goes on codes)."""
    parents = sa.select(CostCode.parent_id).where(CostCode.parent_id.is_not(None))
    return set(
        db.session.scalars(
            sa.select(CostCode.id).where(
                CostCode.company_id == company.id,
                CostCode.active.is_(True),
                CostCode.id.not_in(parents),
            )
        )
    )


def _projects(company):
    return list(db.session.scalars(sa.select(Project).where(Project.company_id == company.id)))


def test_imported_projects_get_every_imported_cost_code(demo_sandbox, company, admin):
    ids = demo_ids(demo_sandbox)
    _configure(company, ids)
    fetcher = SandboxFetcher(ids["company"])

    run = _import(company, fetcher)

    assert run.status == RunStatus.SUCCEEDED
    imported_codes = set(
        db.session.scalars(
            sa.select(CostCode.id).where(
                CostCode.company_id == company.id, CostCode.active.is_(True)
            )
        )
    )
    assert len(imported_codes) == 45
    bookable = _bookable_codes(company)
    assert 0 < len(bookable) < 45  # the divisions are left out
    projects = _projects(company)
    assert len(projects) == 7
    for project in projects:
        assert _codes_of(project.id) == bookable
        # What the time entry form offers a worker for this project.
        assert len(timecards.project_cost_codes(company.id, project.id)) == len(bookable)
    item = db.session.scalar(
        sa.select(SyncRunItem).where(SyncRunItem.run_id == run.id, SyncRunItem.outcome == "updated")
    )
    assert item.label == "Cost codes assigned to 7 projects"
    assert item in imports.run_items(run)
    assert run.checkpoint["codes_assigned"] == 7


def test_a_project_that_already_had_codes_keeps_exactly_its_own(demo_sandbox, company, admin):
    ids = demo_ids(demo_sandbox)
    _configure(company, ids)
    own_code = CostCode(company_id=company.id, code="LOCAL-1", name="Our own code")
    # Same number as a demo Procore project: the import links it instead of creating it.
    mine = Project(company_id=company.id, name="Riverside (ours)", number="2601")
    mine.cost_codes.append(own_code)
    untouched = Project(company_id=company.id, name="Not in Procore", number="LOCAL")
    db.session.add_all([own_code, mine, untouched])
    db.session.commit()

    run = _import(company, SandboxFetcher(ids["company"]))

    assert run.status == RunStatus.SUCCEEDED
    assert run.linked >= 1
    assert _codes_of(mine.id) == {own_code.id}
    # A project this import neither created nor linked is left alone too.
    assert _codes_of(untouched.id) == set()
    others = [p for p in _projects(company) if p.id not in (mine.id, untouched.id)]
    assert len(others) == 6
    assert all(_codes_of(p.id) == _bookable_codes(company) - {own_code.id} for p in others)
    assert all(own_code.id not in _codes_of(p.id) for p in others)
    item = db.session.scalar(
        sa.select(SyncRunItem).where(SyncRunItem.run_id == run.id, SyncRunItem.outcome == "updated")
    )
    assert item.label == "Cost codes assigned to 6 projects"


def test_rerunning_the_import_assigns_nothing_twice(demo_sandbox, company, admin):
    ids = demo_ids(demo_sandbox)
    _configure(company, ids)
    fetcher = SandboxFetcher(ids["company"])
    first = _import(company, fetcher)
    pairs = _pair_count()
    assert pairs == 7 * len(_bookable_codes(company))

    # A resumed run (the job retried after its last commit) finds nothing left to do.
    assert imports.assign_list_codes_to_new_projects(first) == 0
    again = _import(company, fetcher)

    assert again.status == RunStatus.SUCCEEDED
    assert _pair_count() == pairs
    assert (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(SyncRunItem)
            .where(SyncRunItem.outcome == "updated")
        )
        == 1
    )


def test_an_admin_who_removed_a_projects_codes_is_not_overridden_by_a_rerun(
    demo_sandbox, company, admin
):
    ids = demo_ids(demo_sandbox)
    _configure(company, ids)
    fetcher = SandboxFetcher(ids["company"])
    _import(company, fetcher)
    project = _projects(company)[0]
    keep = sorted(_codes_of(project.id))[0]
    db.session.execute(
        sa.delete(project_cost_code).where(
            project_cost_code.c.project_id == project.id, project_cost_code.c.cost_code_id != keep
        )
    )
    db.session.commit()

    _import(company, fetcher)

    assert _codes_of(project.id) == {keep}


def test_assigning_codes_makes_no_extra_procore_calls(demo_sandbox, company, admin, monkeypatch):
    ids = demo_ids(demo_sandbox)
    _configure(company, ids)
    monkeypatch.setattr(imports, "PER_PAGE", 10)
    fetcher = SandboxFetcher(ids["company"])

    run = _import(company, fetcher)

    # ⌈24/10⌉ users + ⌈8/10⌉ projects + ⌈45/10⌉ codes, as without the assignment.
    assert fetcher.calls == 3 + 1 + 5
    assert run.api_calls == 3 + 1 + 5
    assert _pair_count() == 7 * len(_bookable_codes(company))


def test_import_without_a_cost_code_list_assigns_nothing(demo_sandbox, company, admin):
    ids = demo_ids(demo_sandbox)
    _configure(company, ids)
    settings = imports.settings_for(company.id)
    settings.standard_cost_code_list_id = None
    db.session.commit()

    run = _import(company, SandboxFetcher(ids["company"]))

    assert run.status == RunStatus.SUCCEEDED
    assert len(_projects(company)) == 7
    assert _pair_count() == 0


def test_run_summary_tells_the_admin_how_many_projects_got_codes(
    demo_sandbox, company, admin, admin_client
):
    ids = demo_ids(demo_sandbox)
    _configure(company, ids)
    run = _import(company, SandboxFetcher(ids["company"]))

    page = admin_client.get(f"/settings/integrations/procore/setup/runs/{run.id}")

    assert page.status_code == 200
    assert "Cost codes assigned to 7 projects" in page.get_data(as_text=True)


def test_step_4_tells_the_admin_projects_get_the_lists_codes(
    demo_sandbox, company, admin, admin_client
):
    ids = demo_ids(demo_sandbox)
    _configure(company, ids)
    fetcher = SandboxFetcher(ids["company"])
    stage, _ = imports.create_run(company.id, "stage_cost_code", None)
    db.session.commit()
    imports.stage_records(stage.id, fetcher)

    step4 = admin_client.get("/settings/integrations/procore/setup/step/4")
    step3 = admin_client.get("/settings/integrations/procore/setup/step/3")

    assert step4.status_code == 200
    text = step4.get_data(as_text=True)
    assert "no cost codes yet gets all active codes of this list" in text
    assert "Projects that already have cost codes keep exactly theirs" in text
    assert "cost-code-assignment-help" not in step3.get_data(as_text=True)
