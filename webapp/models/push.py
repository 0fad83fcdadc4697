"""The time-card outbox: one row per time entry that Crewclock sends to Procore.

The row is written in the same transaction as the status change or entry edit that makes it
necessary (a transactional outbox) and says what Procore should end up holding for that
entry; the push job works rows until Procore agrees. The row outlives a deleted entry so the
Procore copy can still be removed.
"""

import enum
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import BigId, IdMixin, TimestampMixin, UTCDateTime, company_fk, str_enum


class PushState(enum.StrEnum):
    PENDING = "pending"  # work to do
    SENDING = "sending"  # a request is (or was, if the worker died) in flight
    UNKNOWN = "unknown"  # a create may have reached Procore: look it up before anything else
    DONE = "done"  # Procore holds what we want (or, for a delete, holds nothing)
    FAILED = "failed"  # Procore refused; reason says why; 'Retry' puts it back to pending
    CONFLICT = "conflict"  # Procore locked or removed its copy; a person must decide
    NOT_MAPPED = "not_mapped"  # a user/project/cost code is not linked to Procore
    SKIPPED = "skipped"  # nothing to send (e.g. deleted before it was ever sent)
    WAITING_RATE_LIMIT = "waiting_rate_limit"  # paused by Procore's rate limit; resumes itself


WORK_STATES = (
    PushState.PENDING,
    PushState.SENDING,
    PushState.UNKNOWN,
    PushState.WAITING_RATE_LIMIT,
)


class PushAction(enum.StrEnum):
    """What Procore should end up holding for the entry."""

    UPSERT = "upsert"
    DELETE = "delete"


class ProcorePush(IdMixin, TimestampMixin, db.Model):
    """Outbox row: one per time entry ever made sendable, kept in step with Procore."""

    __tablename__ = "procore_push"
    __table_args__ = (
        sa.UniqueConstraint("company_id", "time_entry_id"),
        sa.UniqueConstraint("company_id", "origin_id"),
        sa.Index("ix_procore_push_company_state", "company_id", "state"),
        sa.Index("ix_procore_push_card", "time_card_id"),
    )

    company_id: Mapped[int] = company_fk()
    # No foreign keys: the row must survive the entry (to delete Procore's copy).
    time_entry_id: Mapped[int] = mapped_column(BigId)
    time_card_id: Mapped[int] = mapped_column(BigId)
    # Stable external id sent as Procore's origin_id; the key of every reconcile lookup.
    origin_id: Mapped[str] = mapped_column(sa.String(64))
    action: Mapped[PushAction] = mapped_column(str_enum(PushAction, 10), default=PushAction.UPSERT)
    state: Mapped[PushState] = mapped_column(str_enum(PushState), default=PushState.PENDING)
    # True from the moment a create is about to be sent until we know whether Procore made
    # it: while set, nothing may create again without first listing Procore's entries.
    create_in_doubt: Mapped[bool] = mapped_column(default=False)
    procore_id: Mapped[int | None] = mapped_column(BigId)
    procore_project_id: Mapped[int | None] = mapped_column(BigId)
    work_date: Mapped[date | None]
    # Hash of what Procore holds (after a confirmed write) and of the create in flight.
    payload_hash: Mapped[str | None] = mapped_column(sa.String(64))
    sent_hash: Mapped[str | None] = mapped_column(sa.String(64))
    # Bumped by every outbox write; the drain only marks a row done if it did not change
    # while the request was in flight (else the newer edit is sent next).
    generation: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    # For 'Not mapped': which kind of record to link ("user", "project", "cost_code") and
    # its local id, so the badge can link to the page that fixes it.
    fix_entity: Mapped[str | None] = mapped_column(sa.String(20))
    fix_local_id: Mapped[int | None] = mapped_column(BigId)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    procore_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Procore's copy as it answered our last write (create, update, or the lookup that
    # found a create whose reply was lost): a hash of its fields and its hours. Procore may
    # store other times than we sent (its rounding rules), so later reads are compared with
    # this, not with what we sent.
    procore_hash: Mapped[str | None] = mapped_column(sa.String(64))
    procore_hours: Mapped[Decimal | None] = mapped_column(sa.Numeric(6, 2))


class ProcoreLookup(IdMixin, db.Model):
    """Cached Procore ids that cost pages of calls to find (e.g. a user's person/party id)."""

    __tablename__ = "procore_lookup"
    __table_args__ = (sa.UniqueConstraint("company_id", "kind", "key"),)

    company_id: Mapped[int] = company_fk()
    kind: Mapped[str] = mapped_column(sa.String(30))  # e.g. "party_for_user"
    key: Mapped[str] = mapped_column(sa.String(80))
    procore_id: Mapped[int] = mapped_column(BigId)
