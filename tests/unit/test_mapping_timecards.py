"""Our time entries -> Procore timecard entry bodies, hashes and reasons."""

from datetime import date, time
from decimal import Decimal

import pytest

from webapp.procore import mapping_timecards as m


def facts(**overrides) -> m.EntryFacts:
    values = dict(
        entry_id=42,
        card_id=7,
        work_date=date(2026, 3, 2),
        hours=Decimal("7.50"),
        start_time=None,
        end_time=None,
        break_minutes=0,
        work_type="regular",
        notes="Framing level 2",
        mode=m.HOURS,
        time_zone="America/New_York",
        origin_id="123456000000042",
    )
    values.update(overrides)
    return m.EntryFacts(**values)


REFS = m.ProcoreRefs(project_id=1001, party_id=2002, cost_code_id=3003, time_type_id=4004)


def test_hours_project_sends_hours_party_cost_code_time_type_and_origin():
    payload = m.entry_payload(facts(), REFS)
    assert payload["hours"] == "7.50"
    assert payload["date"] == "2026-03-02"
    assert payload["party_id"] == 2002
    assert payload["cost_code_id"] == 3003
    assert payload["timecard_time_type_id"] == 4004
    assert payload["description"] == "Framing level 2"
    assert payload["origin_id"] == 123456000000042  # a JSON number, as v1.0 declares it
    assert "entry 42" in payload["origin_data"]
    assert "time_in" not in payload


def test_start_stop_project_sends_times_in_the_workers_zone_and_lunch_minutes():
    payload = m.entry_payload(
        facts(mode=m.START_STOP, start_time=time(7, 0), end_time=time(15, 30), break_minutes=30),
        REFS,
    )
    assert payload["time_in"] == "2026-03-02T07:00:00-05:00"
    assert payload["time_out"] == "2026-03-02T15:30:00-05:00"
    assert payload["lunch_time"] == "30"
    assert "hours" not in payload


def test_start_stop_project_with_hours_only_entry_says_what_is_missing():
    with pytest.raises(m.EntryNotSendable, match="start and stop times"):
        m.entry_payload(facts(mode=m.START_STOP), REFS)


def test_work_types_map_to_procore_time_type_abbreviations():
    assert [m.time_type_code(w) for w in ("regular", "overtime", "double_time")] == [
        "REG",
        "OT",
        "DT",
    ]
    ids = m.time_type_ids(
        [
            {"id": 1, "abbreviated_time_type": "REG"},
            {"id": 2, "abbreviated_time_type": "OT"},
            {"id": 3, "abbreviated_time_type": "dt"},
        ]
    )
    assert ids == {"REG": 1, "OT": 2, "DT": 3}


def test_payload_hash_changes_only_when_the_payload_does():
    one = m.entry_payload(facts(), REFS)
    assert m.payload_hash(one) == m.payload_hash(dict(reversed(list(one.items()))))
    assert m.payload_hash(one) != m.payload_hash(m.entry_payload(facts(notes="x"), REFS))


def test_origin_id_round_trips_and_lookup_matches_strings_and_numbers():
    origin = m.origin_id_for(9, 123456)
    assert origin == "123456000000009"
    assert m.entry_id_from_origin(origin, 123456) == 9
    assert m.entry_id_from_origin(origin, 654321) is None  # another install's entry 9
    assert m.entry_id_from_origin("someone-else-9") is None
    assert m.entry_id_from_origin("crewclock-entry-9") == 9  # rows queued before integers
    listed = [
        {"id": 1, "origin_id": None},
        {"id": 2, "origin_id": "crewclock-entry-9"},
        {"id": 3, "origin_id": 123456000000009},
        {"id": 4, "origin_id": "123456000000010"},
    ]
    assert m.find_by_origin(listed, "crewclock-entry-9")["id"] == 2
    assert m.find_by_origin(listed, "crewclock-entry-10") is None
    assert m.find_by_origin(listed, origin)["id"] == 3  # Procore echoed a number
    assert m.find_by_origin(listed, 123456000000010)["id"] == 4  # ... or a string
    assert set(m.index_by_origin(listed)) == {"crewclock-entry-9", origin, "123456000000010"}


def test_origin_ids_are_integers_kept_exact_in_json_and_strings_in_bulk():
    namespaces = {m.new_origin_namespace() for _ in range(50)}
    assert len(namespaces) > 1  # random per company row
    low, high = m.ORIGIN_NAMESPACES
    largest = int(m.origin_id_for(m.ORIGIN_ENTRY_SPACE - 1, high - 1))
    assert largest < 2**53 // 8  # far below what a JSON double keeps exact
    assert m.origin_id_for(7, low) != m.origin_id_for(7, low + 1)  # two installs, entry 7
    with pytest.raises(ValueError):
        m.origin_id_for(m.ORIGIN_ENTRY_SPACE, low)  # would spill into another namespace
    payload = m.entry_payload(facts(), REFS)
    item = m.bulk_item(payload, 1001)
    assert item["origin_id"] == "123456000000042" and item["project_id"] == 1001


def test_project_cost_code_found_by_standard_code_then_by_code():
    codes = [
        {"id": 1, "standard_cost_code_id": 50, "full_code": "03-300"},
        {"id": 2, "standard_cost_code_id": None, "full_code": "06-200"},
        {"id": 3, "standard_cost_code_id": 70, "full_code": "09-900", "deleted_at": "x"},
    ]
    assert m.project_cost_code_id(codes, 50, "zz") == 1
    assert m.project_cost_code_id(codes, 99, "06-200") == 2
    assert m.project_cost_code_id(codes, 70, "09-900") is None


def test_party_ids_come_from_people_with_a_login():
    people = [{"id": 10, "user_id": 1}, {"id": 11, "user_id": None}]
    assert m.party_ids_by_user(people) == {1: 10}


def test_errors_are_described_in_plain_words_and_locks_are_recognised():
    body = {"errors": {"base": ["Timecard entry is approved and cannot be changed"]}}
    assert m.is_locked_error(body)
    assert m.describe_errors(body) == "Timecard entry is approved and cannot be changed"
    assert m.describe_errors({"errors": {"hours": ["must be between 0 and 24"]}}) == (
        "hours must be between 0 and 24"
    )
    assert not m.is_locked_error({"errors": {"hours": ["is not a number"]}})


def test_hours_outside_procore_range_is_refused_before_sending():
    with pytest.raises(m.EntryNotSendable):
        m.entry_payload(facts(hours=Decimal("25")), REFS)


def procore_copy(payload: dict, **changes) -> dict:
    """How Procore returns an entry made from `payload` (nested ids, UTC times, '8.0')."""
    entry = {
        "id": 9,
        "date": payload["date"],
        "hours": None,
        "time_in": None,
        "time_out": None,
        "lunch_time": None,
        "description": payload["description"],
        "origin_id": payload["origin_id"],
        "origin_data": payload["origin_data"],
        "line_item_type_id": payload.get("line_item_type_id"),
        "billable": False,
        "approval_status": "pending",
        "party": {"id": payload["party_id"], "name": "James Smith"},
        "cost_code": {"id": payload["cost_code_id"], "name": "Formwork"},
        "timecard_time_type": {"id": payload["timecard_time_type_id"]},
    }
    if "hours" in payload:
        entry["hours"] = str(Decimal(payload["hours"]).normalize())
    else:
        entry["time_in"] = "2026-03-02T12:00:00Z"  # 07:00 in New York
        entry["time_out"] = "2026-03-02T20:30:00Z"
        entry["lunch_time"] = int(payload["lunch_time"])
        entry["hours"] = "8.0"
    entry.update(changes)
    return entry


def test_procore_copy_of_what_we_sent_matches_our_payload_hash_until_someone_edits_it():
    payload = m.entry_payload(facts(), REFS)
    sent = m.payload_hash(payload)
    assert sent in m.procore_payload_hashes(procore_copy(payload), "America/New_York")
    # Fields we never send (billable, approval) are Procore's business, not a change.
    assert sent in m.procore_payload_hashes(
        procore_copy(payload, billable=True, approval_status="reviewed", line_item_type_id=5),
        "America/New_York",
    )
    assert sent not in m.procore_payload_hashes(
        procore_copy(payload, hours="6.0"), "America/New_York"
    )
    assert sent not in m.procore_payload_hashes(
        procore_copy(payload, description="Moved to level 3"), "America/New_York"
    )


def test_start_stop_copy_in_utc_matches_the_wall_times_we_sent():
    payload = m.entry_payload(
        facts(mode=m.START_STOP, start_time=time(7, 0), end_time=time(15, 30), break_minutes=30),
        REFS,
    )
    sent = m.payload_hash(payload)
    assert sent in m.procore_payload_hashes(procore_copy(payload), "America/New_York")
    later = procore_copy(payload, time_out="2026-03-02T21:30:00Z")
    assert sent not in m.procore_payload_hashes(later, "America/New_York")


def test_conflict_reason_names_the_fields_with_both_values():
    ours = m.entry_payload(facts(hours=Decimal("7")), REFS)
    theirs = m.procore_as_payload(procore_copy(ours, hours="6.0"), "America/New_York")
    reason = m.changed_in_procore_reason(theirs, ours)
    assert reason.startswith("Changed in Procore since it was sent")
    assert "hours: Procore 6.00, here 7.00" in reason
    assert "notes" not in reason
    assert "Retry" in m.changed_in_procore_reason(theirs, None)
