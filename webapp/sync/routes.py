"""Settings → Integrations → Procore → Sync: history, drill-down, CSV, 'Sync now', policy."""

import csv
import io

import click
import sqlalchemy as sa
from flask import Blueprint, Response, request, url_for
from flask_login import current_user

from webapp.extensions import db
from webapp.htmx import render_fragment, render_page_or_fragment
from webapp.models import RunStatus, SyncRun, SyncRunItem
from webapp.models.sync import ConflictPolicy, SyncState
from webapp.pagination import paginate
from webapp.services import sync, sync_runs
from webapp.sync.webhooks import bp as webhooks_bp
from webapp.tenancy import admin_required, current_company_id, get_scoped_or_404

# No url_prefix: the webhook receiver (nested) lives at /webhooks/procore.
bp = Blueprint("sync", __name__, cli_group=None)
bp.register_blueprint(webhooks_bp)
PREFIX = "/settings/integrations/procore/sync"
# What a run's page and CSV list: records that did not go through, and what was done in
# Procore without being asked (e.g. a duplicate Procore created late, removed).
FAILED_OUTCOMES = ("failed", "skipped", "conflict", "removed")
CSV_LIMIT = 50_000


def _runs_query(company_id: int):
    return (
        sa.select(SyncRun)
        .where(SyncRun.company_id == company_id, SyncRun.kind.in_(sync.SYNC_KINDS))
        .order_by(SyncRun.id.desc())
    )


def _context(company_id: int, message: str | None = None, kind: str = "success") -> dict:
    state = sync.state_for(company_id)
    db.session.commit()
    return {
        "runs": paginate(_runs_query(company_id)),
        "state": state,
        "settings": sync.saved_settings(company_id),
        "directions": sync.directions(sync.saved_settings(company_id)),
        "conflicts": sync.open_conflicts(company_id),
        "policies": list(ConflictPolicy),
        "kind_labels": sync.KIND_LABELS,
        "running": sync_runs.active_run(company_id, sync.SYNC_KIND),
        "message": message,
        "message_kind": kind,
    }


@bp.get(PREFIX)
@admin_required
def index():
    """Every sync run, newest first, with the conflict queue and the policy."""
    context = _context(current_company_id())
    return render_page_or_fragment("sync/index.html", "sync/_runs.html", **context)


@bp.post(PREFIX + "/now")
@admin_required
def sync_now():
    """Queue an incremental sync now (or say that one is already running)."""
    company_id = current_company_id()
    settings = sync.saved_settings(company_id)
    if not sync.sync_enabled(settings):
        message = "Finish the Procore set-up and turn on a sync direction first."
        return _panel(company_id, message, "error", 422)
    run, created = sync_runs.start_sync(company_id, sync.SYNC_KIND, "manual", current_user.id)
    if not created:
        return _panel(company_id, "A sync is already running; it is shown below.", "info", 409)
    return _panel(company_id, "Sync started. This page updates when it finishes.", "success")


@bp.post(PREFIX + "/full")
@admin_required
def sync_full():
    """Queue a full reconciliation (also refreshes cost codes and finds deletions)."""
    company_id = current_company_id()
    if not sync.sync_enabled(sync.saved_settings(company_id)):
        message = "Finish the Procore set-up and turn on a sync direction first."
        return _panel(company_id, message, "error", 422)
    _run, created = sync_runs.start_sync(company_id, sync.FULL_KIND, "manual", current_user.id)
    if not created:
        return _panel(company_id, "A full reconciliation is already running.", "info", 409)
    return _panel(company_id, "Full reconciliation started.", "success")


def _panel(company_id: int, message: str, kind: str, status: int = 200):
    context = _context(company_id, message, kind)
    return render_page_or_fragment("sync/index.html", "sync/_runs.html", status=status, **context)


@bp.post(PREFIX + "/resume")
@admin_required
def resume():
    """Lift the automatic pause after repeated failures."""
    company_id = current_company_id()
    sync_runs.resume(company_id)
    db.session.commit()
    return _panel(company_id, "Sync resumed. Scheduled syncs will run again.", "success")


@bp.post(PREFIX + "/policy")
@admin_required
def set_policy():
    """Choose what happens when both sides changed a record: Procore wins, or hold."""
    company_id = current_company_id()
    if not sync.set_conflict_policy(company_id, request.form.get("policy", "")):
        return _panel(company_id, "Choose one of the listed policies.", "error", 422)
    db.session.commit()
    return _panel(company_id, "Conflict policy saved.", "success")


@bp.post(PREFIX + "/conflicts/<int:conflict_id>")
@admin_required
def resolve(conflict_id: int):
    """Keep Procore's or Crewclock's values for a record held for review."""
    from webapp.models.sync import SyncConflict

    company_id = current_company_id()
    get_scoped_or_404(SyncConflict, conflict_id)
    keep = request.form.get("keep", "")
    if keep not in ("procore", "crewclock"):
        return _panel(company_id, "Choose which version to keep.", "error", 422)
    if not sync.resolve_conflict(company_id, conflict_id, keep, current_user.id):
        return _panel(company_id, "That conflict was already resolved.", "info", 409)
    db.session.commit()
    where = "Procore's" if keep == "procore" else "Crewclock's"
    return _panel(company_id, f"Kept {where} version; the next sync carries it over.", "success")


@bp.get(PREFIX + "/runs/<int:run_id>")
@admin_required
def run_detail(run_id: int):
    """One run: counts, error and the records that failed or were skipped, with reasons."""
    run = get_scoped_or_404(SyncRun, run_id)
    items = paginate(
        sa.select(SyncRunItem)
        .where(
            SyncRunItem.run_id == run.id,
            SyncRunItem.company_id == run.company_id,
            # Plus anything a person should know (a deactivation, a changed login email).
            sa.or_(SyncRunItem.outcome.in_(FAILED_OUTCOMES), SyncRunItem.reason.is_not(None)),
        )
        .order_by(SyncRunItem.id)
    )
    return render_page_or_fragment(
        "sync/run.html",
        "sync/_run.html",
        run=run,
        items=items,
        kind_labels=sync.KIND_LABELS,
    )


@bp.get(PREFIX + "/runs/<int:run_id>/progress")
@admin_required
def run_progress(run_id: int):
    """The small polling fragment of a queued/running run (stops polling when finished)."""
    run = get_scoped_or_404(SyncRun, run_id)
    return render_fragment("sync/_progress.html", run=run)


@bp.get(PREFIX + "/history.csv")
@admin_required
def history_csv():
    """Every run and every failed/skipped record, as CSV."""
    company_id = current_company_id()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "run_id",
            "kind",
            "trigger",
            "status",
            "started_at",
            "finished_at",
            "duration_s",
            "added",
            "updated",
            "unchanged",
            "skipped",
            "failed",
            "deleted",
            "api_calls",
            "http_429",
            "record_type",
            "procore_id",
            "local_id",
            "record",
            "outcome",
            "reason",
        ]
    )
    runs = db.session.scalars(_runs_query(company_id).limit(CSV_LIMIT)).all()
    items_by_run: dict[int, list] = {}
    if runs:
        items = db.session.scalars(
            sa.select(SyncRunItem)
            .where(
                SyncRunItem.company_id == company_id,
                SyncRunItem.run_id.in_([r.id for r in runs[:1000]]),
                SyncRunItem.outcome.in_(FAILED_OUTCOMES),
            )
            .order_by(SyncRunItem.id)
            .limit(CSV_LIMIT)
        )
        for item in items:
            items_by_run.setdefault(item.run_id, []).append(item)
    for run in runs:
        base = [
            run.id,
            run.kind,
            run.trigger,
            run.status.value,
            run.started_at.isoformat() if run.started_at else "",
            run.finished_at.isoformat() if run.finished_at else "",
            _duration(run),
            run.created,
            run.updated,
            run.unchanged,
            run.skipped,
            run.failed,
            run.deleted,
            run.api_calls,
            run.http_429,
        ]
        rows = items_by_run.get(run.id) or [None]
        for item in rows:
            extra = ["", "", "", "", "", ""]
            if item is not None:
                extra = [
                    item.entity_type,
                    item.procore_id or "",
                    item.local_id or "",
                    _safe(item.label),
                    item.outcome,
                    _safe(item.reason),
                ]
            writer.writerow(base + extra)
    response = Response(buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = "attachment; filename=procore-sync-history.csv"
    return response


def _safe(text: str | None) -> str:
    """Neutralise spreadsheet formulas in text that came from Procore."""
    text = text or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _duration(run: SyncRun) -> str:
    if run.started_at and run.finished_at:
        return f"{(run.finished_at - run.started_at).total_seconds():.1f}"
    return ""


@bp.app_context_processor
def sync_status_helpers():
    """`procore_sync_status()` for the Integrations card (evaluated only when shown)."""

    def procore_sync_status():
        if not current_user.is_authenticated:
            return None
        company_id = current_user.company_id
        last_ok = db.session.scalar(
            sa.select(SyncRun.finished_at)
            .where(
                SyncRun.company_id == company_id,
                SyncRun.kind.in_(sync.SYNC_KINDS),
                SyncRun.status.in_((RunStatus.SUCCEEDED, RunStatus.PARTIAL)),
            )
            .order_by(SyncRun.id.desc())
            .limit(1)
        )
        state = db.session.get(SyncState, company_id)
        conflicts = len(sync.open_conflicts(company_id, limit=1))
        last = db.session.scalar(
            sa.select(SyncRun)
            .where(SyncRun.company_id == company_id, SyncRun.kind.in_(sync.SYNC_KINDS))
            .order_by(SyncRun.id.desc())
            .limit(1)
        )
        attention = bool(
            (state and state.paused_at)
            or conflicts
            or (last is not None and last.status in (RunStatus.FAILED, RunStatus.PARTIAL))
        )
        from webapp.services import login_notices

        held = sync.held_deletions(company_id)
        return {
            "last_success_at": last_ok,
            "paused": bool(state and state.paused_at),
            "attention": attention or bool(held),
            "url": url_for("sync.index"),
            "held": held,
            "held_url": url_for("integrations.confirm_held_deletions", run_id=held["run_id"])
            if held
            else None,
            "held_run_url": url_for("sync.run_detail", run_id=held["run_id"]) if held else None,
            "login_changes": login_notices.recent_for_company(company_id),
        }

    return {"procore_sync_status": procore_sync_status}


@bp.cli.command("sync-scheduler")
@click.option("--every", default=30.0, help="Seconds between ticks.")
@click.option("--once", is_flag=True, help="Tick once and exit.")
def sync_scheduler_command(every: float, once: bool) -> None:
    """Start periodic syncs (several schedulers may run; each bucket is enqueued once)."""
    if once:
        for started in sync_runs.tick():
            click.echo(f"started {started}")
        return
    sync_runs.scheduler_loop(every)
