"""Push 1,000 time entries to a live sandbox whose spike limit is 25 requests per 10 s.

A real sandbox server on a free port (its own rate limiter), a throwaway redis-server for the
client's shared request budget, a temporary SQLite file for Crewclock. Approves cards holding
the entries (so the outbox rows come from the real hook), then times the push and prints:
wall time against the rate-limit minimum for the calls made, calls per entry, 429s (and
429s after the first 10-second window), and peak RSS.

    .venv/bin/python -m bench.push_bench [--entries 1000] [--modes bulk,single]

`bulk` sends 25 entries per v1.1 bulk_create call (a few dozen calls); `single` sends one POST
per entry (about 400 s at 25 per 10 s; off by default to keep `make bench` short).
"""

import argparse
import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from decimal import Decimal

import redis
import requests
import sqlalchemy as sa

from bench.common import figure, peak_rss_mb
from config import TestConfig
from procore_sandbox.testing import live_sandbox
from webapp import create_app
from webapp.extensions import db
from webapp.models import (
    Company,
    CostCode,
    EntityType,
    IntegrationSettings,
    ProcoreLink,
    ProcorePush,
    Project,
    PushState,
    Role,
    TimeCardStatus,
    TimecardTrigger,
    TimeEntry,
    User,
)
from webapp.models.base import utcnow
from webapp.procore.client import CallStats, ProcoreClient
from webapp.procore.ratelimit import RequestBudget, budget_key
from webapp.redis_runtime import embedded_redis_binary
from webapp.services import push
from webapp.services import timecards as tc

SPIKE_LIMIT = 25
SPIKE_WINDOW = 10.0
WEEK = date(2026, 3, 2)


@contextlib.contextmanager
def private_redis(workdir: str):
    """A throwaway redis-server on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [embedded_redis_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
        + ["--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(200):
        try:
            if redis.Redis.from_url(url).ping():
                break
        except redis.exceptions.ConnectionError:
            time.sleep(0.025)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(5)


class StaticTokens:
    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return self.token


class TimedSession(requests.Session):
    """Records (seconds since start, status) of every response."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()
        self.log: list[tuple[float, int]] = []
        self.lock = threading.Lock()

    def request(self, *args, **kwargs):
        response = super().request(*args, **kwargs)
        with self.lock:
            self.log.append((time.monotonic() - self.started, response.status_code))
        return response


def seed_crewclock(store, procore_company_id: int, entries: int, bulk: bool) -> int:
    """A company linked to the sandbox's main company with approved cards of `entries`."""
    company = Company(name=f"Bench {'bulk' if bulk else 'single'}")
    db.session.add(company)
    db.session.flush()
    db.session.add(
        IntegrationSettings(
            company_id=company.id,
            procore_company_id=procore_company_id,
            timecard_trigger=TimecardTrigger.ON_APPROVAL,
            use_bulk_timecards=bulk,
            setup_completed_at=utcnow(),
        )
    )
    code = CostCode(company_id=company.id, code="03-100", name="Formwork")
    project = Project(company_id=company.id, name="Harbor Warehouse", cost_codes=[code])
    admin = User(
        company_id=company.id,
        first_name="Bench",
        last_name="Admin",
        username=f"bench-admin-{company.id}",
        role=Role.ADMIN,
    )
    db.session.add_all([code, project, admin])
    db.session.flush()

    def link(entity, local_id, remote_id):
        db.session.add(
            ProcoreLink(
                company_id=company.id, entity_type=entity, local_id=local_id, procore_id=remote_id
            )
        )

    remote_project = next(
        p for p in store.select("projects", company_id=procore_company_id)
        if p["name"] == "Harbor Warehouse"
    )  # fmt: skip
    link(EntityType.PROJECT, project.id, remote_project["id"])
    remote_code = next(
        c for c in store.select("standard_cost_codes", company_id=procore_company_id)
        if c["full_code"] == "03-100"
    )  # fmt: skip
    link(EntityType.COST_CODE, code.id, remote_code["id"])
    remote_users = [
        u
        for u in store.select("users", company_id=procore_company_id, is_active=True)
        if u.get("email_address") and u.get("last_name")
    ][1:11]
    workers = []
    for index, remote in enumerate(remote_users):
        worker = User(
            company_id=company.id,
            first_name=remote["first_name"],
            last_name=remote["last_name"],
            username=f"bench-{company.id}-{index}",
        )
        db.session.add(worker)
        db.session.flush()
        link(EntityType.USER, worker.id, remote["id"])
        workers.append(worker)
    db.session.commit()

    per_card = -(-entries // len(workers))
    made = 0
    for worker in workers:
        count = min(per_card, entries - made)
        if count <= 0:
            break
        card = tc.get_or_create_card(company.id, worker, WEEK, worker)
        db.session.add_all(
            TimeEntry(
                company_id=company.id,
                time_card_id=card.id,
                work_date=WEEK + timedelta(days=i % 5),
                project_id=project.id,
                cost_code_id=code.id,
                hours=Decimal("0.25"),
                notes=f"bench {made + i}",
            )
            for i in range(count)
        )
        db.session.commit()
        db.session.refresh(card)
        tc.change_status(card, TimeCardStatus.SUBMITTED, worker)
        tc.change_status(card, TimeCardStatus.APPROVED, admin)
        made += count
    return company.id


def run_mode(app, sandbox, redis_url: str, entries: int, bulk: bool) -> bool:
    mode = "bulk" if bulk else "single"
    store = sandbox.store
    procore_company_id = next(c["id"] for c in store.select("companies") if c.get("my_company"))
    with app.app_context():
        company_id = seed_crewclock(store, procore_company_id, entries, bulk)
        token = requests.post(f"{sandbox.url}/_sandbox/token", json={}, timeout=10).json()
        rconn = redis.Redis.from_url(redis_url)
        rconn.flushdb()
        stats = CallStats()
        session = TimedSession()
        client = ProcoreClient(
            sandbox.url,
            procore_company_id,
            StaticTokens(token["access_token"]),
            budget=RequestBudget(rconn, budget_key("crewclock-dev", procore_company_id)),
            session=session,
            stats=stats,
        )
        sandbox.faults.reset()
        session.started = started = time.monotonic()
        result = push.push_company(company_id, client=client)
        rounds = 1
        while result.retry_at is not None and rounds < 20:  # parked by a 429: resume
            time.sleep(max(0.0, (result.retry_at - utcnow()).total_seconds()))
            result = push.push_company(company_id, client=client)
            rounds += 1
        wall = time.monotonic() - started
        done = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(ProcorePush)
            .where(ProcorePush.company_id == company_id, ProcorePush.state == PushState.DONE)
        )
    remote = [e for e in store.select("timecard_entries") if e.get("origin_id")]
    calls = stats.calls
    # Sliding window: the first LIMIT calls go at once, each later block of LIMIT one
    # window after the block before it.
    minimum = ((calls - 1) // SPIKE_LIMIT) * SPIKE_WINDOW
    late_429 = sum(1 for t, status in session.log if status == 429 and t > SPIKE_WINDOW)
    figure(f"{mode}: entries pushed (outbox done / in sandbox)", f"{done} / {len(remote)}")
    figure(f"{mode}: wall time", f"{wall:.1f} s")
    figure(
        f"{mode}: rate-limit minimum for {calls} calls at {SPIKE_LIMIT}/{SPIKE_WINDOW:.0f} s",
        f"{minimum:.1f} s (ratio {wall / minimum if minimum else 0:.2f})",
    )
    figure(
        f"{mode}: reliability.md F2 minimum (calls x 0.4 s)",
        f"{calls * SPIKE_WINDOW / SPIKE_LIMIT:.1f} s",
    )
    figure(f"{mode}: calls per entry", f"{calls / max(1, entries):.3f}")
    figure(f"{mode}: 429s (all / after first window)", f"{stats.rate_limited} / {late_429}")
    return done == entries and len(remote) >= entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--modes", default=os.environ.get("PUSH_BENCH_MODES", "bulk"))
    args = parser.parse_args()
    for name in ("werkzeug", "webapp.procore.client", "procore_sandbox"):
        logging.getLogger(name).setLevel(logging.WARNING)
    ok = True
    with tempfile.TemporaryDirectory() as tmp, private_redis(tmp) as redis_url:
        app = create_app(
            TestConfig,
            instance_path=os.path.join(tmp, "instance"),
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp}/bench.db",
            REDIS_URL=redis_url,
            PUSH_AUTO_ENQUEUE=False,
        )
        with app.app_context():
            db.create_all()
        for mode in args.modes.split(","):
            with live_sandbox(
                seed="demo", rate_limit_spike=SPIKE_LIMIT, webhooks_enabled=False
            ) as sandbox:
                ok &= run_mode(app, sandbox, redis_url, args.entries, bulk=mode == "bulk")
    figure("peak RSS", f"{peak_rss_mb():.0f} MB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
