"""Fixtures for the sync tests: the demo sandbox in-process, a Crewclock company set up
against it with linked users and projects, and helpers to run syncs and read counts.

Imported by tests/integration/test_sync*.py and test_webhook*.py.
"""

from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests

from procore_sandbox.app import create_app as create_sandbox
from procore_sandbox.config import SandboxConfig
from procore_sandbox.testing import mount_sandbox
from tests.conftest import make_user
from webapp.extensions import db
from webapp.models import (
    ConnectionStatus,
    EntityType,
    IntegrationSettings,
    ProcoreConnection,
    ProcoreLink,
    Project,
    Role,
    SyncDirection,
    User,
)
from webapp.models.base import utcnow
from webapp.procore import mapping
from webapp.procore.client import CallStats, ProcoreClient
from webapp.services import sync, sync_runs

BASE = "http://procore.test"
CREWCLOCK = "http://crewclock.test"


class StaticTokens:
    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return self.token


@dataclass
class Sandbox:
    app: object
    company_id: int
    token: str = ""
    stats: CallStats = field(default_factory=CallStats)

    @property
    def store(self):
        return self.app.extensions["procore_sandbox"].store

    @property
    def faults(self):
        return self.app.extensions["procore_sandbox"].faults

    def client(self) -> ProcoreClient:
        return ProcoreClient(
            BASE, self.company_id, StaticTokens(self.token), stats=self.stats, sleep=lambda s: None
        )

    def api(self, method: str, path: str, **kwargs):
        """A call as another Procore app/user would make it (not Crewclock)."""
        headers = {"Authorization": f"Bearer {self.other_token}"}
        headers["Procore-Company-Id"] = str(self.company_id)
        return requests.request(method, f"{BASE}{path}", headers=headers, timeout=10, **kwargs)

    @property
    def other_token(self) -> str:
        reply = requests.post(
            f"{BASE}/_sandbox/token", json={"email": "dana.admin@summit.example.com"}, timeout=5
        )
        return reply.json()["access_token"]

    def writes(self) -> int:
        """PATCH/POST/PUT/DELETE requests the sandbox served under /rest (outbound writes)."""
        stats = requests.get(f"{BASE}/_sandbox/stats", timeout=5).json()["requests"]
        return sum(n for key, n in stats.items() if key.split(" ")[0] in ("PATCH", "POST", "PUT"))

    def reset_stats(self) -> None:
        requests.post(f"{BASE}/_sandbox/stats/reset", timeout=5)

    def one(self, table: str, **equals) -> dict:
        rows = self.store.select(table, company_id=self.company_id, **equals)
        assert len(rows) == 1, (table, equals, len(rows))
        return rows[0]


def make_sandbox(app, webhooks: bool = False) -> tuple:
    sandbox_app = create_sandbox(SandboxConfig(seed="demo", webhooks_enabled=webhooks))
    store = sandbox_app.extensions["procore_sandbox"].store
    main = [c for c in store.select("companies") if c.get("my_company")][0]
    app.config["PROCORE_API_URL"] = BASE
    app.config["PUBLIC_BASE_URL"] = CREWCLOCK
    return sandbox_app, main["id"]


@pytest.fixture
def sandbox(app):
    sandbox_app, company_id = make_sandbox(app)
    with mount_sandbox(sandbox_app, BASE):
        token = requests.post(f"{BASE}/_sandbox/token", json={}, timeout=5).json()
        yield Sandbox(sandbox_app, company_id, token["access_token"])


@dataclass
class World:
    company: object
    admin: object
    sandbox: Sandbox
    settings: IntegrationSettings
    users: dict  # procore id -> local User
    projects: dict  # procore id -> local Project

    def run(self, kind: str = sync.SYNC_KIND, trigger: str = "manual"):
        """Create and execute one run in-process with the sandbox client; the run row."""
        from webapp.models import RunStatus, SyncRun

        run = SyncRun(company_id=self.company.id, kind=kind, trigger=trigger, checkpoint={})
        run.status = RunStatus.QUEUED
        db.session.add(run)
        db.session.commit()
        return sync_runs.execute_run(self.company.id, run.id, client=self.sandbox.client())

    def set_direction(self, entity: str, direction: SyncDirection) -> None:
        setattr(self.settings, sync.DIRECTION_ATTRS[entity], direction)
        db.session.commit()

    def link_of(self, entity: str, local_id: int) -> ProcoreLink:
        return db.session.scalar(
            db.select(ProcoreLink).where(
                ProcoreLink.company_id == self.company.id,
                ProcoreLink.entity_type == EntityType(entity),
                ProcoreLink.local_id == local_id,
            )
        )


def build_world(company, sandbox: Sandbox, direction=SyncDirection.BOTH) -> World:
    """A company whose set-up imported every valid active Procore user and addressed
    project (links hold the import's raw-payload hash, as the wizard leaves them)."""
    admin = make_user(company, Role.ADMIN, first_name="Ada", last_name="Admin")
    settings = IntegrationSettings(
        company_id=company.id,
        procore_company_id=sandbox.company_id,
        completed_steps=[1, 2, 3, 4, 5],
        users_direction=direction,
        projects_direction=direction,
        cost_codes_direction=SyncDirection.PROCORE_TO_CREWCLOCK,
        setup_completed_at=utcnow(),
    )
    db.session.add(settings)
    db.session.add(
        ProcoreConnection(
            company_id=company.id,
            status=ConnectionStatus.ACTIVE,
            procore_company_id=sandbox.company_id,
            available_companies=[{"id": sandbox.company_id, "name": "Summit"}],
        )
    )
    client = sandbox.client()
    users, projects = {}, {}
    listed = list(client.iter_items(f"/rest/v1.0/companies/{sandbox.company_id}/users"))
    emails = Counter(mapping.user_fields(p)["email"] for p in listed)
    for payload in listed:
        fields = mapping.user_fields(payload)
        # As the wizard does: profiles sharing an email are blocked, not imported.
        if mapping.field_problems("user", fields) or emails[fields["email"]] > 1:
            continue
        user = User(company_id=company.id, **{k: v for k, v in fields.items() if k != "role"})
        user.role = Role.WORKER
        db.session.add(user)
        db.session.flush()
        _link(company.id, "user", user.id, payload)
        users[payload["id"]] = user
    for payload in client.iter_items("/rest/v1.1/projects", {"company_id": sandbox.company_id}):
        fields = mapping.project_fields(payload)
        if mapping.field_problems("project", fields):
            continue
        project = Project(company_id=company.id, **fields)
        db.session.add(project)
        db.session.flush()
        _link(company.id, "project", project.id, payload)
        projects[payload["id"]] = project
    db.session.commit()
    sandbox.stats.calls = 0
    return World(company, admin, sandbox, settings, users, projects)


def _link(company_id: int, entity: str, local_id: int, payload: dict) -> None:
    db.session.add(
        ProcoreLink(
            company_id=company_id,
            entity_type=EntityType(entity),
            local_id=local_id,
            procore_id=payload["id"],
            payload_hash=mapping.payload_hash(payload),
        )
    )


@pytest.fixture
def world(company, sandbox):
    return build_world(company, sandbox)
