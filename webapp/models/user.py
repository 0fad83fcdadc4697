"""People: users of a company, with a role."""

import enum
from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.extensions import db
from webapp.models.base import IdMixin, TimestampMixin, UTCDateTime, company_fk, str_enum


class Role(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    SUPERVISOR = "supervisor"
    WORKER = "worker"

    @property
    def label(self) -> str:
        return self.value.capitalize()


APPROVER_ROLES = (Role.ADMIN, Role.MANAGER, Role.SUPERVISOR)


class User(IdMixin, TimestampMixin, UserMixin, db.Model):
    __tablename__ = "user_account"
    __table_args__ = (
        sa.UniqueConstraint("company_id", "employee_id"),
        sa.Index("ix_user_account_company_name", "company_id", "last_name", "first_name"),
    )

    company_id: Mapped[int] = company_fk()
    first_name: Mapped[str] = mapped_column(sa.String(100))
    last_name: Mapped[str] = mapped_column(sa.String(100))
    # Login identifiers are unique across the whole installation, stored lower-case.
    username: Mapped[str] = mapped_column(sa.String(80), unique=True)
    email: Mapped[str | None] = mapped_column(sa.String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(sa.String(40))
    employee_id: Mapped[str | None] = mapped_column(sa.String(40))
    role: Mapped[Role] = mapped_column(
        str_enum(Role, 20),
        default=Role.WORKER,
    )
    active: Mapped[bool] = mapped_column(default=True)
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    time_zone: Mapped[str] = mapped_column(sa.String(64), default="America/New_York")
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Part of every session's login id: raising it ends all of the user's sessions at once
    # (logout, a new password, deactivation), however many copies of a cookie exist.
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def is_active(self) -> bool:  # Flask-Login: deactivated users cannot log in
        return self.active

    def get_id(self) -> str:
        """Flask-Login's session id: "<id>:<session version>" (see session_version)."""
        return f"{self.id}:{self.session_version or 1}"

    def end_sessions(self) -> None:
        """Make every session of this user (on every device) log in again."""
        self.session_version = (self.session_version or 1) + 1

    def set_password(self, password: str) -> None:
        """A new password; every session opened with the old one ends."""
        self.password_hash = generate_password_hash(password)
        self.end_sessions()

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def can_approve(self) -> bool:
        return self.role in APPROVER_ROLES
