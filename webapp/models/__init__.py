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
from webapp.models.procore import ConnectionStatus, ProcoreConnection
from webapp.models.project import CostCode, Project, TimeEntryMode, project_cost_code
from webapp.models.push import ProcoreLookup, ProcorePush, PushAction, PushState
from webapp.models.staging import ProcoreStagedRecord
from webapp.models.sync import (
    ConflictPolicy,
    LoginChangeNotice,
    ProcoreWebhookEvent,
    SyncConflict,
    SyncCursor,
    SyncState,
)
from webapp.models.timecard import (
    ClockSession,
    TimeCard,
    TimeCardEvent,
    TimeCardStatus,
    TimeEntry,
    WorkType,
)
from webapp.models.user import APPROVER_ROLES, Role, User

__all__ = [
    "ConflictPolicy",
    "LoginChangeNotice",
    "ProcoreWebhookEvent",
    "SyncConflict",
    "SyncCursor",
    "SyncState",
    "ConnectionStatus",
    "ProcoreConnection",
    "EntityType",
    "IntegrationSettings",
    "ProcoreLink",
    "RunStatus",
    "SyncDirection",
    "SyncRun",
    "SyncRunItem",
    "TimecardTrigger",
    "ProcoreStagedRecord",
    "APPROVER_ROLES",
    "ClockSession",
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
    "ProcoreLookup",
    "ProcorePush",
    "PushAction",
    "PushState",
]
