"""Settings → Integrations: the Procore card, connect (OAuth), callback and disconnect."""

import click
from flask import Blueprint, abort, current_app, flash, g, request, session
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from webapp.extensions import db
from webapp.htmx import hx_redirect, is_fragment_request, render_fragment, render_page_or_fragment
from webapp.models import IntegrationSettings
from webapp.models.procore import ConnectionStatus
from webapp.procore.tokens import (
    ConnectFailed,
    begin_authorization,
    consume_authorization,
    exchange_code,
)
from webapp.redis_runtime import get_redis
from webapp.runs import service as runs
from webapp.services import connections, permissions_check
from webapp.tenancy import admin_required

# cli_group=None: `flask rotate-token-keys` sits beside the other top-level commands.
bp = Blueprint("integrations", __name__, url_prefix="/settings/integrations", cli_group=None)

SETUP_PATH = "/settings/integrations/procore/setup"


def _setup_url() -> str | None:
    """The set-up wizard's URL once that feature exists (another issue builds it)."""
    adapter = current_app.url_map.bind("localhost")
    for path in (SETUP_PATH + "/", SETUP_PATH):
        try:
            adapter.match(path, method="GET")
        except HTTPException:
            continue
        return path
    return None


def _render(message: str | None = None, status: int = 200, kind: str = "error"):
    company_id = current_user.company_id
    return render_page_or_fragment(
        "integrations/index.html",
        "integrations/_procore_card.html",
        status=status,
        conn=connections.get_connection(company_id),
        budget=connections.budget_status(company_id),
        setup_url=_setup_url(),
        settings=db.session.get(IntegrationSettings, company_id),
        perm_run=permissions_check.latest_check(company_id),
        message=message,
        message_kind=kind,
    )


@bp.get("/")
@admin_required
def index():
    return _render()


@bp.post("/procore/connect")
@admin_required
def procore_connect():
    url = begin_authorization(session, get_redis(), current_user.company_id, current_user.id)
    return hx_redirect(url)


@bp.get("/procore/callback")
@admin_required
def procore_callback():
    company_id = current_user.company_id
    try:
        verifier = consume_authorization(
            session, get_redis(), request.args.get("state"), company_id, current_user.id
        )
        if request.args.get("error"):
            if request.args["error"] == "access_denied":
                raise ConnectFailed(
                    400,
                    "Procore access was not allowed, so nothing was connected. "
                    "Click Connect and choose Allow to connect.",
                )
            raise ConnectFailed(
                400,
                "Procore did not complete the sign-in, so nothing was connected. "
                "Click Connect to try again.",
            )
        code = request.args.get("code")
        if not code:
            raise ConnectFailed(400, "Procore sent no sign-in code. Click Connect to try again.")
        token = exchange_code(code, verifier)
        connections.complete_connection(company_id, current_user.id, token)
    except ConnectFailed as failure:
        return _render(failure.message, failure.status)
    flash("Procore is connected.", "success")
    return hx_redirect(_index_url())


@bp.post("/procore/disconnect")
@admin_required
def procore_disconnect():
    result = connections.disconnect(current_user.company_id, current_user.id)
    if result.revoked:
        message = "Procore is disconnected; its tokens were revoked. Your Crewclock data stays."
    else:
        message = (
            "Procore is disconnected here, but Procore could not be reached to revoke access. "
            "You can also remove Crewclock from Procore's App Management."
        )
    return _render(message, 200, kind="success" if result.revoked else "error")


@bp.post("/procore/permissions")
@admin_required
def permissions_start():
    """'Check permissions': queue the read-only calls (the job makes them, never this request)."""
    company_id = current_user.company_id
    conn = connections.get_connection(company_id)
    settings = db.session.get(IntegrationSettings, company_id)
    if conn is None or conn.status != ConnectionStatus.ACTIVE:
        return _render("Connect Procore first, then check its permissions.", 422)
    if settings is None or settings.procore_company_id is None:
        return _render("Choose a Procore company in Set Up first.", 422)
    permissions_check.start_check(company_id, current_user.id)
    if not is_fragment_request():
        return hx_redirect(_index_url())
    return _render()


@bp.get("/procore/permissions/<int:perm_check_id>")
@admin_required
def permissions_run(perm_check_id: int):
    """One permissions check: progress while it runs (polled, stops by itself), then rows."""
    run = permissions_check.get_check(current_user.company_id, perm_check_id)
    if run is None:
        abort(404)
    runs.enqueue_if_lost(run)
    if not is_fragment_request():
        return _render()
    return render_fragment("integrations/_permissions_run.html", perm_run=run)


@bp.post("/procore/held-deletions/<int:run_id>/confirm")
@admin_required
def confirm_held_deletions(run_id: int):
    """Deactivate the records a reconciliation held back as too many to deactivate at once."""
    from webapp.models import SyncRun
    from webapp.services import sync
    from webapp.tenancy import get_scoped_or_404

    get_scoped_or_404(SyncRun, run_id)
    count = sync.confirm_held_deletions(current_user.company_id, run_id, current_user.id)
    if count is None:
        db.session.rollback()
        return _render(
            "Those deactivations are no longer waiting (a newer sync replaced them).", 409
        )
    db.session.commit()
    return _render(
        f"Confirmed: {count} {'record' if count == 1 else 'records'} deleted in Procore "
        "deactivated here.",
        kind="success",
    )


def _index_url() -> str:
    from flask import url_for

    return url_for("integrations.index")


@bp.app_context_processor
def procore_banner_state():
    """`procore_needs_reconnect()` for the banner on every page: one cheap lookup, lazily."""

    def procore_needs_reconnect() -> bool:
        if not current_user.is_authenticated:
            return False
        if "procore_needs_reconnect" not in g:
            try:
                status = connections.connection_status(current_user.company_id)
            except Exception:  # a banner must never break a page
                current_app.logger.warning("could not read the Procore connection status")
                status = None
            g.procore_needs_reconnect = status == ConnectionStatus.NEEDS_REAUTH
        return g.procore_needs_reconnect

    def procore_sync_pause_reason() -> str | None:
        """Why sync paused itself after repeated failures (admins only), else None."""
        if not (current_user.is_authenticated and current_user.is_admin):
            return None
        if "procore_sync_pause" not in g:
            from webapp.models import SyncState

            try:
                state = db.session.get(SyncState, current_user.company_id)
            except Exception:  # a banner must never break a page
                current_app.logger.warning("could not read the sync state")
                state = None
            paused = state is not None and state.paused_at is not None
            g.procore_sync_pause = (state.pause_reason or "repeated failures") if paused else None
        return g.procore_sync_pause

    def login_change_notices() -> list:
        """The signed-in person's undismissed notices that sync changed their login email."""
        if not current_user.is_authenticated:
            return []
        from webapp.services import login_notices

        try:  # read once per page (the banner calls it once)
            return login_notices.open_for_user(current_user.id)
        except Exception:  # a banner must never break a page
            current_app.logger.warning("could not read login change notices")
            return []

    return {
        "procore_needs_reconnect": procore_needs_reconnect,
        "procore_sync_pause_reason": procore_sync_pause_reason,
        "login_change_notices": login_change_notices,
    }


@bp.cli.command("rotate-token-keys")
def rotate_token_keys_command() -> None:
    """Re-encrypt every stored Procore token with the newest TOKEN_ENCRYPTION_KEYS key."""
    from webapp.procore.crypto import rotate_all_tokens

    changed = rotate_all_tokens(current_app._get_current_object())
    click.echo(f"Re-encrypted tokens of {changed} connection(s) with the newest key.")
