"""Sync bookkeeping: cursors per entity, per-company sync health, webhook events, conflicts."""

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import BigId, IdMixin, UTCDateTime, company_fk, str_enum, utcnow


class ConflictPolicy(enum.StrEnum):
    PROCORE_WINS = "procore_wins"
    HOLD = "hold"

    @property
    def label(self) -> str:
        return {"procore_wins": "Procore wins", "hold": "Hold for review"}[self.value]


class SyncCursor(IdMixin, db.Model):
    """Where the incremental poll of one entity type resumes (Procore's clock)."""

    __tablename__ = "sync_cursor"
    __table_args__ = (sa.UniqueConstraint("company_id", "entity_type"),)

    company_id: Mapped[int] = company_fk()
    entity_type: Mapped[str] = mapped_column(sa.String(20))
    # Start of the last complete incremental run, from Procore's Date header.
    cursor: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_full_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SyncState(db.Model):
    """One company's sync health and policy: failures in a row, pause, webhook hook."""

    __tablename__ = "sync_state"

    company_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("company.id", ondelete="CASCADE"), primary_key=True
    )
    conflict_policy: Mapped[ConflictPolicy] = mapped_column(
        str_enum(ConflictPolicy, 20),
        default=ConflictPolicy.PROCORE_WINS,
    )
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pause_reason: Mapped[str | None] = mapped_column(sa.Text)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    hook_id: Mapped[int | None] = mapped_column(BigId)
    hook_procore_company_id: Mapped[int | None] = mapped_column(BigId)
    hook_error: Mapped[str | None] = mapped_column(sa.Text)
    # Deactivations a reconciliation held back because they were too many at once:
    # {"run_id", "reason", "records": {entity: [Procore ids]}}; an admin confirms them.
    held_deletions: Mapped[dict | None] = mapped_column(sa.JSON)


class ProcoreWebhookEvent(IdMixin, db.Model):
    """One webhook delivery from Procore, stored once per event (ulid, else id)."""

    __tablename__ = "procore_webhook_event"
    __table_args__ = (
        sa.UniqueConstraint("dedupe_key"),
        sa.Index("ix_procore_webhook_event_pending", "company_id", "processed_at"),
    )

    company_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("company.id", ondelete="CASCADE")
    )
    dedupe_key: Mapped[str] = mapped_column(sa.String(64))
    procore_company_id: Mapped[int | None] = mapped_column(BigId)
    resource_name: Mapped[str] = mapped_column(sa.String(80))
    resource_id: Mapped[int | None] = mapped_column(BigId)
    event_type: Mapped[str] = mapped_column(sa.String(20))
    source_application_id: Mapped[str | None] = mapped_column(sa.String(120))
    event_timestamp: Mapped[str | None] = mapped_column(sa.String(40))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(sa.String(200))


class SyncConflict(IdMixin, db.Model):
    """A record changed on both sides since the last sync, held for an admin to resolve."""

    __tablename__ = "sync_conflict"
    __table_args__ = (sa.Index("ix_sync_conflict_company_open", "company_id", "resolved_at"),)

    company_id: Mapped[int] = company_fk()
    entity_type: Mapped[str] = mapped_column(sa.String(20))
    local_id: Mapped[int] = mapped_column(BigId)
    procore_id: Mapped[int] = mapped_column(BigId)
    label: Mapped[str | None] = mapped_column(sa.String(300))
    local_values: Mapped[dict] = mapped_column(sa.JSON)
    procore_values: Mapped[dict] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution: Mapped[str | None] = mapped_column(sa.String(20))  # procore|crewclock
    resolved_by_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("user_account.id", ondelete="SET NULL")
    )


class LoginChangeNotice(IdMixin, db.Model):
    """Sync changed (or Procore tried to change) a user's login email: shown to the user
    until they dismiss it, and listed for admins (Crewclock sends no mail)."""

    __tablename__ = "login_change_notice"
    __table_args__ = (sa.Index("ix_login_change_notice_user_open", "user_id", "dismissed_at"),)

    company_id: Mapped[int] = company_fk()
    user_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("user_account.id", ondelete="CASCADE")
    )
    run_id: Mapped[int | None] = mapped_column(BigId)
    old_email: Mapped[str | None] = mapped_column(sa.String(254))
    new_email: Mapped[str | None] = mapped_column(sa.String(254))
    # True when Crewclock kept its email and sent it back to Procore instead of taking it.
    kept: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
