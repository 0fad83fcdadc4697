"""Links between our users/projects/cost codes and Procore records (unique both ways)."""

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import CostCode, EntityType, ProcoreLink, Project, User
from webapp.models.base import utcnow

LOCAL_MODELS = {
    EntityType.USER: User,
    EntityType.PROJECT: Project,
    EntityType.COST_CODE: CostCode,
}


class LinkConflict(Exception):
    """A link that would break 'one local record ⇄ one Procore record'."""


def local_model(entity_type: str):
    """The model class our records of `entity_type` live in."""
    return LOCAL_MODELS[EntityType(entity_type)]


def link_for(company_id: int, entity_type: str, local_id: int) -> ProcoreLink | None:
    """The link of one local record, if it has one."""
    return db.session.scalar(
        sa.select(ProcoreLink).where(
            ProcoreLink.company_id == company_id,
            ProcoreLink.entity_type == EntityType(entity_type),
            ProcoreLink.local_id == local_id,
        )
    )


def local_ids_for(company_id: int, entity_type: str, procore_ids) -> dict[int, int]:
    """{procore_id: local_id} for the given Procore ids that are linked."""
    procore_ids = list(procore_ids)
    if not procore_ids:
        return {}
    rows = db.session.execute(
        sa.select(ProcoreLink.procore_id, ProcoreLink.local_id).where(
            ProcoreLink.company_id == company_id,
            ProcoreLink.entity_type == EntityType(entity_type),
            ProcoreLink.procore_id.in_(procore_ids),
        )
    )
    return {procore_id: local_id for procore_id, local_id in rows}


def procore_ids_for(company_id: int, entity_type: str, local_ids) -> dict[int, int]:
    """{local_id: procore_id} for the given local ids that are linked."""
    local_ids = list(local_ids)
    if not local_ids:
        return {}
    rows = db.session.execute(
        sa.select(ProcoreLink.local_id, ProcoreLink.procore_id).where(
            ProcoreLink.company_id == company_id,
            ProcoreLink.entity_type == EntityType(entity_type),
            ProcoreLink.local_id.in_(local_ids),
        )
    )
    return {local_id: procore_id for local_id, procore_id in rows}


def create_link(
    company_id: int,
    entity_type: str,
    local_id: int,
    procore_id: int,
    payload_hash: str | None = None,
) -> ProcoreLink:
    """Link a local record to a Procore record; LinkConflict if either side is taken.

    Re-linking the same pair is a no-op, so a rerun never fails on its own earlier work.
    """
    entity = EntityType(entity_type)
    existing = db.session.scalars(
        sa.select(ProcoreLink).where(
            ProcoreLink.company_id == company_id,
            ProcoreLink.entity_type == entity,
            sa.or_(ProcoreLink.local_id == local_id, ProcoreLink.procore_id == procore_id),
        )
    ).all()
    for link in existing:
        if link.local_id == local_id and link.procore_id == procore_id:
            return link
        if link.local_id == local_id:
            raise LinkConflict(f"already linked to Procore #{link.procore_id}")
        raise LinkConflict(f"Procore #{procore_id} is already linked to another record")
    now = utcnow()
    link = ProcoreLink(
        company_id=company_id,
        entity_type=entity,
        local_id=local_id,
        procore_id=procore_id,
        payload_hash=payload_hash,
        last_synced_at=now,
    )
    db.session.add(link)
    db.session.flush()
    return link


def unlink(company_id: int, entity_type: str, local_id: int) -> bool:
    """Remove a local record's link (sync stops for it); False when it had none."""
    link = link_for(company_id, entity_type, local_id)
    if link is None:
        return False
    db.session.delete(link)
    db.session.flush()
    return True
