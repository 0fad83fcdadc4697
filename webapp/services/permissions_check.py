"""'Check permissions' on the Procore card: can the connected Procore user read what Crewclock
needs? A few cheap read-only calls (one page of one record each) in a job, one row per call.

The result is a `permissions_check` SyncRun (no schema of its own): the rows sit in its
checkpoint JSON as {"checks": [{"label", "need", "result", "advice"}]}.
"""

from __future__ import annotations

import logging
from datetime import date

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import EntityType, IntegrationSettings, ProcoreLink, SyncRun
from webapp.procore import api as procore_api
from webapp.procore.errors import ProcoreAuthError, ProcoreError, ProcoreForbidden, ProcoreNotFound
from webapp.runs import service
from webapp.runs.kinds import RunKind
from webapp.runs.runner import Kind, RunContext, RunRunner, register

log = logging.getLogger(__name__)

KIND = RunKind.PERMISSIONS_CHECK
OK, REFUSED, NOT_FOUND, FAILED = "ok", "refused", "not_found", "failed"
RECONNECT = "The Procore connection needs to be reconnected (click Reconnect on this card)."


def _refused(tool: str) -> str:
    return f"The connected Procore user lacks permission: give them {tool} in Procore."


def active_check(company_id: int) -> SyncRun | None:
    """The company's permissions check still queued or running, if any."""
    return service.active(company_id, KIND)


def latest_check(company_id: int) -> SyncRun | None:
    return db.session.scalar(
        sa.select(SyncRun)
        .where(SyncRun.company_id == company_id, SyncRun.kind == KIND)
        .order_by(SyncRun.id.desc())
        .limit(1)
    )


def get_check(company_id: int, run_id: int) -> SyncRun | None:
    """A permissions check of this company, or None (another company's or kind of run)."""
    return service.get(company_id, run_id, KIND)


def start_check(company_id: int, user_id: int | None = None) -> SyncRun:
    """Queue a check (committed before the job is enqueued); one at a time per company."""
    run, _ = service.start(
        company_id, RunKind.PERMISSIONS_CHECK, started_by_id=user_id, checkpoint={"checks": []}
    )
    return run


def planned_checks(company_id: int, today: date | None = None) -> list[dict]:
    """The calls to make: label, what Crewclock needs it for, endpoint, advice on 403."""
    settings = db.session.get(IntegrationSettings, company_id)
    pc = settings.procore_company_id if settings else None
    if pc is None:
        return []
    project_id = db.session.scalar(
        sa.select(ProcoreLink.procore_id)
        .where(ProcoreLink.company_id == company_id, ProcoreLink.entity_type == EntityType.PROJECT)
        .order_by(ProcoreLink.local_id)
        .limit(1)
    )
    checks = [
        {
            "label": "Company users (Directory)",
            "need": "Import and sync users",
            "endpoint": procore_api.users_list(pc).first_row(),
            "tool": "Read Only or higher on the company Directory tool",
        },
        {
            "label": "Company projects",
            "need": "Import and sync projects",
            "endpoint": procore_api.projects_list(pc, include_inactive=False).first_row(),
            "tool": "access to the company's projects (company Directory: project access)",
        },
    ]
    list_id = settings.standard_cost_code_list_id
    if list_id is not None:
        checks.append(
            {
                "label": f"Cost codes of {settings.standard_cost_code_list_name or 'the list'}",
                "need": "Import and sync cost codes",
                "endpoint": procore_api.standard_cost_codes_list(pc, list_id).first_row(),
                "tool": "Read Only or higher on the company Admin tool (cost codes)",
            }
        )
    else:
        checks.append(
            {
                "label": "Standard cost code lists",
                "need": "Choose and import cost codes",
                "endpoint": procore_api.standard_cost_code_lists_list(pc).first_row(),
                "tool": "Read Only or higher on the company Admin tool (cost codes)",
            }
        )
    if project_id is not None:
        checks.append(
            {
                "label": "Timecard time types",
                "need": "Send time cards with the right work type",
                "endpoint": procore_api.timecard_time_types_list(project_id).first_row(),
                "tool": "Read Only or higher on the project's Timesheets tool",
            }
        )
        day = (today or date.today()).isoformat()
        checks.append(
            {
                "label": "Timecard entries of a linked project",
                "need": "Send time cards",
                "endpoint": procore_api.timecard_entries_list(project_id, day, day).first_row(),
                "tool": "Standard or Admin on the project's Timesheets tool",
            }
        )
    else:
        checks.append(
            {
                "label": "Timecard time types",
                "need": "Send time cards with the right work type",
                "endpoint": procore_api.company_timecard_time_types(pc),
                "tool": "Read Only or higher on the company Timesheets tool",
            }
        )
    return checks


def _outcome(check: dict, exc: Exception | None) -> dict:
    row = {"label": check["label"], "need": check["need"]}
    if exc is None:
        return {**row, "result": OK, "advice": ""}
    if isinstance(exc, ProcoreForbidden):
        return {**row, "result": REFUSED, "advice": _refused(check["tool"])}
    if isinstance(exc, ProcoreNotFound):
        advice = "Procore could not find it: check the company, list or project chosen in Set Up."
        return {**row, "result": NOT_FOUND, "advice": advice}
    return {**row, "result": FAILED, "advice": f"{type(exc).__name__}: {exc}"[:300]}


def run_check(company_id: int, run_id: int, client=None) -> SyncRun | None:
    """Run one check now (the job does the same through RunRunner)."""
    ctx = RunRunner().handle(run_id, company_id=company_id, client=client)
    return None if ctx is None else ctx.run


@register
class PermissionsCheckKind(Kind):
    """Make each call once, record one row per call on the run."""

    kinds = (RunKind.PERMISSIONS_CHECK,)
    running_stage = "Asking Procore"

    def failure_reason(self, exc: Exception) -> str:
        if isinstance(exc, ProcoreAuthError):
            return RECONNECT  # the card says to reconnect
        return super().failure_reason(exc)[:500]

    def prepare(self, ctx: RunContext) -> None:
        ctx.run.done = 0
        ctx.options["checks"] = planned_checks(ctx.company_id)
        ctx.run.total = len(ctx.options["checks"])

    def run(self, ctx: RunContext) -> None:
        run, client = ctx.run, ctx.client
        rows = []
        for check in ctx.options["checks"]:
            try:
                procore_api.ProcoreAPI(client).fetch(check["endpoint"])
                rows.append(_outcome(check, None))
            except ProcoreAuthError:
                raise  # the whole connection is refused: no use asking the rest
            except ProcoreError as exc:
                rows.append(_outcome(check, exc))
            run.done += 1
        run.checkpoint = {"checks": rows}
        run.unchanged = sum(1 for row in rows if row["result"] == OK)
        run.failed = len(rows) - run.unchanged
