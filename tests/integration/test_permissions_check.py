"""'Check permissions' on the Procore card, against the sandbox: one read-only call per check."""

import os

import pytest
import sqlalchemy as sa
from rq import SimpleWorker

from tests.conftest import make_company, make_user
from tests.integration.push_support import *  # noqa: F403 (fixtures)
from webapp.extensions import db
from webapp.models import Role, RunStatus, SyncRun
from webapp.procore.errors import NeedsReauth
from webapp.redis_runtime import get_queue, get_redis
from webapp.services import permissions_check

HX = {"HX-Request": "true"}
CARD = "/settings/integrations/"
START = "/settings/integrations/procore/permissions"
LABELS = [
    "Company users (Directory)",
    "Company projects",
    "Cost codes of",
    "Timecard time types",
    "Timecard entries of a linked project",
]


@pytest.fixture
def set_up(world):
    """The world with its standard cost code list chosen, as Set Up leaves it."""
    code = world.sandbox.one("standard_cost_codes", full_code="03-100")
    world.settings.standard_cost_code_list_id = code["standard_cost_code_list_id"]
    world.settings.standard_cost_code_list_name = "Summit Standard"
    db.session.commit()
    return world


def served(world) -> int:
    return world.sandbox.faults.stats()["total"]


def run_by_job(world, monkeypatch):
    monkeypatch.setattr(
        "webapp.services.connections.procore_client_for",
        lambda company_id, stats=None: world.sandbox.client(),
    )
    monkeypatch.setattr("webapp.jobs._app_pid", os.getpid())
    SimpleWorker([get_queue("imports")], connection=get_redis()).work(burst=True)


def test_button_queues_a_job_that_finds_every_check_ok_with_one_call_each(
    set_up, client, monkeypatch
):
    client.login(set_up.admin)
    page = client.get(CARD).get_data(as_text=True)
    assert "Check permissions" in page and "Not checked yet" in page

    before = served(set_up)
    started = client.post(START, headers=HX)
    assert started.status_code == 200
    html = started.get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in html  # polls while it runs
    assert served(set_up) == before  # nothing asked of Procore in the request

    run_by_job(set_up, monkeypatch)
    run = permissions_check.latest_check(set_up.company.id)
    assert run.status == RunStatus.SUCCEEDED
    checks = run.checkpoint["checks"]
    assert [c["result"] for c in checks] == ["ok"] * len(LABELS)
    assert all(c["label"].startswith(label) for c, label in zip(checks, LABELS, strict=True))
    assert served(set_up) - before == len(LABELS)  # one Procore call per check, no more

    fragment = client.get(f"{START}/{run.id}", headers=HX).get_data(as_text=True)
    assert "every 1s" not in fragment  # polling stopped by itself
    assert fragment.count(">OK<") == len(LABELS) and "Import and sync users" in fragment
    again = client.get(CARD).get_data(as_text=True)  # the result survives a reload
    assert "Send time cards" in again and "Checked " in again


def test_a_refused_path_shows_refused_with_advice_and_the_others_ok(set_up, client):
    set_up.sandbox.faults.add_rule({"method": "GET", "path": "/timecard_entries$", "status": 403})
    run = permissions_check.start_check(set_up.company.id)
    run = permissions_check.run_check(set_up.company.id, run.id, client=set_up.sandbox.client())
    assert run.status == RunStatus.PARTIAL
    results = {c["label"]: c["result"] for c in run.checkpoint["checks"]}
    assert results.pop("Timecard entries of a linked project") == "refused"
    assert set(results.values()) == {"ok"}

    client.login(set_up.admin)
    html = client.get(CARD).get_data(as_text=True)
    assert "Refused" in html
    assert "lacks permission: give them Standard or Admin on the project&#39;s Timesheets" in html


def test_a_missing_list_is_not_found(set_up):
    set_up.settings.standard_cost_code_list_id = 999999
    db.session.commit()
    run = permissions_check.start_check(set_up.company.id)
    run = permissions_check.run_check(set_up.company.id, run.id, client=set_up.sandbox.client())
    row = next(c for c in run.checkpoint["checks"] if c["need"] == "Import and sync cost codes")
    assert row["result"] == "not_found" and "Set Up" in row["advice"]


def test_a_connection_needing_reconnect_ends_the_check_with_a_message_and_no_retry(
    set_up, client, monkeypatch
):
    def refuse(company_id, stats=None):
        raise NeedsReauth("The Procore connection needs an admin to reconnect it.")

    monkeypatch.setattr("webapp.services.connections.procore_client_for", refuse)
    run = permissions_check.start_check(set_up.company.id)
    before = served(set_up)
    result = permissions_check.run_check(set_up.company.id, run.id)  # returns, never raises
    assert result.status == RunStatus.FAILED
    assert "reconnected" in result.error
    assert served(set_up) == before
    client.login(set_up.admin)
    html = client.get(CARD).get_data(as_text=True)
    assert "The permissions check stopped" in html and "Reconnect" in html


def test_without_a_chosen_company_the_card_says_to_choose_one(world, client):
    world.settings.procore_company_id = None
    db.session.commit()
    client.login(world.admin)
    assert "Choose a Procore company in Set Up first" in client.get(CARD).get_data(as_text=True)
    response = client.post(START, headers=HX)
    assert response.status_code == 422
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SyncRun)) == 0


def test_roles_tenancy_and_csrf(set_up, client):
    run = permissions_check.start_check(set_up.company.id)
    other = make_company("Other Builders")
    other_admin = make_user(other, Role.ADMIN)
    manager = make_user(set_up.company, Role.MANAGER)

    client.login(manager)
    assert client.post(START, headers=HX).status_code == 403
    assert client.get(f"{START}/{run.id}", headers=HX).status_code == 403

    client.login(other_admin)
    assert client.get(f"{START}/{run.id}", headers=HX).status_code == 404

    client.login(set_up.admin)
    assert client.post(START, headers=HX, csrf=False).status_code == 400
    count = db.session.scalar(
        sa.select(sa.func.count()).select_from(SyncRun).where(SyncRun.kind == "permissions_check")
    )
    assert count == 1
