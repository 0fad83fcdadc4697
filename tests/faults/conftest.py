"""Fault suite harness: real processes, killed for real.

Each test gets its own redis-server (on a free port, AOF on, so a restart keeps the queues),
a SQLite file database, a live Procore sandbox on a free port (in a thread of this process,
so the test can watch and hold its requests) and RQ workers as subprocesses that the test
SIGKILLs. The test process builds its own app on the same database and Redis to set things
up and to check the outcome.

RQ notices a dead worker only after its heartbeat TTL (90 s here) and then retries after the
Retry interval (30 s first); `Stack.fast_forward()` stands in for that wait by running the
same registry maintenance with a later clock and releasing due retries at once.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

import psutil
import pytest
import redis
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet
from rq import Queue
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from procore_sandbox.testing import live_sandbox
from tests.conftest import (
    FAST_HASH,
    PASSWORD,
    ROOT,
    CSRFClient,
    free_port,
    make_test_app,
    sqlalchemy_url,
    stack_database,
)
from webapp.extensions import db
from webapp.models import Company, Role, SyncRun, User
from webapp.redis_runtime import QUEUE_NAMES, embedded_redis_binary

SANDBOX_ADMIN = "dana.admin@summit.example.com"


def wait_for(predicate, timeout: float = 30.0, what: str = "condition", interval: float = 0.1):
    """Poll predicate() until it returns something truthy; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class RedisServer:
    """A redis-server of this test alone, which the test may stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                embedded_redis_binary(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.workdir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.answers, 10, "redis-server to start", 0.05)

    def answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping())
        except redis.exceptions.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


class RequestLog:
    """WSGI middleware around the sandbox: records each request and can hold a reply.

    A hold keeps the finished response (the write has committed) for `seconds` before it
    is sent, so a test can kill the caller while the reply is still on its way.
    """

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app
        self.seen: list[tuple[str, str, dict]] = []
        self.holds: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if not path.startswith("/_sandbox"):
            with self.lock:
                self.seen.append((method, path, query))
        result = self.wsgi_app(environ, start_response)
        for hold in list(self.holds):
            if hold["method"] == method and re.search(hold["path"], path) and not hold["used"]:
                hold["used"] = True
                body = b"".join(result)  # the handler ran: the write is committed
                hold["event"].set()
                time.sleep(hold["seconds"])
                return [body]
        return result

    def hold(self, method: str, path: str, seconds: float) -> threading.Event:
        """Hold the next reply to `method path~regex` for `seconds`; the event fires on commit."""
        event = threading.Event()
        self.holds.append(
            {"method": method, "path": path, "seconds": seconds, "event": event, "used": False}
        )
        return event

    def pages(self, path_suffix: str) -> list[int]:
        """The `page` parameters of GETs to paths ending with path_suffix, in order."""
        with self.lock:
            return [
                int(q.get("page", 1))
                for m, p, q in self.seen
                if m == "GET" and p.endswith(path_suffix)
            ]

    def count(self, method: str, fragment: str) -> int:
        with self.lock:
            return sum(1 for m, p, _ in self.seen if m == method and fragment in p)


class Stack:
    """Redis, sandbox, database and worker/web subprocesses of one fault test."""

    def __init__(self, tmp: Path, sandbox, redis_server: RedisServer, database_url: str) -> None:
        self.tmp = tmp
        self.sandbox = sandbox
        self.redis_server = redis_server
        self.requests = sandbox.app.wsgi_app = RequestLog(sandbox.app.wsgi_app)
        self.key = Fernet.generate_key().decode()
        self.env = {
            **os.environ,
            "CREWCLOCK_ENV": "development",
            "CREWCLOCK_INSTANCE_DIR": str(tmp / "instance"),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_server.url,
            "PROCORE_LOGIN_URL": sandbox.url,
            "PROCORE_API_URL": sandbox.url,
            "TOKEN_ENCRYPTION_KEYS": self.key,
            "PYTHONUNBUFFERED": "1",
            "FLASK_APP": "webapp",
            "LOG_LEVEL": "INFO",
        }
        self.app = make_test_app(
            sqlalchemy_url(database_url),
            redis_server.url,
            instance_path=tmp / "instance",
            PROCORE_API_URL=sandbox.url,
            PROCORE_LOGIN_URL=sandbox.url,
            TOKEN_ENCRYPTION_KEYS=self.key,
        )
        self.app.test_client_class = CSRFClient
        self.processes: list[subprocess.Popen] = []
        self._logs = 0

    # -- processes ---------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str], **extra_env) -> subprocess.Popen:
        self._logs += 1
        log = open(self.tmp / f"{name}-{self._logs}.log", "w")  # noqa: SIM115 (lives with it)
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**self.env, **{k: str(v) for k, v in extra_env.items()}},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log_path = log.name
        self.processes.append(process)
        return process

    def start_worker(self, *queues: str, **knobs) -> subprocess.Popen:
        """A worker.py worker (with the FAULTS_* knobs of tests/faults/worker_entry.py)."""
        return self._spawn(
            "worker", [sys.executable, "-m", "tests.faults.worker_entry", *queues], **knobs
        )

    def start_web(self) -> str:
        """Gunicorn (2 processes x 4 threads) serving the app on loopback; its base URL."""
        port = free_port()
        self._spawn(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "webapp:create_app()",
            ],
        )
        url = f"http://127.0.0.1:{port}"

        def answers():
            try:
                return requests.get(url + "/login", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_for(answers, 30, "the web app to answer")
        return url

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        """SIGKILL a process and its children (a worker and its work horse), like the OOM killer."""
        try:
            family = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(signal.SIGKILL)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        psutil.wait_procs(family, timeout=5)

    def log(self, process: subprocess.Popen) -> str:
        return Path(process.log_path).read_text()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                self.kill(process)

    # -- RQ clock ----------------------------------------------------------------------
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_server.url)

    def fast_forward(self, seconds: float = 600) -> None:
        """Act as if `seconds` passed: short-lived keys (leases, flags, the dead worker's
        scheduler lock) expire, dead workers' jobs are found, due retries are queued."""
        conn = self.redis()
        for key in conn.scan_iter(count=1000):
            name = key.decode()
            if name.startswith("rq:") and not name.startswith("rq:scheduler-lock:"):
                continue  # RQ's own bookkeeping is aged by the registry cleanup below
            if 0 < conn.ttl(key) <= seconds:
                conn.delete(key)
        later = time.time() + seconds
        for name in QUEUE_NAMES:
            queue = Queue(name, connection=conn)
            StartedJobRegistry(queue=queue).cleanup(timestamp=later)
            scheduled = ScheduledJobRegistry(queue=queue)
            for job_id in scheduled.get_job_ids():
                job = queue.fetch_job(job_id)
                scheduled.remove(job_id)
                if job is not None:
                    queue.enqueue_job(job)

    # -- database ----------------------------------------------------------------------
    def run(self, run_id: int) -> SyncRun:
        db.session.rollback()  # see what the workers committed
        return db.session.get(SyncRun, run_id)

    def wait_run(self, run_id: int, statuses, timeout: float = 60) -> SyncRun:
        wanted = {str(s) for s in statuses}
        return wait_for(
            lambda: (r := self.run(run_id)) is not None and str(r.status) in wanted and r,
            timeout,
            f"run {run_id} to reach {sorted(wanted)}",
            0.2,
        )


@pytest.fixture
def stack(tmp_path, db_backend):
    """A fresh Stack whose app context is pushed for the test, on each configured database."""
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    with (
        stack_database(db_backend, tmp_path) as database_url,
        live_sandbox(
            seed="demo", webhooks_enabled=False, rate_limit_spike=10**6, rate_limit_hourly=10**7
        ) as sandbox,
    ):
        running = Stack(tmp_path, sandbox, redis_server, database_url)
        try:
            with running.app.app_context():
                db.create_all()
                yield running
                db.session.remove()
                db.engine.dispose()
        finally:
            running.stop()
            redis_server.stop()


def add_user(company: Company, role: Role, username: str) -> User:
    user = User(
        company_id=company.id,
        first_name=username.title(),
        last_name="Tester",
        username=username,
        email=f"{username}@crewclock.test",
        role=role,
    )
    from werkzeug.security import generate_password_hash

    user.password_hash = generate_password_hash(PASSWORD, method=FAST_HASH)
    db.session.add(user)
    db.session.commit()
    return user


def connect_company(stack: Stack, cost_code_list: bool = False):
    """A Crewclock company connected to the sandbox's main company: (company, admin, main id)."""
    from webapp.services import imports
    from webapp.services.connections import complete_connection

    company = Company(name="Acme Builders")
    db.session.add(company)
    db.session.commit()
    admin = add_user(company, Role.ADMIN, "ada")
    token = requests.post(
        f"{stack.sandbox.url}/_sandbox/token", json={"email": SANDBOX_ADMIN}, timeout=5
    ).json()
    complete_connection(company.id, admin.id, token)
    store = stack.sandbox.store
    main = next(c for c in store.table("companies").values() if c["my_company"])
    assert imports.choose_procore_company(company.id, main["id"]) is None
    if cost_code_list:
        ccl = next(
            c for c in store.table("cost_code_lists").values() if c["company_id"] == main["id"]
        )
        imports.settings_for(company.id).standard_cost_code_list_id = ccl["id"]
    db.session.commit()
    return company, admin, main["id"]


def count(model, company_id: int) -> int:
    db.session.rollback()
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(model).where(model.company_id == company_id)
    )


def utc_now() -> datetime:
    return datetime.now(UTC)
