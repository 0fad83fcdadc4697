"""The /_sandbox control API for tests and people: faults, config, clock, stats, reset,
export, and a shortcut to mint tokens without the browser flow."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from procore_sandbox.config import RUNTIME_FIELDS
from procore_sandbox.context import current
from procore_sandbox.faults import FaultRuleError
from procore_sandbox.seed import SEEDS, ensure_oauth_app, seed_store
from procore_sandbox.store import NULL_SOURCE_APPLICATION

bp = Blueprint("sandbox_admin", __name__, url_prefix="/_sandbox")


def _error(message: str, status: int = 400):
    resp = jsonify({"error": message})
    resp.status_code = status
    return resp


@bp.get("/faults")
def list_faults():
    """The active fault rules."""
    faults = current().faults
    with faults.lock:
        return jsonify([faults.public_rule(r) for r in faults.rules])


@bp.post("/faults")
def add_faults():
    """Add one rule (a JSON object) or several ({"rules": [...]})."""
    body = request.get_json(silent=True)
    rules = body.get("rules") if isinstance(body, dict) and "rules" in body else [body]
    faults = current().faults
    added = []
    try:
        for rule in rules:
            added.append(faults.add_rule(rule))
    except FaultRuleError as exc:
        return _error(str(exc))
    return jsonify(added), 201


@bp.delete("/faults")
def clear_faults():
    """Remove every fault rule."""
    current().faults.clear_rules()
    return jsonify({"cleared": True})


@bp.route("/config", methods=["GET", "POST", "PATCH"])
def config_view():
    """Show or change runtime settings (limits, token lifetime, overload, webhook timing,
    clock_offset seconds, webhook_null_source_application)."""
    sandbox = current()
    if request.method != "GET":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error("body must be a JSON object")
        for key, value in body.items():
            if key == "clock_offset":
                if not isinstance(value, (int, float)):
                    return _error("clock_offset must be a number of seconds")
                sandbox.store.clock_offset = float(value)
                continue
            if key == NULL_SOURCE_APPLICATION:
                if not isinstance(value, bool):
                    return _error(f"{key} must be true or false")
                sandbox.store.settings[key] = value
                continue
            if key not in RUNTIME_FIELDS:
                return _error(f"{key} cannot be changed at runtime")
            current_value = getattr(sandbox.config, key)
            expected = type(current_value)
            if expected is bool:
                if not isinstance(value, bool):
                    return _error(f"{key} must be true or false")
            elif not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                return _error(f"{key} must be a non-negative number")
            setattr(sandbox.config, key, expected(value))
    return jsonify(
        {
            **sandbox.config.runtime_view(),
            "clock_offset": sandbox.store.clock_offset,
            NULL_SOURCE_APPLICATION: bool(sandbox.store.settings.get(NULL_SOURCE_APPLICATION)),
        }
    )


COMPANY_SETTINGS = ("projects_timecard_in_out_enabled", "rounding_configuration")


def _company_settings_view(store, company_id: int) -> dict:
    from procore_sandbox.api.company_settings import in_out_enabled, rounding_configuration

    return {
        "company_id": company_id,
        "projects_timecard_in_out_enabled": in_out_enabled(store, company_id),
        "rounding_configuration": rounding_configuration(store, company_id),
    }


@bp.route("/companies/<int:company_id>/settings", methods=["GET", "POST", "PATCH"])
def company_settings_view(company_id: int):
    """Show or change a company's timecard settings: {"projects_timecard_in_out_enabled":
    bool, "rounding_configuration": {enabled, interval_minutes, time_in_rounding,
    time_out_rounding}} (rounding fields not given keep their values)."""
    from procore_sandbox.api.company_settings import check_rounding, rounding_configuration

    store = current().store
    if store.get("companies", company_id) is None:
        return _error("no such company", 404)
    if request.method != "GET":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error("body must be a JSON object")
        changes = {}
        for key, value in body.items():
            if key not in COMPANY_SETTINGS:
                return _error(f"{key} is not a company setting")
            if key == "projects_timecard_in_out_enabled":
                if not isinstance(value, bool):
                    return _error(f"{key} must be true or false")
                changes[key] = value
            else:
                if not isinstance(value, dict):
                    return _error("rounding_configuration must be an object")
                try:
                    current_rules = rounding_configuration(store, company_id)
                    changes[key] = check_rounding({**current_rules, **value})
                except ValueError as exc:
                    return _error(str(exc))
        store.update("companies", company_id, changes, notify=False, touch=False)
    return jsonify(_company_settings_view(store, company_id))


@bp.get("/stats")
def stats():
    """Request counts per method + route template, per status, and 429s."""
    return jsonify(current().faults.stats())


@bp.post("/stats/reset")
def reset_stats():
    """Zero the statistics."""
    current().faults.reset_stats()
    return jsonify(current().faults.stats())


@bp.post("/reset")
def reset():
    """Reload a seed ({"seed": "demo"|"large"|"empty"}, default the configured one); also
    clears fault rules, rate-limit windows, stats and the clock offset."""
    sandbox = current()
    body = request.get_json(silent=True) or {}
    name = body.get("seed") or request.args.get("seed") or sandbox.config.seed
    if name not in SEEDS:
        return _error(f"seed must be one of {', '.join(SEEDS)}")
    seed_store(sandbox.store, name)
    ensure_oauth_app(sandbox.store, sandbox.config)
    sandbox.store.clock_offset = 0.0
    sandbox.faults.reset()
    return jsonify({"seed": name})


@bp.get("/export")
def export():
    """The whole store as JSON."""
    return jsonify(current().store.to_json())


@bp.post("/token")
def mint_token():
    """Issue tokens for a seeded user's email (or client credentials without one), skipping
    the browser flow: {"email": "..."} -> the /oauth/token reply."""
    from procore_sandbox.oauth import _login_user, issue_tokens

    sandbox = current()
    body = request.get_json(silent=True) or {}
    email = body.get("email")
    if email is None:
        reply = issue_tokens(sandbox.store, sandbox.config, sandbox.config.client_id, None, False)
        return jsonify(reply)
    user = _login_user(sandbox.store, email)
    if user is None:
        return _error("no active user with that email", 404)
    reply = issue_tokens(sandbox.store, sandbox.config, sandbox.config.client_id, user["id"], True)
    return jsonify(reply)
