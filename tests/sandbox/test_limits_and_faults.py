"""Rate-limit windows, overload, injected faults, dropped replies, stats, reset."""

from __future__ import annotations

import pytest
import requests

from procore_sandbox.testing import live_sandbox, mount_sandbox

from .conftest import make_procore


def set_config(procore, **values):
    reply = requests.post(procore.url("/_sandbox/config"), json=values)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_every_api_response_carries_rate_limit_headers(procore):
    for reply in (procore.get("/rest/v1.0/me"), procore.get("/rest/v1.0/projects/1")):
        assert {"X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"} <= set(
            reply.headers
        )
    # 400s count against the budget like every other request.
    assert procore.get("/rest/v1.0/me").headers["X-Rate-Limit-Remaining"] == "97"


def test_spike_window_gives_429_with_retry_after_then_slides_open(procore):
    set_config(procore, rate_limit_spike=5)
    statuses = [procore.get("/rest/v1.0/me").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    limited = procore.get("/rest/v1.0/me")
    assert limited.headers["X-Rate-Limit-Remaining"] == "0"
    assert limited.headers["X-Rate-Limit-Limit"] == "5"
    assert 1 <= int(limited.headers["Retry-After"]) <= 10
    assert "surpassed the max number of requests" in limited.text
    procore.store.clock_offset += 10.5
    assert procore.get("/rest/v1.0/me").status_code == 200


def test_hourly_window_is_separate_from_the_spike_window(procore):
    set_config(procore, rate_limit_hourly=8, rate_limit_spike=5)
    codes = []
    for _ in range(4):
        codes += [procore.get("/rest/v1.0/me").status_code for _ in range(3)]
        procore.store.clock_offset += 11
    assert codes.count(200) == 8 and codes[-1] == 429
    limited = procore.get("/rest/v1.0/me")
    assert limited.headers["X-Rate-Limit-Limit"] == "8"
    assert int(limited.headers["Retry-After"]) > 3000
    procore.store.clock_offset += 3600
    assert procore.get("/rest/v1.0/me").status_code == 200


def test_limits_are_counted_per_token(procore):
    set_config(procore, rate_limit_spike=2)
    other = procore.mint()["access_token"]
    for _ in range(2):
        procore.get("/rest/v1.0/me")
    assert procore.get("/rest/v1.0/me").status_code == 429
    assert procore.get("/rest/v1.0/me", headers=procore.headers(token=other)).status_code == 200


def test_overload_switch_answers_503_with_retry_after(procore):
    set_config(procore, overload=True, overload_retry_after=3)
    reply = procore.get("/rest/v1.0/me")
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "3"
    set_config(procore, overload=False)
    assert procore.get("/rest/v1.0/me").status_code == 200


def test_fault_rule_answers_its_status_count_times(procore):
    added = requests.post(
        procore.url("/_sandbox/faults"),
        json={"method": "GET", "path": r"/users$", "status": 502, "count": 2,
              "headers": {"Retry-After": "1"}},
    )  # fmt: skip
    assert added.status_code == 201
    path = f"/rest/v1.0/companies/{procore.company_id}/users"
    codes = [procore.get(path).status_code for _ in range(3)]
    assert codes == [502, 502, 200]
    assert procore.get("/rest/v1.0/me").status_code == 200  # other paths untouched


def test_bad_fault_rules_are_refused(procore):
    reply = requests.post(procore.url("/_sandbox/faults"), json={"path": "(", "status": 500})
    assert reply.status_code == 400
    reply = requests.post(procore.url("/_sandbox/faults"), json={"stauts": 500})
    assert reply.status_code == 400


def test_cleared_fault_rules_stop_applying(procore):
    requests.post(procore.url("/_sandbox/faults"), json={"status": 500})
    assert procore.get("/rest/v1.0/me").status_code == 500
    requests.delete(procore.url("/_sandbox/faults"))
    assert procore.get("/rest/v1.0/me").status_code == 200


def test_delay_longer_than_the_client_timeout_is_a_read_timeout(procore):
    requests.post(procore.url("/_sandbox/faults"), json={"path": "/me$", "delay": 0.5, "count": 1})
    with pytest.raises(requests.exceptions.ReadTimeout):
        procore.get("/rest/v1.0/me", timeout=0.1)


def test_dropped_reply_still_commits_the_write_in_process(procore):
    project = procore.first_project()
    requests.post(
        procore.url("/_sandbox/faults"),
        json={"method": "POST", "path": "/timecard_entries$", "action": "drop", "count": 1},
    )
    with pytest.raises(requests.exceptions.ConnectionError):
        procore.post(
            f"/rest/v1.0/companies/{procore.company_id}/timecard_entries",
            json={"project_id": project["id"],
                  "timecard_entry": {"date": "2026-02-02", "hours": 8, "origin_id": 77}},
        )  # fmt: skip
    listed = procore.get(
        f"/rest/v1.0/companies/{procore.company_id}/timecard_entries",
        params={"start_date": "2026-02-02", "end_date": "2026-02-02"},
    )
    assert [e["origin_id"] for e in listed.json()] == [77]


def test_late_fault_answers_504_and_applies_the_create_after_the_caller_gave_up(procore):
    # procore-api.md §7.1/§7.4: a 5xx (502 gateway) on a POST is no proof that nothing was
    # made, and §8.9/README: timecard entries have no origin_id upsert, so a write Procore
    # applies after the caller gave up is a real entry that may sit beside a re-sent one.
    project = procore.first_project()
    added = requests.post(
        procore.url("/_sandbox/faults"),
        json={"method": "POST", "path": "/timecard_entries$", "action": "late",
              "apply_after": 0.3, "count": 1},
    )  # fmt: skip
    assert added.status_code == 201 and added.json()[0]["status"] == 504
    path = f"/rest/v1.0/projects/{project['id']}/timecard_entries"
    body = {"timecard_entry": {"date": "2026-02-02", "hours": 8, "origin_id": 78}}
    reply = procore.post(path, json=body)
    assert reply.status_code == 504
    day = {"start_date": "2026-02-02", "end_date": "2026-02-02"}
    assert procore.get(path, params=day).json() == []  # not there when the caller looks
    faults = procore.app.extensions["procore_sandbox"].faults
    assert faults.wait_late(5)
    assert [e["origin_id"] for e in procore.get(path, params=day).json()] == [78]
    assert faults.stats()["applied_late"] == 1
    for bad in ({"action": "late", "apply_after": -1}, {"status": 500, "apply_after": 1}):
        assert requests.post(procore.url("/_sandbox/faults"), json=bad).status_code == 400


def test_live_server_drops_the_connection_after_committing():
    with live_sandbox(seed="demo") as sandbox:
        url, store = sandbox
        token = requests.post(
            f"{url}/_sandbox/token", json={"email": "dana.admin@summit.example.com"}
        ).json()["access_token"]
        company = min(store.table("companies"))
        headers = {"Authorization": f"Bearer {token}", "Procore-Company-Id": str(company)}
        requests.post(
            f"{url}/_sandbox/faults",
            json={"method": "POST", "path": "/users$", "action": "drop", "count": 1},
        )
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.post(
                f"{url}/rest/v1.0/companies/{company}/users",
                json={"user": {"last_name": "Lost", "email_address": "lost@example.com"}},
                headers=headers,
                timeout=5,
            )
        assert [
            u["last_name"] for u in store.select("users", email_address="lost@example.com")
        ] == ["Lost"]
        me = requests.get(f"{url}/rest/v1.0/me", headers=headers, timeout=5)
        assert me.status_code == 200 and "X-Rate-Limit-Limit" in me.headers


def test_stats_count_routes_statuses_and_429s(procore):
    requests.post(procore.url("/_sandbox/stats/reset"))
    set_config(procore, rate_limit_spike=2)
    for _ in range(3):
        procore.get(f"/rest/v1.0/companies/{procore.company_id}/users")
    stats = requests.get(procore.url("/_sandbox/stats")).json()
    assert stats["requests"]["GET /rest/{version}/companies/{company_id}/users"] == 3
    assert stats["statuses"] == {"200": 2, "429": 1}
    assert stats["rate_limited"] == 1
    requests.post(procore.url("/_sandbox/stats/reset"))
    assert requests.get(procore.url("/_sandbox/stats")).json()["total"] == 0


def test_reset_reloads_a_seed_and_export_returns_the_store(procore):
    procore.post(
        f"/rest/v1.0/companies/{procore.company_id}/users",
        json={"user": {"last_name": "Temp", "email_address": "temp@example.com"}},
    )
    assert requests.post(procore.url("/_sandbox/reset"), json={"seed": "empty"}).json() == {
        "seed": "empty"
    }
    exported = requests.get(procore.url("/_sandbox/export")).json()
    assert exported["tables"]["users"] == [] and exported["tables"]["oauth_apps"]
    requests.post(procore.url("/_sandbox/reset"), json={"seed": "demo"})
    exported = requests.get(procore.url("/_sandbox/export")).json()
    assert len(exported["tables"]["users"]) == 30
    assert requests.post(procore.url("/_sandbox/reset"), json={"seed": "nope"}).status_code == 400


def test_config_refuses_unknown_or_mistyped_settings(procore):
    assert (
        requests.post(procore.url("/_sandbox/config"), json={"client_secret": "x"}).status_code
        == 400
    )
    assert (
        requests.post(procore.url("/_sandbox/config"), json={"overload": "yes"}).status_code == 400
    )


def test_large_seed_counts_and_determinism():
    first, second = make_procore(seed="large"), make_procore(seed="large")
    counts = {name: len(rows) for name, rows in first.store.tables.items() if rows}
    assert counts["users"] == 10_000 and counts["projects"] == 1_000
    assert counts["standard_cost_codes"] == 5_000 and counts["cost_codes"] == 20_000
    assert first.store.to_json() == second.store.to_json()


def test_data_file_keeps_state_across_restarts(tmp_path):
    data = str(tmp_path / "sandbox.json")
    p = make_procore(data_file=data)
    with mount_sandbox(p.app, p.base):
        p.token = p.mint()["access_token"]
        p.post(
            f"/rest/v1.0/companies/{p.company_id}/users",
            json={"user": {"last_name": "Kept", "email_address": "kept@example.com"}},
        )
    p.store.flush()
    again = make_procore(data_file=data)
    assert [
        u["last_name"] for u in again.store.select("users", email_address="kept@example.com")
    ] == ["Kept"]
