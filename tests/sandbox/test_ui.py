"""The sandbox's web UI: a person browses and edits Procore data, and webhooks follow."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from procore_sandbox.app import create_app
from procore_sandbox.config import SandboxConfig


@pytest.fixture
def sandbox():
    app = create_app(
        SandboxConfig(seed="demo", webhook_backoff_base=0.02, webhook_backoff_cap=0.05)
    )
    yield app
    app.extensions["sandbox_webhooks"].stop()


@pytest.fixture
def browser(sandbox):
    return sandbox.test_client()


def store_of(app):
    return app.extensions["procore_sandbox"].store


def main_company(app) -> dict:
    return next(c for c in store_of(app).select("companies") if c["my_company"])


def other_company(app) -> dict:
    return next(c for c in store_of(app).select("companies") if not c["my_company"])


class Receiver:
    """Records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.events.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def subscribe(app, receiver, resource_name: str, event_type: str, **scope) -> dict:
    """Create a hook and trigger through the REST API, as Crewclock would."""
    client = app.test_client()
    company_id = main_company(app)["id"]
    token = client.post("/_sandbox/token", json={}).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Procore-Company-Id": str(company_id)}
    scope = scope or {"company_id": company_id}
    hook = client.post(
        "/rest/v1.0/webhooks/hooks",
        json={**scope, "hook": {"api_version": "v2", "destination_url": receiver.url}},
        headers=headers,
    )
    assert hook.status_code == 201, hook.get_json()
    trigger = client.post(
        f"/rest/v1.0/webhooks/hooks/{hook.get_json()['id']}/triggers",
        json={**scope, "trigger": {"resource_name": resource_name, "event_type": event_type}},
        headers=headers,
    )
    assert trigger.status_code == 201, trigger.get_json()
    return hook.get_json()


def settle(app):
    assert app.extensions["sandbox_webhooks"].wait_idle(5.0)


def test_home_page_lists_every_company(browser, sandbox):
    page = browser.get("/").get_data(as_text=True)
    assert main_company(sandbox)["name"] in page
    assert other_company(sandbox)["name"] in page


def test_users_page_lists_and_searches_the_directory(browser, sandbox):
    company_id = main_company(sandbox)["id"]
    page = browser.get(f"/companies/{company_id}/users").get_data(as_text=True)
    assert "Dana Whitfield" in page and "Ivan Petrov" in page
    found = browser.get(f"/companies/{company_id}/users?q=petrov").get_data(as_text=True)
    assert "Ivan Petrov" in found and "Dana Whitfield" not in found


def test_editing_a_user_saves_it_and_fires_a_webhook_without_an_application(
    browser, sandbox, receiver
):
    subscribe(sandbox, receiver, "Company Users", "update")
    company_id = main_company(sandbox)["id"]
    user = store_of(sandbox).select("users", company_id=company_id, last_name="Petrov")[0]
    form = browser.get(f"/companies/{company_id}/users/{user['id']}").get_data(as_text=True)
    assert 'value="Ivan"' in form

    response = browser.post(
        f"/companies/{company_id}/users/{user['id']}",
        data={
            "first_name": "Ivan",
            "last_name": "Petrov",
            "job_title": "Foreman",
            "is_active": "1",
        },
    )
    assert response.status_code == 302
    assert store_of(sandbox).get("users", user["id"])["job_title"] == "Foreman"
    settle(sandbox)
    (event,) = receiver.events
    assert event["resource_name"] == "Company Users"
    assert event["event_type"] == "update"
    assert event["resource_id"] == user["id"]
    assert event["metadata"]["source_application_id"] is None


def test_invalid_edit_is_refused_with_the_fields_error(browser, sandbox):
    company_id = main_company(sandbox)["id"]
    user = store_of(sandbox).select("users", company_id=company_id)[0]
    response = browser.post(
        f"/companies/{company_id}/users/{user['id']}",
        data={"first_name": "No", "last_name": "", "email_address": user["email_address"]},
    )
    assert response.status_code == 422
    assert "Last name can&#39;t be blank" in response.get_data(as_text=True)
    assert store_of(sandbox).get("users", user["id"])["last_name"] == user["last_name"]


def test_creating_a_project_adds_it_to_the_list(browser, sandbox):
    company_id = main_company(sandbox)["id"]
    response = browser.post(
        f"/companies/{company_id}/projects/new",
        data={"name": "Dockside Depot", "project_number": "2699", "time_zone": "US/Pacific"},
    )
    assert response.status_code == 302
    (project,) = store_of(sandbox).select("projects", name="Dockside Depot")
    assert project["company_id"] == company_id and project["active"] is False
    listing = browser.get(f"/companies/{company_id}/projects").get_data(as_text=True)
    assert "Dockside Depot" in listing


def test_timecard_entry_created_in_the_ui_gets_hours_from_its_times_and_announces_itself(
    browser, sandbox, receiver
):
    store = store_of(sandbox)
    company_id = main_company(sandbox)["id"]
    project = store.select("projects", company_id=company_id)[0]
    subscribe(sandbox, receiver, "Timecard Entries", "create", project_id=project["id"])
    person = store.select("people", company_id=company_id)[1]
    code = store.select("cost_codes", project_id=project["id"])[1]
    base = f"/companies/{company_id}/projects/{project['id']}/timecard_entries"
    assert "No timecard entries yet" in browser.get(base).get_data(as_text=True)

    response = browser.post(
        f"{base}/new",
        data={
            "date": "2026-03-02",
            "party_id": str(person["id"]),
            "cost_code_id": str(code["id"]),
            "time_in": "07:00",
            "time_out": "15:30",
            "lunch_time": "30",
            "approval_status": "pending",
        },
    )
    assert response.status_code == 302
    (entry,) = store.select("timecard_entries", project_id=project["id"])
    assert entry["hours"] == "8.0"
    assert entry["party_id"] == person["id"]
    listing = browser.get(base).get_data(as_text=True)
    assert "2026-03-02" in listing and code["full_code"] in listing
    settle(sandbox)
    (event,) = receiver.events
    assert event["resource_name"] == "Timecard Entries" and event["event_type"] == "create"
    assert event["project_id"] == project["id"]
    assert event["metadata"]["source_application_id"] is None


def test_approved_timecard_entry_cannot_be_deleted_but_a_pending_one_can(browser, sandbox):
    store = store_of(sandbox)
    company_id = main_company(sandbox)["id"]
    project = store.select("projects", company_id=company_id)[0]
    base = f"/companies/{company_id}/projects/{project['id']}/timecard_entries"
    for status in ("approved", "pending"):
        browser.post(
            f"{base}/new", data={"date": "2026-03-03", "hours": "4", "approval_status": status}
        )
    approved, pending = store.select("timecard_entries", project_id=project["id"])

    refused = browser.post(f"{base}/{approved['id']}/delete")
    assert refused.status_code == 422
    assert "cannot be deleted" in refused.get_data(as_text=True)
    assert browser.post(f"{base}/{pending['id']}/delete").status_code == 302
    assert [e["id"] for e in store.select("timecard_entries")] == [approved["id"]]


def test_deleting_a_cost_code_fires_a_delete_webhook(browser, sandbox, receiver):
    store = store_of(sandbox)
    company_id = main_company(sandbox)["id"]
    project = store.select("projects", company_id=company_id)[0]
    # Cost Codes is a project-level webhook resource (procore-api.md §10.1).
    subscribe(sandbox, receiver, "Cost Codes", "delete", project_id=project["id"])
    code = store.select("cost_codes", project_id=project["id"])[-1]
    response = browser.post(
        f"/companies/{company_id}/projects/{project['id']}/cost_codes/{code['id']}/delete"
    )
    assert response.status_code == 302
    assert store.get("cost_codes", code["id"]) is None
    settle(sandbox)
    assert [(e["event_type"], e["resource_id"]) for e in receiver.events] == [
        ("delete", code["id"])
    ]


def test_another_companys_record_is_not_found_under_this_company(browser, sandbox):
    mine, theirs = main_company(sandbox), other_company(sandbox)
    their_user = store_of(sandbox).select("users", company_id=theirs["id"])[0]
    assert browser.get(f"/companies/{mine['id']}/users/{their_user['id']}").status_code == 404
    response = browser.post(
        f"/companies/{mine['id']}/users/{their_user['id']}/delete",
    )
    assert response.status_code == 404
    assert store_of(sandbox).get("users", their_user["id"]) is not None


def test_form_posted_from_another_site_is_refused(browser, sandbox):
    company_id = main_company(sandbox)["id"]
    user = store_of(sandbox).select("users", company_id=company_id)[0]
    response = browser.post(
        f"/companies/{company_id}/users/{user['id']}/delete",
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert store_of(sandbox).get("users", user["id"]) is not None


def test_webhooks_page_shows_hooks_and_latest_deliveries(browser, sandbox, receiver):
    subscribe(sandbox, receiver, "Projects", "update")
    store = store_of(sandbox)
    company_id = main_company(sandbox)["id"]
    project = store.select("projects", company_id=company_id)[0]
    browser.post(
        f"/companies/{company_id}/projects/{project['id']}",
        data={"name": "Renamed in the UI", "active": "1"},
    )
    settle(sandbox)
    page = browser.get(f"/companies/{company_id}/webhooks").get_data(as_text=True)
    assert receiver.url in page
    assert "Projects update" in page
    assert "a person (UI)" in page and ">ok<" in page
