"""Projects: v1.0 and v1.1 lists, show, create, update, sync."""

from __future__ import annotations

import re

from flask import g, jsonify, request

from procore_sandbox.api import bp
from procore_sandbox.api.common import (
    ValidationError,
    apply_common_filters,
    as_origin_id,
    bad_request,
    check_origin_unique,
    check_sync_size,
    find_origin,
    json_body,
    not_found,
    paginate,
    pick,
    require_param,
    run_sync,
    scoped_company,
    source_app,
    wrapped,
)
from procore_sandbox.context import current_store
from procore_sandbox.store import Store

PROJECT_FIELDS = (
    "name",
    "project_number",
    "active",
    "address",
    "city",
    "state_code",
    "zip",
    "country_code",
    "county",
    "description",
    "phone",
    "time_zone",
    "start_date",
    "completion_date",
    "total_value",
    "square_feet",
    "flag",
    "public_notes",
    "origin_id",
    "origin_data",
    "origin_code",
    "latitude",
    "longitude",
    "standard_cost_code_list_id",
)
# Procore accepts Rails (ActiveSupport) zone names and tz aliases like "US/Pacific".
TIME_ZONES = frozenset(
    """Hawaii|Alaska|Pacific Time (US & Canada)|Arizona|Mountain Time (US & Canada)|
    Central Time (US & Canada)|Eastern Time (US & Canada)|Indiana (East)|Atlantic Time (Canada)|
    Newfoundland|Saskatchewan|Mexico City|London|Dublin|Edinburgh|Lisbon|Paris|Berlin|Madrid|
    Amsterdam|Brussels|Rome|Stockholm|Vienna|Warsaw|Athens|Helsinki|Istanbul|Moscow|Dubai|
    Mumbai|New Delhi|Kolkata|Singapore|Hong Kong|Beijing|Tokyo|Seoul|Sydney|Melbourne|Brisbane|
    Perth|Adelaide|Auckland|Wellington|UTC|US/Pacific|US/Mountain|US/Central|US/Eastern|
    US/Alaska|US/Hawaii|US/Arizona|America/Los_Angeles|America/Denver|America/Chicago|
    America/New_York|America/Phoenix|America/Anchorage|Pacific/Honolulu|America/Toronto|
    America/Vancouver|Europe/London|Australia/Sydney""".replace("\n", "")
    .replace("    ", "")
    .split("|")
)
ISO2_RE = re.compile(r"^[A-Z]{2}$")
FLAGS = {"Red", "Yellow", "Green"}


def serialize_project(project: dict, company_name: str | None = None) -> dict:
    """A project as the v1.0 list/show returns it."""
    number = project.get("project_number")
    name = project["name"]
    return {
        "id": project["id"],
        "name": name,
        "display_name": f"{number} - {name}" if number else name,
        "project_number": number,
        "address": project.get("address"),
        "city": project.get("city"),
        "state_code": project.get("state_code"),
        "country_code": project.get("country_code"),
        "zip": project.get("zip"),
        "county": project.get("county"),
        "time_zone": project.get("time_zone"),
        "latitude": project.get("latitude"),
        "longitude": project.get("longitude"),
        "phone": project.get("phone"),
        "description": project.get("description"),
        "active": project.get("active", True),
        "flag": project.get("flag"),
        "start_date": project.get("start_date"),
        "completion_date": project.get("completion_date"),
        "total_value": project.get("total_value"),
        "square_feet": project.get("square_feet"),
        "public_notes": project.get("public_notes"),
        "company": {"id": project["company_id"], "name": company_name},
        "standard_cost_code_list_id": project.get("standard_cost_code_list_id"),
        "origin_id": project.get("origin_id"),
        "origin_data": project.get("origin_data"),
        "origin_code": project.get("origin_code"),
        "created_at": project["created_at"],
        "updated_at": project["updated_at"],
    }


def _company_name(company_id: int) -> str | None:
    company = current_store().get("companies", company_id)
    return company["name"] if company else None


def _validate(store: Store, company_id: int, attrs: dict, own: dict | None) -> dict:
    attrs = pick(attrs, PROJECT_FIELDS)
    if "origin_id" in attrs:
        attrs["origin_id"] = as_origin_id(attrs["origin_id"])
    merged = {**(own or {}), **attrs}
    errors: dict[str, list[str]] = {}
    if not str(merged.get("name") or "").strip():
        errors["name"] = ["can't be blank"]
    zone = attrs.get("time_zone")
    if zone not in (None, "") and zone not in TIME_ZONES:
        errors["time_zone"] = ["is not included in the list"]
    for key in ("state_code", "country_code"):
        value = attrs.get(key)
        if value not in (None, "") and not ISO2_RE.match(str(value)):
            errors[key] = ["must be an ISO-3166 alpha-2 code"]
    if attrs.get("flag") not in (None, "") and attrs["flag"] not in FLAGS:
        errors["flag"] = ["is not included in the list"]
    list_id = attrs.get("standard_cost_code_list_id")
    if list_id is not None:
        ccl = store.get("cost_code_lists", list_id) if isinstance(list_id, int) else None
        if ccl is None or ccl["company_id"] != company_id:
            errors["standard_cost_code_list_id"] = ["does not exist"]
    if errors:
        raise ValidationError(errors)
    check_origin_unique("projects", attrs.get("origin_id"), company_id, own and own["id"])
    return attrs


def create_project(
    store: Store, company_id: int, attrs: dict, source_application_id: str | None = None
) -> dict:
    """Validate and add a project (active by default)."""
    clean = _validate(store, company_id, attrs, None)
    record = {key: None for key in PROJECT_FIELDS}
    record.update(company_id=company_id, active=True)
    record.update(clean)
    return store.insert("projects", record, source_application_id=source_application_id)


def update_project(
    store: Store, project: dict, attrs: dict, source_application_id: str | None = None
) -> dict:
    """Validate and apply a partial project update."""
    clean = _validate(store, project["company_id"], attrs, project)
    return store.update(
        "projects", project["id"], clean, source_application_id=source_application_id
    )


def _body_company_id(body: dict | None = None) -> int:
    raw = request.args.get("company_id")
    if raw is None and body is not None:
        raw = body.get("company_id")
    if raw is None or raw == "":
        raise bad_request("company_id is required")
    return scoped_company(raw)


def _project_of(company_id: int, project_id: int) -> dict:
    project = current_store().get("projects", project_id)
    if project is None or project["company_id"] != company_id:
        raise not_found("Project")
    return project


def _list(max_per_page: int):
    company_id = _body_company_id()
    rows = current_store().select_by("projects", "company_id", company_id)
    status = request.args.get("filters[by_status]", "Active")
    if status == "Active":
        rows = [p for p in rows if p.get("active", True)]
    elif status == "Inactive":
        rows = [p for p in rows if not p.get("active", True)]
    elif status != "All":
        raise bad_request("filters[by_status] must be Active, Inactive or All")
    rows = apply_common_filters(rows, ids=True, origin_id=True)
    name = request.args.get("filters[name]")
    if name:
        rows = [p for p in rows if name.lower() in p["name"].lower()]
    number = request.args.get("filters[project_number]")
    if number:
        rows = [p for p in rows if p.get("project_number") == number]
    company_name = _company_name(company_id)
    if request.args.get("serializer_view") == "compact" or request.args.get("view") == "compact":
        return paginate(
            rows,
            lambda p: {"id": p["id"], "name": p["name"], "display_name": p.get("display_name")},
            max_per_page=max_per_page,
        )
    return paginate(rows, lambda p: serialize_project(p, company_name), max_per_page=max_per_page)


@bp.get("/v1.0/projects")
def list_projects_v10():
    """Projects of ?company_id= (active only unless filters[by_status])."""
    return _list(max_per_page=1000)


@bp.get("/v1.1/projects")
def list_projects_v11():
    """Projects, v1.1: default 100 per page, max 300."""
    return _list(max_per_page=300)


@bp.get("/v1.0/projects/<int:project_id>")
def show_project(project_id: int):
    """One project (?company_id= required)."""
    company_id = _body_company_id()
    project = _project_of(company_id, project_id)
    return jsonify(serialize_project(project, _company_name(company_id)))


@bp.post("/v1.0/projects")
def create_project_view():
    """Create a project: body {company_id, project: {name, ...}} -> 201 / 422."""
    body = json_body()
    company_id = _body_company_id(body)
    project = create_project(current_store(), company_id, wrapped(body, "project"), source_app())
    return jsonify(serialize_project(project, _company_name(company_id))), 201


@bp.patch("/v1.0/projects/<int:project_id>")
def update_project_view(project_id: int):
    """Partial update of a project."""
    body = json_body()
    company_id = _body_company_id(body)
    project = _project_of(company_id, project_id)
    updated = update_project(current_store(), project, wrapped(body, "project"), source_app())
    return jsonify(serialize_project(updated, _company_name(company_id)))


@bp.patch("/v1.0/projects/sync")
def sync_projects():
    """Bulk upsert of projects by id or origin_id (§9.1)."""
    body = json_body()
    company_id = _body_company_id(body)
    updates = check_sync_size(body.get("updates"))
    store = current_store()
    company_name = _company_name(company_id)

    def find_by_id(raw):
        try:
            project = store.get("projects", int(raw))
        except (TypeError, ValueError):
            return None
        return project if project and project["company_id"] == company_id else None

    return jsonify(
        run_sync(
            updates,
            find_by_id=find_by_id,
            find_by_origin=lambda o: find_origin("projects", o, company_id=company_id),
            create=lambda item: create_project(store, company_id, item, g.get("client_id")),
            update=lambda project, item: update_project(
                store, project, {k: v for k, v in item.items() if k != "id"}, source_app()
            ),
            serialize=lambda p: serialize_project(p, company_name),
        )
    )


def project_param(body: dict | None = None) -> dict:
    """The project named by ?project_id= (or body project_id), in the header's company."""
    raw = require_param("project_id", body)
    company_id = g.company_id
    try:
        return _project_of(company_id, int(raw))
    except ValueError:
        raise not_found("Project") from None
