"""Timecard entries: company- and project-level CRUD and lists, and the bulk creates.

Hours are computed from time_in/time_out/lunch_time when not given and always returned as a
string. Approved or completed entries are locked: any update or delete answers 422.
There is no sync endpoint and no origin_id upsert for timecard entries (as in Procore).

Where Procore's docs are unsure the sandbox takes the stricter reading:
- `origin_id` is an integer on the v1.0 endpoints (a JSON number; anything else is 422) and
  comes back as a number there; v1.1 bulk_create takes and returns strings.
- The company's time-entry setting (`projects_timecard_in_out_enabled`) decides the form the
  API accepts: with in/out on, time_in and time_out are required and `hours` is refused; with
  it off, `hours` is required and time_in/time_out/lunch_time are refused.
- time_in/time_out are stored after the company's rounding rules (hours recomputed from them).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from flask import jsonify, request

from procore_sandbox.api import bp
from procore_sandbox.api.common import (
    ApiError,
    ValidationError,
    apply_common_filters,
    as_origin_id,
    bad_request,
    id_list_filter,
    json_body,
    not_found,
    paginate,
    pick,
    scoped_company,
    source_app,
    wrapped,
)
from procore_sandbox.api.company_settings import in_out_enabled, round_time
from procore_sandbox.api.projects import _project_of
from procore_sandbox.context import current_store
from procore_sandbox.store import Store

ENTRY_FIELDS = (
    "date",
    "hours",
    "time_in",
    "time_out",
    "lunch_time",
    "billable",
    "description",
    "party_id",
    "login_information_id",
    "cost_code_id",
    "line_item_type_id",
    "timecard_time_type_id",
    "timesheet_id",
    "approval_status",
    "origin_id",
    "origin_data",
)
APPROVAL_STATUSES = ("pending", "reviewed", "approved", "completed")
LOCKED_STATUSES = ("approved", "completed")
BULK_CREATE_MAX = 25  # v1.1 project bulk_create
COMPANY_BULK_MAX = 100  # not documented by Procore; the sandbox picks a strict cap
TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
V1_0, V1_1 = "v1.0", "v1.1"
MAX_BIGINT = 2**63 - 1
START_STOP_FIELDS = ("time_in", "time_out", "lunch_time")
IN_OUT_ON = "cannot be set: this company's timesheets take start and stop times"
IN_OUT_OFF = "cannot be set: this company's timesheets take total hours"


def format_hours(value: Decimal) -> str:
    """Hours as Procore returns them: '8.0', '8.5', '7.75'."""
    value = value.quantize(Decimal("0.01"))
    if value == value.to_integral_value():
        return f"{value:.1f}"
    text = f"{value:.2f}".rstrip("0")
    return text


def _parse_time(value, day: str, field: str, errors: dict) -> str | None:
    """'08:00' (on the entry's date) or an ISO datetime -> 'YYYY-MM-DDTHH:MM:SSZ'."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    match = TIME_RE.match(text)
    if match:
        hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
        if hour > 23 or minute > 59 or second > 59:
            errors[field] = ["is not a valid time"]
            return None
        return f"{day}T{hour:02d}:{minute:02d}:{second:02d}Z"
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        errors[field] = ["is not a valid time"]
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def today(store: Store) -> str:
    """The sandbox clock's current date (UTC)."""
    return datetime.fromtimestamp(store.time(), UTC).date().isoformat()


def build_entry(
    store: Store,
    project: dict,
    attrs: dict,
    own: dict | None,
    *,
    require_date: bool,
    version: str = V1_0,
    enforce_mode: bool = True,
) -> dict:
    """Validate timecard attributes against the project and return the changes to store.

    `version` picks the origin_id type (integer on v1.0, string on v1.1); `enforce_mode`
    refuses the form the company's time-entry setting does not take (API calls do, the
    sandbox's own web form does not)."""
    if own is not None and own.get("approval_status") in LOCKED_STATUSES:
        raise ValidationError(
            {"base": [f"Timecard entry is {own['approval_status']} and cannot be changed"]}
        )
    attrs = pick(attrs, ENTRY_FIELDS)
    errors: dict[str, list[str]] = {}
    company_id = project["company_id"]
    clean: dict = {}

    if "date" in attrs and attrs["date"] not in (None, ""):
        try:
            clean["date"] = date.fromisoformat(str(attrs["date"])).isoformat()
        except ValueError:
            errors["date"] = ["is not a valid date"]
    elif require_date:
        errors["date"] = ["can't be blank"]
    elif own is None:
        clean["date"] = today(store)
    day = clean.get("date") or (own or {}).get("date") or today(store)

    if enforce_mode:
        _check_entry_form(store, company_id, attrs, own, errors)
    for field in ("time_in", "time_out"):
        if field in attrs:
            parsed = _parse_time(attrs[field], day, field, errors)
            clean[field] = round_time(store, company_id, parsed, field)
    if "lunch_time" in attrs:
        raw = attrs["lunch_time"]
        if raw in (None, ""):
            clean["lunch_time"] = None
        else:
            try:
                minutes = int(str(raw))
                if minutes < 0:
                    raise ValueError
                clean["lunch_time"] = minutes
            except ValueError:
                errors["lunch_time"] = ["must be a whole number of minutes"]
    if "hours" in attrs and attrs["hours"] not in (None, ""):
        try:
            hours = Decimal(str(attrs["hours"]))
            if not (Decimal(0) <= hours <= Decimal(24)):
                errors["hours"] = ["must be between 0 and 24"]
            else:
                clean["hours"] = format_hours(hours)
        except InvalidOperation:
            errors["hours"] = ["is not a number"]

    merged = {**(own or {}), **clean}
    time_in, time_out = merged.get("time_in"), merged.get("time_out")
    if time_in and time_out and not errors.get("time_in") and not errors.get("time_out"):
        span = _parse_iso(time_out) - _parse_iso(time_in)
        lunch = timedelta(minutes=merged.get("lunch_time") or 0)
        if span <= timedelta(0):
            errors["time_out"] = ["must be after time_in"]
        elif lunch >= span:
            errors["lunch_time"] = ["must be shorter than the time worked"]
        elif "hours" not in clean and (
            own is None or {"time_in", "time_out", "lunch_time"} & set(clean)
        ):
            clean["hours"] = format_hours(Decimal((span - lunch).total_seconds()) / 3600)
    if (
        own is None
        and "hours" not in clean
        and not {"hours", "time_in", "time_out", "lunch_time"} & set(errors)
    ):
        errors["hours"] = ["can't be blank (send hours, or time_in and time_out)"]

    references = {
        "party_id": ("people", {"company_id": company_id}),
        "login_information_id": ("users", {"company_id": company_id}),
        "cost_code_id": ("cost_codes", {"project_id": project["id"]}),
        "line_item_type_id": ("line_item_types", {"company_id": company_id}),
        "timecard_time_type_id": ("time_types", {"company_id": company_id}),
        "timesheet_id": ("timesheets", {"project_id": project["id"]}),
    }
    for field, (table, scope) in references.items():
        if field not in attrs:
            continue
        value = attrs[field]
        if value in (None, ""):
            clean[field] = None
            continue
        try:
            row = store.get(table, int(value))
        except (TypeError, ValueError):
            row = None
        if row is None or any(row.get(k) != v for k, v in scope.items()):
            errors[field] = ["does not exist"]
        else:
            clean[field] = row["id"]

    if "approval_status" in attrs:
        if attrs["approval_status"] not in APPROVAL_STATUSES:
            errors["approval_status"] = ["is not included in the list"]
        else:
            clean["approval_status"] = attrs["approval_status"]
    if "billable" in attrs:
        clean["billable"] = bool(attrs["billable"])
    for field in ("description", "origin_data"):
        if field in attrs:
            clean[field] = None if attrs[field] is None else str(attrs[field])
    if "origin_id" in attrs:
        if version == V1_0:
            clean["origin_id"] = _integer_origin_id(attrs["origin_id"], errors)
        else:
            clean["origin_id"] = as_origin_id(attrs["origin_id"])
    if errors:
        raise ValidationError(errors)
    return clean


def _given(attrs: dict, field: str) -> bool:
    return field in attrs and attrs[field] not in (None, "")


def _check_entry_form(store: Store, company_id: int, attrs: dict, own, errors: dict) -> None:
    """Refuse the form the company's time-entry setting does not take."""
    if in_out_enabled(store, company_id):
        if _given(attrs, "hours"):
            errors["hours"] = [f"{IN_OUT_ON} (time_in, time_out, lunch_time)"]
        if own is None:
            for field in ("time_in", "time_out"):
                if not _given(attrs, field):
                    errors[field] = ["can't be blank: this company's timesheets take start "
                                     "and stop times"]  # fmt: skip
    else:
        for field in START_STOP_FIELDS:
            if _given(attrs, field):
                errors[field] = [f"{IN_OUT_OFF} (hours)"]


def _integer_origin_id(value, errors: dict) -> str | None:
    """A v1.0 origin_id: a JSON integer (stored as its decimal text), or null."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        errors["origin_id"] = ["must be an integer"]
        return None
    if not 0 <= value <= MAX_BIGINT:
        errors["origin_id"] = ["is out of range"]
        return None
    return str(value)


def _origin_for(value, version: str):
    """The stored origin_id as the API version shows it (a number on v1.0 when it is one)."""
    if version == V1_0 and isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def new_entry_record(project: dict, clean: dict, created_by_id: int | None) -> dict:
    """A full timecard-entry record from validated attributes."""
    record = {
        "company_id": project["company_id"],
        "project_id": project["id"],
        "date": None,
        "hours": None,
        "time_in": None,
        "time_out": None,
        "lunch_time": None,
        "billable": False,
        "description": None,
        "party_id": None,
        "login_information_id": None,
        "cost_code_id": None,
        "line_item_type_id": None,
        "timecard_time_type_id": None,
        "timesheet_id": None,
        "approval_status": "pending",
        "origin_id": None,
        "origin_data": None,
        "created_by_id": created_by_id,
        "deleted_at": None,
        "in_progress": False,
    }
    record.update(clean)
    return record


def create_entry(
    store,
    project,
    attrs,
    *,
    require_date,
    source_app_id=None,
    created_by=None,
    enforce_mode=True,
    version=V1_0,
):
    """Validate and add one timecard entry (through v1.0, or the web form)."""
    clean = build_entry(
        store,
        project,
        attrs,
        None,
        require_date=require_date,
        enforce_mode=enforce_mode,
        version=version,
    )
    record = new_entry_record(project, clean, created_by)
    return store.insert("timecard_entries", record, source_application_id=source_app_id)


def update_entry(
    store, entry, attrs, *, require_date, source_app_id=None, enforce_mode=True, version=V1_0
):
    """Validate and apply a partial update (422 when the entry is approved/completed)."""
    project = store.get("projects", entry["project_id"])
    clean = build_entry(
        store,
        project,
        attrs,
        entry,
        require_date=require_date,
        enforce_mode=enforce_mode,
        version=version,
    )
    return store.update("timecard_entries", entry["id"], clean, source_application_id=source_app_id)


def delete_entry(store, entry, source_app_id=None) -> None:
    """Delete an entry (422 when approved/completed)."""
    if entry.get("approval_status") in LOCKED_STATUSES:
        raise ValidationError(
            {"base": [f"Timecard entry is {entry['approval_status']} and cannot be deleted"]}
        )
    store.delete("timecard_entries", entry["id"], source_application_id=source_app_id)


# -- serialization -----------------------------------------------------------------------
def _person_name(row: dict | None) -> str | None:
    if row is None:
        return None
    return " ".join(p for p in (row.get("first_name"), row.get("last_name")) if p)


def serialize_entry(entry: dict, store: Store | None = None, version: str = V1_0) -> dict:
    """A timecard entry with its nested objects (project and company shapes combined)."""
    store = store or current_store()
    code = store.get("cost_codes", entry["cost_code_id"]) if entry.get("cost_code_id") else None
    time_type = (
        store.get("time_types", entry["timecard_time_type_id"])
        if entry.get("timecard_time_type_id")
        else None
    )
    party = store.get("people", entry["party_id"]) if entry.get("party_id") else None
    login = (
        store.get("users", entry["login_information_id"])
        if entry.get("login_information_id")
        else None
    )
    creator = store.get("users", entry["created_by_id"]) if entry.get("created_by_id") else None
    project = store.get("projects", entry["project_id"])
    return {
        "id": entry["id"],
        "date": entry["date"],
        "datetime": f"{entry['date']}T00:00:00Z" if entry.get("date") else None,
        "hours": entry["hours"],
        "time_in": entry.get("time_in"),
        "time_out": entry.get("time_out"),
        "lunch_time": entry.get("lunch_time"),
        "billable": entry.get("billable", False),
        "description": entry.get("description"),
        "approval_status": entry.get("approval_status", "pending"),
        "in_progress": entry.get("in_progress", False),
        "timecard_type": "timecard",
        "origin_id": _origin_for(entry.get("origin_id"), version),
        "origin_data": entry.get("origin_data"),
        "line_item_type_id": entry.get("line_item_type_id"),
        "cost_code": (
            {
                "id": code["id"],
                "name": code["name"],
                "full_code": code["full_code"],
                "long_name": f"{code['full_code']} - {code['name']}",
                "sortable_code": code["full_code"],
            }
            if code
            else None
        ),
        "timecard_time_type": (
            {
                "id": time_type["id"],
                "abbreviated_time_type": time_type["abbreviated_time_type"],
                "company_id": time_type["company_id"],
                "global": time_type.get("global", False),
                "time_type": time_type["time_type"],
            }
            if time_type
            else None
        ),
        "timesheet": None,
        "party": {"id": party["id"], "name": _person_name(party)} if party else None,
        "login_information": (
            {"id": login["id"], "login": login.get("email_address"), "name": _person_name(login)}
            if login
            else None
        ),
        "created_by": (
            {
                "id": creator["id"],
                "login": creator.get("email_address"),
                "name": _person_name(creator),
            }
            if creator
            else None
        ),
        "project": {"id": project["id"], "name": project["name"]} if project else None,
        "permissions": {
            "can_update": entry.get("approval_status") not in LOCKED_STATUSES,
            "can_delete": entry.get("approval_status") not in LOCKED_STATUSES,
        },
        "created_at": entry["created_at"],
        "updated_at": entry["updated_at"],
        "deleted_at": entry.get("deleted_at"),
    }


# -- helpers -----------------------------------------------------------------------------
def _created_by() -> int | None:
    from flask import g

    return g.token.get("user_id")


def _entry_in(scope_key: str, scope_id: int, entry_id: int) -> dict:
    entry = current_store().get("timecard_entries", entry_id)
    if entry is None or entry[scope_key] != scope_id:
        raise not_found("Timecard entry")
    return entry


def _date_arg(name: str) -> str | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise bad_request(f"{name} must be a date YYYY-MM-DD") from None


def _sorted(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda e: (e["date"] or "", e["id"]))


# -- company level -----------------------------------------------------------------------
@bp.get("/v1.0/companies/<int:company_id>/timecard_entries")
def list_company_entries(company_id: int):
    """Company-wide entries; start_date/end_date, filters[id], [party_id], [updated_at]."""
    company_id = scoped_company(company_id)
    store = current_store()
    rows = store.select("timecard_entries", company_id=company_id)
    start, end = _date_arg("start_date"), _date_arg("end_date")
    if start:
        rows = [e for e in rows if e["date"] >= start]
    if end:
        rows = [e for e in rows if e["date"] <= end]
    parties = id_list_filter("party_id")
    if parties is not None:
        rows = [e for e in rows if e.get("party_id") in parties]
    if request.args.get("filters[include_in_progress]") != "true":
        rows = [e for e in rows if not e.get("in_progress")]
    rows = apply_common_filters(rows, ids=True)
    return paginate(_sorted(rows), lambda e: serialize_entry(e, store))


@bp.get("/v1.0/companies/<int:company_id>/timecard_entries/<int:entry_id>")
def show_company_entry(company_id: int, entry_id: int):
    """One entry of the company."""
    entry = _entry_in("company_id", scoped_company(company_id), entry_id)
    return jsonify(serialize_entry(entry))


def _project_from_body(company_id: int, body: dict, inner: dict) -> dict:
    raw = body.get("project_id", inner.get("project_id"))
    if raw in (None, ""):
        raise bad_request("project_id is required")
    try:
        return _project_of(company_id, int(raw))
    except (TypeError, ValueError):
        raise not_found("Project") from None


@bp.post("/v1.0/companies/<int:company_id>/timecard_entries")
def create_company_entry(company_id: int):
    """Create: body {project_id, timecard_entry: {date (required), ...}} -> 201 / 422."""
    company_id = scoped_company(company_id)
    body = json_body()
    inner = wrapped(body, "timecard_entry")
    project = _project_from_body(company_id, body, inner)
    entry = create_entry(
        current_store(),
        project,
        inner,
        require_date=True,
        source_app_id=source_app(),
        created_by=_created_by(),
    )
    return jsonify(serialize_entry(entry)), 201


@bp.patch("/v1.0/companies/<int:company_id>/timecard_entries/<int:entry_id>")
def update_company_entry(company_id: int, entry_id: int):
    """Update: `date` is required in the inner object here; 422 when locked."""
    company_id = scoped_company(company_id)
    entry = _entry_in("company_id", company_id, entry_id)
    body = json_body()
    inner = wrapped(body, "timecard_entry")
    updated = update_entry(
        current_store(), entry, inner, require_date=True, source_app_id=source_app()
    )
    return jsonify(serialize_entry(updated))


@bp.delete("/v1.0/companies/<int:company_id>/timecard_entries/<int:entry_id>")
def delete_company_entry(company_id: int, entry_id: int):
    """Delete: 200, or 422 when approved/completed."""
    entry = _entry_in("company_id", scoped_company(company_id), entry_id)
    delete_entry(current_store(), entry, source_app())
    return jsonify({}), 200


# -- project level -----------------------------------------------------------------------
def _header_project(project_id: int) -> dict:
    from flask import g

    return _project_of(g.company_id, project_id)


@bp.get("/v1.0/projects/<int:project_id>/timecard_entries")
def list_project_entries(project_id: int):
    """Project entries: log_date, or start_date + end_date; today only without them."""
    project = _header_project(project_id)
    store = current_store()
    log_date, start, end = _date_arg("log_date"), _date_arg("start_date"), _date_arg("end_date")
    if log_date:
        start = end = log_date
    elif bool(start) != bool(end):
        raise bad_request("start_date and end_date must be given together")
    elif not start:
        start = end = today(store)
    rows = [
        e
        for e in store.select("timecard_entries", project_id=project["id"])
        if start <= e["date"] <= end and not e.get("in_progress")
    ]
    created_by = id_list_filter("created_by_id")
    if created_by is not None:
        rows = [e for e in rows if e.get("created_by_id") in created_by]
    return paginate(_sorted(rows), lambda e: serialize_entry(e, store))


@bp.get("/v1.0/projects/<int:project_id>/timecard_entries/<int:entry_id>")
def show_project_entry(project_id: int, entry_id: int):
    """One entry of the project."""
    project = _header_project(project_id)
    return jsonify(serialize_entry(_entry_in("project_id", project["id"], entry_id)))


@bp.post("/v1.0/projects/<int:project_id>/timecard_entries")
def create_project_entry(project_id: int):
    """Create: body {timecard_entry: {...}}; date defaults to today -> 201 / 422."""
    project = _header_project(project_id)
    inner = wrapped(json_body(), "timecard_entry")
    entry = create_entry(
        current_store(),
        project,
        inner,
        require_date=False,
        source_app_id=source_app(),
        created_by=_created_by(),
    )
    return jsonify(serialize_entry(entry)), 201


@bp.patch("/v1.0/projects/<int:project_id>/timecard_entries/<int:entry_id>")
def update_project_entry(project_id: int, entry_id: int):
    """Partial update; 422 when approved/completed."""
    project = _header_project(project_id)
    entry = _entry_in("project_id", project["id"], entry_id)
    inner = wrapped(json_body(), "timecard_entry")
    updated = update_entry(
        current_store(), entry, inner, require_date=False, source_app_id=source_app()
    )
    return jsonify(serialize_entry(updated))


@bp.delete("/v1.0/projects/<int:project_id>/timecard_entries/<int:entry_id>")
def delete_project_entry(project_id: int, entry_id: int):
    """Delete: 200 with an empty body, or 422 when approved/completed."""
    project = _header_project(project_id)
    entry = _entry_in("project_id", project["id"], entry_id)
    delete_entry(current_store(), entry, source_app())
    return "", 200


# -- bulk creates ------------------------------------------------------------------------
def _bulk_validate(items, limit: int, resolve_project, require_date: bool, version: str):
    """Validate every item first (all or nothing); returns [(project, clean)]."""
    if not isinstance(items, list) or not items:
        raise bad_request("timecard_entries must be a non-empty array")
    if len(items) > limit:
        raise bad_request(f"Too many timecard entries: at most {limit} per request")
    store = current_store()
    prepared, failures = [], []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ValidationError({"base": ["must be an object"]})
            project = resolve_project(item)
            prepared.append(
                (
                    project,
                    build_entry(
                        store, project, item, None, require_date=require_date, version=version
                    ),
                )
            )
        except ApiError as exc:
            errors = exc.body.get("errors") if isinstance(exc.body, dict) else None
            failures.append({"index": index, "errors": errors or {"base": [str(exc)]}})
    if failures:
        raise ApiError(422, "Validation failed", {"errors": failures})
    return prepared


@bp.post("/v1.1/projects/<int:project_id>/project_timecard_entries/bulk_create")
def bulk_create_project_entries(project_id: int):
    """Up to 25 entries, each naming this project_id -> 201 {"timecard_entries": [...]}."""
    project = _header_project(project_id)

    def resolve(item):
        if item.get("project_id") in (None, ""):
            raise ValidationError({"project_id": ["can't be blank"]})
        if str(item["project_id"]) != str(project["id"]):
            raise ValidationError({"project_id": ["must be the project in the path"]})
        return project

    prepared = _bulk_validate(
        json_body().get("timecard_entries"),
        BULK_CREATE_MAX,
        resolve,
        require_date=False,
        version=V1_1,
    )
    store = current_store()
    created = [
        store.insert(
            "timecard_entries",
            new_entry_record(p, clean, _created_by()),
            source_application_id=source_app(),
        )
        for p, clean in prepared
    ]
    body = {"timecard_entries": [serialize_entry(e, store, V1_1) for e in created]}
    return jsonify(body), 201


@bp.post("/v1.0/companies/<int:company_id>/timesheets")
def bulk_create_company_entries(company_id: int):
    """Company bulk create: each entry names project_id and date -> 200 [entries]."""
    company_id = scoped_company(company_id)

    def resolve(item):
        if "user_id" in item and "login_information_id" not in item:
            item["login_information_id"] = item["user_id"]  # the bulk form's name for it
        if item.get("project_id") in (None, ""):
            raise ValidationError({"project_id": ["can't be blank"]})
        try:
            return _project_of(company_id, int(item["project_id"]))
        except (TypeError, ValueError):
            raise ValidationError({"project_id": ["does not exist"]}) from None
        except ApiError:
            raise ValidationError({"project_id": ["does not exist"]}) from None

    prepared = _bulk_validate(
        json_body().get("timecard_entries"),
        COMPANY_BULK_MAX,
        resolve,
        require_date=True,
        version=V1_0,
    )
    store = current_store()
    created = [
        store.insert(
            "timecard_entries",
            new_entry_record(p, clean, _created_by()),
            source_application_id=source_app(),
        )
        for p, clean in prepared
    ]
    return jsonify([serialize_entry(e, store) for e in created])
