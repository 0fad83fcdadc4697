"""Browser tests: real processes (Procore sandbox, web app, RQ worker) and Debian's Chromium
driven by Playwright. Without a Chromium they skip with the reason, except in CI
(E2E_REQUIRE_BROWSER=1), where a missing browser is an error."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests
import sqlalchemy as sa

from tests.conftest import ROOT, free_port, sqlalchemy_url, stack_database

ARTIFACTS = ROOT / "test-artifacts"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "chromium", "chromium-browser"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


@pytest.fixture(scope="session")
def chromium():
    path = chromium_path()
    if path is None:
        if os.environ.get("E2E_REQUIRE_BROWSER") == "1":
            pytest.fail("E2E_REQUIRE_BROWSER=1 but no Chromium was found (apt install chromium)")
        pytest.skip("no Chromium found: install Debian's chromium or set CHROMIUM_PATH")
    return path


@pytest.fixture(scope="session")
def playwright_browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(request, playwright_browser):
    context = playwright_browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        screenshot(page, f"FAILED-{request.node.name}")  # what the browser showed at the end
    context.close()


def screenshot(page, name: str, docs: str | None = None) -> Path:
    """Save a screenshot as a test artefact (test-artifacts/<name>.png). With `docs` and
    E2E_UPDATE_DOCS_SCREENSHOTS=1, also refresh docs/screenshots/<docs>.png (viewport only,
    so the README's images stay small); otherwise test runs never touch the docs."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs and os.environ.get("E2E_UPDATE_DOCS_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_SCREENSHOTS / f"{docs}.png"))
    return path


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1, allow_redirects=False)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


class Stack:
    """The processes `make run` starts, on free ports, with a temporary instance folder."""

    def __init__(self, tmp: Path, redis_url: str, database_url: str, seed: str = "demo"):
        self.tmp = tmp
        self.database_url = database_url
        self.web_port, self.sandbox_port = free_port(), free_port()
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.redirect_uri = f"{self.web_url}/settings/integrations/procore/callback"
        self.seed = seed
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ,
            "CREWCLOCK_ENV": "development",
            "CREWCLOCK_INSTANCE_DIR": str(tmp / "instance"),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PROCORE_LOGIN_URL": self.sandbox_url,
            "PROCORE_API_URL": self.sandbox_url,
            "PROCORE_REDIRECT_URI": self.redirect_uri,
            "PUBLIC_BASE_URL": self.web_url,
            "WEBHOOK_SECRET": "e2e-webhook-secret",
            "SANDBOX_REDIRECT_URIS": self.redirect_uri,
            "PYTHONUNBUFFERED": "1",
            "FLASK_APP": "webapp",
        }

    def run(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=self.env, check=True)

    def spawn(self, name: str, *args: str) -> None:
        log = open(self.tmp / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        self.processes[name] = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def start(self) -> "Stack":
        self.run("flask", "db", "upgrade")
        self.run("flask", "seed-demo")
        self.spawn(
            "sandbox",
            "-m",
            "procore_sandbox",
            "--port",
            str(self.sandbox_port),
            "--seed",
            self.seed,
        )
        self.spawn("web", "-m", "flask", "run", "--port", str(self.web_port), "--no-reload")
        self.spawn("worker", "worker.py")
        wait_http(self.sandbox_url + "/")
        wait_http(self.web_url + "/login")
        return self

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()

    def query(self, sql: str) -> list[tuple]:
        """Rows of a read-only SQL query against the stack's database (any backend)."""
        engine = sa.create_engine(sqlalchemy_url(self.database_url))
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(sa.text(sql))]
        finally:
            engine.dispose()

    def execute(self, statement) -> None:
        """Run one SQLAlchemy statement and commit (a test standing in for time passing)."""
        engine = sa.create_engine(sqlalchemy_url(self.database_url))
        try:
            with engine.begin() as conn:
                conn.execute(statement)
        finally:
            engine.dispose()


@pytest.fixture
def stack(tmp_path, redis_url, db_backend):
    """The processes on each configured database backend (SQLite; PostgreSQL when set)."""
    # The Redis server is shared by the session: drop the last stack's queues, retries and locks.
    redis.Redis.from_url(redis_url).flushdb()
    with stack_database(db_backend, tmp_path) as database_url:
        running = Stack(tmp_path, redis_url, database_url).start()
        try:
            yield running
        finally:
            running.stop()


def log_in(page, base_url: str, identifier: str, password: str) -> None:
    page.goto(base_url + "/login")
    page.get_by_label("Email or username").fill(identifier)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
