"""Pages and fragments for the time-card push (the work itself happens in jobs)."""

from datetime import date, timedelta

from flask import Blueprint, abort, current_app, redirect, request, url_for
from flask_login import current_user, login_required

from webapp.extensions import db
from webapp.htmx import is_fragment_request, render_fragment, render_page_or_fragment
from webapp.inputs import parse_date_checked, parse_id, parse_int
from webapp.models import IntegrationSettings, TimeCard
from webapp.runs import service as runs
from webapp.services import push
from webapp.services import timecards as cards
from webapp.tenancy import admin_required, current_company_id, get_scoped_or_404

bp = Blueprint("push", __name__, url_prefix="/time/procore")

FIX_ENDPOINTS = {
    "user": ("people.edit", "user_id"),
    "project": ("projects.edit", "project_id"),
    "cost_code": ("costcodes.edit", "cost_code_id"),
}


def fix_url(entity: str | None, local_id: int | None) -> str | None:
    """The admin page where the missing link is made."""
    if entity not in FIX_ENDPOINTS or local_id is None:
        return None
    endpoint, arg = FIX_ENDPOINTS[entity]
    return url_for(endpoint, **{arg: local_id})


def entry_url(project_id, entry_id) -> str | None:
    """The Procore page for an entry we sent."""
    settings = db.session.get(IntegrationSettings, current_company_id())
    return push.procore_entry_url(
        current_app.config["PROCORE_API_URL"],
        settings.procore_company_id if settings else None,
        project_id,
        entry_id,
        current_app.config["PROCORE_WEB_URL"],
    )


def may_retry(card: TimeCard) -> bool:
    return current_user.is_admin or cards.can_approve(card, current_user)


def card_sync(card: TimeCard | None) -> dict | None:
    """Template helper: the badge context for one card (one grouped query)."""
    if card is None or card.id is None:
        return None
    sync = push.card_sync_states(card.company_id, [card.id]).get(card.id)
    if sync is None:
        return None
    return {
        "card": card,
        "sync": sync,
        "link": entry_url(sync.procore_project_id, sync.procore_id)
        if sync.state == "done"
        else None,
        "fix": fix_url(sync.fix_entity, sync.fix_local_id),
        "can_retry": sync.state in ("failed", "conflict", "not_mapped") and may_retry(card),
    }


@bp.app_context_processor
def _helpers():
    return {"card_sync": card_sync}


def viewable_card(card_id: int) -> TimeCard:
    card = get_scoped_or_404(TimeCard, card_id)
    if not cards.can_view(card, current_user):
        abort(404)
    return card


@bp.get("/cards/<int:card_id>/badge")
@login_required
def badge(card_id: int):
    """The card's sync badge (polled while entries are still on their way)."""
    card = viewable_card(card_id)
    return render_fragment("timecards/_sync_badge.html", card=card)


@bp.get("/cards/<int:card_id>/detail")
@login_required
def detail(card_id: int):
    """Per-entry sync state, reasons, Procore links and Retry."""
    card = viewable_card(card_id)
    rows = push.card_push_rows(card.company_id, card.id)
    return render_fragment(
        "timecards/_sync_detail.html",
        card=card,
        rows=rows,
        entry_url=entry_url,
        fix_url=fix_url,
        can_retry=may_retry(card),
    )


@bp.post("/cards/<int:card_id>/retry")
@login_required
def retry(card_id: int):
    """Queue a card's failed, conflicting or unmapped entries again."""
    card = viewable_card(card_id)
    if not may_retry(card):
        abort(403)
    push_id = parse_id(request.form.get("push_id"))
    push.retry_card(card.company_id, card.id, push_id)
    return render_fragment("timecards/_sync_badge.html", card=card)


def parse_week(raw: str | None) -> tuple[date, str | None]:
    """(the Monday of the week named by `raw`, None), or (this week's, why not) when `raw`
    is malformed or outside the dates Crewclock keeps."""
    if not (raw or "").strip():
        return cards.monday_of(date.today()), None
    day, problem = parse_date_checked(raw)
    if day is None:
        return cards.monday_of(date.today()), f"{problem} Showing this week instead."
    return cards.monday_of(day), None


@bp.get("/check")
@admin_required
def check():
    """Pre-send check for a week: what a push would create, update or skip, and why."""
    week, problem = parse_week(request.args.get("week"))
    result = push.precheck_week(current_company_id(), week)
    return render_page_or_fragment(
        "push/check.html",
        "push/_check.html",
        check=result,
        week=week,
        prev_week=week - timedelta(days=7),
        next_week=week + timedelta(days=7),
        set_up=push._push_trigger(current_company_id()) is not None,
        message=problem,
    )


@bp.post("/send")
@admin_required
def send_now():
    """Queue whatever the trigger says belongs in Procore, then ask a worker to send it."""
    company_id = current_company_id()
    week, problem = parse_week(request.form.get("week"))
    if problem is not None:
        # Nothing is queued: the admin asked about a week that cannot exist here.
        return render_fragment(
            "push/_check.html",
            status=422,
            check=push.precheck_week(company_id, week),
            week=week,
            prev_week=week - timedelta(days=7),
            next_week=week + timedelta(days=7),
            set_up=True,
            message=f"Not sent: {problem}",
        )
    # The same rule as the status hook and the pre-send check: anything sendable but not
    # queued yet (e.g. approved under an older trigger) is queued before sending.
    push.requeue_open_cards(company_id)
    db.session.commit()
    waiting = push.queued_count(company_id)
    entries = f"{waiting} {'entry' if waiting == 1 else 'entries'}"
    if not waiting:
        message = "Nothing is waiting to be sent to Procore."
    elif push.enqueue_push(company_id):
        message = f"Sending {entries} now."
    else:
        message = f"A send is already on its way ({entries} waiting)."
    result = push.precheck_week(company_id, week)
    return render_fragment(
        "push/_check.html",
        check=result,
        week=week,
        prev_week=week - timedelta(days=7),
        next_week=week + timedelta(days=7),
        set_up=push._push_trigger(company_id) is not None,
        message=message,
    )


# ================================================================ the weekly hours check
HOURS_PAGE_SIZE = 50


def _hours_context(week: date, run, **extra) -> dict:
    """What the hours page and its fragments show: the week, its check, one page of rows."""
    rows = (run.checkpoint or {}).get("rows", []) if run is not None and run.finished else []
    page = parse_int(request.args.get("page"), minimum=1) or 1
    pages = max(1, -(-len(rows) // HOURS_PAGE_SIZE))
    page = min(page, pages)
    context = {
        "week": week,
        "week_end": _shifted(week, 6),
        "prev_week": _shifted(week, -7),
        "next_week": _shifted(week, 7),
        "this_week": cards.monday_of(date.today()),
        "run": run,
        "rows": rows[(page - 1) * HOURS_PAGE_SIZE : page * HOURS_PAGE_SIZE],
        "page_no": page,
        "pages": pages,
        "total_rows": len(rows),
        "set_up": push._push_trigger(current_company_id()) is not None,
        "errors": {},
        "message": None,
    }
    context.update(extra)
    return context


def _shifted(week: date, days: int) -> date:
    """`week` moved by `days`, or `week` itself at the calendar's edge (a check stored before
    weeks were limited can name year 1 or 9999; its page must still show what happened)."""
    try:
        return week + timedelta(days=days)
    except OverflowError:
        return week


def _week_of(run) -> date:
    """The week a stored check was for (this week if it is unreadable)."""
    try:
        return date.fromisoformat(run.cursor_before or "")
    except ValueError:
        return cards.monday_of(date.today())


@bp.get("/hours")
@admin_required
def hours():
    """Hours check: Crewclock's hours of a week against Procore's, with the latest check."""
    from webapp.services import hours_check

    try:
        week = hours_check.parse_week(request.args.get("week"))
    except hours_check.WeekNotValid:
        week = hours_check.last_week()
    run = hours_check.latest_check(current_company_id(), week)
    return render_page_or_fragment(
        "push/hours.html", "push/_hours.html", **_hours_context(week, run)
    )


@bp.post("/hours")
@admin_required
def hours_start():
    """'Check': queue a job that reads Procore's entries of the week and compares."""
    from webapp.services import hours_check

    try:
        week = hours_check.parse_week(request.form.get("week"))
    except hours_check.WeekNotValid as problem:
        week = hours_check.last_week()
        context = _hours_context(week, None, errors={"week": str(problem)})
        context["week_value"] = request.form.get("week", "")[:20]
        return render_fragment("push/_hours.html", status=422, **context)
    run = hours_check.start_check(current_company_id(), week, current_user.id)
    if not is_fragment_request():
        return redirect(url_for("push.hours_run", check_id=run.id), code=303)
    return render_fragment("push/_hours.html", **_hours_context(week, run))


def _check_or_404(check_id: int):
    from webapp.services import hours_check

    run = hours_check.get_check(current_company_id(), check_id)
    if run is None:
        abort(404)
    return run


@bp.get("/hours/<int:check_id>")
@admin_required
def hours_run(check_id: int):
    """One check: its progress (polled, stops by itself) then its rows, page by page."""
    run = _check_or_404(check_id)
    runs.enqueue_if_lost(run)
    week = _week_of(run)
    return render_page_or_fragment(
        "push/hours.html", "push/_hours_run.html", **_hours_context(week, run)
    )


@bp.post("/hours/<int:check_id>/resend")
@admin_required
def hours_resend(check_id: int):
    """'Re-send differences': entries from Crewclock missing or changed in Procore go back
    through the outbox (entries only in Procore are never touched)."""
    from webapp.services import hours_check

    run = _check_or_404(check_id)
    if not run.finished:
        abort(409)
    count = hours_check.resend_differences(run.company_id, run.id)
    if count:
        message = (
            f"{count} {'entry' if count == 1 else 'entries'} queued for Procore. "
            "When they are sent, click Check again to confirm there are no differences."
        )
    else:
        message = "Nothing to re-send: these entries were already sent again or changed here."
    if not is_fragment_request():
        return redirect(url_for("push.hours_run", check_id=check_id), code=303)
    run = _check_or_404(check_id)
    week = _week_of(run)
    return render_fragment("push/_hours_run.html", **_hours_context(week, run, message=message))
