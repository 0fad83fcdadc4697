"""Keyset-free, count-light pagination for the admin tables."""

from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app, request

from webapp.extensions import db
from webapp.inputs import parse_int


@dataclass
class Page:
    items: list
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def paginate(query: sa.Select, per_page: int | None = None) -> Page:
    """Run `query` for the page named by ?page=, with a total from one COUNT query."""
    per_page = per_page or current_app.config["PAGE_SIZE"]
    page = parse_int(request.args.get("page"), minimum=1) or 1
    total = db.session.scalar(
        sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
    )
    page = min(page, max(1, -(-total // per_page)))
    items = list(db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)).unique())
    return Page(items=items, page=page, per_page=per_page, total=total)
