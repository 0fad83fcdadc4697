"""The import service against the sandbox's demo seed: what ends up here, and reruns."""

import sqlalchemy as sa

from tests.integration.setup_support import SandboxFetcher, demo_ids, sandbox_fixture
from webapp.extensions import db
from webapp.models import CostCode, ProcoreLink, Project, RunStatus, SyncRun, SyncRunItem, User
from webapp.services import imports

demo_sandbox = sandbox_fixture("demo")


def _configure(company, ids):
    settings = imports.settings_for(company.id)
    settings.procore_company_id = ids["company"]
    settings.standard_cost_code_list_id = ids["list"]
    db.session.commit()
    return settings


def _run(company, kind, fetcher):
    run, _ = imports.create_run(company.id, kind, None)
    db.session.commit()
    if kind == imports.IMPORT_KIND:
        return imports.run_import(run.id, fetcher)
    return imports.stage_records(run.id, fetcher)


def _reasons(run):
    rows = db.session.execute(
        sa.select(SyncRunItem.label, SyncRunItem.reason).where(
            SyncRunItem.run_id == run.id, SyncRunItem.outcome == "skipped"
        )
    )
    return dict(rows.all())


def test_auto_import_brings_in_conforming_demo_users_and_lists_the_rest(
    demo_sandbox, company, admin
):
    ids = demo_ids(demo_sandbox)
    _configure(company, ids)
    fetcher = SandboxFetcher(ids["company"])
    _run(company, "stage_user", fetcher)
    run = _run(company, imports.IMPORT_KIND, fetcher)

    assert run.status == RunStatus.SUCCEEDED
    users = db.session.scalars(sa.select(User).where(User.company_id == company.id)).all()
    emails = {u.email for u in users}
    assert len(users) == 21  # our admin + Dana + 19 of the 20 generated people
    assert "dana.admin@summit.example.com" in emails
    assert "maria.garcia@summit.example.com" not in emails
    assert all(u.role.value == "worker" for u in users if u.id != admin.id)
    skipped = _reasons(run)
    assert set(skipped) == {
        "Maria Garcia",
        "Ines Petrova",
        "Ivan Petrov",
        "Cher",
        "Walt Kowalski",
        "2608 Yard Shop Expansion",
    }
    assert "also used by another Procore profile" in skipped["Ines Petrova"]
    assert "Email address is missing" in skipped["Ivan Petrov"]
    assert "Last name is missing" in skipped["Cher"]
    assert skipped["Walt Kowalski"] == "Inactive in Procore."

    projects = db.session.scalars(sa.select(Project).where(Project.company_id == company.id))
    assert sorted(p.number for p in projects) == [str(n) for n in range(2601, 2608)]
    assert "Address incomplete" in skipped["2608 Yard Shop Expansion"]

    codes = {
        c.code: c
        for c in db.session.scalars(sa.select(CostCode).where(CostCode.company_id == company.id))
    }
    assert len(codes) == 45
    assert codes["03-300"].parent_id == codes["03"].id
    assert codes["03"].parent_id is None
    assert run.created == 20 + 7 + 45


def test_rerunning_the_import_creates_no_duplicates(demo_sandbox, company, admin):
    ids = demo_ids(demo_sandbox)
    _configure(company, ids)
    fetcher = SandboxFetcher(ids["company"])
    _run(company, imports.IMPORT_KIND, fetcher)
    counts = [
        db.session.scalar(sa.select(sa.func.count()).select_from(m))
        for m in (User, Project, CostCode, ProcoreLink)
    ]

    again = _run(company, imports.IMPORT_KIND, fetcher)

    assert again.created == 0
    assert again.unchanged == counts[3]
    assert [
        db.session.scalar(sa.select(sa.func.count()).select_from(m))
        for m in (User, Project, CostCode, ProcoreLink)
    ] == counts


def test_import_calls_procore_once_per_page_of_each_list(demo_sandbox, company, admin):
    ids = demo_ids(demo_sandbox)
    _configure(company, ids)
    fetcher = SandboxFetcher(ids["company"])
    _run(company, imports.IMPORT_KIND, fetcher)
    # 24 active users, 8 projects, 45 codes: one page each.
    assert fetcher.calls == 3


def test_five_simultaneous_clicks_create_one_import_run(threaded_app):
    """C5: concurrent requests (separate sessions, as in separate web processes) make one run."""
    import threading

    from tests.conftest import make_company, make_user
    from webapp.models import Role

    company = make_company("Clicky Co")
    admin = make_user(company, Role.ADMIN)
    company_id, admin_id = company.id, admin.id
    barrier = threading.Barrier(5)
    created_flags, errors = [], []

    def click():
        with threaded_app.app_context():
            try:
                barrier.wait()
                run, created = imports.create_run(company_id, imports.IMPORT_KIND, admin_id)
                db.session.commit()
                created_flags.append(created)
            except Exception as exc:  # a lost race must not surface as a crash either
                db.session.rollback()
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=click) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    runs = db.session.scalars(
        sa.select(SyncRun).where(
            SyncRun.company_id == company_id, SyncRun.kind == imports.IMPORT_KIND
        )
    ).all()
    assert len(runs) == 1
    assert created_flags.count(True) == 1
