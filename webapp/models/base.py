"""Shared column helpers for the models."""

import enum
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

# 64-bit ids everywhere: Procore ids in newer regions exceed 32 bits. SQLite's INTEGER
# PRIMARY KEY is 64-bit already and only autoincrements under that exact type name.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator):
    """Stores UTC and always returns timezone-aware datetimes (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; store timezone-aware UTC")
        if value is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class IdMixin:
    id: Mapped[int] = mapped_column(BigId, primary_key=True)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


def company_fk() -> Mapped[int]:
    """The tenant column every company-owned row carries."""
    return mapped_column(BigId, sa.ForeignKey("company.id", ondelete="CASCADE"), index=True)


def str_enum(cls: type[enum.Enum], length: int = 30) -> sa.Enum:
    """A string column for `cls` that stores each member's value, not its name.

    A VARCHAR with a CHECK rather than a native enum type, so adding a member needs no
    type migration on PostgreSQL.
    """
    return sa.Enum(
        cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e]
    )
