"""Pure functions between our time entries and Procore timecard entries (no I/O).

The push service gathers plain facts (our entry, the Procore ids it maps to) and these
functions turn them into request bodies, hashes and readable reasons, so every rule here is
testable without a database or a network.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Rows queued before origin ids became integers carry "crewclock-entry-<entry id>"; they are
# still recognised in lookups, and get an integer id the next time they are sent.
ORIGIN_PREFIX = "crewclock-entry-"
# Timecard origin ids are integers (Procore's v1.0 timecard schemas declare origin_id as an
# int; its v1.1 bulk_create takes the same digits as a string). One id is
#     namespace * 10**9 + entry id
# where the namespace is a random 6-digit number made once per Crewclock company row and
# stored with its integration settings. Entry ids are unique within an install, so ids of one
# install never repeat; the random namespace keeps two installs that push into one Procore
# company (where origin ids must be unique) apart. The largest id, 999_999_999_999_999
# (< 10**15), stays far below 2**53, so every JSON reader keeps it exact; the id reads as the
# namespace followed by the zero-padded entry id.
ORIGIN_ENTRY_SPACE = 10**9
ORIGIN_NAMESPACES = (100_000, 1_000_000)  # [low, high)
# Our work types -> Procore's abbreviated timecard time types (the `abbreviated_time_type`
# of Procore's timecard_time_types, e.g. "REG" for Regular Time).
TIME_TYPE_CODES = {"regular": "REG", "overtime": "OT", "double_time": "DT"}
BULK_CREATE_MAX = 25  # v1.1 project_timecard_entries/bulk_create takes at most 25 entries
HOURS = "hours"
START_STOP = "start_stop"


class EntryNotSendable(Exception):
    """The entry cannot be expressed as a Procore timecard entry; str() says why."""


@dataclass(frozen=True)
class EntryFacts:
    """What the push needs to know about one of our time entries."""

    entry_id: int
    card_id: int
    work_date: date
    hours: Decimal
    start_time: time | None
    end_time: time | None
    break_minutes: int
    work_type: str
    notes: str | None
    mode: str  # the form Procore takes: "hours" or "start_stop"
    time_zone: str  # the worker's zone; start/stop times are wall-clock times there
    origin_id: str = ""  # the outbox row's origin id (digits, or a legacy string)
    # Why start/stop is wanted, for the reason shown when the entry has only hours.
    mode_source: str = "project"  # "procore" (its time-entry setting) or "project"


@dataclass(frozen=True)
class ProcoreRefs:
    """The Procore ids the entry maps to."""

    project_id: int
    party_id: int
    cost_code_id: int | None = None
    time_type_id: int | None = None
    line_item_type_id: int | None = None


def new_origin_namespace() -> int:
    """A random namespace for a company row's timecard origin ids (made once, then stored)."""
    low, high = ORIGIN_NAMESPACES
    return low + secrets.randbelow(high - low)


def origin_id_for(entry_id: int, namespace: int) -> str:
    """The stable origin_id Procore stores for our entry (the key of every lookup), as the
    digits kept on the outbox row."""
    if not 0 < entry_id < ORIGIN_ENTRY_SPACE:
        raise ValueError(f"entry id {entry_id} does not fit in a timecard origin id")
    low, high = ORIGIN_NAMESPACES
    if not low <= namespace < high:
        raise ValueError(f"origin namespace {namespace} is out of range")
    return str(namespace * ORIGIN_ENTRY_SPACE + entry_id)


def origin_key(value: object) -> str | None:
    """An origin_id as Procore echoed it (number or string) in one comparable form."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text:
        return None
    if text.isdigit():
        return str(int(text))
    return text


def origin_value(origin_id: str | None) -> int | str | None:
    """The origin_id as a v1.0 body carries it: a number when it is one."""
    key = origin_key(origin_id)
    return int(key) if key is not None and key.isdigit() else key


def is_integer_origin(origin_id: str | None) -> bool:
    """Whether an outbox row's origin id is of the integer kind (not a legacy string)."""
    key = origin_key(origin_id)
    return key is not None and key.isdigit()


def entry_id_from_origin(origin_id: object, namespace: int | None = None) -> int | None:
    """Our entry id from an origin_id we wrote (legacy form, or this company's namespace)."""
    key = origin_key(origin_id)
    if key is None:
        return None
    if key.startswith(ORIGIN_PREFIX):
        tail = key[len(ORIGIN_PREFIX) :]
        return int(tail) if tail.isdigit() else None
    if namespace is not None and key.isdigit():
        high, entry_id = divmod(int(key), ORIGIN_ENTRY_SPACE)
        if high == namespace and entry_id:
            return entry_id
    return None


def _wall_time(day: date, moment: time, zone: str) -> str:
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name like "America"
        tz = ZoneInfo("UTC")
    return datetime.combine(day, moment, tzinfo=tz).isoformat(timespec="seconds")


def entry_payload(facts: EntryFacts, refs: ProcoreRefs) -> dict:
    """The `timecard_entry` object for a create or update of this entry."""
    payload: dict = {
        "date": facts.work_date.isoformat(),
        "party_id": refs.party_id,
        "timecard_time_type_id": refs.time_type_id,
        "cost_code_id": refs.cost_code_id,
        "description": facts.notes or "",
        "origin_id": origin_value(facts.origin_id),
        "origin_data": f"Crewclock time card {facts.card_id}, entry {facts.entry_id}",
    }
    if refs.line_item_type_id is not None:
        payload["line_item_type_id"] = refs.line_item_type_id
    if facts.mode == START_STOP:
        if facts.start_time is None or facts.end_time is None:
            raise EntryNotSendable(START_STOP_NEEDED[facts.mode_source])
        payload["time_in"] = _wall_time(facts.work_date, facts.start_time, facts.time_zone)
        payload["time_out"] = _wall_time(facts.work_date, facts.end_time, facts.time_zone)
        payload["lunch_time"] = str(int(facts.break_minutes or 0))
    else:
        hours = Decimal(facts.hours).quantize(Decimal("0.01"))
        if hours <= 0 or hours > 24:
            raise EntryNotSendable(f"Procore accepts 0 to 24 hours per entry, not {hours}.")
        payload["hours"] = str(hours)
    return payload


START_STOP_NEEDED = {
    "procore": (
        "Procore's timesheets take start and stop times (its time-entry setting), but this "
        "entry has only hours, so it was not sent. Add a start and end time to the entry."
    ),
    "project": (
        "This project records start and stop times in Procore, but the entry has only "
        "hours. Add a start and end time to the entry."
    ),
}


def bulk_item(payload: dict, procore_project_id: int) -> dict:
    """One element of a v1.1 bulk_create body (each item names its project; v1.1 takes the
    origin_id as a string)."""
    item = {"project_id": procore_project_id, **payload}
    if item.get("origin_id") is not None:
        item["origin_id"] = str(item["origin_id"])
    return item


def payload_hash(payload: dict) -> str:
    """A stable hash of what we send (unchanged hash = nothing to update)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def find_by_origin(entries: Iterable[dict], origin_id: object) -> dict | None:
    """The Procore entry carrying our origin_id, if any (Procore may echo a number or a
    string: both compare by their digits)."""
    wanted = origin_key(origin_id)
    if wanted is None:
        return None
    for entry in entries:
        if isinstance(entry, dict) and origin_key(entry.get("origin_id")) == wanted:
            return entry
    return None


def index_by_origin(entries: Iterable[dict]) -> dict[str, dict]:
    """{origin key: entry} for the entries that carry an origin_id."""
    found = {}
    for entry in entries:
        if isinstance(entry, dict):
            key = origin_key(entry.get("origin_id"))
            if key is not None:
                found.setdefault(key, entry)
    return found


def _record_id(value: object) -> int | None:
    """A Procore record id, or None for anything that is not a plain int."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def time_type_ids(time_types: Iterable[dict]) -> dict[str, int]:
    """{"REG": id, "OT": id, "DT": id} from a time-type list (malformed rows skipped)."""
    found: dict[str, int] = {}
    for row in time_types:
        code = row.get("abbreviated_time_type")
        code = code.upper() if isinstance(code, str) else ""
        row_id = _record_id(row.get("id"))
        if code and row_id is not None and code not in found:
            found[code] = row_id
    return found


def time_type_code(work_type: str) -> str:
    """Procore's abbreviation for our work type."""
    return TIME_TYPE_CODES[str(work_type)]


def project_cost_code_id(
    project_codes: Iterable[dict], standard_cost_code_id: int | None, full_code: str | None
) -> int | None:
    """The project's cost code made from the linked standard code (or with the same code)."""
    by_code = None
    for row in project_codes:
        if row.get("deleted_at") or _record_id(row.get("id")) is None:
            continue
        if standard_cost_code_id is not None and row.get("standard_cost_code_id") == (
            standard_cost_code_id
        ):
            return row["id"]
        if full_code and by_code is None and (row.get("full_code") or row.get("code")) == full_code:
            by_code = row["id"]
    return by_code


def cost_code_segment(full_code: str) -> str:
    """The last segment of a code: Procore's create takes '300' for '03-300'."""
    return full_code.rsplit("-", 1)[-1] if "-" in full_code else full_code


def cost_code_parts(full_code: str, parent_code: str | None = None) -> tuple[str | None, str]:
    """(the parent's full code, or None for a root; the segment Procore's create takes).

    Procore builds a project code's full code as its parent's full code + "-" + the segment,
    so '03-300' is created as '300' under '03'. A known parent whose code prefixes ours wins
    (for '03-300-010' under '03-300' the segment is '010'); otherwise the parent is what
    comes before the last '-'.
    """
    full_code = full_code.strip()
    if (
        parent_code
        and full_code.startswith(f"{parent_code}-")
        and len(full_code) > len(parent_code) + 1
    ):
        return parent_code, full_code[len(parent_code) + 1 :]
    if "-" not in full_code.strip("-"):
        return None, full_code
    return full_code.rsplit("-", 1)[0], cost_code_segment(full_code)


def party_ids_by_user(people: Iterable[dict]) -> dict[int, int]:
    """{procore user id: person id (party_id)} for people that have a login."""
    return {
        p["user_id"]: p["id"]
        for p in people
        if _record_id(p.get("user_id")) is not None and _record_id(p.get("id")) is not None
    }


def is_locked_error(body: object) -> bool:
    """Whether a 422 body says the entry is approved/completed (locked) in Procore."""
    text = json.dumps(body, default=str).lower() if body is not None else ""
    return any(word in text for word in ("approved", "completed", "locked"))


def describe_errors(body: object) -> str:
    """A readable one-liner from a Procore error body (v1 field map, v2, or message)."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, dict):
            parts = []
            for field, messages in errors.items():
                if isinstance(messages, list):
                    messages = ", ".join(str(m) for m in messages)
                parts.append(str(messages) if field == "base" else f"{field} {messages}")
            if parts:
                return "; ".join(parts)
        if isinstance(errors, list) and errors:
            return "; ".join(describe_errors(e) for e in errors)
        if isinstance(errors, str):
            return errors
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error.get("code") or error)
        if body.get("message"):
            return str(body["message"])
        if error:
            return str(error)
    if isinstance(body, str) and body.strip():
        return body.strip()[:300]
    return "Procore refused the entry"


# ---------------------- Procore-side edits (describing a conflict between the two copies)
# How each field we send reads in a conflict reason; ids show no value (a bare id says
# nothing to a person), times and numbers do.
FIELD_LABELS = {
    "date": ("date", True),
    "hours": ("hours", True),
    "time_in": ("start", True),
    "time_out": ("end", True),
    "lunch_time": ("break minutes", True),
    "description": ("notes", True),
    "party_id": ("worker", False),
    "cost_code_id": ("cost code", False),
    "timecard_time_type_id": ("time type", False),
    "line_item_type_id": ("line item type", False),
    "origin_id": ("origin id", False),
    "origin_data": ("origin data", False),
}
CHANGED_IN_PROCORE = "Changed in Procore since it was sent"


def _nested_id(entry: dict, name: str) -> int | None:
    nested = entry.get(name)
    if isinstance(nested, dict):
        return _record_id(nested.get("id"))
    return _record_id(entry.get(f"{name}_id"))


def _local_wall_time(value: object, zone: str) -> str | None:
    """Procore's UTC datetime as the worker's wall time, written as entry_payload writes it."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        tz = ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError, OSError):
        return str(value)
    if moment.tzinfo is None:
        return str(value)
    return moment.astimezone(tz).isoformat(timespec="seconds")


def procore_as_payload(entry: dict, time_zone: str, with_line_item_type: bool = True) -> dict:
    """Procore's copy of an entry written as the payload we would have sent to get it.

    Hashing this with payload_hash() gives our last payload's hash exactly when nobody
    changed, in Procore, any field we send (fields we never send are not compared).
    """
    payload: dict = {
        "date": entry.get("date"),
        "party_id": _nested_id(entry, "party"),
        "timecard_time_type_id": _nested_id(entry, "timecard_time_type"),
        "cost_code_id": _nested_id(entry, "cost_code"),
        "description": entry.get("description") or "",
        "origin_id": origin_value(origin_key(entry.get("origin_id"))),
        "origin_data": entry.get("origin_data"),
    }
    if with_line_item_type and entry.get("line_item_type_id") is not None:
        payload["line_item_type_id"] = entry["line_item_type_id"]
    if entry.get("time_in") and entry.get("time_out"):
        payload["time_in"] = _local_wall_time(entry["time_in"], time_zone)
        payload["time_out"] = _local_wall_time(entry["time_out"], time_zone)
        payload["lunch_time"] = str(int(entry.get("lunch_time") or 0))
    else:
        try:
            payload["hours"] = str(Decimal(str(entry.get("hours"))).quantize(Decimal("0.01")))
        except ArithmeticError:
            payload["hours"] = entry.get("hours")
    return payload


def procore_payload_hashes(entry: dict, time_zone: str) -> set[str]:
    """The payload hashes Procore's copy matches: with and without its line item type (a
    type Procore filled in by itself, when we sent none, is not a change to our fields)."""
    return {
        payload_hash(procore_as_payload(entry, time_zone, with_line_item_type=True)),
        payload_hash(procore_as_payload(entry, time_zone, with_line_item_type=False)),
    }


def procore_state_hash(entry: dict) -> str | None:
    """A hash of Procore's copy of an entry, field by field as Procore holds them (no time
    zone, no rounding guessed): equal hashes mean nobody changed it in between."""
    if not isinstance(entry, dict) or entry.get("id") is None:
        return None
    try:
        hours = str(Decimal(str(entry.get("hours"))).quantize(Decimal("0.01")))
    except ArithmeticError:
        hours = entry.get("hours")
    state = {
        "date": entry.get("date"),
        "party_id": _nested_id(entry, "party"),
        "timecard_time_type_id": _nested_id(entry, "timecard_time_type"),
        "cost_code_id": _nested_id(entry, "cost_code"),
        "line_item_type_id": entry.get("line_item_type_id"),
        "description": entry.get("description") or "",
        "origin_id": origin_key(entry.get("origin_id")),
        "origin_data": entry.get("origin_data"),
        "hours": hours,
        "time_in": _utc_text(entry.get("time_in")),
        "time_out": _utc_text(entry.get("time_out")),
        "lunch_time": str(int(entry.get("lunch_time") or 0)),
    }
    return payload_hash(state)


def procore_hours(entry: dict) -> Decimal | None:
    """The hours Procore holds for an entry, or None when it gives none readable."""
    try:
        return Decimal(str(entry.get("hours"))).quantize(Decimal("0.01"))
    except (ArithmeticError, AttributeError):
        return None


def _utc_text(value: object) -> str | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        return moment.isoformat()
    return moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def changed_in_procore_reason(theirs: dict, ours: dict | None) -> str:
    """The conflict reason: which of our fields differ between Procore's copy and this edit."""
    if ours is None:
        return (
            f"{CHANGED_IN_PROCORE}, so it was not removed. Check it in Procore; 'Retry' "
            "removes it anyway."
        )
    parts = []
    for key, (label, show) in FIELD_LABELS.items():
        if theirs.get(key) == ours.get(key):
            continue
        if show:
            parts.append(
                f"{label}: Procore {_shown(theirs.get(key))}, here {_shown(ours.get(key))}"
            )
        else:
            parts.append(f"{label} differs")
    detail = f" ({'; '.join(parts)})" if parts else ""
    return (
        f"{CHANGED_IN_PROCORE}{detail}; resolve before re-sending: edit the entry here to "
        "match Procore, or 'Retry' to send this version."
    )


def _shown(value: object) -> str:
    if value in (None, ""):
        return "(empty)"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
