"""All models, imported here so Alembic and the app see the whole schema."""

from webapp.models.company import Company
from webapp.models.integration import (
    EntityType,
    IntegrationSettings,
    ProcoreLink,
    RunStatus,
    SyncDirection,
    SyncRun,
    SyncRunItem,
    TimecardTrigger,
)
from webapp.models.project import CostCode, Project, TimeEntryMode, project_cost_code
from webapp.models.timecard import TimeCard, TimeCardEvent, TimeCardStatus, TimeEntry, WorkType
from webapp.models.user import APPROVER_ROLES, Role, User

__all__ = [
    "EntityType",
    "IntegrationSettings",
    "ProcoreLink",
    "RunStatus",
    "SyncDirection",
    "SyncRun",
    "SyncRunItem",
    "TimecardTrigger",
    "APPROVER_ROLES",
    "Company",
    "CostCode",
    "Project",
    "Role",
    "TimeCard",
    "TimeCardEvent",
    "TimeCardStatus",
    "TimeEntry",
    "TimeEntryMode",
    "User",
    "WorkType",
    "project_cost_code",
]
