"""Case-insensitive "contains" search over a few columns, with LIKE wildcards escaped."""

import sqlalchemy as sa


def escape_like(text: str) -> str:
    """Escape LIKE wildcards so a search for '50%' means the characters."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def matching_any(query: sa.Select, q: str | None, *columns) -> sa.Select:
    """`query` narrowed to rows where any of `columns` contains `q` (case-insensitive)."""
    q = (q or "").strip()
    if not q:
        return query
    like = f"%{escape_like(q.lower())}%"
    return query.where(sa.or_(*(sa.func.lower(c).like(like, escape="\\") for c in columns)))
