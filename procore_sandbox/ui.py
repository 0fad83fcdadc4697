"""A small web UI at / for people: browse and edit what the sandbox holds.

A person changes something "in Procore" here and watches Crewclock sync it. Every edit goes
through the same create/update functions as the REST API (same validation, same store
events), with source_application_id None, so webhooks fire exactly as for a UI edit in
Procore. No login: it is a local test double. Unsafe requests from another origin are refused
so a web page elsewhere cannot post forms to a sandbox on localhost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, redirect, render_template, request, url_for

from procore_sandbox.api import cost_codes as cost_code_api
from procore_sandbox.api import projects as project_api
from procore_sandbox.api import timecards as timecard_api
from procore_sandbox.api import users as user_api
from procore_sandbox.api.common import ApiError
from procore_sandbox.context import current_store
from procore_sandbox.store import Store

bp = Blueprint("sandbox_ui", __name__)
PER_PAGE = 50


@dataclass
class Field:
    """One form input."""

    name: str
    label: str
    kind: str = "text"  # text | email | bool | date | time | number | select | choice | textarea
    # select: integer ids of other records; choice: fixed strings
    choices: Callable[[Store, dict, dict | None], list[tuple[Any, str]]] | None = None
    help: str = ""
    default: Any = None

    def shown(self, value: Any) -> Any:
        """The stored value as the input shows it (times as HH:MM)."""
        if self.kind == "time" and isinstance(value, str) and "T" in value:
            return value[11:16]
        return value


@dataclass
class Resource:
    """How the UI lists, edits, creates and deletes one kind of record."""

    slug: str
    table: str
    title: str
    singular: str
    scope: str  # "company" or "project"
    fields: list[Field]
    columns: list[tuple[str, Callable[[dict], Any]]]
    create: Callable[[Store, dict, dict | None, dict], dict]
    update: Callable[[Store, dict, dict], dict]
    delete: Callable[[Store, dict], None] | None = None
    search: tuple[str, ...] = ()
    order: Callable[[dict], Any] = field(default=lambda r: r["id"])


# -- choices for selects ------------------------------------------------------------------------


def _parent_codes(table: str, scope_key: str):
    def choices(store: Store, company: dict, project: dict | None):
        scope_id = project["id"] if project else company["id"]
        rows = [r for r in store.select(table) if r.get(scope_key) == scope_id]
        return [(r["id"], f"{r['full_code']} {r['name']}") for r in _by_code(rows)]

    return choices


def _by_code(rows):
    return sorted(rows, key=lambda r: (r.get("full_code") or "", r["id"]))


def _yes(value: Any) -> str:
    return "yes" if value else "no"


def _name(row: dict) -> str:
    return user_api.full_name(row) or "(no name)"


def _delete(table: str) -> Callable[[Store, dict], None]:
    def delete(store: Store, record: dict) -> None:
        store.delete(table, record["id"], source_application_id=None)

    return delete


def _delete_user(store: Store, record: dict) -> None:
    store.delete("users", record["id"], source_application_id=None)
    for person in store.select("people", user_id=record["id"]):
        store.delete("people", person["id"], source_application_id=None)


def _std_code_create(store: Store, company: dict, project: dict | None, attrs: dict) -> dict:
    lists = store.select("cost_code_lists", company_id=company["id"])
    if not lists:
        raise ApiError(422, "No list", {"errors": {"base": ["This company has no cost list"]}})
    return cost_code_api.create_standard_code(store, lists[0], attrs, None)


RESOURCES: dict[str, Resource] = {}


def _register(resource: Resource) -> None:
    RESOURCES[resource.slug] = resource


_register(
    Resource(
        slug="users",
        table="users",
        title="Users",
        singular="user",
        scope="company",
        fields=[
            Field("first_name", "First name"),
            Field("last_name", "Last name"),
            Field("email_address", "Email", "email"),
            Field("job_title", "Job title"),
            Field("employee_id", "Employee ID"),
            Field("mobile_phone", "Mobile phone"),
            Field("origin_id", "Origin ID", help="The external id an integration set"),
            Field("is_employee", "Employee", "bool"),
            Field("is_active", "Active", "bool"),
        ],
        columns=[
            ("Name", _name),
            ("Email", lambda r: r.get("email_address") or ""),
            ("Employee ID", lambda r: r.get("employee_id") or ""),
            ("Job title", lambda r: r.get("job_title") or ""),
            ("Active", lambda r: _yes(r.get("is_active"))),
        ],
        create=lambda store, company, project, attrs: user_api.create_user(
            store, company["id"], attrs, None
        ),
        update=lambda store, record, attrs: user_api.update_user(store, record, attrs, None),
        delete=_delete_user,
        search=("first_name", "last_name", "email_address", "employee_id"),
        order=lambda r: ((r.get("last_name") or "").lower(), (r.get("first_name") or "").lower()),
    )
)
_register(
    Resource(
        slug="projects",
        table="projects",
        title="Projects",
        singular="project",
        scope="company",
        fields=[
            Field("name", "Name"),
            Field("project_number", "Project number"),
            Field("address", "Address"),
            Field("city", "City"),
            Field("state_code", "State code", help="ISO code, e.g. CA"),
            Field("zip", "ZIP"),
            Field("country_code", "Country code", help="ISO code, e.g. US"),
            Field("time_zone", "Time zone", help="e.g. US/Pacific"),
            Field("start_date", "Start date", "date"),
            Field("origin_id", "Origin ID"),
            Field("active", "Active", "bool"),
        ],
        columns=[
            ("Number", lambda r: r.get("project_number") or ""),
            ("Name", lambda r: r["name"]),
            ("City", lambda r: r.get("city") or ""),
            ("Active", lambda r: _yes(r.get("active"))),
        ],
        create=lambda store, company, project, attrs: project_api.create_project(
            store, company["id"], attrs, None
        ),
        update=lambda store, record, attrs: project_api.update_project(store, record, attrs, None),
        delete=_delete("projects"),
        search=("name", "project_number", "city"),
        order=lambda r: (r.get("project_number") or "", r["name"]),
    )
)
_register(
    Resource(
        slug="standard_cost_codes",
        table="standard_cost_codes",
        title="Standard cost codes",
        singular="standard cost code",
        scope="company",
        fields=[
            Field("code", "Code"),
            Field("name", "Name"),
            Field(
                "parent_id", "Parent", "select", _parent_codes("standard_cost_codes", "company_id")
            ),
            Field("origin_id", "Origin ID"),
        ],
        columns=[("Full code", lambda r: r["full_code"]), ("Name", lambda r: r["name"])],
        create=_std_code_create,
        update=lambda store, record, attrs: cost_code_api.update_standard_code(
            store, record, attrs, None
        ),
        delete=_delete("standard_cost_codes"),
        search=("full_code", "name"),
        order=lambda r: (r.get("full_code") or "", r["id"]),
    )
)
_register(
    Resource(
        slug="cost_codes",
        table="cost_codes",
        title="Cost codes",
        singular="cost code",
        scope="project",
        fields=[
            Field("code", "Code"),
            Field("name", "Name"),
            Field("parent_id", "Parent", "select", _parent_codes("cost_codes", "project_id")),
            Field("origin_id", "Origin ID"),
        ],
        columns=[("Full code", lambda r: r["full_code"]), ("Name", lambda r: r["name"])],
        create=lambda store, company, project, attrs: cost_code_api.create_cost_code(
            store, project, attrs, None
        ),
        update=lambda store, record, attrs: cost_code_api.update_cost_code(
            store, record, attrs, None
        ),
        delete=_delete("cost_codes"),
        search=("full_code", "name"),
        order=lambda r: (r.get("full_code") or "", r["id"]),
    )
)


def _company_rows(table: str, label: Callable[[dict], str]):
    def choices(store: Store, company: dict, project: dict | None):
        rows = store.select(table, company_id=company["id"])
        return sorted(((r["id"], label(r)) for r in rows), key=lambda pair: pair[1].lower())

    return choices


def _project_codes(store: Store, company: dict, project: dict | None):
    rows = store.select("cost_codes", project_id=project["id"]) if project else []
    return [(r["id"], f"{r['full_code']} {r['name']}") for r in _by_code(rows)]


def _label_of(table: str, key: str, label: Callable[[dict], str]) -> Callable[[dict], str]:
    def column(row: dict) -> str:
        ref = row.get(key)
        other = current_store().get(table, ref) if ref is not None else None
        return label(other) if other else ""

    return column


_register(
    Resource(
        slug="timecard_entries",
        table="timecard_entries",
        title="Timecard entries",
        singular="timecard entry",
        scope="project",
        fields=[
            Field("date", "Date", "date"),
            Field("party_id", "Person", "select", _company_rows("people", _name)),
            Field("cost_code_id", "Cost code", "select", _project_codes),
            Field(
                "timecard_time_type_id",
                "Time type",
                "select",
                _company_rows("time_types", lambda r: r["time_type"]),
            ),
            Field(
                "line_item_type_id",
                "Line item type",
                "select",
                _company_rows("line_item_types", lambda r: r["name"]),
            ),
            Field("hours", "Hours", help="Leave blank to compute them from time in and out"),
            Field("time_in", "Time in", "time"),
            Field("time_out", "Time out", "time"),
            Field("lunch_time", "Lunch (minutes)", "number"),
            Field("description", "Description", "textarea"),
            Field("billable", "Billable", "bool", default=False),
            Field(
                "approval_status",
                "Approval status",
                "choice",
                lambda store, company, project: [
                    (status, status) for status in timecard_api.APPROVAL_STATUSES
                ],
                help="Approved and completed entries are locked, as in Procore",
                default="pending",
            ),
            Field("origin_id", "Origin ID"),
        ],
        columns=[
            ("Date", lambda r: r.get("date") or ""),
            ("Person", _label_of("people", "party_id", _name)),
            ("Hours", lambda r: r.get("hours") or ""),
            ("Cost code", _label_of("cost_codes", "cost_code_id", lambda c: c["full_code"])),
            ("Type", _label_of("time_types", "timecard_time_type_id", lambda t: t["time_type"])),
            ("Status", lambda r: r.get("approval_status") or ""),
        ],
        create=lambda store, company, project, attrs: timecard_api.create_entry(
            store, project, attrs, require_date=True, enforce_mode=False, version="form"
        ),
        update=lambda store, record, attrs: timecard_api.update_entry(
            store, record, attrs, require_date=False, enforce_mode=False, version="form"
        ),
        delete=lambda store, record: timecard_api.delete_entry(store, record, None),
        search=("date", "description", "approval_status"),
        order=lambda r: (r.get("date") or "", r["id"]),
    )
)


# -- helpers ------------------------------------------------------------------------------------


@bp.context_processor
def _resources():
    return {"resources": RESOURCES}


@bp.before_request
def _same_origin_only():
    """Refuse form posts from pages served by another origin."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin and urlsplit(origin).netloc != request.host:
        abort(403)
    return None


def _company(company_id: int) -> dict:
    company = current_store().get("companies", company_id)
    if company is None:
        abort(404)
    return company


def _project(company: dict, project_id: int) -> dict:
    project = current_store().get("projects", project_id)
    if project is None or project["company_id"] != company["id"]:
        abort(404)
    return project


def _resource(slug: str, project: dict | None) -> Resource:
    resource = RESOURCES.get(slug)
    if resource is None or (resource.scope == "project") != (project is not None):
        abort(404)
    return resource


def _rows(resource: Resource, company: dict, project: dict | None) -> list[dict]:
    store = current_store()
    if project is not None:
        return store.select(resource.table, project_id=project["id"])
    return store.select(resource.table, company_id=company["id"])


def _record(resource: Resource, company: dict, project: dict | None, record_id: int) -> dict:
    record = current_store().get(resource.table, record_id)
    if record is None or record.get("company_id") != company["id"]:
        abort(404)
    if project is not None and record.get("project_id") != project["id"]:
        abort(404)
    return record


def parse_form(resource: Resource, form, record: dict | None) -> dict:
    """Attributes from a submitted form: blanks become None, checkboxes booleans."""
    attrs: dict[str, Any] = {}
    for spec in resource.fields:
        if spec.kind == "bool":
            attrs[spec.name] = spec.name in form
            continue
        raw = form.get(spec.name)
        if raw is None:
            continue
        value: Any = raw.strip() or None
        if spec.kind == "select" and value is not None:
            try:
                value = int(value)
            except ValueError:
                value = -1  # not a choice: the validation of the resource says so
        elif (
            spec.kind == "time"
            and record is not None
            and value == spec.shown(record.get(spec.name))
        ):
            continue  # same clock time as stored: unchanged
        elif spec.kind == "number" and value is not None and value.isdigit():
            value = int(value)
        if record is not None and record.get(spec.name) == value:
            continue  # unchanged: keep partial updates partial (e.g. emails never re-checked)
        attrs[spec.name] = value
    return attrs


def _errors_of(exc: ApiError) -> dict[str, list[str]]:
    errors = exc.body.get("errors") if isinstance(exc.body, dict) else None
    if isinstance(errors, dict):
        return {key: value if isinstance(value, list) else [value] for key, value in errors.items()}
    return {"base": [str(exc.body.get("message") if isinstance(exc.body, dict) else exc)]}


def _base_url(company: dict, project: dict | None, resource: Resource) -> str:
    if project is not None:
        return url_for(
            "sandbox_ui.project_records",
            company_id=company["id"],
            project_id=project["id"],
            slug=resource.slug,
        )
    return url_for("sandbox_ui.company_records", company_id=company["id"], slug=resource.slug)


def _page_of(rows: list[dict]) -> tuple[list[dict], int, int]:
    try:
        page = max(1, int(request.args.get("page", 1)))
    except ValueError:
        page = 1
    last = max(1, -(-len(rows) // PER_PAGE))
    page = min(page, last)
    return rows[(page - 1) * PER_PAGE : page * PER_PAGE], page, last


# -- pages --------------------------------------------------------------------------------------


@bp.get("/")
def index():
    store = current_store()
    companies = store.select("companies")
    counts = {}
    with store.lock:
        for table in ("users", "projects", "timecard_entries", "hooks"):
            for row in store.table(table).values():
                key = (row.get("company_id"), table)
                counts[key] = counts.get(key, 0) + 1
    return render_template("ui/index.html", companies=companies, counts=counts)


@bp.get("/companies/<int:company_id>")
def company_home(company_id: int):
    company = _company(company_id)
    return redirect(url_for("sandbox_ui.company_records", company_id=company["id"], slug="users"))


def _list_page(company: dict, project: dict | None, resource: Resource):
    rows = sorted(_rows(resource, company, project), key=resource.order)
    query = (request.args.get("q") or "").strip().lower()
    if query:
        rows = [
            r for r in rows if any(query in str(r.get(f) or "").lower() for f in resource.search)
        ]
    page_rows, page, last = _page_of(rows)
    return render_template(
        "ui/list.html",
        company=company,
        project=project,
        resource=resource,
        rows=page_rows,
        total=len(rows),
        page=page,
        last=last,
        query=request.args.get("q", ""),
        base_url=_base_url(company, project, resource),
    )


def _form_page(company, project, resource, record, values, errors, status=200):
    store = current_store()
    choices = {
        spec.name: spec.choices(store, company, project) for spec in resource.fields if spec.choices
    }
    return (
        render_template(
            "ui/form.html",
            company=company,
            project=project,
            resource=resource,
            record=record,
            values=values,
            errors=errors,
            choices=choices,
            base_url=_base_url(company, project, resource),
        ),
        status,
    )


def _save(company: dict, project: dict | None, resource: Resource, record: dict | None):
    store = current_store()
    attrs = parse_form(resource, request.form, record)
    try:
        if record is None:
            saved = resource.create(store, company, project, attrs)
        else:
            saved = resource.update(store, record, attrs) if attrs else record
    except ApiError as exc:
        values = {**(record or {}), **attrs}
        return _form_page(company, project, resource, record, values, _errors_of(exc), 422)
    return redirect(f"{_base_url(company, project, resource)}?saved={saved['id']}")


def _new(company, project, resource):
    if request.method == "POST":
        return _save(company, project, resource, None)
    defaults = {
        spec.name: True if spec.kind == "bool" and spec.default is None else spec.default
        for spec in resource.fields
    }
    if "date" in defaults:
        defaults["date"] = timecard_api.today(current_store())
    return _form_page(company, project, resource, None, defaults, {})


def _edit(company, project, resource, record_id):
    record = _record(resource, company, project, record_id)
    if request.method == "POST":
        return _save(company, project, resource, record)
    return _form_page(company, project, resource, record, record, {})


def _remove(company, project, resource, record_id):
    record = _record(resource, company, project, record_id)
    if resource.delete is None:
        abort(405)
    try:
        resource.delete(current_store(), record)
    except ApiError as exc:  # e.g. an approved timecard entry is locked
        return _form_page(company, project, resource, record, record, _errors_of(exc), 422)
    return redirect(f"{_base_url(company, project, resource)}?deleted={record['id']}")


@bp.get("/companies/<int:company_id>/<slug>")
def company_records(company_id: int, slug: str):
    company = _company(company_id)
    return _list_page(company, None, _resource(slug, None))


@bp.route("/companies/<int:company_id>/<slug>/new", methods=["GET", "POST"])
def company_new(company_id: int, slug: str):
    company = _company(company_id)
    return _new(company, None, _resource(slug, None))


@bp.route("/companies/<int:company_id>/<slug>/<int:record_id>", methods=["GET", "POST"])
def company_edit(company_id: int, slug: str, record_id: int):
    company = _company(company_id)
    return _edit(company, None, _resource(slug, None), record_id)


@bp.post("/companies/<int:company_id>/<slug>/<int:record_id>/delete")
def company_delete(company_id: int, slug: str, record_id: int):
    company = _company(company_id)
    return _remove(company, None, _resource(slug, None), record_id)


@bp.get("/companies/<int:company_id>/projects/<int:project_id>/<slug>")
def project_records(company_id: int, project_id: int, slug: str):
    company = _company(company_id)
    project = _project(company, project_id)
    return _list_page(company, project, _resource(slug, project))


@bp.route(
    "/companies/<int:company_id>/projects/<int:project_id>/<slug>/new", methods=["GET", "POST"]
)
def project_new(company_id: int, project_id: int, slug: str):
    company = _company(company_id)
    project = _project(company, project_id)
    return _new(company, project, _resource(slug, project))


@bp.route(
    "/companies/<int:company_id>/projects/<int:project_id>/<slug>/<int:record_id>",
    methods=["GET", "POST"],
)
def project_edit(company_id: int, project_id: int, slug: str, record_id: int):
    company = _company(company_id)
    project = _project(company, project_id)
    return _edit(company, project, _resource(slug, project), record_id)


@bp.post("/companies/<int:company_id>/projects/<int:project_id>/<slug>/<int:record_id>/delete")
def project_delete(company_id: int, project_id: int, slug: str, record_id: int):
    company = _company(company_id)
    project = _project(company, project_id)
    return _remove(company, project, _resource(slug, project), record_id)


@bp.get("/companies/<int:company_id>/webhooks")
def company_webhooks(company_id: int):
    company = _company(company_id)
    store = current_store()
    hooks = store.select("hooks", company_id=company["id"])
    hook_ids = {hook["id"] for hook in hooks}
    triggers: dict[int, list[dict]] = {hook_id: [] for hook_id in hook_ids}
    for trigger in store.select("hook_triggers"):
        if trigger["webhook_hook_id"] in hook_ids:
            triggers[trigger["webhook_hook_id"]].append(trigger)
    with store.lock:
        recent = [
            d for d in store.table("hook_deliveries").values() if d["webhook_hook_id"] in hook_ids
        ]
    recent = sorted(recent, key=lambda d: d["id"], reverse=True)[:PER_PAGE]
    from procore_sandbox.webhooks import mask_headers

    return render_template(
        "ui/webhooks.html",
        company=company,
        hooks=hooks,
        triggers=triggers,
        deliveries=recent,
        mask_headers=mask_headers,
    )


def init_app(app: Flask) -> None:
    """Serve the UI at /."""
    app.register_blueprint(bp)
