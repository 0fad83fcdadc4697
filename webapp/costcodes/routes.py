"""Cost codes admin pages: list and search, create, edit, divisions, projects using a code."""

from flask import Blueprint, flash, redirect, request, url_for

from webapp.costcodes.forms import clean_cost_code_input, clean_project_ids
from webapp.htmx import hx_redirect, is_fragment_request, render_fragment, render_page_or_fragment
from webapp.models import CostCode
from webapp.pagination import paginate
from webapp.services import costcodes as service
from webapp.services.people import ValidationFailed
from webapp.tenancy import admin_required, current_company_id, get_scoped_or_404

bp = Blueprint("costcodes", __name__, url_prefix="/cost-codes")


def form_context(values, errors: dict, cost_code: CostCode | None = None) -> dict:
    return {
        "values": values,
        "errors": errors,
        "cost_code": cost_code,
        "divisions": service.division_choices(
            current_company_id(), cost_code.id if cost_code else None
        ),
    }


def values_of(cost_code: CostCode) -> dict:
    return {
        "code": cost_code.code,
        "name": cost_code.name,
        "phase": cost_code.phase or "",
        "parent_id": str(cost_code.parent_id or ""),
        "active": "on" if cost_code.active else "",
    }


def projects_context(cost_code: CostCode, errors: dict | None = None) -> dict:
    project_q = (request.values.get("project_q") or "").strip()
    choices, total = service.project_choices(cost_code, project_q)
    return {
        "cost_code": cost_code,
        "project_q": project_q,
        "project_choices": choices,
        "project_total": total,
        "project_errors": errors or {},
    }


@bp.get("/")
@admin_required
def index():
    q = request.args.get("q", "").strip()
    page = paginate(service.search_cost_codes(current_company_id(), q))
    counts = service.project_counts([c.id for c in page.items])
    return render_page_or_fragment(
        "costcodes/index.html", "costcodes/_table.html", results=page, q=q, counts=counts
    )


@bp.route("/new", methods=["GET", "POST"])
@admin_required
def create():
    if request.method == "GET":
        return render_page_or_fragment(
            "costcodes/form.html", "costcodes/_form.html", **form_context({"active": "on"}, {})
        )
    data, errors = clean_cost_code_input(request.form)
    if not errors:
        try:
            cost_code = service.create_cost_code(current_company_id(), data)
        except ValidationFailed as refused:
            errors = refused.errors
        else:
            flash(f"Cost code {cost_code.label} was added.", "success")
            return hx_redirect(url_for("costcodes.edit", cost_code_id=cost_code.id))
    return render_page_or_fragment(
        "costcodes/form.html",
        "costcodes/_form.html",
        status=422,
        **form_context(request.form, errors),
    )


@bp.route("/<int:cost_code_id>/edit", methods=["GET", "POST"])
@admin_required
def edit(cost_code_id: int):
    cost_code = get_scoped_or_404(CostCode, cost_code_id)
    if request.method == "GET":
        return render_page_or_fragment(
            "costcodes/form.html",
            "costcodes/_form.html",
            **(form_context(values_of(cost_code), {}, cost_code) | projects_context(cost_code)),
        )
    data, errors = clean_cost_code_input(request.form)
    if not errors:
        try:
            service.update_cost_code(cost_code, data)
        except ValidationFailed as refused:
            errors = refused.errors
        else:
            flash(f"Cost code {cost_code.label} was saved.", "success")
            return hx_redirect(url_for("costcodes.index", q=cost_code.code))
    return render_page_or_fragment(
        "costcodes/form.html",
        "costcodes/_form.html",
        status=422,
        **(form_context(request.form, errors, cost_code) | projects_context(cost_code)),
    )


@bp.get("/<int:cost_code_id>/projects")
@admin_required
def projects(cost_code_id: int):
    cost_code = get_scoped_or_404(CostCode, cost_code_id)
    if not is_fragment_request():
        return redirect(
            url_for(
                "costcodes.edit", cost_code_id=cost_code.id, project_q=request.args.get("project_q")
            )
        )
    return render_fragment("costcodes/_projects.html", **projects_context(cost_code))


@bp.post("/<int:cost_code_id>/projects")
@admin_required
def set_projects(cost_code_id: int):
    cost_code = get_scoped_or_404(CostCode, cost_code_id)
    checked_ids, shown_ids, errors = clean_project_ids(request.form)
    message = None
    if not errors:
        try:
            count = service.set_projects_using(cost_code, checked_ids, shown_ids)
        except ValidationFailed as refused:
            errors = refused.errors
        else:
            message = f"{cost_code.code} is used on {count} project{'s' if count != 1 else ''}."
    if not errors:
        flash(message, "success")
        return hx_redirect(url_for("costcodes.edit", cost_code_id=cost_code.id) + "#projects")
    return render_page_or_fragment(
        "costcodes/form.html",
        "costcodes/_projects.html",
        status=422,
        **(form_context(values_of(cost_code), {}, cost_code) | projects_context(cost_code, errors)),
    )
