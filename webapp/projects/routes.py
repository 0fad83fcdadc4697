"""Projects admin pages: list and search, create, edit, supervisors, cost codes used."""

from flask import Blueprint, abort, flash, redirect, request, url_for
from sqlalchemy.orm import lazyload

from webapp.extensions import db
from webapp.htmx import hx_redirect, is_fragment_request, render_fragment, render_page_or_fragment
from webapp.inputs import parse_id
from webapp.models import CostCode, Project, TimeEntryMode
from webapp.pagination import paginate
from webapp.projects.forms import clean_project_input
from webapp.services import projects as service
from webapp.services.people import ValidationFailed
from webapp.tenancy import admin_required, current_company_id, get_scoped_or_404

bp = Blueprint("projects", __name__, url_prefix="/projects")

NEW_PROJECT_DEFAULTS = {
    "active": "on",
    "time_entry_mode": TimeEntryMode.HOURS.value,
    "country": "US",
}


def form_context(values, errors: dict, project: Project | None = None, supervisor_ids=None):
    if supervisor_ids is None:
        supervisor_ids = values.getlist("supervisor_ids") if hasattr(values, "getlist") else []
    return {
        "values": values,
        "errors": errors,
        "project": project,
        "modes": list(TimeEntryMode),
        "supervisor_choices": service.supervisor_choices(current_company_id()),
        "selected_supervisors": {str(i) for i in supervisor_ids},
    }


def values_of(project: Project) -> dict:
    values = {
        name: getattr(project, name) or ""
        for name in ("name", "number", "street", "city", "state", "zip", "country")
    }
    values["latitude"] = "" if project.latitude is None else str(project.latitude)
    values["longitude"] = "" if project.longitude is None else str(project.longitude)
    values["active"] = "on" if project.active else ""
    values["time_entry_mode"] = project.time_entry_mode.value
    return values


def get_project_or_404(project_id: int) -> Project:
    """The current company's project, without loading every cost code it uses."""
    project = db.session.get(Project, project_id, options=[lazyload(Project.cost_codes)])
    if project is None or project.company_id != current_company_id():
        abort(404)
    return project


def cost_codes_context(project: Project, error: str | None = None) -> dict:
    code_q = (request.values.get("code_q") or "").strip()
    assigned, assigned_total = service.assigned_cost_codes(project, code_q)
    assignable, assignable_total = service.assignable_cost_codes(project, code_q)
    return {
        "project": project,
        "code_q": code_q,
        "assigned": assigned,
        "assigned_total": assigned_total,
        "assignable": assignable,
        "assignable_total": assignable_total,
        "cost_code_error": error,
    }


@bp.get("/")
@admin_required
def index():
    q = request.args.get("q", "").strip()
    page = paginate(service.search_projects(current_company_id(), q))
    counts = service.cost_code_counts([p.id for p in page.items])
    return render_page_or_fragment(
        "projects/index.html", "projects/_table.html", results=page, q=q, counts=counts
    )


@bp.route("/new", methods=["GET", "POST"])
@admin_required
def create():
    if request.method == "GET":
        return render_page_or_fragment(
            "projects/form.html", "projects/_form.html", **form_context(NEW_PROJECT_DEFAULTS, {})
        )
    data, errors = clean_project_input(request.form)
    if not errors:
        try:
            project = service.create_project(current_company_id(), data)
        except ValidationFailed as refused:
            errors = refused.errors
        else:
            flash(f"Project {project.name} was added. Choose the cost codes it uses.", "success")
            return hx_redirect(url_for("projects.edit", project_id=project.id))
    return render_page_or_fragment(
        "projects/form.html",
        "projects/_form.html",
        status=422,
        **form_context(request.form, errors),
    )


@bp.route("/<int:project_id>/edit", methods=["GET", "POST"])
@admin_required
def edit(project_id: int):
    project = get_project_or_404(project_id)
    if request.method == "GET":
        context = form_context(
            values_of(project), {}, project, supervisor_ids=[u.id for u in project.supervisors]
        )
        context.update(cost_codes_context(project))
        return render_page_or_fragment("projects/form.html", "projects/_form.html", **context)
    data, errors = clean_project_input(request.form)
    if not errors:
        try:
            service.update_project(project, data)
        except ValidationFailed as refused:
            errors = refused.errors
        else:
            flash(f"Project {project.name} was saved.", "success")
            return hx_redirect(url_for("projects.index", q=project.name))
    return render_page_or_fragment(
        "projects/form.html",
        "projects/_form.html",
        status=422,
        **(form_context(request.form, errors, project) | cost_codes_context(project)),
    )


@bp.get("/<int:project_id>/cost-codes")
@admin_required
def cost_codes(project_id: int):
    project = get_project_or_404(project_id)
    if not is_fragment_request():
        return redirect(
            url_for("projects.edit", project_id=project.id, code_q=request.args.get("code_q"))
        )
    return render_fragment("projects/_cost_codes.html", **cost_codes_context(project))


@bp.post("/<int:project_id>/cost-codes")
@admin_required
def assign_cost_code(project_id: int):
    project = get_project_or_404(project_id)
    cost_code_id = parse_id(request.form.get("cost_code_id"))
    try:
        code = service.assign_cost_code(project, cost_code_id)
    except ValidationFailed as refused:
        return _cost_codes_response(project, refused.errors["cost_code_id"])
    return _cost_codes_response(project, message=f"{code.label} is now used on this project.")


@bp.post("/<int:project_id>/cost-codes/all")
@admin_required
def assign_all_cost_codes(project_id: int):
    project = get_project_or_404(project_id)
    added = service.assign_all_active_cost_codes(project)
    return _cost_codes_response(project, message=f"{added} active cost codes added.")


@bp.post("/<int:project_id>/cost-codes/<int:cost_code_id>/remove")
@admin_required
def unassign_cost_code(project_id: int, cost_code_id: int):
    project = get_project_or_404(project_id)
    code = get_scoped_or_404(CostCode, cost_code_id)
    service.unassign_cost_code(project, code.id)
    return _cost_codes_response(project, message=f"{code.label} is no longer used here.")


def _cost_codes_response(project: Project, error: str | None = None, message: str | None = None):
    if is_fragment_request():
        return render_fragment(
            "projects/_cost_codes.html",
            422 if error else 200,
            message=message,
            **cost_codes_context(project, error),
        )
    flash(error or message, "error" if error else "success")
    return redirect(url_for("projects.edit", project_id=project.id) + "#cost-codes", 303)
