"""Sync on the `large` sandbox seed: calls per idle sync cycle and reconcile time.

An in-process sandbox (seed `large`: 10,000 users, 1,000 projects), a throwaway
redis-server for the sync leases, a temporary SQLite file for Crewclock with every valid
Procore user and project already linked (as the set-up import leaves them). Prints:

- the first full reconciliation of 10,000 linked users (+ projects), wall time;
- a second full reconciliation (steady state), wall time;
- Procore calls per idle incremental cycle for users + projects (target <= 2);
- outbound writes over the idle cycles (target 0).

    .venv/bin/python -m bench.sync_bench [--cycles 5]
"""

import argparse
import logging
import socket
import subprocess
import tempfile
import time

import requests

from bench.common import figure, peak_rss_mb
from config import TestConfig
from procore_sandbox.app import create_app as create_sandbox
from procore_sandbox.config import SandboxConfig
from procore_sandbox.testing import mount_sandbox
from webapp import create_app
from webapp.extensions import db
from webapp.models import (
    Company,
    ConnectionStatus,
    EntityType,
    IntegrationSettings,
    ProcoreConnection,
    ProcoreLink,
    Project,
    RunStatus,
    SyncDirection,
    SyncRun,
    User,
)
from webapp.models.base import utcnow
from webapp.procore import mapping
from webapp.procore.client import CallStats, ProcoreClient
from webapp.redis_runtime import embedded_redis_binary
from webapp.services import sync, sync_runs

BASE = "http://procore.bench"


class _Tokens:
    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return self.token


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _link_everything(company_id: int, client: ProcoreClient, pc: int) -> tuple[int, int]:
    users = projects = 0
    seen: set[str] = set()
    for payload in client.iter_items(f"/rest/v1.0/companies/{pc}/users", per_page=100):
        fields = mapping.user_fields(payload)
        if mapping.field_problems("user", fields) or fields["email"] in seen:
            continue
        seen.add(fields["email"])
        user = User(company_id=company_id, **{k: v for k, v in fields.items() if k != "role"})
        db.session.add(user)
        db.session.flush()
        db.session.add(_link(company_id, "user", user.id, payload))
        users += 1
    for payload in client.iter_items("/rest/v1.1/projects", {"company_id": pc}, per_page=100):
        fields = mapping.project_fields(payload)
        if mapping.field_problems("project", fields):
            continue
        project = Project(company_id=company_id, **fields)
        db.session.add(project)
        db.session.flush()
        db.session.add(_link(company_id, "project", project.id, payload))
        projects += 1
    db.session.commit()
    return users, projects


def _link(company_id, entity, local_id, payload) -> ProcoreLink:
    return ProcoreLink(
        company_id=company_id,
        entity_type=EntityType(entity),
        local_id=local_id,
        procore_id=payload["id"],
        payload_hash=mapping.payload_hash(payload),
    )


def _run(company_id: int, client: ProcoreClient, kind: str) -> SyncRun:
    run = SyncRun(company_id=company_id, kind=kind, trigger="manual", checkpoint={})
    run.status = RunStatus.QUEUED
    db.session.add(run)
    db.session.commit()
    run = sync_runs.execute_run(company_id, run.id, client=client)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    port = _free_port()
    redis_proc = subprocess.Popen(
        [embedded_redis_binary(), "--port", str(port), "--save", "", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
    )
    workdir = tempfile.mkdtemp(prefix="sync-bench-")
    try:
        time.sleep(0.3)
        sandbox = create_sandbox(
            SandboxConfig(
                seed="large",
                webhooks_enabled=False,
                rate_limit_spike=100_000,  # measure our work, not the rate limiter
                rate_limit_hourly=10**7,
            )
        )
        store = sandbox.extensions["procore_sandbox"].store
        pc = next(c for c in store.select("companies") if c.get("my_company"))["id"]
        app = create_app(
            TestConfig,
            instance_path=workdir,
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{workdir}/bench.db",
            REDIS_URL=f"redis://127.0.0.1:{port}/0",
            PROCORE_API_URL=BASE,
        )
        with mount_sandbox(sandbox, BASE), app.app_context():
            db.create_all()
            token = requests.post(f"{BASE}/_sandbox/token", json={}, timeout=5).json()
            stats = CallStats()
            client = ProcoreClient(BASE, pc, _Tokens(token["access_token"]), stats=stats)
            company = Company(name="Bench Builders")
            db.session.add(company)
            db.session.flush()
            db.session.add(
                IntegrationSettings(
                    company_id=company.id,
                    procore_company_id=pc,
                    completed_steps=[],
                    users_direction=SyncDirection.BOTH,
                    projects_direction=SyncDirection.BOTH,
                    cost_codes_direction=SyncDirection.OFF,
                    setup_completed_at=utcnow(),
                )
            )
            db.session.add(
                ProcoreConnection(
                    company_id=company.id,
                    status=ConnectionStatus.ACTIVE,
                    procore_company_id=pc,
                    available_companies=[],
                )
            )
            users, projects = _link_everything(company.id, client, pc)
            figure("sync linked records", f"{users} users, {projects} projects")

            started = time.perf_counter()
            first = _run(company.id, client, sync.FULL_KIND)
            figure(
                f"sync first full reconcile ({users} linked users + {projects} projects)",
                f"{time.perf_counter() - started:.1f} s, {first.api_calls} calls",
            )
            started = time.perf_counter()
            again = _run(company.id, client, sync.FULL_KIND)
            figure(
                "sync steady full reconcile",
                f"{time.perf_counter() - started:.1f} s, {again.api_calls} calls, "
                f"{again.updated} updated",
            )
            requests.post(f"{BASE}/_sandbox/stats/reset", timeout=5)
            calls, seconds = [], []
            for _ in range(args.cycles):
                started = time.perf_counter()
                run = _run(company.id, client, sync.SYNC_KIND)
                seconds.append(time.perf_counter() - started)
                calls.append(run.api_calls)
            served = requests.get(f"{BASE}/_sandbox/stats", timeout=5).json()["requests"]
            writes = sum(n for k, n in served.items() if k.split(" ")[0] in ("PATCH", "POST"))
            figure("sync calls per idle cycle (users+projects)", f"{max(calls)} (target <= 2)")
            figure("sync idle cycle time", f"{max(seconds):.2f} s")
            figure(f"sync outbound writes over {args.cycles} idle cycles", f"{writes}")
            figure("sync bench peak RSS", f"{peak_rss_mb():.0f} MB")
    finally:
        redis_proc.terminate()
        redis_proc.wait(5)


if __name__ == "__main__":
    main()
