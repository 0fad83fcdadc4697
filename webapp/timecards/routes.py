"""Time cards: My time (a week of entries), card pages, and approvals."""

from datetime import date, timedelta
from decimal import Decimal

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user, login_required

from webapp.extensions import db
from webapp.htmx import hx_redirect, is_fragment_request, render_fragment, render_page_or_fragment
from webapp.inputs import parse_date, parse_id, parse_int
from webapp.models import (
    APPROVER_ROLES,
    ClockSession,
    Project,
    TimeCard,
    TimeCardStatus,
    TimeEntry,
    WorkType,
)
from webapp.pagination import paginate
from webapp.services import clock as clock_svc
from webapp.services import timecards as svc
from webapp.tenancy import get_scoped_or_404, require_role
from webapp.timecards.forms import (
    parse_clock_in_form,
    parse_entry_form,
    parse_week,
    week_notice,
)

bp = Blueprint("timecards", __name__, url_prefix="/time")

CLOCKED_IN_PREVIEW = 5  # people listed on the approvals page; the rest on their own page
STATUS_FILTERS = {
    "submitted": TimeCardStatus.SUBMITTED,
    "approved": TimeCardStatus.APPROVED,
    "rejected": TimeCardStatus.REJECTED,
    "all": None,
}


# ---------------------------------------------------------------- context helpers


def card_url(card: TimeCard | None, week_start: date) -> str:
    """Where the card is shown: My time for your own card, the card page otherwise."""
    if card is None or card.user_id == current_user.id:
        return url_for("timecards.my_time", week=week_start.isoformat())
    return url_for("timecards.card_detail", card_id=card.id)


def card_context(card: TimeCard | None, owner, week_start: date, **extra) -> dict:
    """Everything _card.html needs (entries, totals, permissions, the add row)."""
    entries = list(card.entries) if card else []
    totals = svc.day_totals(entries)
    days = svc.week_days(week_start)
    refusal = svc.edit_refusal(card, current_user) if card else None
    can_change = owner.id == current_user.id or current_user.is_admin
    context = {
        "card": card,
        "owner": owner,
        "week_start": week_start,
        "days": days,
        "totals": totals,
        "week_total": sum(totals.values(), Decimal("0.00")),
        "entries": entries,
        "events": list(card.events) if card else [],
        "can_edit": can_change and refusal is None,
        "refusal": refusal if can_change else None,
        "can_submit": bool(
            card
            and entries
            and card.status in (TimeCardStatus.DRAFT, TimeCardStatus.REJECTED)
            and (card.user_id == current_user.id or current_user.is_admin)
        ),
        "can_approve": bool(
            card and card.status == TimeCardStatus.SUBMITTED and svc.can_approve(card, current_user)
        ),
        "can_reopen": bool(
            card and card.status == TimeCardStatus.APPROVED and current_user.is_admin
        ),
        "card_url": card_url(card, week_start),
        "fmt": svc.format_hours,
        "event_label": svc.event_label,
    }
    context.update(extra)
    if context["can_edit"] and "new_row" not in context:
        context["new_row"] = entry_form_context(card, week_start, None, {})
    return context


def entry_form_context(card, week_start, entry, values, errors=None) -> dict:
    """The inline add/edit row: values, the chosen project's codes and time-entry mode.

    A company with few active projects gets a plain select of them all; a larger one gets
    the worker's recent projects plus a search box (and likewise for a project's codes), so
    the row stays a few KB however many projects the company has.
    """
    company_id = current_user.company_id
    owner_id = card.user_id if card else current_user.id
    projects = svc.active_projects(company_id, limit=svc.PICKER_THRESHOLD + 1)
    project_search = len(projects) > svc.PICKER_THRESHOLD
    if project_search:
        projects = svc.recent_projects(company_id, owner_id, week_start)
    project_id = parse_id(values.get("project_id"))
    project = None
    if project_id is not None:
        project = db.session.get(Project, project_id)
        if project is None or project.company_id != company_id:
            project = None
    if project is None and entry is None and projects:
        project = projects[0]
    if project is not None and project not in projects:
        projects = [project, *projects]  # an entry on a since-deactivated project stays editable
    cost_codes, code_search = entry_cost_codes(project, entry, values, owner_id, week_start)
    if not values.get("work_date"):
        today = svc.now_local_date(current_user)
        in_week = week_start <= today <= week_start + timedelta(days=6)
        values = {**values, "work_date": (today if in_week else week_start).isoformat()}
    row_id = f"entry-form-{entry.id}" if entry else "entry-form-new"
    return {
        "row_id": row_id,
        "entry": entry,
        "card": card,
        "week_start": week_start,
        "days": svc.week_days(week_start),
        "values": values,
        "projects": projects,
        "project": project,
        "project_search": project_search,
        "cost_codes": cost_codes,
        "code_search": code_search,
        "start_stop": bool(project and project.time_entry_mode.value == "start_stop"),
        "work_types": list(WorkType),
        "errors": errors or {},
        "post_url": (
            url_for("timecards.update_entry", entry_id=entry.id)
            if entry
            else url_for("timecards.create_entry")
        ),
        "cancel_url": card_url(card, week_start),
    }


def entry_cost_codes(project, entry, values, owner_id, week_start) -> tuple[list, bool]:
    """(the cost codes the row offers, whether it needs a search box) for `project`."""
    if project is None:
        return [], False
    company_id = current_user.company_id
    cost_codes = svc.project_cost_codes(company_id, project.id, limit=svc.PICKER_THRESHOLD + 1)
    code_search = len(cost_codes) > svc.PICKER_THRESHOLD
    if code_search:
        cost_codes = svc.recent_cost_codes(company_id, owner_id, project.id, week_start)
        chosen_id = parse_id(values.get("cost_code_id"))
        if chosen_id is not None and chosen_id not in {c.id for c in cost_codes}:
            chosen = svc.project_cost_codes_by_id(company_id, project.id, [chosen_id])
            cost_codes = [*chosen, *cost_codes]
    if entry and entry.cost_code and entry.cost_code not in cost_codes:
        cost_codes.append(entry.cost_code)  # a since-deactivated code stays editable
    if not code_search:
        cost_codes.sort(key=lambda c: c.code)
    return cost_codes, code_search


def entry_values(entry: TimeEntry) -> dict:
    return {
        "work_date": entry.work_date.isoformat(),
        "project_id": entry.project_id,
        "cost_code_id": entry.cost_code_id or "",
        "start_time": entry.start_time.strftime("%H:%M") if entry.start_time else "",
        "end_time": entry.end_time.strftime("%H:%M") if entry.end_time else "",
        "hours": f"{entry.hours:.2f}",
        "break_minutes": entry.break_minutes,
        "work_type": entry.work_type.value,
        "notes": entry.notes or "",
    }


def viewable_card_or_404(card_id: int) -> TimeCard:
    """The current company's card the signed-in user may see (others' → 404)."""
    card = get_scoped_or_404(TimeCard, card_id)
    if not svc.can_view(card, current_user):
        abort(404)
    return card


def entry_or_404(entry_id: int) -> TimeEntry:
    """An entry the user may change: invisible cards → 404, visible-but-not-theirs → 403."""
    entry = get_scoped_or_404(TimeEntry, entry_id)
    if not svc.can_view(entry.time_card, current_user):
        abort(404)
    if not svc.may_change_entries(entry.time_card, current_user):
        abort(403)
    return entry


def render_card(card_id: int | None, owner, week_start: date, status: int = 200, **extra):
    card = svc.load_card(card_id) if card_id else None
    return render_fragment(
        "timecards/_card.html", status, **card_context(card, owner, week_start, **extra)
    )


def entry_errors_response(card, week_start, entry, errors):
    """The row again with its messages, swapped over itself (422)."""
    context = entry_form_context(card, week_start, entry, request.form.to_dict(), errors)
    response = render_fragment("timecards/_entry_form.html", 422, **context)
    response.headers["HX-Retarget"] = f"#{context['row_id']}"
    response.headers["HX-Reswap"] = "outerHTML"
    return response


# ---------------------------------------------------------------- pages


@bp.get("/")
@login_required
def my_time():
    today = svc.now_local_date(current_user)
    week_start = svc.monday_of(parse_week(request.args.get("week"), today))
    card = svc.find_card(current_user.company_id, current_user.id, week_start)
    context = card_context(card, current_user, week_start)
    if is_fragment_request():  # the week's card only: the clock panel stays as it is
        return render_fragment("timecards/_card.html", **context)
    # The clock-in pickers are the add row's when this week is the clock's week.
    clock_week = svc.monday_of(clock_svc.local_today(current_user))
    add_row = context.get("new_row") if week_start == clock_week else None
    return render_page_or_fragment(
        "timecards/my_time.html",
        "timecards/_card.html",
        prev_week=week_start - timedelta(days=7),
        next_week=week_start + timedelta(days=7),
        this_week=svc.monday_of(today),
        week_notice=week_notice(request.args.get("week")),
        clock_panel=clock_panel_context(row=add_row),
        **context,
    )


@bp.get("/cards/<int:card_id>")
@login_required
def card_detail(card_id: int):
    card = viewable_card_or_404(card_id)
    card = svc.load_card(card.id)
    return render_page_or_fragment(
        "timecards/card.html",
        "timecards/_card.html",
        **card_context(card, card.user, card.week_start),
    )


@bp.get("/approvals")
@require_role(*APPROVER_ROLES)
def approvals():
    status_key = request.args.get("status", "submitted")
    if status_key not in STATUS_FILTERS:
        status_key = "submitted"
    page = paginate(svc.cards_for_approver(current_user, STATUS_FILTERS[status_key]))
    return render_page_or_fragment(
        "timecards/approvals.html",
        "timecards/_approvals_table.html",
        cards=page,
        totals=svc.card_totals([card.id for card in page.items]),
        status_key=status_key,
        status_filters=list(STATUS_FILTERS),
        fmt=svc.format_hours,
        clocked=None if is_fragment_request() else clocked_in_summary(),
    )


# ---------------------------------------------------------------- entries


@bp.get("/entries/form")
@login_required
def entry_form():
    """The add/edit row; reloaded with the row's values when the project changes."""
    entry = None
    entry_id = parse_id(request.args.get("entry_id"))
    if entry_id is not None:
        entry = entry_or_404(entry_id)
        card = entry.time_card
    else:
        card, _owner = card_for_new_entry(request.args)
    week_start = (
        card.week_start
        if card
        else svc.monday_of(parse_week(request.args.get("week"), svc.now_local_date(current_user)))
    )
    values = request.args.to_dict()
    if entry is not None and "project_id" not in values:
        values = entry_values(entry)
    return render_fragment(
        "timecards/_entry_form.html", **entry_form_context(card, week_start, entry, values)
    )


@bp.get("/entries/projects")
@login_required
def project_matches():
    """The entry row's project search: a few matching active projects of your company."""
    q = (request.args.get("project_q") or "").strip()
    matches = svc.search_active_projects(current_user.company_id, q) if q else []
    return render_fragment(
        "timecards/_project_matches.html",
        q=q,
        picker=request.args.get("picker"),
        matches=matches[: svc.PICKER_MATCHES],
        more=len(matches) > svc.PICKER_MATCHES,
    )


@bp.get("/entries/cost-codes")
@login_required
def cost_code_matches():
    """The entry row's cost code search: a few matching active codes of the chosen project."""
    project_id = parse_id(request.args.get("project_id"))
    if project_id is None:
        abort(404)
    project = get_scoped_or_404(Project, project_id)
    q = (request.args.get("cost_code_q") or "").strip()
    matches = svc.search_project_cost_codes(project.company_id, project.id, q) if q else []
    return render_fragment(
        "timecards/_cost_code_matches.html",
        q=q,
        picker=request.args.get("picker"),
        project=project,
        matches=matches[: svc.PICKER_MATCHES],
        more=len(matches) > svc.PICKER_MATCHES,
    )


def card_for_new_entry(source) -> tuple[TimeCard | None, object]:
    """(card, owner) for an add row: a card id (admins on others' cards) or your own week."""
    card_id = parse_id(source.get("card_id"))
    if card_id is not None:
        card = viewable_card_or_404(card_id)
        if not svc.may_change_entries(card, current_user):
            abort(403)
        return card, card.user
    return None, current_user


@bp.post("/entries")
@login_required
def create_entry():
    card, owner = card_for_new_entry(request.form)
    if card is not None:
        week_start = card.week_start
    else:
        week_day = parse_date(request.form.get("week")) or parse_date(request.form.get("work_date"))
        week_start = svc.monday_of(week_day or svc.now_local_date(current_user))
        card = svc.find_card(current_user.company_id, owner.id, week_start)
    data, errors = parse_entry_form(request.form)
    if errors:
        return entry_errors_response(card, week_start, None, errors)
    try:
        if card is None:
            card = svc.get_or_create_card(current_user.company_id, owner, week_start, current_user)
        entry = svc.create_entry(card, data, current_user)
    except svc.TimeCardError as error:
        db.session.rollback()
        card = svc.find_card(current_user.company_id, owner.id, week_start)
        return entry_errors_response(card, week_start, None, error.errors)
    return render_card(entry.time_card_id, owner, week_start)


@bp.post("/entries/<int:entry_id>")
@login_required
def update_entry(entry_id: int):
    entry = entry_or_404(entry_id)
    card = entry.time_card
    data, errors = parse_entry_form(request.form)
    if errors:
        return entry_errors_response(card, card.week_start, entry, errors)
    try:
        svc.update_entry(entry, data, current_user)
    except svc.TimeCardError as error:
        db.session.rollback()
        entry = db.session.get(TimeEntry, entry_id)
        return entry_errors_response(entry.time_card, card.week_start, entry, error.errors)
    return render_card(card.id, card.user, card.week_start)


@bp.post("/entries/<int:entry_id>/delete")
@login_required
def delete_entry(entry_id: int):
    entry = entry_or_404(entry_id)
    card = entry.time_card
    try:
        svc.delete_entry(entry, current_user)
    except svc.TimeCardError as error:
        return render_card(card.id, card.user, card.week_start, 422, card_error=error.errors[""])
    return render_card(card.id, card.user, card.week_start)


# ---------------------------------------------------------------- status


def _change(card_id: int, new_status: TimeCardStatus, note: str | None = None):
    card = viewable_card_or_404(card_id)
    try:
        svc.change_status(card, new_status, current_user, note)
    except svc.TimeCardError as error:
        db.session.rollback()
        card = db.session.get(TimeCard, card_id)
        return render_card(
            card.id,
            card.user,
            card.week_start,
            422,
            card_error=error.errors.get(""),
            note_error=error.errors.get("note"),
            note=note or "",
        )
    return render_card(card.id, card.user, card.week_start)


@bp.post("/cards/<int:card_id>/submit")
@login_required
def submit(card_id: int):
    card = viewable_card_or_404(card_id)
    if card.user_id != current_user.id and not current_user.is_admin:
        abort(403)
    return _change(card_id, TimeCardStatus.SUBMITTED)


@bp.post("/cards/<int:card_id>/approve")
@require_role(*APPROVER_ROLES)
def approve(card_id: int):
    card = viewable_card_or_404(card_id)
    if not svc.can_approve(card, current_user):
        abort(403)
    return _change(card_id, TimeCardStatus.APPROVED)


@bp.post("/cards/<int:card_id>/reject")
@require_role(*APPROVER_ROLES)
def reject(card_id: int):
    card = viewable_card_or_404(card_id)
    if not svc.can_approve(card, current_user):
        abort(403)
    return _change(card_id, TimeCardStatus.REJECTED, request.form.get("note", ""))


# ---------------------------------------------------------------- clock in / out


def clock_panel_context(
    values: dict | None = None, errors: dict | None = None, row: dict | None = None
) -> dict:
    """What _clock_panel.html needs: the open clock, or the clock-in pickers (`row`: an
    empty add row of the clock's week already built for the page, reused as they are equal)."""
    clock = clock_svc.open_clock(current_user.company_id, current_user.id)
    errors = errors or {}
    if clock is not None:
        return {
            "clock": clock,
            "started": clock_svc.started_label(clock, current_user),
            "elapsed": clock_svc.elapsed_label(clock),
            "values": values or {},
            "errors": errors,
        }
    if row is None or values or errors:
        week_start = svc.monday_of(clock_svc.local_today(current_user))
        row = entry_form_context(None, week_start, None, values or {}, errors)
    return {"clock": None, "values": row["values"], "errors": errors, "row": row}


def clock_panel_response(status: int = 200, values=None, errors=None):
    """The panel for htmx; for a plain form, back to My time (with the reason if refused)."""
    if not is_fragment_request():
        for message in (errors or {}).values():
            flash(message, "error")
        return redirect(url_for("timecards.my_time"), 303)
    response = render_fragment(
        "timecards/_clock_panel.html", status, **clock_panel_context(values, errors)
    )
    return response


def own_clock_or_404(clock_id: int) -> ClockSession:
    """The signed-in user's own open clock; anyone else's (any company) → 404."""
    clock = get_scoped_or_404(ClockSession, clock_id)
    if clock.user_id != current_user.id:
        abort(404)
    return clock


@bp.get("/clock")
@login_required
def clock_panel():
    """The clock panel; reloaded with the form's values when the project changes."""
    return render_fragment(
        "timecards/_clock_panel.html", **clock_panel_context(request.args.to_dict())
    )


@bp.post("/clock/in")
@login_required
def clock_in():
    values = request.form.to_dict()
    fields, errors = parse_clock_in_form(request.form)
    if errors:
        return clock_panel_response(422, values, errors)
    try:
        clock_svc.clock_in(current_user, **fields)
    except clock_svc.ClockError as error:
        db.session.rollback()
        return clock_panel_response(422, values, {error.field: error.message})
    return clock_panel_response()


@bp.post("/clock/<int:clock_id>/out")
@login_required
def clock_out(clock_id: int):
    clock = own_clock_or_404(clock_id)
    values = request.form.to_dict()
    break_raw = (request.form.get("break_minutes") or "").strip()
    break_minutes = parse_int(break_raw, maximum=1440) if break_raw else 0
    if break_minutes is None:
        errors = {"break_minutes": "Enter the break in whole minutes (0 or more)."}
        return clock_panel_response(422, values, errors)
    try:
        entries = clock_svc.clock_out(clock, current_user, break_minutes)
    except clock_svc.ClockError as error:
        db.session.rollback()
        return clock_panel_response(422, values, {error.field: error.message})
    total = sum((entry.hours for entry in entries), Decimal("0.00"))
    days = " and ".join(f"{entry.work_date:%a %m/%d}" for entry in entries)
    flash(f"Clocked out: {svc.format_hours(total)} h added on {days}.", "success")
    week = svc.monday_of(entries[-1].work_date)
    return hx_redirect(url_for("timecards.my_time", week=week.isoformat()))


@bp.post("/clock/<int:clock_id>/cancel")
@login_required
def cancel_clock(clock_id: int):
    clock_svc.cancel(own_clock_or_404(clock_id))
    return clock_panel_response()


def clocked_in_summary() -> dict | None:
    """The first few people clocked in on the approver's projects, and how many in all."""
    query = clock_svc.clocked_in_now(current_user)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    clocks = list(db.session.scalars(query.limit(CLOCKED_IN_PREVIEW)))
    return {"clocks": clocks, "total": total, "started": clock_started_labels(clocks)}


def clock_started_labels(clocks) -> dict[int, str]:
    return {c.id: clock_svc.started_label(c, c.user) for c in clocks}


@bp.get("/clocked-in")
@require_role(*APPROVER_ROLES)
def clocked_in():
    """Who is clocked in now on the projects you approve (all of them for admins)."""
    page = paginate(clock_svc.clocked_in_now(current_user))
    return render_page_or_fragment(
        "timecards/clocked_in.html",
        "timecards/_clocked_in_table.html",
        clocks=page,
        started=clock_started_labels(page.items),
        elapsed=clock_svc.elapsed_label,
    )
