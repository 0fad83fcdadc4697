"""Projects and cost codes, and which cost codes a project uses."""

import enum
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.extensions import db
from webapp.models.base import BigId, IdMixin, TimestampMixin, company_fk, str_enum


class TimeEntryMode(enum.StrEnum):
    HOURS = "hours"
    START_STOP = "start_stop"

    @property
    def label(self) -> str:
        return "Total hours" if self is TimeEntryMode.HOURS else "Start/stop times with a break"


project_cost_code = sa.Table(
    "project_cost_code",
    db.Model.metadata,
    sa.Column(
        "project_id", BigId, sa.ForeignKey("project.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column(
        "cost_code_id", BigId, sa.ForeignKey("cost_code.id", ondelete="CASCADE"), primary_key=True
    ),
)

project_supervisor = sa.Table(
    "project_supervisor",
    db.Model.metadata,
    sa.Column(
        "project_id", BigId, sa.ForeignKey("project.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column(
        "user_id", BigId, sa.ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    ),
)


class Project(IdMixin, TimestampMixin, db.Model):
    __tablename__ = "project"
    __table_args__ = (sa.Index("ix_project_company_name", "company_id", "name"),)

    company_id: Mapped[int] = company_fk()
    name: Mapped[str] = mapped_column(sa.String(200))
    number: Mapped[str | None] = mapped_column(sa.String(50))
    street: Mapped[str | None] = mapped_column(sa.String(200))
    city: Mapped[str | None] = mapped_column(sa.String(100))
    state: Mapped[str | None] = mapped_column(sa.String(50))
    zip: Mapped[str | None] = mapped_column(sa.String(20))
    country: Mapped[str | None] = mapped_column(sa.String(2))
    latitude: Mapped[Decimal | None] = mapped_column(sa.Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(sa.Numeric(9, 6))
    active: Mapped[bool] = mapped_column(default=True)
    time_entry_mode: Mapped[TimeEntryMode] = mapped_column(
        str_enum(TimeEntryMode, 20),
        default=TimeEntryMode.HOURS,
    )

    cost_codes = relationship("CostCode", secondary=project_cost_code)
    supervisors = relationship("User", secondary=project_supervisor)

    @property
    def has_full_address(self) -> bool:
        return all([self.street, self.city, self.state, self.zip, self.country])

    @property
    def address_line(self) -> str:
        parts = [self.street, self.city, " ".join(p for p in [self.state, self.zip] if p)]
        return ", ".join(p for p in parts if p) + (f" ({self.country})" if self.country else "")


class CostCode(IdMixin, TimestampMixin, db.Model):
    __tablename__ = "cost_code"
    __table_args__ = (sa.UniqueConstraint("company_id", "code"),)

    company_id: Mapped[int] = company_fk()
    code: Mapped[str] = mapped_column(sa.String(50))
    name: Mapped[str] = mapped_column(sa.String(200))
    phase: Mapped[str | None] = mapped_column(sa.String(100))
    # Division -> code hierarchy (Procore's standard cost code tree).
    parent_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("cost_code.id", ondelete="SET NULL")
    )
    active: Mapped[bool] = mapped_column(default=True)

    parent = relationship("CostCode", remote_side="CostCode.id", lazy="joined", join_depth=1)

    @property
    def label(self) -> str:
        return f"{self.code} {self.name}"
