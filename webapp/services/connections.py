"""The Procore connection of a company: store it after connect, show it, disconnect it, and
build the ProcoreClient every job uses."""

import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from webapp.extensions import db
from webapp.models.base import utcnow
from webapp.models.procore import ConnectionStatus, ProcoreConnection
from webapp.procore.client import DEFAULT_TIMEOUT, ProcoreClient
from webapp.procore.crypto import token_cipher
from webapp.procore.ratelimit import RequestBudget, budget_key
from webapp.procore.tokens import (
    ConnectFailed,
    ConnectionTokens,
    NeedsReauth,
    fetch_identity,
    revoke_token,
)
from webapp.redis_runtime import get_redis

log = logging.getLogger(__name__)


def get_connection(company_id: int) -> ProcoreConnection | None:
    """The company's connection row (any status), or None if it never connected."""
    return db.session.get(ProcoreConnection, company_id)


def connection_status(company_id: int) -> ConnectionStatus | None:
    """Just the status (one primary-key lookup; the banner on every page uses it)."""
    return db.session.scalar(
        sa.select(ProcoreConnection.status).where(ProcoreConnection.company_id == company_id)
    )


def _companies(raw: list) -> list[dict]:
    companies = []
    for entry in raw:
        if isinstance(entry, dict) and isinstance(entry.get("id"), int):
            companies.append({"id": entry["id"], "name": str(entry.get("name") or entry["id"])})
    return companies


def complete_connection(company_id: int, user_id: int, token: dict) -> ProcoreConnection:
    """After a good code exchange: ask Procore who and where, then store it all at once.

    Raises ConnectFailed (nothing stored) when Procore cannot tell us who the user is.
    """
    access = token.get("access_token")
    refresh = token.get("refresh_token")
    if not access or not refresh:
        raise ConnectFailed(502, "Procore did not send a usable token pair. Nothing was connected.")
    try:
        me, raw_companies = fetch_identity(access)
    except ConnectFailed:
        revoke_token(access)  # best effort: do not leave a live grant we cannot use
        raise
    companies = _companies(raw_companies)
    cipher = token_cipher()
    now = utcnow()
    expires_in = int(token.get("expires_in") or 5400)
    conn = db.session.get(ProcoreConnection, company_id)
    if conn is None:
        conn = ProcoreConnection(company_id=company_id)
        db.session.add(conn)
    conn.status = ConnectionStatus.ACTIVE
    conn.procore_user_id = me.get("id") if isinstance(me.get("id"), int) else None
    conn.procore_login = (me.get("login") or None) and str(me["login"])[:254]
    conn.procore_user_name = (me.get("name") or None) and str(me["name"])[:200]
    conn.available_companies = companies
    if conn.procore_company_id not in {c["id"] for c in companies}:
        # Reconnecting as someone who sees the chosen company keeps it (and every link).
        conn.procore_company_id = companies[0]["id"] if len(companies) == 1 else None
    conn.access_token_enc = cipher.encrypt(access)
    conn.refresh_token_enc = cipher.encrypt(refresh)
    conn.expires_at = now + timedelta(seconds=expires_in)
    conn.key_id = cipher.key_id
    conn.refresh_failures = 0
    conn.last_refresh_at = now
    conn.last_error = None
    conn.connected_by_id = user_id
    conn.connected_at = now
    db.session.commit()
    log.info(
        "audit action=procore.connect company=%s user=%s procore_user=%s",
        company_id,
        user_id,
        conn.procore_user_id,
    )
    return conn


@dataclass
class DisconnectResult:
    revoked: bool


def disconnect(company_id: int, user_id: int | None = None) -> DisconnectResult:
    """Revoke the tokens at Procore and forget them; Crewclock data and links stay."""
    conn = db.session.scalars(
        sa.select(ProcoreConnection)
        .where(ProcoreConnection.company_id == company_id)
        .with_for_update()
    ).one_or_none()
    if conn is None:
        return DisconnectResult(revoked=True)
    revoked = True
    if conn.access_token_enc:
        revoked = revoke_token(token_cipher().decrypt(conn.access_token_enc))
    conn.status = ConnectionStatus.DISCONNECTED
    conn.access_token_enc = None
    conn.refresh_token_enc = None
    conn.expires_at = None
    conn.last_error = None if revoked else "Procore could not be reached to revoke the tokens."
    db.session.commit()
    log.info("audit action=procore.disconnect company=%s user=%s", company_id, user_id)
    return DisconnectResult(revoked=revoked)


def mark_needs_reauth(company_id: int, reason: str) -> None:
    """Stop all Procore work for the company until an admin reconnects (e.g. a second 401)."""
    db.session.execute(
        sa.update(ProcoreConnection)
        .where(
            ProcoreConnection.company_id == company_id,
            ProcoreConnection.status == ConnectionStatus.ACTIVE,
        )
        .values(status=ConnectionStatus.NEEDS_REAUTH, last_error=reason[:500], updated_at=utcnow())
    )
    db.session.commit()
    log.warning("audit action=procore.needs_reauth company=%s reason=%s", company_id, reason)


def budget_status(company_id: int) -> dict | None:
    """The shared request budget's state for the connected Procore company, if known."""
    conn = get_connection(company_id)
    if conn is None or conn.procore_company_id is None:
        return None
    try:
        budget = _make_budget(conn.procore_company_id)
        return budget.status() if budget is not None else None
    except Exception:  # the card must render even when Redis or the budget is unwell
        log.warning("rate-limit budget status unavailable", exc_info=True)
        return None


def _make_budget(procore_company_id: int):
    """The request budget every worker shares for this (OAuth app, Procore company)."""
    key = budget_key(current_app.config["PROCORE_CLIENT_ID"], procore_company_id)
    return RequestBudget(get_redis(), key)


def procore_client_for(company_id: int, stats=None):
    """A ProcoreClient for the company's active connection; NeedsReauth when there is none."""
    conn = get_connection(company_id)
    if conn is None or conn.status != ConnectionStatus.ACTIVE or not conn.has_tokens:
        log.warning("procore work skipped company=%s: connection not active", company_id)
        raise NeedsReauth("The Procore connection needs an admin to reconnect it.")
    app = current_app._get_current_object()
    return ProcoreClient(
        app.config["PROCORE_API_URL"],
        conn.procore_company_id,
        ConnectionTokens(app, company_id),
        budget=_make_budget(conn.procore_company_id) if conn.procore_company_id else None,
        stats=stats,
        timeout=(
            DEFAULT_TIMEOUT[0],
            float(app.config.get("PROCORE_READ_TIMEOUT_SECONDS", DEFAULT_TIMEOUT[1])),
        ),
    )
