"""Weekly time cards, their entries, and the history of every change."""

import enum
from datetime import date, datetime, time
from decimal import Decimal

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


class TimeCardStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"  # back with the worker, editable, with the approver's note

    @property
    def label(self) -> str:
        return self.value.capitalize()


class WorkType(enum.StrEnum):
    REGULAR = "regular"
    OVERTIME = "overtime"
    DOUBLE_TIME = "double_time"

    @property
    def label(self) -> str:
        return {"regular": "Regular", "overtime": "Overtime", "double_time": "Double time"}[
            self.value
        ]


class TimeCard(IdMixin, TimestampMixin, db.Model):
    __tablename__ = "time_card"
    __table_args__ = (
        sa.UniqueConstraint("company_id", "user_id", "week_start"),
        sa.Index("ix_time_card_company_status", "company_id", "status"),
    )

    company_id: Mapped[int] = company_fk()
    user_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    week_start: Mapped[date]  # the Monday of the week
    status: Mapped[TimeCardStatus] = mapped_column(
        str_enum(TimeCardStatus, 20), default=TimeCardStatus.DRAFT
    )
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    approved_by_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("user_account.id", ondelete="SET NULL")
    )
    rejection_note: Mapped[str | None] = mapped_column(sa.Text)

    user = relationship("User", foreign_keys=[user_id], lazy="joined")
    approved_by = relationship("User", foreign_keys=[approved_by_id])
    entries = relationship(
        "TimeEntry",
        back_populates="time_card",
        order_by="(TimeEntry.work_date, TimeEntry.start_time, TimeEntry.id)",
        cascade="all, delete-orphan",
    )
    events = relationship(
        "TimeCardEvent",
        order_by="TimeCardEvent.id.desc()",
        cascade="all, delete-orphan",
    )


class TimeEntry(IdMixin, TimestampMixin, db.Model):
    __tablename__ = "time_entry"
    __table_args__ = (sa.Index("ix_time_entry_card_date", "time_card_id", "work_date"),)

    company_id: Mapped[int] = company_fk()
    time_card_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("time_card.id", ondelete="CASCADE")
    )
    work_date: Mapped[date]
    project_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("project.id"), index=True)
    cost_code_id: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("cost_code.id"))
    start_time: Mapped[time | None]
    end_time: Mapped[time | None]
    break_minutes: Mapped[int] = mapped_column(default=0)
    hours: Mapped[Decimal] = mapped_column(sa.Numeric(5, 2))
    work_type: Mapped[WorkType] = mapped_column(str_enum(WorkType, 20), default=WorkType.REGULAR)
    notes: Mapped[str | None] = mapped_column(sa.Text)

    time_card = relationship("TimeCard", back_populates="entries")
    project = relationship("Project", lazy="joined")
    cost_code = relationship("CostCode", lazy="joined")


class TimeCardEvent(IdMixin, db.Model):
    """One line of a card's history: who did what, when."""

    __tablename__ = "time_card_event"

    company_id: Mapped[int] = company_fk()
    time_card_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("time_card.id", ondelete="CASCADE"), index=True
    )
    actor_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("user_account.id", ondelete="SET NULL")
    )
    action: Mapped[str] = mapped_column(sa.String(40))
    detail: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    actor = relationship("User", lazy="joined")


class ClockSession(IdMixin, db.Model):
    """A person's open clock-in; clock out turns it into time entries and deletes it.

    Only open clocks live here, so the unique user_id is the "one open clock per person"
    rule itself: a double click or a second tab cannot open another.
    """

    __tablename__ = "clock_session"
    __table_args__ = (sa.UniqueConstraint("user_id"),)

    company_id: Mapped[int] = company_fk()
    user_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("user_account.id", ondelete="CASCADE")
    )
    project_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("project.id"), index=True)
    cost_code_id: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("cost_code.id"))
    work_type: Mapped[WorkType] = mapped_column(str_enum(WorkType, 20), default=WorkType.REGULAR)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    notes: Mapped[str | None] = mapped_column(sa.Text)

    user = relationship("User", lazy="joined")
    project = relationship("Project", lazy="joined")
    cost_code = relationship("CostCode", lazy="joined")
