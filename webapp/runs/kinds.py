"""What a run is (RunKind, stored as SyncRun.kind) and why a push stops early (StopReason)."""

import enum


class RunKind(enum.StrEnum):
    """SyncRun.kind: the values are the strings rows have always stored."""

    STAGE_USERS = "stage_user"
    STAGE_PROJECTS = "stage_project"
    STAGE_COST_CODES = "stage_cost_code"
    IMPORT = "import_setup"
    PUSH = "push_timecards"
    SYNC = "sync"  # incremental poll + outbound
    SYNC_FULL = "sync_full"  # complete listings (deletions, cost codes) + outbound
    SYNC_WEBHOOK = "sync_webhook"  # records named by webhook events, fetched by id
    HOURS_CHECK = "hours_check"
    PERMISSIONS_CHECK = "permissions_check"

    @property
    def queue(self) -> str:
        """The RQ queue its jobs go to (workers may be started per queue)."""
        if self is RunKind.PUSH:
            return "push"
        if self in SYNC_KINDS:
            return "sync"
        return "imports"

    @classmethod
    def stage(cls, entity_type: str) -> "RunKind":
        """The staging kind listing one entity type for the wizard."""
        return cls(f"stage_{entity_type}")


SYNC_KINDS = (RunKind.SYNC, RunKind.SYNC_FULL, RunKind.SYNC_WEBHOOK)
STAGE_KINDS = (RunKind.STAGE_USERS, RunKind.STAGE_PROJECTS, RunKind.STAGE_COST_CODES)


class StopReason(enum.StrEnum):
    """Why a drain stopped before its queue was empty; the text is what the run shows."""

    RECONNECT = "The Procore connection needs to be reconnected."
    RATE_LIMITED = "rate limited"
    UNAVAILABLE = "Procore is unavailable; the push will retry."
    TIME_UP = "time is up; the push continues in the next job"
    LEASE_LOST = "another push for this company took over"

    @property
    def needs_admin(self) -> bool:
        """Only an admin (Reconnect) can end it: no follow-up is scheduled."""
        return self is StopReason.RECONNECT

    @property
    def shown(self) -> bool:
        """Written on the run as its reason (a rate limit only delays; the cards say so)."""
        return self is not StopReason.RATE_LIMITED
