"""Cost codes of a company: search, create, edit, divisions, and which projects use them."""

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import lazyload, selectinload

from webapp.extensions import db
from webapp.models import CostCode, Project, project_cost_code
from webapp.services.people import ValidationFailed
from webapp.services.search import matching_any

COST_CODE_FIELDS = ("code", "name", "phase", "parent_id", "active")
CODE_TAKEN = "Another cost code in your company already uses this code."


def search_cost_codes(company_id: int, q: str = "") -> sa.Select:
    """Cost codes of the company matching `q` in code, name or phase, by code."""
    # The model's lazy="joined" parent is ignored on a self-referential relationship without
    # join_depth, which would lazy-load each row's division; load them in one query instead.
    query = (
        sa.select(CostCode)
        .where(CostCode.company_id == company_id)
        .options(selectinload(CostCode.parent))
    )
    query = matching_any(query, q, CostCode.code, CostCode.name, CostCode.phase)
    return query.order_by(CostCode.code, CostCode.id)


def project_counts(cost_code_ids: list[int]) -> dict[int, int]:
    """How many projects use each of these cost codes (one grouped query)."""
    if not cost_code_ids:
        return {}
    rows = db.session.execute(
        sa.select(project_cost_code.c.cost_code_id, sa.func.count())
        .where(project_cost_code.c.cost_code_id.in_(cost_code_ids))
        .group_by(project_cost_code.c.cost_code_id)
    )
    return dict(rows.all())


def division_choices(company_id: int, exclude_id: int | None = None) -> list[CostCode]:
    """Top-level codes (divisions) that may be a parent, by code."""
    query = sa.select(CostCode).where(
        CostCode.company_id == company_id, CostCode.parent_id.is_(None)
    )
    if exclude_id:
        query = query.where(CostCode.id != exclude_id)
    return list(db.session.scalars(query.order_by(CostCode.code)))


def _check(company_id: int, data: dict, cost_code: CostCode | None = None) -> None:
    errors: dict[str, str] = {}
    others = sa.select(CostCode.id).where(
        CostCode.company_id == company_id, CostCode.code == data["code"]
    )
    if cost_code is not None:
        others = others.where(CostCode.id != cost_code.id)
    if db.session.scalar(others.limit(1)):
        errors["code"] = CODE_TAKEN
    parent_id = data.get("parent_id")
    if parent_id is not None:
        parent = db.session.get(CostCode, parent_id)
        # Two levels (division -> code) keep the tree cycle-free and match Procore's lists.
        if parent is None or parent.company_id != company_id:
            errors["parent_id"] = "Choose a division from the list."
        elif cost_code is not None and parent.id == cost_code.id:
            errors["parent_id"] = "A cost code cannot be its own division."
        elif parent.parent_id is not None:
            errors["parent_id"] = f"{parent.code} is itself under a division; choose a division."
        elif cost_code is not None and db.session.scalar(
            sa.select(CostCode.id).where(CostCode.parent_id == cost_code.id).limit(1)
        ):
            errors["parent_id"] = (
                "This code is a division with codes under it, so it stays top-level."
            )
    if errors:
        raise ValidationFailed(errors)


def _commit() -> None:
    try:
        db.session.commit()
    except IntegrityError as error:
        db.session.rollback()
        raise ValidationFailed({"code": CODE_TAKEN}) from error


def create_cost_code(company_id: int, data: dict) -> CostCode:
    """Create a cost code in the company from cleaned `data`; raises ValidationFailed."""
    _check(company_id, data)
    cost_code = CostCode(company_id=company_id)
    for field in COST_CODE_FIELDS:
        setattr(cost_code, field, data[field])
    db.session.add(cost_code)
    _commit()
    return cost_code


def update_cost_code(cost_code: CostCode, data: dict) -> CostCode:
    """Apply cleaned `data` to `cost_code`; raises ValidationFailed with nothing saved."""
    _check(cost_code.company_id, data, cost_code)
    for field in COST_CODE_FIELDS:
        setattr(cost_code, field, data[field])
    _commit()
    return cost_code


def project_choices(cost_code: CostCode, q: str = "", limit: int = 100) -> tuple[list, int]:
    """Up to `limit` projects for the code's checklist, those using it first, then other active
    ones, by name (matching `q` in name or number): [(project, uses_code)], and how many match."""
    using = sa.select(project_cost_code.c.project_id).where(
        project_cost_code.c.cost_code_id == cost_code.id
    )
    query = sa.select(Project).where(
        Project.company_id == cost_code.company_id,
        sa.or_(Project.active.is_(True), Project.id.in_(using)),
    )
    query = matching_any(query, q, Project.name, Project.number)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    uses = sa.case((Project.id.in_(using), 1), else_=0)
    rows = db.session.execute(
        query.add_columns(uses)
        .options(lazyload(Project.cost_codes), lazyload(Project.supervisors))
        .order_by(uses.desc(), Project.name, Project.id)
        .limit(limit)
    )
    return [(project, bool(used)) for project, used in rows], total


def set_projects_using(cost_code: CostCode, checked_ids: list[int], shown_ids: list[int]) -> int:
    """Of the projects shown on the checklist, make exactly the checked ones use the code
    (projects not shown keep their choice); returns how many projects use it afterwards."""
    checked, shown = set(checked_ids), set(shown_ids) | set(checked_ids)
    found = set(
        db.session.scalars(
            sa.select(Project.id).where(
                Project.company_id == cost_code.company_id, Project.id.in_(shown)
            )
        )
    )
    if found != shown:
        raise ValidationFailed({"project_ids": "Choose projects from the list."})
    current = set(
        db.session.scalars(
            sa.select(project_cost_code.c.project_id).where(
                project_cost_code.c.cost_code_id == cost_code.id,
                project_cost_code.c.project_id.in_(shown),
            )
        )
    )
    if current - checked:
        db.session.execute(
            sa.delete(project_cost_code).where(
                project_cost_code.c.cost_code_id == cost_code.id,
                project_cost_code.c.project_id.in_(current - checked),
            )
        )
    if checked - current:
        db.session.execute(
            sa.insert(project_cost_code),
            [{"project_id": pid, "cost_code_id": cost_code.id} for pid in checked - current],
        )
    db.session.commit()
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(project_cost_code)
        .where(project_cost_code.c.cost_code_id == cost_code.id)
    )
