"""Procore records fetched for the set-up wizard, with the admin's choices for each."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import BigId, IdMixin, UTCDateTime, company_fk, utcnow


class ProcoreStagedRecord(IdMixin, db.Model):
    """One Procore user/project/cost code as last listed, plus edits, selection and link choice.

    The wizard's manual tables page through these rows (never through Procore), and the
    import job upserts them page by page, keeping the admin's choices.
    """

    __tablename__ = "procore_staged_record"
    __table_args__ = (
        sa.UniqueConstraint("company_id", "entity_type", "procore_id"),
        sa.Index(
            "ix_procore_staged_record_list",
            "company_id",
            "entity_type",
            "missing_from_procore",
            "sort_key",
        ),
        sa.Index("ix_procore_staged_record_match", "company_id", "entity_type", "match_key"),
    )

    company_id: Mapped[int] = company_fk()
    entity_type: Mapped[str] = mapped_column(sa.String(20))
    procore_id: Mapped[int] = mapped_column(BigId)
    # Procore's JSON as listed, and the admin's field overrides (our field names).
    payload: Mapped[dict] = mapped_column(sa.JSON)
    edited: Mapped[dict | None] = mapped_column(sa.JSON)
    selected: Mapped[bool] = mapped_column(default=False)
    link_to_local_id: Mapped[int | None] = mapped_column(BigId)
    # Guideline problems of the effective record: {field: message}; empty means importable.
    problems: Mapped[dict | None] = mapped_column(sa.JSON)
    blocked: Mapped[bool] = mapped_column(default=False)  # problems is not empty
    # Lower-cased text the manual table searches, and the order it lists rows in.
    search_text: Mapped[str] = mapped_column(sa.Text, default="")
    sort_key: Mapped[str] = mapped_column(sa.String(300), default="")
    # What duplicates are found by: email for users, number for projects, code for cost codes.
    match_key: Mapped[str | None] = mapped_column(sa.String(254))
    parent_procore_id: Mapped[int | None] = mapped_column(BigId)
    procore_active: Mapped[bool] = mapped_column(default=True)
    # Set by each complete listing; rows a newer listing did not see are gone from Procore.
    seen_run_id: Mapped[int | None] = mapped_column(BigId)
    missing_from_procore: Mapped[bool] = mapped_column(default=False)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
