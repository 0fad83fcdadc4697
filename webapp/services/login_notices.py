"""Notices about a changed login email: Crewclock sends no mail, so the person sees it on
their pages until they dismiss it, and admins see it on the Integrations card."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import LoginChangeNotice, User
from webapp.models.base import utcnow

ADMIN_LIST_DAYS = 30


def record(
    user: User, old_email: str | None, new_email: str | None, run_id: int | None, kept: bool
) -> LoginChangeNotice:
    """Remember one change (or, when `kept`, one change Crewclock refused) of a login email."""
    notice = LoginChangeNotice(
        company_id=user.company_id,
        user_id=user.id,
        run_id=run_id,
        old_email=old_email,
        new_email=new_email,
        kept=kept,
    )
    db.session.add(notice)
    return notice


def open_for_user(user_id: int) -> list[LoginChangeNotice]:
    """The person's changed-login notices they have not dismissed (kept emails need none)."""
    return list(
        db.session.scalars(
            sa.select(LoginChangeNotice)
            .where(
                LoginChangeNotice.user_id == user_id,
                LoginChangeNotice.kept.is_(False),
                LoginChangeNotice.dismissed_at.is_(None),
            )
            .order_by(LoginChangeNotice.id)
        )
    )


def dismiss(user_id: int) -> int:
    """The person read their notices; the number dismissed."""
    result = db.session.execute(
        sa.update(LoginChangeNotice)
        .where(LoginChangeNotice.user_id == user_id, LoginChangeNotice.dismissed_at.is_(None))
        .values(dismissed_at=utcnow())
    )
    return result.rowcount


def recent_for_company(company_id: int, limit: int = 20) -> list[tuple[LoginChangeNotice, User]]:
    """The company's login email changes of the last ADMIN_LIST_DAYS days, newest first."""
    since = utcnow() - timedelta(days=ADMIN_LIST_DAYS)
    return list(
        db.session.execute(
            sa.select(LoginChangeNotice, User)
            .join(User, User.id == LoginChangeNotice.user_id)
            .where(
                LoginChangeNotice.company_id == company_id,
                User.company_id == company_id,
                LoginChangeNotice.created_at >= since,
            )
            .order_by(LoginChangeNotice.id.desc())
            .limit(limit)
        ).tuples()
    )
