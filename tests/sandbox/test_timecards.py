"""Timecard entries: hours from start/stop, date rules, locked entries, bulk creates."""

from __future__ import annotations

import pytest


@pytest.fixture
def ctx(procore):
    project = procore.first_project()
    party = procore.people()[1]
    code = procore.get("/rest/v1.0/cost_codes", params={"project_id": project["id"]}).json()[2]
    return procore, project, party, code


def set_company(procore, company_id=None, **settings):
    """Change a company's timecard settings through the control API."""
    company_id = company_id or procore.company_id
    url = procore.url(f"/_sandbox/companies/{company_id}/settings")
    reply = procore.session.patch(url, json=settings)
    assert reply.status_code == 200, reply.text
    return reply.json()


def company_create(procore, project, entry):
    return procore.post(
        f"/rest/v1.0/companies/{procore.company_id}/timecard_entries",
        json={"project_id": project["id"], "timecard_entry": entry},
    )


def test_hours_are_computed_from_start_stop_and_lunch_as_a_string(ctx):
    procore, project, party, code = ctx
    set_company(procore, projects_timecard_in_out_enabled=True)
    reply = company_create(
        procore,
        project,
        {"date": "2026-02-02", "time_in": "08:00", "time_out": "17:00", "lunch_time": "60",
         "party_id": party["id"], "cost_code_id": code["id"], "origin_id": 4242},
    )  # fmt: skip
    assert reply.status_code == 201
    entry = reply.json()
    assert entry["hours"] == "8.0" and entry["time_in"] == "2026-02-02T08:00:00Z"
    assert entry["lunch_time"] == 60 and entry["origin_id"] == 4242
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
    set_company(procore, projects_timecard_in_out_enabled=True)
    reply = company_create(
        procore,
        project,
        {"date": "2026-02-02", "time_in": "17:00", "time_out": "08:00", "party_id": 1,
         "cost_code_id": 2},
    )  # fmt: skip
    assert reply.status_code == 422
    assert set(reply.json()["errors"]) == {"time_out", "party_id", "cost_code_id"}
    set_company(procore, projects_timecard_in_out_enabled=False)
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


# ------------------------------------------------------------------ origin_id as an integer
def test_v10_timecard_origin_id_must_be_an_integer_and_comes_back_as_a_number(ctx):
    # procore-api.md §8.7.3 / §8.9: origin_id is an int in the v1.0 timecard-entry schemas;
    # the sandbox takes the stricter reading and refuses anything but a JSON integer, with
    # the Rails-style 422 body of §7.2 ({"errors": {"origin_id": [...]}}).
    procore, project, party, _ = ctx
    entry = {"date": "2026-02-02", "hours": "8", "party_id": party["id"]}
    for bad in ("crewclock-entry-7", "77", 7.5, True):
        refused = company_create(procore, project, {**entry, "origin_id": bad})
        assert refused.status_code == 422, bad
        assert refused.json() == {"errors": {"origin_id": ["must be an integer"]}}
    project_path = f"/rest/v1.0/projects/{project['id']}/timecard_entries"
    refused = procore.post(project_path, json={"timecard_entry": {**entry, "origin_id": "x9"}})
    assert refused.status_code == 422 and "origin_id" in refused.json()["errors"]
    bulk = procore.post(
        f"/rest/v1.0/companies/{procore.company_id}/timesheets",
        json={"timecard_entries": [{**entry, "project_id": project["id"], "origin_id": "x"}]},
    )
    assert bulk.status_code == 422
    assert procore.store.select("timecard_entries") == []

    made = procore.post(project_path, json={"timecard_entry": {**entry, "origin_id": 9001}})
    assert made.status_code == 201 and made.json()["origin_id"] == 9001
    path = f"{project_path}/{made.json()['id']}"
    assert procore.get(path).json()["origin_id"] == 9001
    listed = procore.get(project_path, params={"log_date": "2026-02-02"}).json()
    assert [e["origin_id"] for e in listed] == [9001]
    bad_update = procore.patch(path, json={"timecard_entry": {"origin_id": "crewclock-1"}})
    assert bad_update.status_code == 422
    assert procore.get(path).json()["origin_id"] == 9001


def test_v11_bulk_create_keeps_string_origin_ids(ctx):
    # procore-api.md §9.3: v1.1 bulk_create declares origin_id as a string.
    procore, project, _, _ = ctx
    path = f"/rest/v1.1/projects/{project['id']}/project_timecard_entries/bulk_create"
    item = {"project_id": project["id"], "date": "2026-02-02", "hours": 2}
    made = procore.post(
        path,
        json={"timecard_entries": [{**item, "origin_id": "abc-1"}, {**item, "origin_id": "42"}]},
    )
    assert made.status_code == 201
    assert [e["origin_id"] for e in made.json()["timecard_entries"]] == ["abc-1", "42"]


# ------------------------------------------------------------ the time-entry setting
def test_company_configuration_decides_whether_hours_or_start_stop_are_taken(ctx):
    # procore-api.md §8.7.3 (paragraph after the table): the form must match the timesheet
    # time-entry setting, readable at GET /rest/v1.0/company_configuration
    # (projects_timecard_in_out_enabled). Stricter reading: with in/out on, `hours` is
    # refused even beside times and time_in/time_out are required; with it off,
    # time_in/time_out/lunch_time are refused even beside hours.
    procore, project, party, _ = ctx
    config = procore.get("/rest/v1.0/company_configuration")
    assert config.status_code == 200
    assert config.json()["projects_timecard_in_out_enabled"] is False  # the demo seed's Summit
    base = {"date": "2026-02-02", "party_id": party["id"]}
    times = {"time_in": "08:00", "time_out": "16:30", "lunch_time": "30"}
    refused = company_create(procore, project, {**base, **times})
    assert refused.status_code == 422
    assert set(refused.json()["errors"]) == {"time_in", "time_out", "lunch_time"}
    both = company_create(procore, project, {**base, **times, "hours": "8"})
    assert both.status_code == 422 and "time_in" in both.json()["errors"]
    assert company_create(procore, project, {**base, "hours": "8"}).status_code == 201

    set_company(procore, projects_timecard_in_out_enabled=True)
    config = procore.get("/rest/v1.0/company_configuration").json()
    assert config["projects_timecard_in_out_enabled"] is True
    hours_only = company_create(procore, project, {**base, "hours": "8"})
    assert hours_only.status_code == 422
    assert set(hours_only.json()["errors"]) == {"hours", "time_in", "time_out"}
    both = company_create(procore, project, {**base, **times, "hours": "8"})
    assert both.status_code == 422 and set(both.json()["errors"]) == {"hours"}
    made = company_create(procore, project, {**base, **times})
    assert made.status_code == 201 and made.json()["hours"] == "8.0"
    path = f"/rest/v1.0/projects/{project['id']}/timecard_entries/{made.json()['id']}"
    assert procore.patch(path, json={"timecard_entry": {"hours": "9"}}).status_code == 422
    assert len(procore.store.select("timecard_entries")) == 2


def test_demo_seed_has_one_company_on_start_stop_times(procore):
    # procore-api.md §8.7.3: each company has its own setting; the seed gives one of each.
    other = procore.get(
        "/rest/v1.0/company_configuration", headers=procore.headers(procore.other_company_id)
    )
    assert other.json()["projects_timecard_in_out_enabled"] is True


# ------------------------------------------------------------------------- rounding
def test_rounding_configuration_rounds_stored_times_and_recomputes_hours(ctx):
    # procore-api.md §8.7.3 (last paragraph): stored time_in/time_out are the times after
    # the company's rounding rules (/rest/v1.0/companies/{id}/rounding_configuration).
    procore, project, party, _ = ctx
    path = f"/rest/v1.0/companies/{procore.company_id}/rounding_configuration"
    assert procore.get(path).json()["enabled"] is False  # off by default
    set_company(
        procore,
        projects_timecard_in_out_enabled=True,
        rounding_configuration={"enabled": True, "interval_minutes": 15},
    )
    rules = procore.get(path).json()
    assert rules["enabled"] is True and rules["interval_minutes"] == 15
    made = company_create(
        procore,
        project,
        {"date": "2026-02-02", "time_in": "07:53", "time_out": "16:38", "lunch_time": "30",
         "party_id": party["id"]},
    )  # fmt: skip
    assert made.status_code == 201
    entry = made.json()
    assert entry["time_in"] == "2026-02-02T08:00:00Z"
    assert entry["time_out"] == "2026-02-02T16:45:00Z"
    assert entry["hours"] == "8.25"  # 08:00-16:45 less 30 minutes, not 8.25 from 07:53
    entry_path = f"/rest/v1.0/projects/{project['id']}/timecard_entries/{entry['id']}"
    patched = procore.patch(entry_path, json={"timecard_entry": {"time_out": "17:06"}})
    assert patched.json()["time_out"] == "2026-02-02T17:00:00Z"
    assert patched.json()["hours"] == "8.5"


def test_demo_seed_rounds_one_company_to_the_quarter_hour(procore):
    # procore-api.md §8.7.3: rounding is per company; the demo seed turns it on for one.
    other = procore.other_company_id
    rules = procore.get(
        f"/rest/v1.0/companies/{other}/rounding_configuration", headers=procore.headers(other)
    ).json()
    assert rules["enabled"] is True and rules["interval_minutes"] == 15
    mine = procore.get(f"/rest/v1.0/companies/{procore.company_id}/rounding_configuration")
    assert mine.json()["enabled"] is False


def test_control_api_refuses_unknown_or_malformed_company_settings(procore):
    url = procore.url(f"/_sandbox/companies/{procore.company_id}/settings")
    assert procore.session.patch(url, json={"colour": "red"}).status_code == 400
    bad = {"rounding_configuration": {"interval_minutes": 0}}
    assert procore.session.patch(url, json=bad).status_code == 400
    assert procore.session.get(url).json()["rounding_configuration"]["enabled"] is False


def test_a_deleted_project_takes_its_timecard_entries_with_it(ctx):
    # procore-api.md §8.7/§8.8: entries and timesheets live inside a project; the reference has
    # no way to reach a deleted project's entries (project lists and the company-wide list only
    # show live projects' data), so the sandbox drops them with the project (stricter reading:
    # an integration must never count on them still being there).
    procore, project, party, code = ctx
    reply = company_create(
        procore,
        project,
        {"date": "2026-02-02", "hours": "8", "party_id": party["id"],
         "cost_code_id": code["id"], "origin_id": 777},
    )  # fmt: skip
    assert reply.status_code == 201, reply.text
    procore.store.delete("projects", project["id"])
    listed = procore.get(
        f"/rest/v1.0/companies/{procore.company_id}/timecard_entries",
        params={"start_date": "2026-02-01", "end_date": "2026-02-08"},
    ).json()
    assert [e for e in listed if e.get("origin_id") == 777] == []
    assert procore.store.select("timecard_entries", project_id=project["id"]) == []
