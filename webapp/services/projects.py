"""Projects of a company: search, create, edit, supervisors and the cost codes they use."""

import sqlalchemy as sa
from sqlalchemy.orm import lazyload, selectinload

from webapp.extensions import db
from webapp.models import APPROVER_ROLES, CostCode, Project, User, project_cost_code
from webapp.services.people import ValidationFailed
from webapp.services.search import matching_any

# ISO 3166-1 alpha-2, officially assigned codes.
_ISO_CODES = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
    """
ISO_COUNTRY_CODES = frozenset(_ISO_CODES.split())

PROJECT_FIELDS = (
    "name",
    "number",
    "street",
    "city",
    "state",
    "zip",
    "country",
    "latitude",
    "longitude",
    "active",
    "time_entry_mode",
)


def search_projects(company_id: int, q: str = "") -> sa.Select:
    """Projects of the company matching `q` in name, number or city, by name."""
    # The table shows counts, not the lists: skip loading every project's cost codes; it
    # does list supervisors, so load them for the whole page in one query (not one per row).
    query = (
        sa.select(Project)
        .where(Project.company_id == company_id)
        .options(lazyload(Project.cost_codes), selectinload(Project.supervisors))
    )
    query = matching_any(query, q, Project.name, Project.number, Project.city)
    return query.order_by(Project.name, Project.id)


def cost_code_counts(project_ids: list[int]) -> dict[int, int]:
    """How many cost codes each of these projects uses (one grouped query)."""
    if not project_ids:
        return {}
    rows = db.session.execute(
        sa.select(project_cost_code.c.project_id, sa.func.count())
        .where(project_cost_code.c.project_id.in_(project_ids))
        .group_by(project_cost_code.c.project_id)
    )
    return dict(rows.all())


def supervisor_choices(company_id: int) -> list[User]:
    """Active users of the company who may supervise a project (Supervisor, Manager, Admin)."""
    return list(
        db.session.scalars(
            sa.select(User)
            .where(
                User.company_id == company_id,
                User.active.is_(True),
                User.role.in_(APPROVER_ROLES),
            )
            .order_by(User.last_name, User.first_name, User.id)
        )
    )


def _supervisors(company_id: int, user_ids: list[int]) -> list[User]:
    if not user_ids:
        return []
    users = list(
        db.session.scalars(
            sa.select(User).where(
                User.company_id == company_id,
                User.id.in_(user_ids),
                User.role.in_(APPROVER_ROLES),
            )
        )
    )
    if len(users) != len(set(user_ids)):
        raise ValidationFailed(
            {"supervisor_ids": "Choose supervisors from the list (Supervisors, Managers, Admins)."}
        )
    return users


def create_project(company_id: int, data: dict) -> Project:
    """Create a project in the company from cleaned `data`; raises ValidationFailed."""
    supervisors = _supervisors(company_id, data.get("supervisor_ids", []))
    project = Project(company_id=company_id)
    for field in PROJECT_FIELDS:
        setattr(project, field, data[field])
    project.supervisors = supervisors
    db.session.add(project)
    db.session.commit()
    return project


def update_project(project: Project, data: dict) -> Project:
    """Apply cleaned `data` to `project`; raises ValidationFailed with nothing saved."""
    supervisors = _supervisors(project.company_id, data.get("supervisor_ids", []))
    for field in PROJECT_FIELDS:
        setattr(project, field, data[field])
    project.supervisors = supervisors
    db.session.commit()
    return project


def _code_filter(query: sa.Select, q: str) -> sa.Select:
    return matching_any(query, q, CostCode.code, CostCode.name)


def _limited(query: sa.Select, limit: int) -> tuple[list, int]:
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    return list(db.session.scalars(query.order_by(CostCode.code).limit(limit))), total


def assigned_cost_codes(project: Project, q: str = "", limit: int = 100) -> tuple[list, int]:
    """Up to `limit` cost codes the project uses (matching `q`), by code, and how many match."""
    query = (
        sa.select(CostCode)
        .join(project_cost_code, project_cost_code.c.cost_code_id == CostCode.id)
        .where(project_cost_code.c.project_id == project.id)
    )
    return _limited(_code_filter(query, q), limit)


def assignable_cost_codes(project: Project, q: str = "", limit: int = 100) -> tuple[list, int]:
    """Up to `limit` active codes of the company the project does not use yet (matching `q`),
    by code, and how many match."""
    used = sa.select(project_cost_code.c.cost_code_id).where(
        project_cost_code.c.project_id == project.id
    )
    query = sa.select(CostCode).where(
        CostCode.company_id == project.company_id,
        CostCode.active.is_(True),
        CostCode.id.not_in(used),
    )
    return _limited(_code_filter(query, q), limit)


def assign_cost_code(project: Project, cost_code_id: int | None) -> CostCode:
    """Let the project use one of its company's cost codes."""
    code = db.session.get(CostCode, cost_code_id) if cost_code_id else None
    if code is None or code.company_id != project.company_id:
        raise ValidationFailed({"cost_code_id": "Choose a cost code from the list."})
    already = db.session.scalar(
        sa.select(project_cost_code.c.project_id).where(
            project_cost_code.c.project_id == project.id,
            project_cost_code.c.cost_code_id == code.id,
        )
    )
    if already is None:
        db.session.execute(
            sa.insert(project_cost_code).values(project_id=project.id, cost_code_id=code.id)
        )
    db.session.commit()
    db.session.expire(project, ["cost_codes"])
    return code


def unassign_cost_code(project: Project, cost_code_id: int) -> None:
    """Stop the project using a cost code (existing time entries keep it)."""
    db.session.execute(
        sa.delete(project_cost_code).where(
            project_cost_code.c.project_id == project.id,
            project_cost_code.c.cost_code_id == cost_code_id,
        )
    )
    db.session.commit()
    db.session.expire(project, ["cost_codes"])


def assign_all_active_cost_codes(project: Project) -> int:
    """Let the project use every active cost code of its company; returns how many were added."""
    used = sa.select(project_cost_code.c.cost_code_id).where(
        project_cost_code.c.project_id == project.id
    )
    missing = sa.select(sa.literal(project.id), CostCode.id).where(
        CostCode.company_id == project.company_id,
        CostCode.active.is_(True),
        CostCode.id.not_in(used),
    )
    result = db.session.execute(
        sa.insert(project_cost_code).from_select(["project_id", "cost_code_id"], missing)
    )
    db.session.commit()
    db.session.expire(project, ["cost_codes"])
    return result.rowcount or 0
