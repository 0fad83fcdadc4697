"""The 'Set Up' wizard through the test client against the sandbox's demo seed."""

import os
import re

import pytest
import sqlalchemy as sa

from tests.conftest import make_user
from tests.integration.setup_support import SandboxFetcher, demo_ids, sandbox_fixture
from webapp import jobs
from webapp.extensions import db
from webapp.models import (
    CostCode,
    ProcoreLink,
    ProcoreStagedRecord,
    Project,
    Role,
    SyncRun,
    User,
)
from webapp.models.procore import ProcoreConnection
from webapp.services import imports

BASE = "/settings/integrations/procore/setup"
HX = {"HX-Request": "true"}
demo_sandbox = sandbox_fixture("demo")


@pytest.fixture
def connected(demo_sandbox, company, monkeypatch):
    """A company connected to the demo sandbox; Procore reads go through the sandbox."""
    ids = demo_ids(demo_sandbox)
    db.session.add(
        ProcoreConnection(
            company_id=company.id,
            available_companies=[
                {"id": ids["company"], "name": "Summit Builders Inc."},
                {"id": ids["company"] + 999, "name": "Elsewhere"},
            ],
        )
    )
    db.session.commit()
    fetchers = {}

    def fetcher_for(company_id):
        settings = imports.settings_for(company_id)
        fetcher = SandboxFetcher(settings.procore_company_id)
        fetchers.setdefault(company_id, []).append(fetcher)
        return fetcher

    monkeypatch.setattr(imports, "client_page_fetcher", fetcher_for)
    # Jobs run in this process: keep the in-memory database's pool (no fork happened).
    monkeypatch.setattr(jobs, "_app_pid", os.getpid())
    return ids


def _latest_run(company, kind):
    return db.session.scalar(
        sa.select(SyncRun).where(SyncRun.company_id == company.id, SyncRun.kind == kind)
    )


def _run_job(company, run):
    jobs.handle_run(run.id)
    # The test's session outlives requests; forget what it cached before the job committed.
    db.session.expire_all()


def _stage(client, company, entity):
    response = client.post(f"{BASE}/stage/{entity}", headers=HX)
    assert response.status_code == 200
    run = _latest_run(company, f"stage_{entity}")
    _run_job(company, run)
    return run


def _staged(company, name_part):
    return db.session.scalar(
        sa.select(ProcoreStagedRecord).where(
            ProcoreStagedRecord.company_id == company.id,
            ProcoreStagedRecord.search_text.like(f"%{name_part.lower()}%"),
        )
    )


def _walk_to_step(client, company, ids, last_step):
    client.post(f"{BASE}/company", data={"procore_company_id": ids["company"]}, headers=HX)
    response = client.post(
        f"{BASE}/step/1", data={"standard_cost_code_list_id": ids["list"]}, headers=HX
    )
    assert response.status_code == 200
    for step, entity in ((2, "user"), (3, "project"), (4, "cost_code")):
        if step > last_step:
            return
        _stage(client, company, entity)
        if step < last_step:
            assert client.post(f"{BASE}/step/{step}", headers=HX).status_code == 200


def test_clicking_through_five_steps_imports_exactly_the_expected_demo_records(
    admin_client, company, admin, connected
):
    page = admin_client.get(f"{BASE}/", follow_redirects=True)
    assert page.status_code == 200
    assert "Procore company" in page.get_data(as_text=True)

    step1 = admin_client.post(
        f"{BASE}/company", data={"procore_company_id": connected["company"]}, headers=HX
    )
    assert "Standard Cost Codes" in step1.get_data(as_text=True)
    step2 = admin_client.post(
        f"{BASE}/step/1", data={"standard_cost_code_list_id": connected["list"]}, headers=HX
    )
    body = step2.get_data(as_text=True)
    assert "Auto Import" in body and "First and last name are filled in." in body

    _stage(admin_client, company, "user")
    users_step = admin_client.get(f"{BASE}/step/2", headers=HX).get_data(as_text=True)
    # Auto Import lists the guideline breakers with the rule each breaks.
    assert "Ivan" in users_step and "Email address is missing." in users_step
    assert "Inactive in Procore." in users_step  # Walt Kowalski
    assert "Last name is missing." in users_step  # Cher
    assert "also used by another Procore profile" in users_step  # Maria Garcia / Ines Petrova

    step3 = admin_client.post(f"{BASE}/step/2", headers=HX)
    assert "3. Projects" in step3.get_data(as_text=True)
    _stage(admin_client, company, "project")
    projects_step = admin_client.get(f"{BASE}/step/3", headers=HX).get_data(as_text=True)
    assert "Yard Shop Expansion" in projects_step
    assert "Address incomplete" in projects_step

    # Fill in the missing address inline, then tick it for import.
    yard = _staged(company, "yard shop")
    edited = admin_client.post(
        f"{BASE}/rows/{yard.id}",
        data={
            "name": "Yard Shop Expansion",
            "number": "2608",
            "street": "1 Yard Rd",
            "city": "Oakland",
            "state": "CA",
            "zip": "94607",
            "country": "us",
        },
        headers=HX,
    )
    assert edited.status_code == 200
    assert "Will import" in edited.get_data(as_text=True)

    assert admin_client.post(f"{BASE}/step/3", headers=HX).status_code == 200
    _stage(admin_client, company, "cost_code")
    step5 = admin_client.post(f"{BASE}/step/4", headers=HX)
    assert "Sync settings" in step5.get_data(as_text=True)

    synced = admin_client.post(
        f"{BASE}/sync",
        data={
            "users_direction": "procore_to_crewclock",
            "projects_direction": "both",
            "cost_codes_direction": "procore_to_crewclock",
            "timecard_trigger": "approved",
        },
        headers=HX,
    )
    assert synced.status_code == 200
    run = _latest_run(company, imports.IMPORT_KIND)
    assert 'hx-trigger="every 1s"' in synced.get_data(as_text=True)
    _run_job(company, run)

    summary = admin_client.get(f"{BASE}/runs/{run.id}", headers=HX).get_data(as_text=True)
    assert "Import finished." in summary and "every 1s" not in summary
    assert "Email address is missing." in summary

    users = db.session.scalars(sa.select(User).where(User.company_id == company.id)).all()
    assert len(users) == 21
    assert not {"ivan", "ines", "walt", "cher"} & {u.first_name.lower() for u in users}
    numbers = db.session.scalars(sa.select(Project.number).where(Project.company_id == company.id))
    assert sorted(numbers) == [str(n) for n in range(2601, 2609)]
    yard_project = db.session.scalar(sa.select(Project).where(Project.number == "2608"))
    assert yard_project.street == "1 Yard Rd" and yard_project.country == "US"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CostCode)) == 45
    settings = imports.settings_for(company.id)
    assert settings.setup_completed_at is not None
    assert settings.projects_direction.value == "both"


def test_wizard_resumes_at_the_step_the_admin_reached(admin_client, company, admin, connected):
    _walk_to_step(admin_client, company, connected, 3)
    response = admin_client.get(f"{BASE}/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"{BASE}/step/3")


def test_invalid_inline_edit_answers_422_with_the_message_and_saves_nothing(
    admin_client, company, admin, connected
):
    _walk_to_step(admin_client, company, connected, 2)
    admin_client.post(f"{BASE}/auto/user", data={}, headers=HX)  # Auto Import off
    row = _staged(company, "ivan")
    response = admin_client.post(
        f"{BASE}/rows/{row.id}",
        data={"first_name": "Ivan", "last_name": "", "email": "not-an-email", "role": "worker"},
        headers=HX,
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Last name is missing." in body and "Email address is not valid." in body
    db.session.expire_all()
    assert db.session.get(ProcoreStagedRecord, row.id).edited is None


def test_two_profiles_cannot_claim_the_same_email(admin_client, company, admin, connected):
    _walk_to_step(admin_client, company, connected, 2)
    row = _staged(company, "ivan")
    response = admin_client.post(
        f"{BASE}/rows/{row.id}",
        data={
            "first_name": "Ivan",
            "last_name": "Petrov",
            "username": "ivan.p",
            "email": "james.smith@summit.example.com",
            "role": "worker",
        },
        headers=HX,
    )
    assert response.status_code == 422
    assert "Another Procore profile in this list uses this email" in response.get_data(as_text=True)


def test_fixed_profile_in_manual_mode_is_imported_with_its_edits(
    admin_client, company, admin, connected
):
    _walk_to_step(admin_client, company, connected, 2)
    admin_client.post(f"{BASE}/auto/user", data={}, headers=HX)
    row = _staged(company, "ivan")
    response = admin_client.post(
        f"{BASE}/rows/{row.id}",
        data={
            "first_name": "Ivan",
            "last_name": "Petrov",
            "username": "ivan.p",
            "email": "ivan.petrov@summit.example.com",
            "employee_id": "E1101",
            "role": "supervisor",
        },
        headers=HX,
    )
    assert response.status_code == 200
    run, _ = imports.create_run(company.id, imports.IMPORT_KIND, admin.id)
    db.session.commit()
    _run_job(company, run)
    ivan = db.session.scalar(sa.select(User).where(User.username == "ivan.p"))
    assert ivan.role == Role.SUPERVISOR and ivan.email == "ivan.petrov@summit.example.com"


def test_link_dropdown_suggests_existing_user_and_import_links_instead_of_duplicating(
    admin_client, company, admin, connected
):
    existing = make_user(
        company, Role.WORKER, first_name="James", last_name="Smith", employee_id="E1002"
    )
    _walk_to_step(admin_client, company, connected, 2)
    admin_client.post(f"{BASE}/auto/user", data={}, headers=HX)
    table = admin_client.get(f"{BASE}/table/user?q=smith", headers=HX).get_data(as_text=True)
    assert re.search(r"James Smith \(.*\) — matches employee ID", table)
    row = _staged(company, "james.smith@")
    response = admin_client.post(
        f"{BASE}/rows/{row.id}/link", data={"local_id": existing.id}, headers=HX
    )
    assert response.status_code == 200 and "Will link" in response.get_data(as_text=True)
    run, _ = imports.create_run(company.id, imports.IMPORT_KIND, admin.id)
    db.session.commit()
    _run_job(company, run)
    assert (
        db.session.scalar(
            sa.select(sa.func.count()).select_from(User).where(User.last_name == "Smith")
        )
        == 1
    )
    link = db.session.scalar(sa.select(ProcoreLink).where(ProcoreLink.local_id == existing.id))
    assert link is not None and link.procore_id == row.procore_id


def test_one_local_user_cannot_be_linked_to_two_profiles(admin_client, company, admin, connected):
    _walk_to_step(admin_client, company, connected, 2)
    first, second = _staged(company, "james.smith@"), _staged(company, "maria.garcia@")
    assert (
        admin_client.post(
            f"{BASE}/rows/{first.id}/link", data={"local_id": admin.id}, headers=HX
        ).status_code
        == 200
    )
    response = admin_client.post(
        f"{BASE}/rows/{second.id}/link", data={"local_id": admin.id}, headers=HX
    )
    assert response.status_code == 422
    assert "already set to link to it" in response.get_data(as_text=True)


def test_project_without_address_cannot_be_ticked(admin_client, company, admin, connected):
    _walk_to_step(admin_client, company, connected, 3)
    yard = _staged(company, "yard shop")
    response = admin_client.post(
        f"{BASE}/rows/{yard.id}/select", data={"selected": "on"}, headers=HX
    )
    assert response.status_code == 422
    assert "Address incomplete" in response.get_data(as_text=True)


def test_profile_deleted_between_listing_and_import_is_skipped_with_a_reason(
    admin_client, company, admin, connected
):
    _walk_to_step(admin_client, company, connected, 2)
    row = _staged(company, "james.smith@")
    connected["store"].delete("users", row.procore_id)
    run, _ = imports.create_run(company.id, imports.IMPORT_KIND, admin.id)
    db.session.commit()
    _run_job(company, run)
    assert db.session.scalar(sa.select(User).where(User.last_name == "Smith")) is None
    assert db.session.get(SyncRun, run.id).created > 0


def test_other_companies_rows_and_runs_are_404(
    admin_client, company, admin, connected, other_company
):
    _walk_to_step(admin_client, company, connected, 2)
    other_admin = make_user(other_company, Role.ADMIN)
    row = _staged(company, "james.smith@")
    run = _latest_run(company, "stage_user")
    admin_client.post("/logout")
    admin_client.login(other_admin)
    assert admin_client.get(f"{BASE}/rows/{row.id}", headers=HX).status_code == 404
    assert admin_client.post(f"{BASE}/rows/{row.id}/select", data={}, headers=HX).status_code == 404
    assert admin_client.get(f"{BASE}/runs/{run.id}", headers=HX).status_code == 404


def test_non_admins_cannot_use_the_wizard(client, company, worker_user):
    client.login(worker_user)
    assert client.get(f"{BASE}/step/1").status_code == 403
    assert client.post(f"{BASE}/sync", data={}).status_code == 403


def test_posts_without_csrf_token_are_refused(admin_client, company, admin, connected):
    response = admin_client.post(f"{BASE}/stage/user", headers=HX, csrf=False)
    assert response.status_code == 400
    assert _latest_run(company, "stage_user") is None


def test_unlink_badge_removes_the_link(admin_client, company, admin):
    link = ProcoreLink(company_id=company.id, entity_type="user", local_id=admin.id, procore_id=42)
    db.session.add(link)
    db.session.commit()
    response = admin_client.post(f"{BASE}/links/user/{admin.id}/unlink", headers=HX)
    assert response.status_code == 200
    assert "Not linked to Procore" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(ProcoreLink)) is None


def test_failed_load_from_procore_says_it_failed_with_a_way_to_try_again(
    admin_client, company, admin, connected, monkeypatch
):
    from webapp.procore.errors import ProcoreUnavailable

    _walk_to_step(admin_client, company, connected, 1)

    def unavailable(path, params, page, per_page):
        raise ProcoreUnavailable("Procore answered 503 Service Unavailable")

    monkeypatch.setattr(imports, "client_page_fetcher", lambda company_id: unavailable)
    admin_client.post(f"{BASE}/stage/user", headers=HX)
    run = _latest_run(company, "stage_user")
    with pytest.raises(ProcoreUnavailable):
        _run_job(company, run)
    db.session.expire_all()

    progress = admin_client.get(f"{BASE}/runs/{run.id}", headers=HX).get_data(as_text=True)
    assert "Loaded from Procore." not in progress
    assert "Loading from Procore failed" in progress and "503" in progress
    assert f'hx-post="{BASE}/stage/user"' in progress and "Try again" in progress
