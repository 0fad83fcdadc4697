"""Company settings that shape timecard entries: the time-entry setting and rounding rules.

`GET /rest/v1.0/company_configuration` shows `projects_timecard_in_out_enabled` (whether
timesheets take start/stop times or total hours) and
`GET /rest/v1.0/companies/{id}/rounding_configuration` shows how clock-in/out times are
rounded. Both are kept on the company record and set through the control API
(`/_sandbox/companies/<id>/settings`) or by a seed; a company without them has in/out off
and no rounding.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from flask import g, jsonify

from procore_sandbox.api import bp
from procore_sandbox.api.common import not_found, scoped_company
from procore_sandbox.context import current_store
from procore_sandbox.store import Store

ROUNDING_MODES = ("nearest", "up", "down")
DEFAULT_ROUNDING = {
    "enabled": False,
    "interval_minutes": 15,
    "time_in_rounding": "nearest",
    "time_out_rounding": "nearest",
}


def in_out_enabled(store: Store, company_id: int) -> bool:
    """Whether the company's timesheets take start/stop times (else total hours)."""
    company = store.get("companies", company_id) or {}
    return bool(company.get("projects_timecard_in_out_enabled", False))


def rounding_configuration(store: Store, company_id: int) -> dict:
    """The company's rounding rules (defaults filled in)."""
    company = store.get("companies", company_id) or {}
    return {**DEFAULT_ROUNDING, **(company.get("rounding_configuration") or {})}


def check_rounding(value) -> dict:
    """A rounding configuration from the control API; ValueError says what is wrong."""
    if not isinstance(value, dict):
        raise ValueError("rounding_configuration must be an object")
    unknown = set(value) - set(DEFAULT_ROUNDING)
    if unknown:
        raise ValueError(f"unknown rounding fields: {', '.join(sorted(unknown))}")
    merged = {**DEFAULT_ROUNDING, **value}
    if not isinstance(merged["enabled"], bool):
        raise ValueError("enabled must be true or false")
    interval = merged["interval_minutes"]
    if isinstance(interval, bool) or not isinstance(interval, int) or not 1 <= interval <= 60:
        raise ValueError("interval_minutes must be a whole number from 1 to 60")
    for key in ("time_in_rounding", "time_out_rounding"):
        if merged[key] not in ROUNDING_MODES:
            raise ValueError(f"{key} must be one of {', '.join(ROUNDING_MODES)}")
    return merged


def round_time(store: Store, company_id: int, value: str | None, field: str) -> str | None:
    """A stored 'YYYY-MM-DDTHH:MM:SSZ' after the company's rounding rules."""
    rules = rounding_configuration(store, company_id)
    if value is None or not rules["enabled"]:
        return value
    moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    step = rules["interval_minutes"] * 60
    seconds = moment.timestamp() / step
    mode = rules["time_in_rounding" if field == "time_in" else "time_out_rounding"]
    if mode == "up":
        steps = math.ceil(seconds)
    elif mode == "down":
        steps = math.floor(seconds)
    else:
        steps = math.floor(seconds + 0.5)  # half-way rounds up, like a punch clock
    return datetime.fromtimestamp(steps * step, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@bp.get("/v1.0/company_configuration")
def company_configuration():
    """The header company's configuration (the timesheet time-entry setting)."""
    store = current_store()
    company = store.get("companies", g.company_id)
    if company is None:
        raise not_found("Company")
    return jsonify(
        {
            "id": company["id"],
            "projects_timecard_in_out_enabled": in_out_enabled(store, company["id"]),
        }
    )


@bp.get("/v1.0/companies/<int:company_id>/rounding_configuration")
def show_rounding_configuration(company_id: int):
    """The company's clock-in/out rounding rules."""
    company_id = scoped_company(company_id)
    return jsonify(
        {"company_id": company_id, **rounding_configuration(current_store(), company_id)}
    )
