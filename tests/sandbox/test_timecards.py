"""Timecard entries: hours from start/stop, date rules, locked entries, bulk creates."""

from __future__ import annotations

import pytest


@pytest.fixture
def ctx(procore):
    project = procore.first_project()
    party = procore.people()[1]
    code = procore.get("/rest/v1.0/cost_codes", params={"project_id": project["id"]}).json()[2]
    return procore, project, party, code


def company_create(procore, project, entry):
    return procore.post(
        f"/rest/v1.0/companies/{procore.company_id}/timecard_entries",
        json={"project_id": project["id"], "timecard_entry": entry},
    )


def test_hours_are_computed_from_start_stop_and_lunch_as_a_string(ctx):
    procore, project, party, code = ctx
    reply = company_create(
        procore,
        project,
        {"date": "2026-02-02", "time_in": "08:00", "time_out": "17:00", "lunch_time": "60",
         "party_id": party["id"], "cost_code_id": code["id"], "origin_id": 4242},
    )  # fmt: skip
    assert reply.status_code == 201
    entry = reply.json()
    assert entry["hours"] == "8.0" and entry["time_in"] == "2026-02-02T08:00:00Z"
    assert entry["lunch_time"] == 60 and entry["origin_id"] == "4242"
    assert entry["party"]["id"] == party["id"] and entry["cost_code"]["full_code"]
    path = f"/rest/v1.0/projects/{project['id']}/timecard_entries/{entry['id']}"
    patched = procore.patch(path, json={"timecard_entry": {"lunch_time": "30"}})
    assert patched.json()["hours"] == "8.5"


def test_company_level_create_and_update_require_a_date(ctx):
    procore, project, party, _ = ctx
    reply = company_create(procore, project, {"hours": "8", "party_id": party["id"]})
    assert reply.status_code == 422 and reply.json()["errors"]["date"] == ["can't be blank"]
    entry = company_create(procore, project, {"hours": 8, "date": "2026-02-03"}).json()
    assert entry["hours"] == "8.0"
    path = f"/rest/v1.0/companies/{procore.company_id}/timecard_entries/{entry['id']}"
    assert procore.patch(path, json={"timecard_entry": {"hours": "7"}}).status_code == 422
    ok = procore.patch(path, json={"timecard_entry": {"hours": "7.25", "date": "2026-02-03"}})
    assert ok.json()["hours"] == "7.25"


def test_bad_references_and_times_are_field_errors(ctx):
    procore, project, _, _ = ctx
    reply = company_create(
        procore,
        project,
        {"date": "2026-02-02", "time_in": "17:00", "time_out": "08:00", "party_id": 1,
         "cost_code_id": 2},
    )  # fmt: skip
    assert reply.status_code == 422
    assert set(reply.json()["errors"]) == {"time_out", "party_id", "cost_code_id"}
    too_many = company_create(procore, project, {"date": "2026-02-02", "hours": "25"})
    assert too_many.json()["errors"] == {"hours": ["must be between 0 and 24"]}


def test_project_list_shows_today_unless_dates_are_given(ctx):
    procore, project, _, _ = ctx
    path = f"/rest/v1.0/projects/{project['id']}/timecard_entries"
    procore.post(path, json={"timecard_entry": {"hours": "4"}})  # date defaults to today
    company_create(procore, project, {"date": "2026-01-20", "hours": "6"})
    today = procore.get(path).json()
    assert [e["hours"] for e in today] == ["4.0"]
    dated = procore.get(path, params={"log_date": "2026-01-20"}).json()
    assert [e["hours"] for e in dated] == ["6.0"]
    ranged = procore.get(path, params={"start_date": "2026-01-01", "end_date": "2099-01-01"})
    assert ranged.headers["Total"] == "2"
    assert procore.get(path, params={"start_date": "2026-01-01"}).status_code == 400


def test_approved_entries_are_locked(ctx):
    procore, project, _, _ = ctx
    entry = company_create(procore, project, {"date": "2026-02-02", "hours": "8"}).json()
    path = f"/rest/v1.0/projects/{project['id']}/timecard_entries/{entry['id']}"
    approved = procore.patch(path, json={"timecard_entry": {"approval_status": "approved"}})
    assert approved.status_code == 200 and approved.json()["permissions"]["can_update"] is False
    edit = procore.patch(path, json={"timecard_entry": {"hours": "9"}})
    assert edit.status_code == 422 and "approved" in edit.json()["errors"]["base"][0]
    assert procore.delete(path).status_code == 422
    assert procore.get(path).json()["hours"] == "8.0"


def test_company_list_filters_by_date_range_party_and_id(ctx):
    procore, project, party, _ = ctx
    a = company_create(
        procore, project, {"date": "2026-02-02", "hours": 1, "party_id": party["id"]}
    )
    company_create(procore, project, {"date": "2026-02-05", "hours": 2})
    path = f"/rest/v1.0/companies/{procore.company_id}/timecard_entries"
    in_range = procore.get(path, params={"start_date": "2026-02-01", "end_date": "2026-02-03"})
    assert [e["id"] for e in in_range.json()] == [a.json()["id"]]
    by_party = procore.get(path, params={"filters[party_id][]": party["id"]})
    assert [e["id"] for e in by_party.json()] == [a.json()["id"]]
    by_id = procore.get(path, params={"filters[id][]": a.json()["id"]})
    assert len(by_id.json()) == 1


def test_delete_removes_a_pending_entry(ctx):
    procore, project, _, _ = ctx
    entry = company_create(procore, project, {"date": "2026-02-02", "hours": "8"}).json()
    path = f"/rest/v1.0/companies/{procore.company_id}/timecard_entries/{entry['id']}"
    assert procore.delete(path).status_code == 200
    assert procore.get(path).status_code == 404


def test_v11_bulk_create_takes_at_most_25_entries_all_or_nothing(ctx):
    procore, project, _, _ = ctx
    path = f"/rest/v1.1/projects/{project['id']}/project_timecard_entries/bulk_create"
    item = {"project_id": project["id"], "date": "2026-02-02", "hours": 2}
    assert procore.post(path, json={"timecard_entries": [item] * 26}).status_code == 400
    mixed = procore.post(path, json={"timecard_entries": [item, {"date": "2026-02-02"}]})
    assert mixed.status_code == 422 and mixed.json()["errors"][0]["index"] == 1
    assert procore.store.select("timecard_entries") == []
    ok = procore.post(path, json={"timecard_entries": [item] * 25})
    assert ok.status_code == 201 and len(ok.json()["timecard_entries"]) == 25


def test_company_timesheets_bulk_create_needs_project_and_date(ctx):
    procore, project, _, _ = ctx
    path = f"/rest/v1.0/companies/{procore.company_id}/timesheets"
    bad = procore.post(path, json={"timecard_entries": [{"hours": 3, "date": "2026-02-02"}]})
    assert bad.status_code == 422
    ok = procore.post(
        path,
        json={
            "timecard_entries": [{"project_id": project["id"], "date": "2026-02-02", "hours": 3}]
        },
    )
    assert ok.status_code == 200 and ok.json()[0]["hours"] == "3.0"


def test_timecard_changes_are_announced_with_the_writing_app(ctx):
    procore, project, _, _ = ctx
    seen = []
    procore.store.on_change(lambda *event: seen.append(event))
    entry = company_create(procore, project, {"date": "2026-02-02", "hours": "8"}).json()
    assert (procore.company_id, project["id"], "Timecard Entries", "create", entry["id"],
            "crewclock-dev") in seen  # fmt: skip
