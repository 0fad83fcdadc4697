"""What Crewclock shares with Procore: links, set-up choices, and runs with their items."""

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.extensions import db
from webapp.models.base import (
    BigId,
    IdMixin,
    TimestampMixin,
    UTCDateTime,
    company_fk,
    str_enum,
    utcnow,
)


class EntityType(enum.StrEnum):
    USER = "user"
    PROJECT = "project"
    COST_CODE = "cost_code"


class SyncDirection(enum.StrEnum):
    PROCORE_TO_CREWCLOCK = "procore_to_crewclock"
    CREWCLOCK_TO_PROCORE = "crewclock_to_procore"
    BOTH = "both"
    OFF = "off"

    @property
    def label(self) -> str:
        return {
            "procore_to_crewclock": "Procore → Crewclock",
            "crewclock_to_procore": "Crewclock → Procore",
            "both": "Both ways",
            "off": "Off",
        }[self.value]

    @property
    def reads_procore(self) -> bool:
        return self in (SyncDirection.PROCORE_TO_CREWCLOCK, SyncDirection.BOTH)

    @property
    def writes_procore(self) -> bool:
        return self in (SyncDirection.CREWCLOCK_TO_PROCORE, SyncDirection.BOTH)


class TimecardTrigger(enum.StrEnum):
    ON_SUBMIT = "submitted"
    ON_APPROVAL = "approved"


class ProcoreLink(IdMixin, TimestampMixin, db.Model):
    """A local record ⇄ a Procore record. Only linked records sync; unlinking stops it."""

    __tablename__ = "procore_link"
    __table_args__ = (
        sa.UniqueConstraint("company_id", "entity_type", "local_id"),
        sa.UniqueConstraint("company_id", "entity_type", "procore_id"),
    )

    company_id: Mapped[int] = company_fk()
    entity_type: Mapped[EntityType] = mapped_column(str_enum(EntityType, 20))
    local_id: Mapped[int] = mapped_column(BigId)
    procore_id: Mapped[int] = mapped_column(BigId)
    # Hash of the last payload synced either way (echo suppression, "unchanged" counts).
    payload_hash: Mapped[str | None] = mapped_column(sa.String(64))
    procore_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when Procore's record no longer passes our validation (kept linked, not applied).
    sync_problem: Mapped[str | None] = mapped_column(sa.Text)


class IntegrationSettings(TimestampMixin, db.Model):
    """The set-up wizard's choices and progress for one company."""

    __tablename__ = "integration_settings"

    company_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("company.id", ondelete="CASCADE"), primary_key=True
    )
    procore_company_id: Mapped[int | None] = mapped_column(BigId)
    procore_company_name: Mapped[str | None] = mapped_column(sa.String(200))
    standard_cost_code_list_id: Mapped[int | None] = mapped_column(BigId)
    standard_cost_code_list_name: Mapped[str | None] = mapped_column(sa.String(200))
    current_step: Mapped[int] = mapped_column(default=1)
    completed_steps: Mapped[list] = mapped_column(sa.JSON, default=list)
    auto_import_users: Mapped[bool] = mapped_column(default=True)
    auto_import_cost_codes: Mapped[bool] = mapped_column(default=True)
    users_direction: Mapped[SyncDirection] = mapped_column(
        str_enum(SyncDirection), default=SyncDirection.PROCORE_TO_CREWCLOCK
    )
    projects_direction: Mapped[SyncDirection] = mapped_column(
        str_enum(SyncDirection), default=SyncDirection.PROCORE_TO_CREWCLOCK
    )
    cost_codes_direction: Mapped[SyncDirection] = mapped_column(
        str_enum(SyncDirection), default=SyncDirection.PROCORE_TO_CREWCLOCK
    )
    timecard_trigger: Mapped[TimecardTrigger] = mapped_column(
        str_enum(TimecardTrigger), default=TimecardTrigger.ON_APPROVAL
    )
    # Send waiting entries 25 at a time through v1.1 bulk_create (falls back to single POSTs).
    use_bulk_timecards: Mapped[bool] = mapped_column(default=False)
    # Procore line item type (cost type) sent on every entry so labour reaches budgets.
    labor_line_item_type_id: Mapped[int | None] = mapped_column(BigId)
    labor_line_item_type_name: Mapped[str | None] = mapped_column(sa.String(200))
    setup_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Random per company row, made once: the high digits of every timecard origin_id this
    # install sends, so two Crewclock installs pushing into one Procore company never reuse
    # one another's origin ids (see mapping_timecards.origin_id_for).
    timecard_origin_namespace: Mapped[int | None]
    # Procore's timesheet time-entry setting as the push last read it (company_configuration
    # projects_timecard_in_out_enabled): True = start/stop times, False = total hours, None
    # = not read yet. The problem says what Procore answered when it could not be read.
    procore_timecard_in_out: Mapped[bool | None]
    procore_time_entry_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    procore_time_entry_problem: Mapped[str | None] = mapped_column(sa.Text)
    # With users syncing both ways: when Procore changes a linked user's email (their
    # Crewclock login), keep Crewclock's and send it back to Procore instead.
    keep_crewclock_email: Mapped[bool] = mapped_column(default=False)


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"


class SyncRun(IdMixin, db.Model):
    """One durable run of background Procore work (an import, a push, a sync) with counts."""

    __tablename__ = "sync_run"
    __table_args__ = (sa.Index("ix_sync_run_company_kind", "company_id", "kind", "id"),)

    company_id: Mapped[int] = company_fk()
    kind: Mapped[str] = mapped_column(sa.String(40))  # e.g. import_users, push_timecards
    trigger: Mapped[str] = mapped_column(sa.String(20), default="manual")
    status: Mapped[RunStatus] = mapped_column(str_enum(RunStatus, 20), default=RunStatus.QUEUED)
    started_by_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Progress for the polling fragment.
    total: Mapped[int | None]
    done: Mapped[int] = mapped_column(default=0)
    stage: Mapped[str | None] = mapped_column(sa.String(80))
    created: Mapped[int] = mapped_column(default=0)
    linked: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    deleted: Mapped[int] = mapped_column(default=0)
    api_calls: Mapped[int] = mapped_column(default=0)
    http_429: Mapped[int] = mapped_column(default=0)
    # Where to resume after a crash (e.g. {"page": 4}) and the incremental cursor.
    checkpoint: Mapped[dict | None] = mapped_column(sa.JSON)
    cursor_before: Mapped[str | None] = mapped_column(sa.String(40))
    cursor_after: Mapped[str | None] = mapped_column(sa.String(40))
    error: Mapped[str | None] = mapped_column(sa.Text)

    items = relationship("SyncRunItem", back_populates="run", cascade="all, delete-orphan")

    @property
    def finished(self) -> bool:
        return self.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED)


class SyncRunItem(IdMixin, db.Model):
    """What happened to one record in a run, with the reason when it did not go through."""

    __tablename__ = "sync_run_item"
    __table_args__ = (sa.Index("ix_sync_run_item_run_outcome", "run_id", "outcome"),)

    company_id: Mapped[int] = company_fk()
    run_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("sync_run.id", ondelete="CASCADE"))
    entity_type: Mapped[str] = mapped_column(sa.String(30))
    procore_id: Mapped[int | None] = mapped_column(BigId)
    local_id: Mapped[int | None] = mapped_column(BigId)
    label: Mapped[str | None] = mapped_column(sa.String(300))
    outcome: Mapped[str] = mapped_column(sa.String(20))  # created|linked|updated|skipped|failed
    reason: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    run = relationship("SyncRun", back_populates="items")
