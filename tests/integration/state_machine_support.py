"""The world the D9 state machine drives: one Crewclock company connected to the in-process
sandbox with real rotating tokens, two linked workers, two linked projects and a linked cost
code; job runners that can be killed at a chosen checkpoint; and the invariant checks.

Used by tests/integration/test_state_machine.py only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import requests
import sqlalchemy as sa

from tests.conftest import make_user
from tests.integration.push_support import WORKER_EMAILS
from tests.integration.sync_support import _link
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
    RunStatus,
    SyncDirection,
    SyncRun,
    TimeCard,
    TimeCardStatus,
    TimecardTrigger,
    TimeEntry,
    TimeEntryMode,
    User,
)
from webapp.models.base import utcnow
from webapp.models.push import WORK_STATES, ProcorePush, PushAction, PushState
from webapp.models.sync import ConflictPolicy, SyncConflict
from webapp.procore import mapping
from webapp.procore.client import CallStats, ProcoreClient
from webapp.procore.crypto import token_cipher
from webapp.procore.mapping_timecards import is_integer_origin
from webapp.procore.tokens import ConnectionTokens
from webapp.services import push, sync, sync_runs

BASE = "http://procore.test"
PROCORE_PERSON = "dana.admin@summit.example.com"  # the Procore admin who connected
PROJECT_NAMES = ["Harbor Warehouse", "Mission Tower"]
COST_CODE = "03-100"
WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")
VISIBLE_PUSH_STATES = (PushState.FAILED, PushState.CONFLICT, PushState.NOT_MAPPED)


class WorkerKilled(BaseException):  # noqa: N818 - a process death, not an error
    """The worker process died here (SIGKILL): nothing after this point ran, and since it
    is not an Exception no `except Exception` in the job records or cleans anything up."""


@dataclass
class Crash:
    """Kill the job right after its n-th HTTP reply arrived, or its n-th commit."""

    after: str  # "call" | "commit"
    n: int
    fired: bool = False

    def tick(self) -> None:
        self.n -= 1
        if self.n == 0 and not self.fired:
            self.fired = True
            raise WorkerKilled(f"killed after a {self.after}")


class CrashingSession(requests.Session):
    """The job's HTTP session: counts replies and kills the worker when its crash says so."""

    crash: Crash | None = None

    def send(self, request, **kwargs):
        response = super().send(request, **kwargs)
        if self.crash is not None and self.crash.after == "call":
            self.crash.tick()
        return response


class Clock:
    """Our side's clock (token expiry, push due times), moved forward by the machine."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return datetime.now(UTC).timestamp() + self.offset

    def now(self) -> datetime:
        return utcnow() + timedelta(seconds=self.offset)


@dataclass
class JobOutcome:
    killed: bool = False
    error: Exception | None = None
    result: object = None


@dataclass
class World:
    """A Crewclock company against the sandbox, and what the machine does to both."""

    app: object
    sandbox_app: object
    company_id: int
    admin: User
    workers: list[User]
    projects: list[Project]
    cost_code: CostCode
    procore_company_id: int
    clock: Clock
    refresh_tokens_seen: list[str]
    mailbox: list[dict]
    ulids: int = 0
    job_errors: list[str] = field(default_factory=list)

    # -- sandbox ----------------------------------------------------------------------------
    @property
    def store(self):
        return self.sandbox_app.extensions["procore_sandbox"].store

    @property
    def faults(self):
        return self.sandbox_app.extensions["procore_sandbox"].faults

    def writes(self) -> dict[str, int]:
        """Outbound writes the sandbox served under /rest since the last stats reset."""
        served = self.faults.stats()["requests"]
        return {
            route: n
            for route, n in served.items()
            if route.split(" ")[0] in WRITE_METHODS and " /rest/" in route and n
        }

    def person_get(self, path: str, params: dict | None = None):
        """A read as a person in Procore (own token), for comparing after a sync."""
        token = requests.post(
            f"{BASE}/_sandbox/token", json={"email": PROCORE_PERSON}, timeout=5
        ).json()["access_token"]
        return requests.get(
            f"{BASE}{path}",
            params=params,
            headers={
                "Authorization": f"Bearer {token}",
                "Procore-Company-Id": str(self.procore_company_id),
            },
            timeout=10,
        )

    # -- jobs -------------------------------------------------------------------------------
    def client(self, crash: Crash | None = None) -> ProcoreClient:
        """A fresh worker's client: stored, rotating tokens on our clock; no real sleeping."""
        session = CrashingSession()
        session.crash = crash
        tokens = ConnectionTokens(
            self.app, self.company_id, clock=self.clock.time, sleep=lambda s: None
        )
        return ProcoreClient(
            BASE,
            self.procore_company_id,
            tokens,
            session=session,
            stats=CallStats(),
            sleep=lambda s: None,
        )

    def run_job(self, body, crash: Crash | None = None) -> JobOutcome:
        """Run one job body as a worker would; a kill leaves whatever it had committed."""
        faults_pending = bool(self.faults.rules)
        original_commit = db.session.commit
        if crash is not None and crash.after == "commit":

            def commit():
                original_commit()
                crash.tick()

            db.session.commit = commit
        try:
            return JobOutcome(result=body(self.client(crash)))
        except WorkerKilled:
            db.session.rollback()  # the process is gone with its open transaction
            return JobOutcome(killed=True)
        except Exception as exc:
            db.session.rollback()
            if not faults_pending and crash is None:
                raise  # nothing was injected: a failing job is a bug
            self.job_errors.append(f"{type(exc).__name__}: {exc}")
            return JobOutcome(error=exc)
        finally:
            if crash is not None and crash.after == "commit":
                del db.session.commit
            db.session.expire_all()

    def new_run(self, kind: str) -> int:
        run = SyncRun(company_id=self.company_id, kind=kind, trigger="manual", checkpoint={})
        run.status = RunStatus.QUEUED
        db.session.add(run)
        db.session.commit()
        return run.id

    def sync_job(self, run_id: int):
        return lambda client: sync_runs.execute_run(self.company_id, run_id, client=client)

    def push_job(self, ahead: timedelta = timedelta(0)):
        def now():
            return self.clock.now() + ahead

        return lambda client: push.push_company(self.company_id, client=client, now=now)

    def webhook_run_id(self) -> int | None:
        run = sync_runs.active_run(self.company_id, sync.WEBHOOK_KIND)
        return run.id if run is not None else None

    def deliver(self, event: dict, test_client) -> int:
        response = test_client.post(
            "/webhooks/procore",
            data=json.dumps(event),
            headers={
                "Authorization": self.app.config["WEBHOOK_SECRET"],
                "Content-Type": "application/json",
            },
        )
        assert response.status_code in (200, 202), response.get_data(as_text=True)
        return response.status_code

    def record_change(self, company_id, project_id, resource, event_type, resource_id, source):
        """Sandbox change listener: Procore would send each change as a webhook event."""
        self.ulids += 1
        self.mailbox.append(
            {
                "id": 7_000_000_000 + self.ulids,
                "ulid": f"01J{self.ulids:023d}",
                "timestamp": self.store.now_iso(),
                "metadata": {"source_application_id": source},
                "company_id": company_id,
                "project_id": project_id,
                "api_version": "v2.0",
                "event_type": event_type,
                "resource_name": resource,
                "resource_id": resource_id,
            }
        )


# ======================================================================== building a world
def reset_databases(app) -> None:
    db.session.remove()  # forget the previous sequence's objects (ids are reused)
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()
    from webapp.redis_runtime import get_redis

    get_redis().flushdb()


def build_world(app, sandbox_app, policy: ConflictPolicy) -> World:
    """Reset both sides and set up a connected, linked company (as the set-up leaves it)."""
    reset_databases(app)
    requests.post(f"{BASE}/_sandbox/reset", json={"seed": "demo"}, timeout=5)
    store = sandbox_app.extensions["procore_sandbox"].store
    pc = next(c for c in store.select("companies") if c.get("my_company"))["id"]
    from tests.conftest import make_company

    company = make_company("Acme Builders")
    admin = make_user(company, Role.ADMIN, first_name="Ada", last_name="Admin")
    standard = store.select("standard_cost_codes", full_code=COST_CODE)[0]
    db.session.add(
        IntegrationSettings(
            company_id=company.id,
            procore_company_id=pc,
            completed_steps=[1, 2, 3, 4, 5],
            users_direction=SyncDirection.BOTH,
            projects_direction=SyncDirection.BOTH,
            cost_codes_direction=SyncDirection.PROCORE_TO_CREWCLOCK,
            standard_cost_code_list_id=standard["standard_cost_code_list_id"],
            timecard_trigger=TimecardTrigger.ON_APPROVAL,
            setup_completed_at=utcnow(),
        )
    )
    reply = requests.post(f"{BASE}/_sandbox/token", json={"email": PROCORE_PERSON}, timeout=5)
    tokens = reply.json()
    cipher = token_cipher()
    db.session.add(
        ProcoreConnection(
            company_id=company.id,
            status=ConnectionStatus.ACTIVE,
            procore_company_id=pc,
            available_companies=[{"id": pc, "name": "Summit Builders Inc."}],
            access_token_enc=cipher.encrypt(tokens["access_token"]),
            refresh_token_enc=cipher.encrypt(tokens["refresh_token"]),
            expires_at=utcnow() + timedelta(seconds=tokens["expires_in"]),
            refresh_failures=0,
        )
    )
    sync.set_conflict_policy(company.id, policy.value)
    code = CostCode(company_id=company.id, code=COST_CODE, name=standard["name"])
    db.session.add(code)
    db.session.flush()
    _link(company.id, "cost_code", code.id, {"id": standard["id"]})
    world_projects = []
    for name in PROJECT_NAMES:
        payload = _api_payload(sandbox_app, pc, "project", store.select("projects", name=name)[0])
        project = Project(
            company_id=company.id,
            time_entry_mode=TimeEntryMode.HOURS,
            cost_codes=[code],
            **mapping.project_fields(payload),
        )
        db.session.add(project)
        db.session.flush()
        _link(company.id, "project", project.id, payload)
        world_projects.append(project)
    workers = []
    for email in WORKER_EMAILS:
        record = store.select("users", company_id=pc, email_address=email)[0]
        payload = _api_payload(sandbox_app, pc, "user", record)
        fields = mapping.user_fields(payload)
        worker = User(company_id=company.id, **{k: v for k, v in fields.items() if k != "role"})
        worker.role = Role.WORKER
        db.session.add(worker)
        db.session.flush()
        _link(company.id, "user", worker.id, payload)
        workers.append(worker)
    db.session.commit()
    return World(
        app=app,
        sandbox_app=sandbox_app,
        company_id=company.id,
        admin=admin,
        workers=workers,
        projects=world_projects,
        cost_code=code,
        procore_company_id=pc,
        clock=Clock(),
        refresh_tokens_seen=[],
        mailbox=[],
    )


def _api_payload(sandbox_app, pc: int, entity: str, record: dict) -> dict:
    """The record as Procore's API shows it (what the set-up import hashed)."""
    token = requests.post(f"{BASE}/_sandbox/token", json={}, timeout=5).json()["access_token"]
    path = (
        f"/rest/v1.0/companies/{pc}/users/{record['id']}"
        if entity == "user"
        else f"/rest/v1.0/projects/{record['id']}"
    )
    reply = requests.get(
        f"{BASE}{path}",
        params={"company_id": pc},
        headers={"Authorization": f"Bearer {token}", "Procore-Company-Id": str(pc)},
        timeout=5,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


# ======================================================================== invariants
def duplicate_links(company_id: int) -> list:
    """(entity, procore_id) or (entity, local_id) pairs held by more than one link."""
    found = []
    for column in (ProcoreLink.procore_id, ProcoreLink.local_id):
        found += db.session.execute(
            sa.select(ProcoreLink.entity_type, column, sa.func.count())
            .where(ProcoreLink.company_id == company_id)
            .group_by(ProcoreLink.entity_type, column)
            .having(sa.func.count() > 1)
        ).all()
    return found


def remote_entries(world: World, reachable: bool = False) -> list[dict]:
    """Procore's timecard entries that carry one of our origin ids (`reachable`: only those
    whose project still exists; a deleted project takes its entries with it, so this is a
    second guard, for entries of a project deleted while they were being created)."""
    projects = set(world.store.table("projects"))
    return [
        e
        for e in world.store.select("timecard_entries")
        # Crewclock's origin ids are integers; nothing else here sets one. (No database
        # read: an open read would block the other connections' writes on SQLite.)
        if is_integer_origin(e.get("origin_id"))
        and (not reachable or e.get("project_id") in projects)
    ]


def duplicate_origins(world: World) -> list[str]:
    seen, dupes = set(), []
    for entry in remote_entries(world):
        if entry["origin_id"] in seen:
            dupes.append(entry["origin_id"])
        seen.add(entry["origin_id"])
    return dupes


def done_without_procore_id(company_id: int) -> list[int]:
    """Outbox rows marked done for an upsert that never learnt Procore's id."""
    return list(
        db.session.scalars(
            sa.select(ProcorePush.id).where(
                ProcorePush.company_id == company_id,
                ProcorePush.state == PushState.DONE,
                ProcorePush.action == PushAction.UPSERT,
                ProcorePush.procore_id.is_(None),
            )
        )
    )


def timecard_disagreements(world: World) -> list[str]:
    """After a quiet sync + push: each entry of an approved card is in Procore once with our
    values, nothing else of ours is there, or the card shows why (failed/conflict/not mapped)."""
    problems = []
    company_id = world.company_id
    remote_by_origin = {e["origin_id"]: e for e in remote_entries(world, reachable=True)}
    rows = {
        r.time_entry_id: r
        for r in db.session.scalars(
            sa.select(ProcorePush).where(ProcorePush.company_id == company_id)
        )
    }
    project_links = {
        local: remote
        for local, remote in db.session.execute(
            sa.select(ProcoreLink.local_id, ProcoreLink.procore_id).where(
                ProcoreLink.company_id == company_id,
                ProcoreLink.entity_type == EntityType.PROJECT,
            )
        )
    }
    gone_projects = {
        local
        for local, problem in db.session.execute(
            sa.select(ProcoreLink.local_id, ProcoreLink.sync_problem).where(
                ProcoreLink.company_id == company_id,
                ProcoreLink.entity_type == EntityType.PROJECT,
            )
        )
        if problem and "Deleted in Procore" in problem
    }
    entries = db.session.execute(
        sa.select(TimeEntry, TimeCard.status)
        .join(TimeCard, TimeCard.id == TimeEntry.time_card_id)
        .where(TimeEntry.company_id == company_id)
    ).all()
    wanted = {}
    for entry, status in entries:
        wanted[entry.id] = (entry, status == TimeCardStatus.APPROVED)
        if status == TimeCardStatus.APPROVED and entry.id not in rows:
            problems.append(f"entry {entry.id} is approved but has no outbox row")
    known_origins = {r.origin_id for r in rows.values()}
    for origin in remote_by_origin:
        if origin not in known_origins:
            problems.append(f"Procore holds {origin}, which no outbox row knows")
    for entry_id, row in rows.items():
        if row.state in VISIBLE_PUSH_STATES:
            continue  # the card's badge says what went wrong and offers Retry
        if row.state in WORK_STATES:
            problems.append(f"outbox row of entry {entry_id} still {row.state} when quiet")
            continue
        entry, should_exist = wanted.get(entry_id, (None, False))
        remote = remote_by_origin.get(row.origin_id)
        if not should_exist:
            if remote is not None:
                problems.append(f"entry {entry_id} is not approved/gone but Procore has it")
            continue
        if remote is None:
            if entry.project_id in gone_projects:
                continue  # the project's own link shows "Deleted in Procore"
            problems.append(f"approved entry {entry_id} ({row.state}) is missing in Procore")
            continue
        if remote["id"] != row.procore_id:
            problems.append(f"entry {entry_id}: outbox id {row.procore_id} != {remote['id']}")
        ours = (entry.work_date.isoformat(), entry.hours, project_links.get(entry.project_id))
        theirs = (remote.get("date"), Decimal(str(remote.get("hours"))), remote.get("project_id"))
        if ours != theirs:
            problems.append(f"entry {entry_id}: ours {ours} != Procore's {theirs}")
    return problems


def record_disagreements(world: World) -> list[str]:
    """After a quiet full sync: each linked user/project equals Procore's record, is inactive
    when Procore deleted it, or shows a conflict / sync problem a person can see."""
    problems = []
    open_conflicts = {
        (c.entity_type, c.local_id)
        for c in db.session.scalars(
            sa.select(SyncConflict).where(
                SyncConflict.company_id == world.company_id, SyncConflict.resolved_at.is_(None)
            )
        )
    }
    settings = sync.saved_settings(world.company_id)
    for entity, model in (("user", User), ("project", Project)):
        pairs = db.session.execute(
            sa.select(ProcoreLink, model)
            .join(model, model.id == ProcoreLink.local_id)
            .where(
                ProcoreLink.company_id == world.company_id,
                ProcoreLink.entity_type == EntityType(entity),
            )
        ).all()
        for link, record in pairs:
            if (entity, record.id) in open_conflicts or link.sync_problem:
                problem = link.sync_problem or ""
                deleted = "Deleted in Procore" in problem and "last admin" not in problem
                if deleted and record.active:
                    problems.append(f"{entity} {record.id} deleted in Procore but active")
                continue
            path, params = sync.show_endpoint(entity, settings, link.procore_id)
            reply = world.person_get(path, params)
            if reply.status_code == 404:
                problems.append(f"{entity} {record.id} deleted in Procore, nothing shows it")
                continue
            theirs = sync.procore_values(entity, reply.json())
            ours = sync.local_values(entity, record)
            if theirs != ours:
                problems.append(f"{entity} {record.id}: ours {ours} != Procore's {theirs}")
    return problems
