"""Settings → Integrations → Procore → 'Set Up': five steps as fragments of one page."""

import redis
from flask import Blueprint, abort, current_app, redirect, request, url_for
from flask_login import current_user

from webapp.extensions import db
from webapp.htmx import render_fragment, render_page_or_fragment
from webapp.inputs import parse_id
from webapp.models import RunStatus, SyncDirection, TimecardTrigger
from webapp.models.base import utcnow
from webapp.pagination import paginate
from webapp.procore import mapping
from webapp.procore.errors import ProcoreError
from webapp.procore.mapping import COST_CODE, PROJECT, USER
from webapp.runs import queueing
from webapp.runs import service as runs
from webapp.services import imports, line_item_types, links, push
from webapp.setup import forms
from webapp.tenancy import admin_required, current_company_id

bp = Blueprint("setup", __name__, url_prefix="/settings/integrations/procore/setup")

STEPS = (
    (1, "Company and cost code list"),
    (2, "Users"),
    (3, "Projects"),
    (4, "Cost codes"),
    (5, "Sync settings"),
)
STEP_ENTITY = {2: USER, 3: PROJECT, 4: COST_CODE}
ENTITY_LABEL = {USER: "users", PROJECT: "projects", COST_CODE: "cost codes"}


def _settings():
    return imports.settings_for(current_company_id())


def _has_auto(entity_type: str) -> bool:
    return entity_type in (USER, COST_CODE)


def _auto(settings, entity_type: str) -> bool:
    if entity_type == USER:
        return settings.auto_import_users
    if entity_type == COST_CODE:
        return settings.auto_import_cost_codes
    return False


def _table_context(entity_type: str, only_problems: bool = False) -> dict:
    company_id = current_company_id()
    q = request.args.get("q", "")
    page = paginate(imports.staged_query(company_id, entity_type, q, only_problems))
    return {
        "entity_type": entity_type,
        "fields": mapping.EDITABLE_FIELDS[entity_type],
        "table_page": page,
        "q": q,
        "only_problems": only_problems,
        "state": imports.row_state(page.items, company_id, entity_type),
        "suggestions": imports.suggestions_for(company_id, entity_type, page.items),
        "auto": _auto(_settings(), entity_type),
    }


def _step_context(step: int, errors: dict | None = None, **extra) -> dict:
    settings = _settings()
    company_id = current_company_id()
    context = {
        "step": step,
        "steps": STEPS,
        "settings": settings,
        "errors": errors or {},
        "completed": set(settings.completed_steps or []),
    }
    if step == 1:
        from webapp.services.connections import get_connection

        conn = get_connection(company_id)
        context["connection"] = conn
        context["companies"] = (conn.available_companies or []) if conn else []
    elif step in STEP_ENTITY:
        entity_type = STEP_ENTITY[step]
        kind = imports.STAGE_KIND.format(entity=entity_type)
        context.update(
            entity_type=entity_type,
            entity_label=ENTITY_LABEL[entity_type],
            has_auto=_has_auto(entity_type),
            auto=_auto(settings, entity_type),
            stage_run=imports.latest_run(company_id, kind),
            summary=imports.staged_summary(company_id, entity_type),
            guidelines=mapping.USER_GUIDELINES,
        )
        if context["summary"]["total"]:
            only_problems = context["auto"]
            context.update(_table_context(entity_type, only_problems=only_problems))
    else:
        context["directions"] = list(SyncDirection)
        context["triggers"] = list(TimecardTrigger)
        run = imports.latest_run(company_id, imports.IMPORT_KIND)
        context["import_run"] = run
        context["items"] = imports.run_items(run) if run is not None and run.finished else []
        if "line_item_types" not in extra:
            types, unavailable = _line_item_types()
            extra = {**extra, "line_item_types": types}
            if unavailable:
                context["errors"] = {**context["errors"], forms.LINE_ITEM_TYPE_FIELD: unavailable}
    context.update(extra)
    return context


def _render_step(step: int, status: int = 200, errors=None, **extra):
    context = _step_context(step, errors, **extra)
    response = render_page_or_fragment("setup/page.html", "setup/_step.html", status, **context)
    return response


@bp.get("/")
@admin_required
def index():
    settings = _settings()
    db.session.commit()
    return redirect(url_for("setup.step", step=settings.current_step or 1))


@bp.get("/step/<int:step>")
@admin_required
def step(step: int):
    if step not in dict(STEPS):
        abort(404)
    response = _render_step(step)
    response.headers["HX-Push-Url"] = url_for("setup.step", step=step)
    return response


def _complete(settings, step: int) -> None:
    done = set(settings.completed_steps or [])
    done.add(step)
    settings.completed_steps = sorted(done)
    settings.current_step = min(step + 1, 5)


@bp.post("/step/<int:step>")
@admin_required
def save_step(step: int):
    """'Next': validate and save the step, then show the next one (422 when invalid)."""
    if step not in (1, 2, 3, 4):
        abort(404)
    settings = _settings()
    errors = {}
    if step == 1:
        if settings.procore_company_id is None:
            errors["procore_company_id"] = "Choose the Procore company."
        else:
            lists, unavailable = _cost_code_lists()
            values, errors = forms.validate_step1(request.form, lists)
            if unavailable:
                errors["standard_cost_code_list_id"] = unavailable
            if not errors:
                settings.standard_cost_code_list_id = values["id"]
                settings.standard_cost_code_list_name = values["name"]
    else:
        entity_type = STEP_ENTITY[step]
        summary = imports.staged_summary(current_company_id(), entity_type)
        if not summary["total"]:
            errors["step"] = f"Wait until the {ENTITY_LABEL[entity_type]} are loaded from Procore."
    if errors:
        db.session.rollback()
        return _render_step(step, 422, errors=errors)
    _complete(settings, step)
    db.session.commit()
    response = _render_step(step + 1)
    response.headers["HX-Push-Url"] = url_for("setup.step", step=step + 1)
    return response


@bp.post("/company")
@admin_required
def choose_company():
    """Step 1: save the Procore company and show its cost code lists."""
    procore_company_id = parse_id(request.form.get("procore_company_id"))
    error = imports.choose_procore_company(current_company_id(), procore_company_id)
    if error:
        db.session.rollback()
        return _render_step(1, 422, errors={"procore_company_id": error})
    db.session.commit()
    lists, unavailable = _cost_code_lists()
    errors = {"standard_cost_code_list_id": unavailable} if unavailable else None
    return _render_step(1, errors=errors, lists=lists)


@bp.get("/lists")
@admin_required
def cost_code_lists():
    """Step 1: the chosen company's standard cost code lists (a small Procore lookup)."""
    lists, unavailable = _cost_code_lists()
    return render_fragment(
        "setup/_lists_field.html",
        settings=_settings(),
        lists=lists,
        errors={"standard_cost_code_list_id": unavailable} if unavailable else {},
    )


# A small lookup fails plainly when Procore cannot answer, or when Redis (which paces every
# Procore call through the shared request budget) is down: the step still renders.
LOOKUP_FAILURES = (ProcoreError, redis.exceptions.RedisError)


def _cost_code_lists() -> tuple[list[dict], str | None]:
    """The chosen company's lists, or none and why when Procore cannot answer (never a 500)."""
    try:
        return imports.cost_code_lists(current_company_id()), None
    except LOOKUP_FAILURES as failure:
        current_app.logger.warning("cost code lists unavailable: %s", type(failure).__name__)
        db.session.rollback()
        return [], "Procore could not list the cost code lists just now. Try again in a minute."


@bp.post("/auto/<entity_type>")
@admin_required
def toggle_auto(entity_type: str):
    """The 'Auto Import' switch of users or cost codes."""
    if entity_type not in (USER, COST_CODE):
        abort(404)
    settings = _settings()
    value = request.form.get("auto") == "on"
    if entity_type == USER:
        settings.auto_import_users = value
    else:
        settings.auto_import_cost_codes = value
    db.session.commit()
    return _render_step(2 if entity_type == USER else 4)


@bp.post("/stage/<entity_type>")
@admin_required
def stage(entity_type: str):
    """Load (or refresh) one kind of Procore record into the step's table, in the background."""
    if forms.entity_or_none(entity_type) is None:
        abort(404)
    kind = imports.STAGE_KIND.format(entity=entity_type)
    run, created = imports.create_run(current_company_id(), kind, current_user.id)
    db.session.commit()
    if created:
        queueing.enqueue_run(run)
    else:
        runs.enqueue_if_lost(run)
    return render_fragment("setup/_progress.html", run=run, step_url=_step_url(entity_type))


def _step_url(entity_type: str) -> str:
    step = {v: k for k, v in STEP_ENTITY.items()}[entity_type]
    return url_for("setup.step", step=step)


@bp.get("/runs/<int:run_id>")
@admin_required
def run_progress(run_id: int):
    """The progress of a run; it stops polling by itself when the run ends."""
    run = imports.get_run(current_company_id(), run_id)
    if run is None:
        abort(404)
    entity_type = run.kind.removeprefix("stage_")
    step_url = _step_url(entity_type) if forms.entity_or_none(entity_type) else None
    items = imports.run_items(run) if run.finished and step_url is None else []
    # The poll that sees the import end redraws step 5, so 'Sync' is enabled again.
    wizard_url = None
    if run.finished and run.kind == imports.IMPORT_KIND:
        wizard_url = url_for("setup.step", step=5)
    return render_page_or_fragment(
        "setup/run_page.html",
        "setup/_progress.html",
        run=run,
        step_url=step_url,
        items=items,
        wizard_url=wizard_url,
    )


@bp.post("/sync")
@admin_required
def sync():
    """'Sync': save the sync settings, complete set-up and run the import of what was chosen."""
    values, errors = forms.validate_step5(request.form)
    types, unavailable = _line_item_types()
    settings = _settings()
    keep, choice, type_error = forms.validate_line_item_type(
        request.form, types, settings.labor_line_item_type_id, unavailable
    )
    if type_error:
        errors[forms.LINE_ITEM_TYPE_FIELD] = type_error
    # Procore's refusal stays visible beside the field even when the rest saves.
    errors_shown = {forms.LINE_ITEM_TYPE_FIELD: unavailable} if unavailable else None
    if errors:
        errors = {**(errors_shown or {}), **errors}
        return _render_step(5, 422, errors=errors, line_item_types=types)
    if settings.procore_company_id is None:
        return _render_step(
            5,
            422,
            errors={"step": "Choose the Procore company in step 1."},
            line_item_types=types,
        )
    trigger_before = settings.timecard_trigger if settings.setup_completed_at else None
    for key, value in values.items():
        setattr(settings, key, value)
    if not keep:
        line_item_types.apply_choice(settings, choice)
    _complete(settings, 5)
    settings.setup_completed_at = settings.setup_completed_at or utcnow()
    if trigger_before is not None and trigger_before != settings.timecard_trigger:
        # Cards already submitted or approved must follow the new rule too: queue what is
        # sendable now and take out of Procore what no longer is (sent after the commit).
        push.requeue_open_cards(current_company_id())
    run, created = imports.create_run(current_company_id(), imports.IMPORT_KIND, current_user.id)
    db.session.commit()
    if created:
        queueing.enqueue_run(run)
    else:
        runs.enqueue_if_lost(run)
    return _render_step(5, errors=errors_shown, import_run=run, line_item_types=types)


def _line_item_types() -> tuple[list[dict], str | None]:
    """The company's line item types, or none and why when Procore cannot answer."""
    try:
        return line_item_types.company_line_item_types(current_company_id()), None
    except LOOKUP_FAILURES as failure:
        current_app.logger.warning("line item types unavailable: %s", type(failure).__name__)
        db.session.rollback()
        return [], (
            "Procore could not list the line item types just now. The other settings still "
            "save; reload the step in a minute to choose one."
        )


# -- manual tables -----------------------------------------------------------------------
@bp.get("/table/<entity_type>")
@admin_required
def table(entity_type: str):
    if forms.entity_or_none(entity_type) is None:
        abort(404)
    only_problems = request.args.get("problems") == "1"
    return render_page_or_fragment(
        "setup/table_page.html", "setup/_table.html", **_table_context(entity_type, only_problems)
    )


def _row_or_404(row_id: int):
    row = imports.get_staged(current_company_id(), row_id)
    if row is None:
        abort(404)
    return row


def _render_row(row, status: int = 200, template="setup/_row.html", **extra):
    company_id = current_company_id()
    context = {
        "row": row,
        "entity_type": row.entity_type,
        "fields": mapping.EDITABLE_FIELDS[row.entity_type],
        "state": imports.row_state([row], company_id, row.entity_type),
        "suggestions": imports.suggestions_for(company_id, row.entity_type, [row]),
        "auto": _auto(_settings(), row.entity_type),
        "errors": {},
        "roles": mapping.ROLES,
    }
    context.update(extra)
    return render_fragment(template, status, **context)


@bp.get("/rows/<int:row_id>")
@admin_required
def row(row_id: int):
    return _render_row(_row_or_404(row_id))


@bp.get("/rows/<int:row_id>/edit")
@admin_required
def edit_row(row_id: int):
    row = _row_or_404(row_id)
    choices = imports.link_choices(current_company_id(), row.entity_type)
    return _render_row(row, template="setup/_row_edit.html", choices=choices, form=None)


@bp.post("/rows/<int:row_id>")
@admin_required
def save_row(row_id: int):
    """Save an inline edit; 422 with the message beside the field and nothing saved."""
    row = _row_or_404(row_id)
    errors = imports.edit_staged(current_company_id(), row, request.form)
    if errors:
        db.session.rollback()
        row = _row_or_404(row_id)
        choices = imports.link_choices(current_company_id(), row.entity_type)
        return _render_row(
            row,
            422,
            template="setup/_row_edit.html",
            errors=errors,
            form=request.form,
            choices=choices,
        )
    db.session.commit()
    return _render_row(row)


@bp.post("/rows/<int:row_id>/select")
@admin_required
def select_row(row_id: int):
    row = _row_or_404(row_id)
    error = imports.set_selected(row, request.form.get("selected") == "on")
    if error:
        db.session.rollback()
        return _render_row(_row_or_404(row_id), 422, row_error=error)
    db.session.commit()
    return _render_row(row)


@bp.post("/rows/<int:row_id>/link")
@admin_required
def link_row(row_id: int):
    """'Link to existing': choose the record this Procore record links to (or none)."""
    row = _row_or_404(row_id)
    raw = request.form.get("local_id", "")
    local_id = parse_id(raw) if raw else None
    if raw and local_id is None:
        return _render_row(row, 422, row_error="Choose a record from the list.")
    error = imports.set_link_choice(current_company_id(), row, local_id)
    if error:
        db.session.rollback()
        return _render_row(_row_or_404(row_id), 422, row_error=error)
    db.session.commit()
    return _render_row(row)


# -- link badges on user/project/cost code pages -----------------------------------------
@bp.app_template_global()
def procore_link_for(entity_type: str, entity):
    """The ProcoreLink of a local record (for integrations/_link_badge.html)."""
    if entity is None or getattr(entity, "id", None) is None:
        return None
    return links.link_for(entity.company_id, entity_type, entity.id)


@bp.post("/links/<entity_type>/<int:local_id>/unlink")
@admin_required
def unlink(entity_type: str, local_id: int):
    """'Unlink': stop syncing this record with Procore."""
    if forms.entity_or_none(entity_type) is None:
        abort(404)
    model = links.local_model(entity_type)
    entity = db.session.get(model, local_id)
    if entity is None or entity.company_id != current_company_id():
        abort(404)
    links.unlink(current_company_id(), entity_type, local_id)
    db.session.commit()
    return render_fragment(
        "integrations/_link_badge.html", entity_type=entity_type, entity=entity, unlinked=True
    )


def is_running(run) -> bool:
    return run is not None and run.status in (RunStatus.QUEUED, RunStatus.RUNNING)


bp.add_app_template_global(is_running, "setup_run_active")
