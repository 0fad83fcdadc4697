"""E8: fuzz the Procore-payload mappers and the date/time parsers with arbitrary JSON.

reliability.md E8 asks for atheris; atheris does not install on this machine (no wheel for
this Python), so these tests use Hypothesis instead: bounded to 300 examples per function
with no deadline, so the whole file runs in well under a minute in CI.

The contract proved here: whatever Procore (or a broken proxy) sends, a mapper returns a
value or a list of problems; it never raises anything but its documented exception type
(EntryNotSendable for entry_payload; nothing at all for the others). A crash here would be
a failed import or push for a whole company because of one odd record.
"""

from datetime import date, datetime, time
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp.procore import mapping
from webapp.procore import mapping_timecards as tc
from webapp.procore.errors import parse_field_errors
from webapp.push.routes import parse_week
from webapp.timecards import forms

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Keys a mapper reads, mixed with random ones, so wrong types reach the fields it uses.
KNOWN_KEYS = (
    "id",
    "email_address",
    "first_name",
    "last_name",
    "mobile_phone",
    "business_phone",
    "employee_id",
    "is_active",
    "name",
    "project_number",
    "address",
    "city",
    "state_code",
    "zip",
    "country_code",
    "active",
    "full_code",
    "code",
    "parent_id",
    "user_id",
    "origin_id",
    "abbreviated_time_type",
    "standard_cost_code_id",
    "deleted_at",
    "errors",
    "error",
    "message",
    "details",
    "field",
    "source",
    "fields",
    "base",
)
HUGE_INTS = st.sampled_from([2**63, -(2**63) - 1, 10**40, -(10**300), 2**1000])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    HUGE_INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.sampled_from(["", " ", "\x00", "é👷\u202e", "2026-02-30", "24:00", "Z", "1e309"]),
)
KEYS = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=12))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(KEYS, inner, max_size=6),
    ),
    max_leaves=20,
)
PAYLOADS = st.dictionaries(KEYS, JSON, max_size=10)
ENTITY_TYPES = st.sampled_from(mapping.ENTITY_TYPES)


@FUZZ
@given(payload=JSON)
def test_payload_hash_and_procore_id_accept_any_json(payload):
    digest = mapping.payload_hash(payload)
    assert len(digest) == 64
    found = mapping.procore_id(payload)
    assert found is None or isinstance(found, int)


@FUZZ
@given(entity_type=ENTITY_TYPES, payload=PAYLOADS, edits=st.dictionaries(KEYS, JSON))
def test_import_row_from_any_payload_yields_text_fields_and_problems(entity_type, payload, edits):
    fields = mapping.fields_for(entity_type, payload)
    assert all(v is None or isinstance(v, str) for v in fields.values())
    assert isinstance(mapping.procore_active(entity_type, payload), bool)
    cleaned, errors = mapping.clean_edit(entity_type, edits)
    assert all(isinstance(message, str) for message in errors.values())
    effective = mapping.effective_fields(entity_type, payload, cleaned)
    problems = mapping.field_problems(entity_type, effective)
    assert all(isinstance(message, str) for message in problems.values())
    assert isinstance(mapping.search_text(entity_type, effective), str)
    assert isinstance(mapping.sort_key(entity_type, effective), str)
    assert isinstance(mapping.display_name(entity_type, effective), str)


@FUZZ
@given(payload=PAYLOADS, odd_id=SCALARS)
def test_record_ids_of_any_type_are_an_int_or_none(payload, odd_id):
    """Python's json reads Infinity/NaN, so an id may be any scalar, infinity included."""
    for key in ("id", "parent_id"):
        payload = {**payload, key: odd_id}
        found = mapping.procore_id(payload), mapping.cost_code_parent_id(payload)
        assert all(value is None or isinstance(value, int) for value in found)


@FUZZ
@given(rows=st.lists(PAYLOADS, max_size=5), origin=st.one_of(st.text(), JSON))
def test_timecard_lookups_never_crash_on_odd_procore_rows(rows, origin):
    assert tc.find_by_origin(rows, tc.origin_id_for(7, 123456)) in [*rows, None]
    assert tc.find_by_origin(rows, origin) in [*rows, None]
    found = tc.entry_id_from_origin(origin, 123456)
    assert found is None or isinstance(found, int)
    codes = tc.time_type_ids(rows)
    assert all(isinstance(k, str) for k in codes)
    code_id = tc.project_cost_code_id(rows, 5, "03-300")
    assert code_id is None or any(row.get("id") == code_id for row in rows)
    assert isinstance(tc.party_ids_by_user(rows), dict)


@FUZZ
@given(body=JSON)
def test_error_bodies_of_any_shape_become_readable_text(body):
    assert isinstance(tc.describe_errors(body), str)
    assert isinstance(tc.is_locked_error(body), bool)
    problems = parse_field_errors(body)
    assert all(isinstance(m, str) for messages in problems.values() for m in messages)


@FUZZ
@given(text=st.one_of(st.text(), st.none()))
def test_form_date_time_and_number_parsers_return_none_for_garbage(text):
    assert forms.parse_date(text) is None or isinstance(forms.parse_date(text), date)
    assert forms.parse_time(text) is None or isinstance(forms.parse_time(text), time)
    assert forms.parse_int(text) is None or isinstance(forms.parse_int(text), int)
    assert isinstance(forms.parse_week(text, date(2026, 1, 5)), date)
    week, _why_not = parse_week(text)  # (Monday shown, notice when `text` was unusable)
    assert week.weekday() == 0


@FUZZ
@given(value=JSON)
def test_procore_timestamps_of_any_shape_parse_or_give_none(value):
    # One parser serves both the sync and the push (their columns refuse naive datetimes).
    parsed = mapping.parse_procore_time(value)
    assert parsed is None or (isinstance(parsed, datetime) and parsed.tzinfo is not None)


FACTS = st.builds(
    tc.EntryFacts,
    entry_id=st.integers(min_value=1, max_value=2**62),
    card_id=st.integers(min_value=1, max_value=2**62),
    work_date=st.dates(),
    hours=st.decimals(min_value=-1000, max_value=1000, places=4),
    start_time=st.one_of(st.none(), st.times()),
    end_time=st.one_of(st.none(), st.times()),
    break_minutes=st.integers(min_value=0, max_value=1440),
    work_type=st.sampled_from(list(tc.TIME_TYPE_CODES)),
    notes=st.one_of(st.none(), st.text()),
    mode=st.sampled_from([tc.HOURS, tc.START_STOP]),
    time_zone=st.one_of(
        st.sampled_from(["UTC", "America/Chicago", "Europe/Berlin", "", "America", "../x"]),
        st.text(max_size=20),
    ),
    origin_id=st.one_of(
        st.integers(min_value=0, max_value=2**53).map(str), st.just("crewclock-entry-9")
    ),
)
REFS = st.builds(
    tc.ProcoreRefs,
    project_id=st.integers(min_value=1),
    party_id=st.integers(min_value=1),
    cost_code_id=st.one_of(st.none(), st.integers(min_value=1)),
    time_type_id=st.one_of(st.none(), st.integers(min_value=1)),
    line_item_type_id=st.one_of(st.none(), st.integers(min_value=1)),
)


@FUZZ
@given(facts=FACTS, refs=REFS)
def test_entry_payload_either_builds_a_body_or_says_why_not(facts, refs):
    try:
        payload = tc.entry_payload(facts, refs)
    except tc.EntryNotSendable as refused:
        assert str(refused)
        return
    assert tc.origin_key(payload["origin_id"]) == tc.origin_key(facts.origin_id)
    assert str(tc.bulk_item(payload, 1)["origin_id"]) == str(payload["origin_id"])
    if facts.mode == tc.HOURS:
        assert Decimal("0") < Decimal(payload["hours"]) <= Decimal("24")
    else:
        assert payload["time_in"].startswith(facts.work_date.isoformat())
