"""Procore tables: the company's OAuth connection (tokens encrypted at rest)."""

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import BigId, TimestampMixin, UTCDateTime, str_enum


class ConnectionStatus(enum.StrEnum):
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"
    DISCONNECTED = "disconnected"

    @property
    def label(self) -> str:
        return {
            "active": "Connected",
            "needs_reauth": "Needs reconnect",
            "disconnected": "Disconnected",
        }[self.value]


class ProcoreConnection(TimestampMixin, db.Model):
    """One Crewclock company's link to Procore: who connected, where, and the token pair.

    Tokens are Fernet ciphertexts (webapp/procore/crypto.py); they never leave this row in
    plaintext except in memory, on their way to Procore.
    """

    __tablename__ = "procore_connection"

    company_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("company.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[ConnectionStatus] = mapped_column(
        str_enum(ConnectionStatus, 20),
        default=ConnectionStatus.ACTIVE,
    )
    procore_user_id: Mapped[int | None] = mapped_column(BigId)
    procore_login: Mapped[str | None] = mapped_column(sa.String(254))
    procore_user_name: Mapped[str | None] = mapped_column(sa.String(200))
    # [{"id": int, "name": str}, ...] as Procore's companies list gave them at connect time.
    available_companies: Mapped[list] = mapped_column(sa.JSON, default=list)
    # Chosen later by the set-up wizard; kept across disconnect so reconnecting restores it.
    procore_company_id: Mapped[int | None] = mapped_column(BigId)
    access_token_enc: Mapped[str | None] = mapped_column(sa.Text)
    refresh_token_enc: Mapped[str | None] = mapped_column(sa.Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Fingerprint of the keyring key that encrypted the tokens (rotation progress).
    key_id: Mapped[str | None] = mapped_column(sa.String(16))
    refresh_failures: Mapped[int] = mapped_column(default=0)
    last_refresh_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    connected_by_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("user_account.id", ondelete="SET NULL")
    )
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def procore_company_name(self) -> str | None:
        """Name of the chosen Procore company, from the list seen at connect time."""
        for entry in self.available_companies or []:
            if entry.get("id") == self.procore_company_id:
                return entry.get("name")
        return None

    @property
    def has_tokens(self) -> bool:
        return bool(self.access_token_enc and self.refresh_token_enc)
