"""Webhooks of the Procore sandbox: hook/trigger management and background delivery."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from procore_sandbox.app import create_app
from procore_sandbox.config import SandboxConfig

TOKEN = "webhook-test-token"
CLIENT_ID = "crewclock-dev"


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the sandbox hanging up on a slow answer (timeout test) is expected


class Receiver:
    """A tiny threaded HTTP server that records POSTs and answers scripted statuses."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []  # answered in order; 200 once exhausted
        self.delay = 0.0
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.arrived:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "json": json.loads(body or b"null"),
                            "at": time.monotonic(),
                            "status": status,
                        }
                    )
                    receiver.arrived.notify_all()
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"thanks" if status < 300 else b"not now")

            def log_message(self, *args):
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/procore"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.arrived.wait(remaining)
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def make_sandbox(**timing):
    config = SandboxConfig(seed="demo", **timing)
    app = create_app(config)
    store = app.extensions["procore_sandbox"].store
    store.insert(
        "access_tokens",
        {
            "token": TOKEN,
            "client_id": CLIENT_ID,
            "user_id": None,
            "created_at_ts": store.time(),
            "expires_in": 5400,
            "revoked": False,
            "scope": "",
        },
        key=TOKEN,
        notify=False,
    )
    return app


@pytest.fixture
def sandbox():
    app = make_sandbox(
        webhook_timeout=2.0,
        webhook_backoff_base=0.02,
        webhook_backoff_cap=0.1,
        webhook_give_up_after=30.0,
    )
    yield app
    app.extensions["sandbox_webhooks"].stop()


def store_of(app):
    return app.extensions["procore_sandbox"].store


def main_company(app) -> dict:
    return next(c for c in store_of(app).select("companies") if c["my_company"])


def other_company(app) -> dict:
    return next(c for c in store_of(app).select("companies") if not c["my_company"])


class Api:
    """A test client that sends the bearer token and the company header."""

    def __init__(self, app, company_id: int) -> None:
        self.client = app.test_client()
        self.company_id = company_id

    def _headers(self):
        return {"Authorization": f"Bearer {TOKEN}", "Procore-Company-Id": str(self.company_id)}

    def get(self, path, **params):
        return self.client.get(path, query_string=params, headers=self._headers())

    def post(self, path, body):
        return self.client.post(path, json=body, headers=self._headers())

    def patch(self, path, body):
        return self.client.patch(path, json=body, headers=self._headers())

    def delete(self, path, body=None, **params):
        return self.client.delete(path, json=body, query_string=params, headers=self._headers())


@pytest.fixture
def api(sandbox):
    return Api(sandbox, main_company(sandbox)["id"])


def create_hook(api, url, *, authorization="Bearer receiver-secret-12345", **scope):
    scope = scope or {"company_id": api.company_id}
    hook = {"api_version": "v2", "namespace": "crewclock", "destination_url": url}
    if authorization is not None:
        hook["destination_headers"] = {"Authorization": authorization}
    response = api.post("/rest/v1.0/webhooks/hooks", {**scope, "hook": hook})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def add_trigger(api, hook, resource_name, event_type, **scope):
    scope = scope or {"company_id": api.company_id}
    response = api.post(
        f"/rest/v1.0/webhooks/hooks/{hook['id']}/triggers",
        {
            **scope,
            "api_version": "v2",
            "trigger": {"resource_name": resource_name, "event_type": event_type},
        },
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def wait_idle(app, timeout=10.0):
    assert app.extensions["sandbox_webhooks"].wait_idle(timeout), "deliveries did not settle"


def deliveries(app, hook_id):
    return [d for d in store_of(app).select("hook_deliveries") if d["webhook_hook_id"] == hook_id]


def a_project(app, company=None):
    company = company or main_company(app)
    return store_of(app).select("projects", company_id=company["id"])[0]


def rename_project(app, project, name, source=CLIENT_ID):
    return store_of(app).update(
        "projects", project["id"], {"name": name}, source_application_id=source
    )


# -- hooks -----------------------------------------------------------------------------------


def test_hook_can_be_created_listed_updated_and_deleted(api, receiver):
    hook = create_hook(api, receiver.url)
    assert hook["namespace"] == "crewclock"
    assert hook["api_version"] == "v2.0"
    assert hook["owned_by_company_id"] == api.company_id
    assert hook["owned_by_project_id"] is None

    listed = api.get("/rest/v1.0/webhooks/hooks", company_id=api.company_id, namespace="crewclock")
    assert [h["id"] for h in listed.get_json()] == [hook["id"]]

    moved = api.patch(
        f"/rest/v1.0/webhooks/hooks/{hook['id']}",
        {"company_id": api.company_id, "hook": {"destination_url": receiver.url + "/v2"}},
    )
    assert moved.status_code == 200
    assert moved.get_json()["destination_url"] == receiver.url + "/v2"

    gone = api.delete(f"/rest/v1.0/webhooks/hooks/{hook['id']}", company_id=api.company_id)
    assert gone.status_code == 204
    listed = api.get("/rest/v1.0/webhooks/hooks", company_id=api.company_id, namespace="*")
    assert listed.get_json() == []


def test_hook_list_filters_by_namespace(api, receiver):
    create_hook(api, receiver.url)
    other = api.post(
        "/rest/v1.0/webhooks/hooks",
        {
            "company_id": api.company_id,
            "hook": {
                "api_version": "v2",
                "namespace": "other-app",
                "destination_url": receiver.url,
            },
        },
    )
    assert other.status_code == 201
    mine = api.get("/rest/v1.0/webhooks/hooks", company_id=api.company_id, namespace="crewclock")
    everyone = api.get("/rest/v1.0/webhooks/hooks", company_id=api.company_id, namespace="*")
    assert [h["namespace"] for h in mine.get_json()] == ["crewclock"]
    assert sorted(h["namespace"] for h in everyone.get_json()) == ["crewclock", "other-app"]


@pytest.mark.parametrize("key", ["Authorization", "authorization"])
def test_authorization_header_is_masked_to_its_last_five_characters(api, receiver, key):
    secret = "Bearer s3cr3t-value-for-hooks-ab12z"
    response = api.post(
        "/rest/v1.0/webhooks/hooks",
        {
            "company_id": api.company_id,
            "hook": {
                "api_version": "v2",
                "namespace": "crewclock",
                "destination_url": receiver.url,
                "destination_headers": {key: secret},
            },
        },
    )
    assert response.status_code == 201
    shown = response.get_json()["destination_headers"][key]
    assert shown.endswith("ab12z")
    assert "s3cr3t" not in shown and "Bearer" not in shown
    listed = api.get("/rest/v1.0/webhooks/hooks", company_id=api.company_id)
    assert "s3cr3t" not in listed.get_data(as_text=True)
    assert listed.get_json()[0]["destination_headers"][key].endswith("ab12z")


def test_hook_with_bad_fields_is_rejected_with_field_errors(api):
    response = api.post(
        "/rest/v1.0/webhooks/hooks",
        {
            "company_id": api.company_id,
            "hook": {
                "namespace": "Crew Clock",
                "destination_url": "ftp://example.invalid/x",
                "destination_headers": {"X-Signature": "nope"},
            },
        },
    )
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert set(errors) == {"api_version", "namespace", "destination_url", "destination_headers"}
    assert api.get("/rest/v1.0/webhooks/hooks", company_id=api.company_id).get_json() == []


def test_hooks_need_a_bearer_token(sandbox, api):
    response = sandbox.test_client().get(
        "/rest/v1.0/webhooks/hooks",
        query_string={"company_id": api.company_id},
        headers={"Procore-Company-Id": str(api.company_id)},
    )
    assert response.status_code == 401


def test_another_companys_hook_is_not_found(sandbox, api, receiver):
    theirs = Api(sandbox, other_company(sandbox)["id"])
    hook = create_hook(theirs, receiver.url)
    response = api.patch(
        f"/rest/v1.0/webhooks/hooks/{hook['id']}",
        {"company_id": api.company_id, "hook": {"destination_url": "http://127.0.0.1:9/x"}},
    )
    assert response.status_code == 404
    # Naming their company while sending ours in the header is not a way in either.
    listed = api.get("/rest/v1.0/webhooks/hooks", company_id=theirs.company_id)
    assert listed.status_code == 404
    assert store_of(sandbox).get("hooks", hook["id"])["destination_url"] == receiver.url


# -- triggers --------------------------------------------------------------------------------


def test_trigger_for_unknown_resource_or_event_is_rejected(api, receiver):
    hook = create_hook(api, receiver.url)
    response = api.post(
        f"/rest/v1.0/webhooks/hooks/{hook['id']}/triggers",
        {
            "company_id": api.company_id,
            "api_version": "v2",
            "trigger": {"resource_name": "Spaceships", "event_type": "launch"},
        },
    )
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"resource_name", "event_type"}


def test_triggers_are_listed_and_deleted(api, receiver):
    hook = create_hook(api, receiver.url)
    trigger = add_trigger(api, hook, "Company Users", "update")
    assert trigger["webhook_hook_id"] == hook["id"]
    assert trigger["company_id"] == api.company_id
    path = f"/rest/v1.0/webhooks/hooks/{hook['id']}/triggers"
    assert [t["id"] for t in api.get(path, company_id=api.company_id).get_json()] == [trigger["id"]]
    assert api.delete(f"{path}/{trigger['id']}", company_id=api.company_id).status_code == 200
    assert api.get(path, company_id=api.company_id).get_json() == []


def test_bulk_trigger_creation_reports_each_failure(api, receiver):
    hook = create_hook(api, receiver.url)
    path = f"/rest/v1.0/webhooks/hooks/{hook['id']}/triggers/bulk"
    specs = [
        {"resource_name": name, "event_type": event}
        for name in ("Company Users", "Projects", "Standard Cost Codes")
        for event in ("create", "update")
    ]
    response = api.post(
        path, {"company_id": api.company_id, "api_version": "v2", "triggers": specs}
    )
    assert response.status_code == 200
    assert len(response.get_json()["success"]) == 6

    again = api.post(
        path,
        {
            "company_id": api.company_id,
            "triggers": [
                specs[0],
                {"resource_name": "Standard Cost Codes", "event_type": "delete"},
            ],
        },
    )
    assert again.status_code == 207
    body = again.get_json()
    assert [t["resource_name"] for t in body["success"]] == ["Standard Cost Codes"]
    assert body["failed"][0]["trigger"] == specs[0]
    assert "event_type" in body["failed"][0]["errors"]


def test_bulk_triggers_above_500_are_refused_with_413(api, receiver):
    hook = create_hook(api, receiver.url)
    path = f"/rest/v1.0/webhooks/hooks/{hook['id']}/triggers/bulk"
    spec = {"resource_name": "Projects", "event_type": "update"}

    too_many = api.post(path, {"company_id": api.company_id, "triggers": [spec] * 501})
    assert too_many.status_code == 413
    listing = f"/rest/v1.0/webhooks/hooks/{hook['id']}/triggers"
    assert api.get(listing, company_id=api.company_id).get_json() == []

    at_limit = api.post(path, {"company_id": api.company_id, "triggers": [spec] * 500})
    assert at_limit.status_code == 207  # accepted in size; 499 are duplicates of the first
    assert len(at_limit.get_json()["success"]) == 1
    assert len(at_limit.get_json()["failed"]) == 499

    ids = [t["id"] for t in api.get(listing, company_id=api.company_id).get_json()]
    refused = api.delete(path, {"company_id": api.company_id, "triggers": ids * 501})
    assert refused.status_code == 413
    removed = api.delete(path, {"company_id": api.company_id, "triggers": ids + [123]})
    assert removed.status_code == 207
    assert removed.get_json()["success"] == ids
    assert removed.get_json()["failed"] == [{"code": "404", "trigger": 123}]
    assert api.get(listing, company_id=api.company_id).get_json() == []


def test_webhook_resources_depend_on_scope(api, sandbox):
    company = api.get("/rest/v1.0/webhooks/resources", company_id=api.company_id).get_json()
    project = api.get(
        "/rest/v1.0/webhooks/resources", project_id=a_project(sandbox)["id"]
    ).get_json()
    # procore-api.md §10.1: Projects is company-level only; Cost Codes and Timecard Entries
    # are project-level only.
    assert {r["name"] for r in company} == {"Company Users", "Projects", "Standard Cost Codes"}
    assert {r["name"] for r in project} == {"Cost Codes", "Timecard Entries"}


def test_resources_list_says_which_events_each_resource_offers(api, sandbox):
    # procore-api.md §10.1/§10.2: GET /rest/v1.0/webhooks/resources lists each resource with
    # `except` ("event types that cannot be subscribed to", OAS26) beside `api_version`,
    # `product_category`, `tools` and `create`/`update`/`delete`. Inferred here: a `name`
    # field naming the resource (the description names none), and each event field holding
    # the event type when offered, null when excepted. Events per the sandbox capture in
    # §10.1: Company Users and Projects have no delete; Standard Cost Codes has all three.
    listed = api.get("/rest/v1.0/webhooks/resources", company_id=api.company_id).get_json()
    by_name = {r["name"]: r for r in listed}
    assert by_name["Company Users"]["except"] == ["delete"]
    assert by_name["Projects"]["except"] == ["delete"]
    assert by_name["Standard Cost Codes"]["except"] == []
    users = by_name["Company Users"]
    assert (users["create"], users["update"], users["delete"]) == ("create", "update", None)
    assert {"api_version", "product_category", "tools"} <= set(users)
    project = api.get(
        "/rest/v1.0/webhooks/resources", project_id=a_project(sandbox)["id"]
    ).get_json()
    assert all(r["except"] == [] for r in project)


def test_trigger_the_resources_list_does_not_offer_is_refused_naming_resource_and_event(
    api, sandbox, receiver
):
    # procore-api.md §10.1: not every resource has every event, nor both scopes; the sandbox
    # refuses what its resources list does not offer (422), one trigger or in bulk.
    hook = create_hook(api, receiver.url)
    path = f"/rest/v1.0/webhooks/hooks/{hook['id']}/triggers"
    refusals = [
        ("Company Users", "delete"),
        ("Projects", "delete"),
        ("Cost Codes", "update"),  # project-level only
        ("Timecard Entries", "create"),  # project-level only
    ]
    for resource_name, event_type in refusals:
        reply = api.post(
            path,
            {
                "company_id": api.company_id,
                "api_version": "v2",
                "trigger": {"resource_name": resource_name, "event_type": event_type},
            },
        )
        assert reply.status_code == 422, (resource_name, event_type)
        message = reply.get_json()["message"]
        assert resource_name in message and event_type in message

    project = a_project(sandbox)
    project_hook = create_hook(api, receiver.url, project_id=project["id"])
    bulk = api.post(
        f"/rest/v1.0/webhooks/hooks/{project_hook['id']}/triggers/bulk",
        {
            "project_id": project["id"],
            "triggers": [
                {"resource_name": "Projects", "event_type": "update"},  # company-level only
                {"resource_name": "Timecard Entries", "event_type": "create"},
            ],
        },
    )
    assert bulk.status_code == 207
    body = bulk.get_json()
    assert [t["resource_name"] for t in body["success"]] == ["Timecard Entries"]
    (failed,) = body["failed"]
    assert failed["code"] == "422"
    assert "Projects" in failed["message"] and "update" in failed["message"]
    assert api.get(path, company_id=api.company_id).get_json() == []


# -- delivery --------------------------------------------------------------------------------

TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"


def name_the_writing_app(app, on: bool = True):
    """Switch metadata.source_application_id between the writing app's id and null."""
    reply = app.test_client().post(
        "/_sandbox/config", json={"webhook_null_source_application": not on}
    )
    assert reply.status_code == 200, reply.get_json()


def test_change_is_delivered_with_v2_payload_and_configured_authorization(sandbox, api, receiver):
    import re

    name_the_writing_app(sandbox)
    hook = create_hook(api, receiver.url, authorization="Bearer receiver-secret-12345")
    add_trigger(api, hook, "Projects", "update")
    project = a_project(sandbox)

    rename_project(sandbox, project, "Harbor Warehouse Phase 2")

    (request,) = receiver.wait_for(1)
    assert request["headers"]["Authorization"] == "Bearer receiver-secret-12345"
    assert request["headers"]["Content-Type"] == "application/json"
    event = request["json"]
    assert isinstance(event["id"], int) and event["id"] > 2**53
    assert len(event["ulid"]) == 26
    assert re.match(TIMESTAMP, event["timestamp"])
    assert event["metadata"]["source_application_id"] == CLIENT_ID
    assert event["api_version"] == "v2.0"
    assert event["event_type"] == "update"
    assert event["resource_name"] == "Projects"
    assert event["resource_id"] == project["id"]
    assert event["company_id"] == api.company_id
    assert event["project_id"] == project["id"]
    assert "user_id" in event

    wait_idle(sandbox)
    listed = api.get(
        f"/rest/v1.0/webhooks/hooks/{hook['id']}/deliveries", company_id=api.company_id
    )
    (delivery,) = listed.get_json()
    assert delivery["outcome"] == "ok"
    assert delivery["response_status"] == 200
    assert delivery["response_body"] == "thanks"
    assert delivery["event"]["ulid"] == event["ulid"]


def test_slow_receiver_never_delays_the_change_itself(sandbox, api, receiver):
    receiver.delay = 1.0
    hook = create_hook(api, receiver.url)
    add_trigger(api, hook, "Projects", "update")
    started = time.monotonic()
    rename_project(sandbox, a_project(sandbox), "Renamed while the receiver is slow")
    assert time.monotonic() - started < 0.5
    assert receiver.wait_for(1)


def test_changes_outside_the_triggers_and_scope_are_not_delivered(sandbox, api, receiver):
    hook = create_hook(api, receiver.url)
    add_trigger(api, hook, "Projects", "update")
    store = store_of(sandbox)
    rename_project(sandbox, a_project(sandbox, other_company(sandbox)), "Their project")
    user = store.select("users", company_id=api.company_id)[0]
    store.update("users", user["id"], {"job_title": "Superintendent"})
    store.delete("projects", a_project(sandbox)["id"])  # a delete, not an update
    wait_idle(sandbox)
    assert receiver.requests == []

    rename_project(sandbox, store.select("projects", company_id=api.company_id)[0], "Ours")
    assert len(receiver.wait_for(1)) == 1


def test_project_hook_hears_only_its_own_project(sandbox, api, receiver):
    store = store_of(sandbox)
    mine, elsewhere = store.select("projects", company_id=api.company_id)[:2]
    hook = create_hook(api, receiver.url, project_id=mine["id"])
    assert hook["owned_by_project_id"] == mine["id"]
    add_trigger(api, hook, "Cost Codes", "update", project_id=mine["id"])

    for project in (elsewhere, mine):
        code = store.select("cost_codes", project_id=project["id"])[0]
        store.update("cost_codes", code["id"], {"name": "Renamed"}, source_application_id=None)
    wait_idle(sandbox)
    (request,) = receiver.requests
    assert request["json"]["project_id"] == mine["id"]
    assert request["json"]["resource_name"] == "Cost Codes"
    assert request["json"]["metadata"]["source_application_id"] is None


def test_failed_delivery_is_retried_with_growing_backoff_until_it_succeeds(sandbox, api, receiver):
    receiver.statuses = [500, 503, 502, 200]
    hook = create_hook(api, receiver.url)
    add_trigger(api, hook, "Projects", "update")
    rename_project(sandbox, a_project(sandbox), "Try until it works")

    attempts = receiver.wait_for(4)
    wait_idle(sandbox)
    assert [a["status"] for a in attempts] == [500, 503, 502, 200]
    assert len({a["json"]["ulid"] for a in attempts}) == 1
    gaps = [later["at"] - earlier["at"] for earlier, later in zip(attempts, attempts[1:])]
    assert gaps[0] >= 0.02 and gaps[1] >= 0.04 and gaps[2] >= 0.08
    records = deliveries(sandbox, hook["id"])
    assert [(d["outcome"], d["response_status"]) for d in records] == [
        ("retried", 500),
        ("retried", 503),
        ("retried", 502),
        ("ok", 200),
    ]


def test_failing_destination_holds_later_events_until_the_first_gets_through(
    sandbox, api, receiver
):
    receiver.statuses = [500, 500]
    hook = create_hook(api, receiver.url)
    add_trigger(api, hook, "Projects", "update")
    first, second = store_of(sandbox).select("projects", company_id=api.company_id)[:2]
    rename_project(sandbox, first, "First")
    rename_project(sandbox, second, "Second")

    attempts = receiver.wait_for(4)
    assert [a["json"]["resource_id"] for a in attempts] == [
        first["id"],
        first["id"],
        first["id"],
        second["id"],
    ]


def test_events_are_discarded_after_the_retry_window_and_the_next_event_starts_afresh(receiver):
    app = make_sandbox(
        webhook_timeout=1.0,
        webhook_backoff_base=0.01,
        webhook_backoff_cap=0.05,
        webhook_give_up_after=0.4,
    )
    try:
        api = Api(app, main_company(app)["id"])
        hook = create_hook(api, "http://127.0.0.1:9/nobody-listens")
        add_trigger(api, hook, "Projects", "update")
        first, second = store_of(app).select("projects", company_id=api.company_id)[:2]
        started = time.monotonic()
        rename_project(app, first, "Lost 1")
        rename_project(app, second, "Lost 2")
        wait_idle(app)
        assert time.monotonic() - started >= 0.4

        path = f"/rest/v1.0/webhooks/hooks/{hook['id']}/deliveries"
        discarded = api.get(path, company_id=api.company_id, **{"filters[status]": "discarded"})
        assert {d["event"]["resource_id"] for d in discarded.get_json()} == {
            first["id"],
            second["id"],
        }
        failing = api.get(path, company_id=api.company_id, **{"filters[status]": "failing"})
        outcomes = [d["outcome"] for d in failing.get_json()]
        assert outcomes[-1] == "failed" and set(outcomes[:-1]) == {"retried"}
        assert failing.get_json()[0]["response_error"]  # connection refused, no status

        api.patch(
            f"/rest/v1.0/webhooks/hooks/{hook['id']}",
            {"company_id": api.company_id, "hook": {"destination_url": receiver.url}},
        )
        rename_project(app, first, "Delivered")
        (request,) = receiver.wait_for(1)
        assert request["json"]["resource_id"] == first["id"]
    finally:
        app.extensions["sandbox_webhooks"].stop()


def test_receiver_slower_than_the_timeout_counts_as_a_failure(receiver):
    app = make_sandbox(webhook_timeout=0.3, webhook_backoff_base=0.05, webhook_backoff_cap=0.1)
    try:
        receiver.delay = 0.6
        api = Api(app, main_company(app)["id"])
        hook = create_hook(api, receiver.url)
        add_trigger(api, hook, "Projects", "update")
        rename_project(app, a_project(app), "Slow")
        receiver.wait_for(1)
        receiver.delay = 0.0
        assert len(receiver.wait_for(2)) == 2
        wait_idle(app)
        first, second = deliveries(app, hook["id"])
        assert first["outcome"] == "retried" and "Timeout" in first["response_error"]
        assert second["outcome"] == "ok"
    finally:
        app.extensions["sandbox_webhooks"].stop()


def test_duplicate_switch_delivers_every_event_twice(sandbox, api, receiver):
    control = sandbox.test_client()
    assert (
        control.patch("/_sandbox/webhooks", json={"duplicate_deliveries": True}).status_code == 200
    )
    hook = create_hook(api, receiver.url)
    add_trigger(api, hook, "Projects", "update")
    rename_project(sandbox, a_project(sandbox), "Twice")
    first, second = receiver.wait_for(2)
    assert first["json"] == second["json"]


def test_paused_deliveries_queue_until_released_in_order(sandbox, api, receiver):
    # Not a Procore feature: a test switch. procore-api.md §10.5 allows deliveries to lag the
    # change; holding them lets a test see events only after its own call has finished.
    control = sandbox.test_client()
    hook = create_hook(api, receiver.url)
    add_trigger(api, hook, "Projects", "update")
    assert control.patch("/_sandbox/webhooks", json={"paused": True}).get_json()["paused"]
    project = a_project(sandbox)
    rename_project(sandbox, project, "Held 1")
    rename_project(sandbox, project, "Held 2")
    time.sleep(0.3)
    assert receiver.requests == []
    assert control.get("/_sandbox/webhooks").get_json()["pending"] == 2
    control.patch("/_sandbox/webhooks", json={"paused": False})
    first, second = receiver.wait_for(2)
    assert first["json"]["timestamp"] <= second["json"]["timestamp"]
    wait_idle(sandbox)


def test_deliveries_page_by_last_seen_id(sandbox, api, receiver):
    hook = create_hook(api, receiver.url)
    add_trigger(api, hook, "Projects", "update")
    for index, project in enumerate(
        store_of(sandbox).select("projects", company_id=api.company_id)[:5]
    ):
        rename_project(sandbox, project, f"Page {index}")
    receiver.wait_for(5)
    wait_idle(sandbox)
    path = f"/rest/v1.0/webhooks/hooks/{hook['id']}/deliveries"
    first = api.get(path, company_id=api.company_id, page_size=3).get_json()
    rest = api.get(path, company_id=api.company_id, page_size=3, page_start=first[-1]["id"])
    assert len(first) == 3 and len(rest.get_json()) == 2
    assert {d["id"] for d in first}.isdisjoint(d["id"] for d in rest.get_json())


def test_change_through_the_rest_api_names_the_app_and_the_user(sandbox, api, receiver):
    name_the_writing_app(sandbox)
    hook = create_hook(api, receiver.url)
    add_trigger(api, hook, "Company Users", "update")
    client = sandbox.test_client()
    tokens = client.post("/_sandbox/token", json={"email": "dana.admin@summit.example.com"})
    token = tokens.get_json()["access_token"]
    store = store_of(sandbox)
    admin = store.select("users", company_id=api.company_id, last_name="Whitfield")[0]
    worker = store.select("users", company_id=api.company_id, last_name="Petrov")[0]

    response = client.patch(
        f"/rest/v1.0/companies/{api.company_id}/users/{worker['id']}",
        json={"user": {"job_title": "Foreman"}},
        headers={"Authorization": f"Bearer {token}", "Procore-Company-Id": str(api.company_id)},
    )
    assert response.status_code == 200
    (request,) = receiver.wait_for(1)
    event = request["json"]
    assert event["resource_id"] == worker["id"]
    assert event["metadata"]["source_application_id"] == CLIENT_ID
    assert event["user_id"] == admin["id"]
    assert event["metadata"]["source_user_id"] == admin["id"]


def test_deleting_a_hook_drops_the_events_it_was_still_retrying(sandbox, api, receiver):
    receiver.statuses = [500] * 1000
    hook = create_hook(api, receiver.url)
    add_trigger(api, hook, "Projects", "update")
    rename_project(sandbox, a_project(sandbox), "Never acknowledged")
    receiver.wait_for(2)
    gone = api.delete(f"/rest/v1.0/webhooks/hooks/{hook['id']}", company_id=api.company_id)
    assert gone.status_code == 204
    wait_idle(sandbox)
    seen = len(receiver.requests)
    time.sleep(0.3)  # well past the 0.1 s backoff cap: a live queue would have retried
    assert len(receiver.requests) == seen


def test_demo_seed_sends_null_source_application_id_until_switched_off(sandbox, api, receiver):
    # procore-api.md §10.4: metadata.source_application_id is documented only as the "ID of
    # the application used to make the change", examples null. The demo seed sends null (the
    # stricter reading for a client); /_sandbox/config switches it like any other setting.
    control = sandbox.test_client()
    assert control.get("/_sandbox/config").get_json()["webhook_null_source_application"] is True
    hook = create_hook(api, receiver.url)
    add_trigger(api, hook, "Projects", "update")
    project = a_project(sandbox)

    rename_project(sandbox, project, "Written by our app, named nowhere")
    (first,) = receiver.wait_for(1)
    assert first["json"]["metadata"]["source_application_id"] is None

    name_the_writing_app(sandbox)
    assert control.get("/_sandbox/config").get_json()["webhook_null_source_application"] is False
    rename_project(sandbox, project, "Written by our app, named")
    assert receiver.wait_for(2)[1]["json"]["metadata"]["source_application_id"] == CLIENT_ID

    bad = control.post("/_sandbox/config", json={"webhook_null_source_application": "yes"})
    assert bad.status_code == 400
    # A reset reloads the seed, and with it the seed's choice.
    control.post("/_sandbox/reset", json={"seed": "demo"})
    assert control.get("/_sandbox/config").get_json()["webhook_null_source_application"] is True
    control.post("/_sandbox/reset", json={"seed": "empty"})
    assert control.get("/_sandbox/config").get_json()["webhook_null_source_application"] is False
