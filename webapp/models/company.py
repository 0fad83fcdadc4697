"""Companies (accounts): the tenants."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import IdMixin, UTCDateTime, utcnow


class Company(IdMixin, db.Model):
    __tablename__ = "company"

    name: Mapped[str] = mapped_column(sa.String(200))
    time_zone: Mapped[str] = mapped_column(sa.String(64), default="America/New_York")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
