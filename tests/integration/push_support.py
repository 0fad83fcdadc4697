"""Fixtures for the time-card push tests: an in-process sandbox, a client, linked data.

Imported by tests/integration/test_push*.py (`from tests.integration.push_support import *`).
"""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import pytest
import requests

from procore_sandbox.app import create_app as create_sandbox
from procore_sandbox.config import SandboxConfig
from procore_sandbox.testing import mount_sandbox
from tests.conftest import make_user
from webapp.extensions import db
from webapp.models import (
    ConnectionStatus,
    CostCode,
    EntityType,
    IntegrationSettings,
    ProcoreConnection,
    ProcoreLink,
    Project,
    Role,
    TimeCardStatus,
    TimecardTrigger,
    TimeEntryMode,
    WorkType,
)
from webapp.models.base import utcnow
from webapp.procore.client import CallStats, ProcoreClient
from webapp.services import push
from webapp.services import timecards as tc

BASE = "http://procore.test"
WEEK = date(2026, 3, 2)  # a Monday


class StaticTokens:
    """A TokenSource holding one sandbox-minted access token."""

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
    stats: CallStats = field(default_factory=CallStats)

    @property
    def store(self):
        return self.app.extensions["procore_sandbox"].store

    @property
    def faults(self):
        return self.app.extensions["procore_sandbox"].faults

    def entries(self) -> list[dict]:
        return [e for e in self.store.select("timecard_entries") if e.get("origin_id")]

    def one(self, table: str, **equals) -> dict:
        rows = self.store.select(table, company_id=self.company_id, **equals)
        assert len(rows) == 1, (table, equals, len(rows))
        return rows[0]

    def requests_to(self, method: str, fragment: str) -> int:
        return sum(
            n
            for key, n in self.faults.stats()["requests"].items()
            if key.startswith(method) and fragment in key
        )

    def client(self, **options) -> ProcoreClient:
        token = requests.post(f"{BASE}/_sandbox/token", json={}).json()["access_token"]
        return ProcoreClient(
            BASE,
            self.company_id,
            StaticTokens(token),
            stats=self.stats,
            sleep=lambda seconds: None,
            **options,
        )


@pytest.fixture
def sandbox(app):
    """The demo sandbox, served in-process at http://procore.test."""
    # Generous limits: these tests inject their own 429s; bench/push_bench.py paces for real.
    config = SandboxConfig(
        seed="demo", webhooks_enabled=False, rate_limit_spike=10**6, rate_limit_hourly=10**7
    )
    sandbox_app = create_sandbox(config)
    store = sandbox_app.extensions["procore_sandbox"].store
    main = [c for c in store.select("companies") if c.get("my_company")][0]
    app.config["PUSH_UNKNOWN_SETTLE_SECONDS"] = 0
    app.config["PUSH_AUTO_ENQUEUE"] = False
    app.config["PROCORE_API_URL"] = BASE
    with mount_sandbox(sandbox_app, BASE):
        yield Sandbox(app=sandbox_app, company_id=main["id"])


@dataclass
class World:
    """A Crewclock company set up against the sandbox's main company."""

    company: object
    admin: object
    workers: list
    project: Project
    cost_code: CostCode
    sandbox: Sandbox
    settings: IntegrationSettings

    def card(self, worker, entries=1, hours="8.00", week=WEEK, project=None, **fields):
        """A card for `worker` with `entries` entries (one per day), through the service."""
        card = tc.get_or_create_card(self.company.id, worker, week, worker)
        for day in range(entries):
            tc.create_entry(
                card,
                tc.EntryData(
                    work_date=week + timedelta(days=day % 7),
                    project_id=(project or self.project).id,
                    cost_code_id=fields.get("cost_code_id", self.cost_code.id),
                    hours=Decimal(hours),
                    work_type=fields.get("work_type", WorkType.REGULAR),
                    notes=fields.get("notes", f"Formwork day {day + 1}"),
                ),
                worker,
            )
        return card

    def approve(self, card):
        if card.status != TimeCardStatus.SUBMITTED:
            tc.change_status(card, TimeCardStatus.SUBMITTED, card.user)
        return tc.change_status(card, TimeCardStatus.APPROVED, self.admin)

    def reject(self, card, note="Wrong project"):
        return tc.change_status(card, TimeCardStatus.REJECTED, self.admin, note)

    def push(self, client=None, **options):
        return push.push_company(self.company.id, client=client or self.sandbox.client(), **options)

    def procore_takes_start_stop(self, in_out: bool = True) -> None:
        """Set the sandbox company's time-entry setting (as an admin would in Procore) and
        let the next push read it again."""
        self.sandbox.store.update(
            "companies", self.sandbox.company_id, {"projects_timecard_in_out_enabled": in_out}
        )
        self.settings.procore_time_entry_read_at = None
        db.session.commit()

    def link(self, entity: EntityType, local_id: int, procore_id: int) -> None:
        db.session.add(
            ProcoreLink(
                company_id=self.company.id,
                entity_type=entity,
                local_id=local_id,
                procore_id=procore_id,
            )
        )
        db.session.commit()


WORKER_EMAILS = ["james.smith@summit.example.com", "sofia.nguyen@summit.example.com"]


@pytest.fixture
def world(sandbox, company):
    """Two linked workers, a linked project using a linked cost code; push on approval."""
    admin = make_user(company, Role.ADMIN, first_name="Ada", last_name="Admin")
    settings = IntegrationSettings(
        company_id=company.id,
        procore_company_id=sandbox.company_id,
        timecard_trigger=TimecardTrigger.ON_APPROVAL,
        setup_completed_at=utcnow(),
    )
    db.session.add(settings)
    # Connected (tests hand the push a sandbox client, so no tokens are needed here).
    db.session.add(
        ProcoreConnection(
            company_id=company.id,
            status=ConnectionStatus.ACTIVE,
            procore_company_id=sandbox.company_id,
        )
    )
    code = CostCode(company_id=company.id, code="03-100", name="Formwork")
    project = Project(
        company_id=company.id,
        name="Harbor Warehouse",
        time_entry_mode=TimeEntryMode.HOURS,
        cost_codes=[code],
    )
    db.session.add_all([code, project])
    db.session.commit()
    w = World(company, admin, [], project, code, sandbox, settings)
    for email in WORKER_EMAILS:
        remote = sandbox.one("users", email_address=email)
        worker = make_user(company, first_name=remote["first_name"], last_name=remote["last_name"])
        w.link(EntityType.USER, worker.id, remote["id"])
        w.workers.append(worker)
    w.link(EntityType.PROJECT, project.id, sandbox.one("projects", name="Harbor Warehouse")["id"])
    w.link(
        EntityType.COST_CODE, code.id, sandbox.one("standard_cost_codes", full_code="03-100")["id"]
    )
    return w


def remote_project_id(w: World) -> int:
    return w.sandbox.one("projects", name="Harbor Warehouse")["id"]
