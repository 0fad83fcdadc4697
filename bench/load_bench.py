"""Load: 20 simulated people (admins, supervisors, workers) on a real multi-threaded server.

For each company size (100 and 10,000 rows of users, projects, cost codes, time entries
and staged Procore records) the script seeds a temporary SQLite file, starts gunicorn
(1 process x 8 threads) on loopback with a SQLAlchemy listener that counts the statements
of each request (this script's app factory only; the product never counts), then runs
20 threads with their own requests.Session for a bounded time across the main pages and
htmx fragments. It prints p50/p95 per page, server side (F3's measure: from the request
reaching Flask to the response leaving it) and client side (loopback, including queueing
and the load generator's own CPU), the SQL statements per page at both sizes (the count
must not grow with rows: no N+1), failures, throughput and the web process's peak RSS
(target < 250 MB).

    .venv/bin/python -m bench.load_bench [--duration 30] [--users 20] [--sizes 100,10000]
"""

import argparse
import contextlib
import itertools
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import psutil
import requests

from bench.common import figure, percentile

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password"
FAST_HASH = "pbkdf2:sha256:1000"  # the bench's own users only
RSS_TARGET_MB = 250
SQL_HEADER = "X-Bench-SQL-Count"
SERVER_TIME_HEADER = "X-Bench-Server-Seconds"
F3_FULL_PAGE_MS, F3_FRAGMENT_MS = 300, 150  # reliability.md F3, server side


# ------------------------------------------------------------------ the served app
def counting_app():
    """The app, plus each request's SQL statement count and server time in response headers
    (bench only)."""
    import sqlalchemy as sa
    from flask import g

    from webapp import create_app
    from webapp.extensions import db

    app = create_app()
    app.logger.disabled = True
    with app.app_context():
        engine = db.engine

    @sa.event.listens_for(engine, "before_cursor_execute")
    def count_statement(conn, cursor, statement, parameters, context, executemany):
        with contextlib.suppress(RuntimeError):  # outside a request: not a page's query
            g.bench_sql = g.get("bench_sql", 0) + 1

    @app.before_request
    def start_clock():
        g.bench_started = time.perf_counter()

    @app.after_request
    def report_count(response):
        response.headers[SQL_HEADER] = str(g.get("bench_sql", 0))
        if "bench_started" in g:
            elapsed = time.perf_counter() - g.bench_started
            response.headers[SERVER_TIME_HEADER] = f"{elapsed:.6f}"
        return response

    return app


# ------------------------------------------------------------------------- seeding
def seed(rows: int) -> dict:
    """Bulk-insert a company of `rows` records per table plus the load's own people."""
    import sqlalchemy as sa
    from werkzeug.security import generate_password_hash

    from bench.pages_bench import build_company
    from webapp.extensions import db
    from webapp.models import (
        CostCode,
        ProcoreStagedRecord,
        Project,
        Role,
        TimeCard,
        TimeCardStatus,
        TimeEntry,
        User,
    )
    from webapp.models.project import project_supervisor

    company_id, admin_username = build_company(rows)
    password_hash = generate_password_hash(PASSWORD, method=FAST_HASH)
    people = {"admin": [admin_username], "supervisor": [], "worker": []}
    roles = {"admin": Role.ADMIN, "supervisor": Role.SUPERVISOR, "worker": Role.WORKER}
    for kind, how_many in (("admin", 3), ("supervisor", 4), ("worker", 13)):
        for n in range(how_many):
            username = f"load-{kind}-{n}"
            db.session.add(
                User(
                    company_id=company_id,
                    first_name=kind.title(),
                    last_name=f"Load{n}",
                    username=username,
                    email=f"{username}@example.test",
                    role=roles[kind],
                    password_hash=password_hash,
                )
            )
            people[kind].append(username)
    db.session.execute(
        sa.update(User).where(User.username == admin_username).values(password_hash=password_hash)
    )
    db.session.commit()

    project_ids = list(
        db.session.scalars(
            sa.select(Project.id).where(Project.company_id == company_id).order_by(Project.id)
        )
    )
    code_id = db.session.scalar(
        sa.select(sa.func.max(CostCode.id)).where(CostCode.company_id == company_id)
    )
    load_users = dict(
        db.session.execute(
            sa.select(User.username, User.id).where(User.username.like("load-%"))
        ).all()
    )
    supervisor_ids = [load_users[u] for u in people["supervisor"]]
    db.session.execute(
        sa.insert(project_supervisor),
        [
            {"project_id": pid, "user_id": supervisor_ids[n % len(supervisor_ids)]}
            for n, pid in enumerate(project_ids[:50])
        ],
    )
    monday = date.today() - timedelta(days=date.today().weekday())
    # One submitted card of 5 entries per person until `rows` entries exist, this week
    # (the approvals queue), and a draft card for each load worker (their My time).
    other_ids = list(
        db.session.scalars(
            sa.select(User.id)
            .where(User.company_id == company_id, User.username.not_like("load-%"))
            .limit(max(1, rows // 5))
        )
    )
    cards = [
        {
            "company_id": company_id,
            "user_id": uid,
            "week_start": monday,
            "status": TimeCardStatus.SUBMITTED,
        }
        for uid in other_ids
    ] + [
        {
            "company_id": company_id,
            "user_id": load_users[u],
            "week_start": monday,
            "status": TimeCardStatus.DRAFT,
        }
        for u in people["worker"]
    ]
    db.session.execute(sa.insert(TimeCard), cards)
    card_ids = list(
        db.session.scalars(sa.select(TimeCard.id).where(TimeCard.company_id == company_id))
    )
    db.session.execute(
        sa.insert(TimeEntry),
        [
            {
                "company_id": company_id,
                "time_card_id": cid,
                "work_date": monday + timedelta(days=day),
                "project_id": project_ids[(n + day) % len(project_ids)],
                "cost_code_id": code_id,
                "hours": Decimal("8.00"),
                "notes": f"Formwork {n}-{day}",
            }
            for n, cid in enumerate(card_ids)
            for day in range(5)
        ],
    )
    db.session.execute(
        sa.insert(ProcoreStagedRecord),
        [
            {
                "company_id": company_id,
                "entity_type": "user",
                "procore_id": 900_000 + i,
                "payload": {
                    "id": 900_000 + i,
                    "first_name": f"Staged{i:05d}",
                    "last_name": f"Person{i:05d}",
                    "email_address": f"staged{i:05d}@procore.example",
                    "employee_id": f"S{i:05d}",
                    "is_active": True,
                    "is_employee": True,
                },
                "selected": True,
                "search_text": f"staged{i:05d} person{i:05d} staged{i:05d}@procore.example",
                "sort_key": f"person{i:05d} staged{i:05d}",
                "match_key": f"staged{i:05d}@procore.example",
            }
            for i in range(rows)
        ],
    )
    db.session.commit()
    own_card = db.session.scalar(
        sa.select(TimeCard.id).where(TimeCard.user_id == load_users[people["worker"][0]])
    )
    return {"people": people, "project_id": project_ids[0], "card_id": own_card}


def pages_for(kind: str, facts: dict, routes: set[str]) -> list[tuple[str, str, bool]]:
    """(name, path, htmx fragment?) a person of this kind keeps visiting."""
    worker = [
        ("my time", "/time/", False),
        ("my time, last week (htmx)", "/time/?week=" + _last_week(), True),
        ("entry form (htmx)", "/time/entries/form", True),
    ]
    supervisor = [
        ("approvals", "/time/approvals", False),
        ("approvals, approved (htmx)", "/time/approvals?status=approved", True),
        ("my time", "/time/", False),
    ]
    admin = [
        ("users", "/users/", False),
        ("users, search (htmx)", "/users/?q=last00", True),
        ("projects", "/projects/", False),
        ("projects, page 2 (htmx)", "/projects/?page=2", True),
        ("cost codes", "/cost-codes/", False),
        ("cost codes, search (htmx)", "/cost-codes/?q=item", True),
        ("project edit", f"/projects/{facts['project_id']}/edit", False),
        ("integrations", "/settings/integrations/", False),
        ("approvals", "/time/approvals", False),
        ("wizard users table", "/settings/integrations/procore/setup/table/user", False),
        (
            "wizard users table, search (htmx)",
            "/settings/integrations/procore/setup/table/user?q=staged0",
            True,
        ),
    ]
    if "/settings/integrations/procore/sync" in routes:
        admin.append(("sync history", "/settings/integrations/procore/sync", False))
    return {"worker": worker, "supervisor": supervisor, "admin": admin}[kind]


def _last_week() -> str:
    monday = date.today() - timedelta(days=date.today().weekday() + 7)
    return monday.isoformat()


# ------------------------------------------------------------------------ processes
def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    from tests.conftest import free_port
    from webapp.redis_runtime import embedded_redis_binary

    port = free_port()
    proc = subprocess.Popen(
        [embedded_redis_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", ""],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, f"redis://127.0.0.1:{port}/0"


def start_web(env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    from tests.conftest import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "8",
            "bench.load_bench:counting_app()",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/login", timeout=5).status_code == 200:
                return proc, url
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer; see {log}")


class RssSampler(threading.Thread):
    """Samples the RSS of the server's processes (the gunicorn worker is the web process)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                for proc in [self.root, *self.root.children(recursive=True)]:
                    self.peak = max(self.peak, proc.memory_info().rss)
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.2)


def log_in(base: str, username: str) -> requests.Session:
    session = requests.Session()
    form = session.get(base + "/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    reply = session.post(
        base + "/login",
        data={"identifier": username, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=30,
    )
    if reply.status_code != 302:
        raise RuntimeError(f"login of {username} failed: {reply.status_code}")
    return session


# ------------------------------------------------------------------------- the load
def run_load(base: str, people: list[tuple[str, str]], facts, routes, duration: float):
    """20 threads visiting their pages until the time is up; samples per page."""
    samples = defaultdict(list)  # name -> [(client s, server s, sql count, fragment)]
    failures = defaultdict(int)
    sizes = defaultdict(int)
    lock = threading.Lock()
    sessions = [(kind, log_in(base, username)) for kind, username in people]
    deadline = time.monotonic() + duration

    def visit(kind: str, session: requests.Session, offset: int) -> None:
        pages = pages_for(kind, facts, routes)
        for name, path, fragment in itertools.islice(itertools.cycle(pages), offset, None):
            if time.monotonic() > deadline:
                return
            headers = {"HX-Request": "true"} if fragment else {}
            started = time.perf_counter()
            try:
                reply = session.get(base + path, headers=headers, timeout=30)
            except requests.RequestException:
                with lock:
                    failures[name] += 1
                continue
            elapsed = time.perf_counter() - started
            with lock:
                if reply.status_code != 200:
                    failures[name] += 1
                    continue
                count = int(reply.headers.get(SQL_HEADER, "-1"))
                server = float(reply.headers.get(SERVER_TIME_HEADER, "nan"))
                samples[name].append((elapsed, server, count, fragment))
                sizes[name] = max(sizes[name], len(reply.content))

    threads = [
        threading.Thread(target=visit, args=(kind, session, n))
        for n, (kind, session) in enumerate(sessions)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples, failures, sizes, time.monotonic() - started


def measure(rows: int, duration: float, users: int) -> dict:
    """Seed, serve, load; print this size's figures and return {page: max SQL count}."""
    from config import TestConfig
    from webapp import create_app
    from webapp.extensions import db

    with tempfile.TemporaryDirectory(prefix="crewclock-load-bench-") as tmp:
        tmp = Path(tmp)
        redis_proc, redis_url = start_redis(tmp)
        db_url = f"sqlite:///{tmp / 'load.db'}"
        app = create_app(
            TestConfig,
            instance_path=tmp / "instance",
            SQLALCHEMY_DATABASE_URI=db_url,
            SQLALCHEMY_ENGINE_OPTIONS={},
            REDIS_URL=redis_url,
        )
        app.logger.disabled = True
        with app.app_context():
            db.create_all()
            started = time.perf_counter()
            facts = seed(rows)
            seeded = time.perf_counter() - started
            routes = {rule.rule.rstrip("/") for rule in app.url_map.iter_rules()}
            db.session.remove()
            db.engine.dispose()
        env = {
            **os.environ,
            "CREWCLOCK_ENV": "development",
            "CREWCLOCK_INSTANCE_DIR": str(tmp / "instance"),
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "LOG_LEVEL": "WARNING",
        }
        web, base = start_web(env, tmp / "web.log")
        sampler = RssSampler(web.pid)
        sampler.start()
        try:
            kinds = ["admin", "supervisor", "worker", "worker", "worker"]
            people, pools = [], {k: iter(v) for k, v in facts["people"].items()}
            for n in range(users):
                kind = kinds[n % len(kinds)]
                people.append((kind, next(pools[kind])))
            samples, failures, sizes, elapsed = run_load(base, people, facts, routes, duration)
        finally:
            sampler.stopped.set()
            sampler.join()
            web.terminate()
            web.wait(10)
            redis_proc.terminate()
            redis_proc.wait(10)

    total = sum(len(v) for v in samples.values())
    failed = sum(failures.values())
    figure(f"{rows} rows, seed", f"{seeded:.1f} s")
    figure(
        f"{rows} rows, requests",
        f"{total} in {elapsed:.0f} s ({total / elapsed:.0f}/s), {users} users, "
        f"failures {failed} ({failed / max(1, total + failed):.1%})",
    )
    counts = {}
    for name in sorted(samples):
        client = [s[0] for s in samples[name]]
        server = [s[1] for s in samples[name]]
        sql = sorted({s[2] for s in samples[name]})
        counts[name] = max(sql)
        figure(
            f"{rows} rows, {name}",
            f"server p50 {percentile(server, 50) * 1000:.0f} ms, "
            f"p95 {percentile(server, 95) * 1000:.0f} ms; "
            f"client p95 {percentile(client, 95) * 1000:.0f} ms; "
            f"SQL {'/'.join(map(str, sql))}, {sizes[name] / 1024:.0f} KB, n={len(client)}",
        )
    for label, fragment, target in (
        ("full pages", False, F3_FULL_PAGE_MS),
        ("htmx fragments", True, F3_FRAGMENT_MS),
    ):
        chosen = [s for v in samples.values() for s in v if s[3] is fragment]
        if not chosen:
            continue
        server = percentile([s[1] for s in chosen], 95) * 1000
        client = percentile([s[0] for s in chosen], 95) * 1000
        verdict = "within" if server <= target else "OVER"
        figure(
            f"{rows} rows, all {label} p95",
            f"server {server:.0f} ms ({verdict} F3's {target} ms), client {client:.0f} ms",
        )
    peak = sampler.peak / 1024 / 1024
    figure(
        f"{rows} rows, web process peak RSS",
        f"{peak:.0f} MB (target < {RSS_TARGET_MB} MB{'' if peak < RSS_TARGET_MB else ': OVER'})",
    )
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30, help="seconds of load per size")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--sizes", default="100,10000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    by_size = {rows: measure(rows, args.duration, args.users) for rows in sizes}
    if len(sizes) > 1:
        small, large = by_size[min(sizes)], by_size[max(sizes)]
        grows = [
            f"{name} ({small[name]} -> {large[name]})"
            for name in sorted(set(small) & set(large))
            if large[name] > small[name]
        ]
        figure(
            f"pages whose SQL count grows from {min(sizes)} to {max(sizes)} rows",
            ", ".join(grows) or "none",
        )
        most = max(max(c.values()) for c in by_size.values())
        figure("most SQL statements on any page", str(most))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
