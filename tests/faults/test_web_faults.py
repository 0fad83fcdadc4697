"""C5 and C7 through a real web server: many clicks at once, and Redis going away."""

import re
import threading

import pytest
import requests
import sqlalchemy as sa

from tests.conftest import PASSWORD
from tests.faults.conftest import connect_company, wait_for
from webapp.extensions import db
from webapp.models import Project, RunStatus, SyncRun
from webapp.services import imports

pytestmark = pytest.mark.slow  # real processes, killed for real

SYNC = "/settings/integrations/procore/setup/sync"
STEP5 = {
    "users_direction": "procore_to_crewclock",
    "projects_direction": "procore_to_crewclock",
    "cost_codes_direction": "procore_to_crewclock",
    "timecard_trigger": "approved",
}
STAGE_PROJECTS = "/settings/integrations/procore/setup/stage/project"
PAGES = [
    "/time/",
    "/time/approvals",
    "/users/",
    "/projects/",
    "/cost-codes/",
    "/settings/integrations/",
    "/settings/integrations/procore/setup/step/5",
]


def logged_in(base: str, username: str) -> requests.Session:
    """A browser-like session logged in through the form, sending htmx's CSRF header."""
    session = requests.Session()
    form = session.get(base + "/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    reply = session.post(
        base + "/login",
        data={"identifier": username, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    assert reply.status_code == 302, reply.text[:500]
    page = session.get(base + "/time/", timeout=10).text
    session.headers["X-CSRFToken"] = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    session.headers["HX-Request"] = "true"
    return session


def _import_runs(company_id: int) -> list[SyncRun]:
    db.session.rollback()
    return list(
        db.session.scalars(
            sa.select(SyncRun).where(
                SyncRun.company_id == company_id, SyncRun.kind == imports.IMPORT_KIND
            )
        )
    )


def test_five_simultaneous_sync_clicks_start_one_import(stack):
    company, admin, _ = connect_company(stack)
    base = stack.start_web()
    sessions = [logged_in(base, admin.username) for _ in range(5)]
    start = threading.Barrier(5)
    statuses = []

    def click(session):
        start.wait()
        statuses.append(session.post(base + SYNC, data=STEP5, timeout=30).status_code)

    threads = [threading.Thread(target=click, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 5
    runs = _import_runs(company.id)
    assert len(runs) == 1  # the other four clicks see the run already going
    queue_jobs = stack.redis().lrange("rq:queue:imports", 0, -1)
    assert queue_jobs == [f"run-{runs[0].id}".encode()]

    stack.start_worker("imports")
    stack.wait_run(runs[0].id, [RunStatus.SUCCEEDED])
    assert sessions[0].post(base + SYNC, data=STEP5, timeout=30).status_code == 200
    assert len(_import_runs(company.id)) == 2  # once it finished, a new click starts one


def test_pages_answer_while_redis_is_down_and_queued_work_runs_after_it_returns(stack):
    company, admin, _ = connect_company(stack)
    base = stack.start_web()
    session = logged_in(base, admin.username)
    session.headers.pop("HX-Request")
    assert session.post(base + SYNC, data=STEP5, timeout=30).status_code == 200
    (run,) = _import_runs(company.id)

    stack.redis_server.stop()
    for path in PAGES:
        reply = session.get(base + path, timeout=30)
        assert reply.status_code == 200, (path, reply.status_code)
    second = session.post(base + SYNC, data=STEP5, timeout=30)
    assert second.status_code in (200, 503), second.status_code
    if second.status_code == 503:
        assert "Background work is paused" in second.text
    assert len(_import_runs(company.id)) == 1  # nothing started twice
    stage = session.post(base + STAGE_PROJECTS, timeout=30)  # no job can be queued now
    assert stage.status_code == 503 and "Background work is paused" in stage.text
    # Refused plainly: no run row waits for a job that was never queued.
    assert imports.latest_run(company.id, "stage_project") is None

    stack.redis_server.start()  # AOF kept the queued job
    stack.start_worker("imports")
    done = stack.wait_run(run.id, [RunStatus.SUCCEEDED], timeout=60)
    # Clicking again once Redis is back starts the load that could not be queued before.
    assert session.post(base + STAGE_PROJECTS, timeout=30).status_code == 200
    staged = wait_for(
        lambda: imports.latest_run(company.id, "stage_project"), 10, "the staging run"
    )
    stack.wait_run(staged.id, [RunStatus.SUCCEEDED], timeout=60)
    assert done.created > 0
    projects = db.session.scalars(
        sa.select(Project.number).where(Project.company_id == company.id)
    ).all()
    assert len(projects) == len(set(projects)) == 7  # the demo seed's importable projects
    assert session.get(base + "/settings/integrations/", timeout=30).status_code == 200
