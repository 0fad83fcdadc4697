"""RunRunner.handle(run_id): the one lifecycle of every background run.

Claim (a finished run is not run again; a run held by a live worker is not run twice),
running, the Procore client and its call counts, finish / partial / failed with a reason,
and reconnect handling (an auth error only an admin can fix fails the run without raising;
anything else is recorded and re-raised so RQ retries). A kind writes only `run(ctx)`.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from webapp.extensions import db
from webapp.models import RunStatus, SyncRun
from webapp.models.base import utcnow
from webapp.procore.client import CallStats
from webapp.procore.errors import ProcoreAuthError
from webapp.redis_runtime import RELEASE_IF_OWNER, get_redis
from webapp.runs.kinds import RunKind
from webapp.services import connections

log = logging.getLogger(__name__)

LEASE_SECONDS = 60  # renewed every third of it while the run works; a dead holder's expires


class RunBusy(RuntimeError):
    """Another run of this company and kind holds the lease: RQ retries this one later."""


class RunLease:
    """One holder per (company, kind) across all workers, renewed while the run works.

    The value names the run holding it, so a second delivery of the same running run is
    told apart from another run of the kind.
    """

    def __init__(self, redis, run: SyncRun, ttl: int = LEASE_SECONDS) -> None:
        self.redis, self.ttl, self.run_id = redis, ttl, run.id
        self.key = self.key_for(run.company_id, run.kind)
        self.token = f"{run.id}:{secrets.token_hex(8)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def key_for(company_id: int, kind: str) -> str:
        return f"crewclock:run:lease:{company_id}:{kind}"

    @classmethod
    def holder(cls, redis, company_id: int, kind: str) -> int | None:
        """The id of the run holding the lease, if any."""
        raw = redis.get(cls.key_for(company_id, kind))
        return int(raw.decode().split(":", 1)[0]) if raw else None

    @classmethod
    def held(cls, run: SyncRun) -> bool:
        return get_redis().exists(cls.key_for(run.company_id, run.kind)) > 0

    @classmethod
    def clear_dead(cls, run: SyncRun) -> None:
        """Drop the lease of a run whose worker died (only if that run still holds it)."""
        redis = get_redis()
        if cls.holder(redis, run.company_id, run.kind) == run.id:
            redis.delete(cls.key_for(run.company_id, run.kind))

    def acquire(self) -> bool:
        return bool(self.redis.set(self.key, self.token, nx=True, ex=self.ttl))

    def renew(self) -> bool:
        value = self.redis.get(self.key)
        if value is None or value.decode() != self.token:
            return False
        return bool(self.redis.expire(self.key, self.ttl))

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.redis.eval(RELEASE_IF_OWNER, 1, self.key, self.token)

    def keep_renewed(self) -> None:
        """Renew in a background thread until released (the run may block on Procore)."""

        def renew_until_stopped():
            while not self._stop.wait(self.ttl / 3):
                try:
                    self.renew()
                except Exception:  # a Redis blip: the next tick tries again
                    log.warning("could not renew the lease %s", self.key)

        self._thread = threading.Thread(target=renew_until_stopped, daemon=True)
        self._thread.start()


@dataclass
class RunContext:
    """What a kind's run() gets: the row, the client (made on first use) and options."""

    run: SyncRun
    lease: RunLease | None = None
    options: dict = field(default_factory=dict)
    result: Any = None
    was_failed: bool = False
    _client: Any = None
    stats: CallStats | None = None

    @property
    def company_id(self) -> int:
        return self.run.company_id

    @property
    def client(self):
        if self._client is None:
            self.stats = CallStats()
            self._client = connections.procore_client_for(self.company_id, stats=self.stats)
        return self._client


class Kind:
    """One RunKind's work; subclasses write run(ctx) and, where needed, the hooks below."""

    kinds: tuple[RunKind, ...] = ()
    running_stage: str | None = None
    finished_stage: str | None = None

    def refuse(self, run: SyncRun) -> str | None:
        """Why this run must fail without asking Procore, or None."""
        return None

    def prepare(self, ctx: RunContext) -> None:
        """Before the run starts (committed with the running status)."""

    def run(self, ctx: RunContext) -> None:
        raise NotImplementedError

    def needs_admin(self, exc: Exception) -> bool:
        """Errors no retry can fix: the run fails and the job does not raise."""
        return isinstance(exc, ProcoreAuthError)

    def failure_reason(self, exc: Exception) -> str:
        return f"{type(exc).__name__}: {exc}"

    def failed(self, ctx: RunContext, exc: Exception) -> None:
        """After the run is marked failed, in the same transaction."""

    def after(self, ctx: RunContext) -> None:
        """After the run is closed and committed (follow-ups)."""


KINDS: dict[RunKind, Kind] = {}


def register(cls: type[Kind]) -> type[Kind]:
    """Class decorator: make (an instance of) `cls` the handler of its RunKinds."""
    handler = cls()
    for name in cls.kinds:
        KINDS[name] = handler
    return cls


class RunRunner:
    """Executes one run of any kind, once."""

    def handle(self, run_id: int, *, company_id: int | None = None, client=None, **options):
        """Run the run; its RunContext, or None for an unknown (or another company's) id."""
        run = db.session.get(SyncRun, run_id)
        if run is None or (company_id is not None and run.company_id != company_id):
            return None
        ctx = RunContext(run=run, options=options, _client=client)
        if run.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
            return ctx  # delivered again after it finished: nothing to do
        kind = KINDS[RunKind(run.kind)]
        lease = RunLease(get_redis(), run)
        if not lease.acquire():
            if RunLease.holder(lease.redis, run.company_id, run.kind) == run.id:
                return ctx  # a live worker is running this very run
            raise RunBusy(f"another {run.kind} run is in progress for company {run.company_id}")
        ctx.lease = lease
        lease.keep_renewed()
        try:
            self._execute(kind, ctx)
        finally:
            lease.release()
        kind.after(ctx)
        return ctx

    def _execute(self, kind: Kind, ctx: RunContext) -> None:
        run, run_id = ctx.run, ctx.run.id
        ctx.was_failed = run.status == RunStatus.FAILED
        problem = kind.refuse(run)
        if problem is not None:
            run.status, run.finished_at, run.stage, run.error = (
                RunStatus.FAILED,
                utcnow(),
                None,
                problem,
            )
            db.session.commit()
            return
        if ctx._client is not None:  # a client handed in (tests, benchmarks) counts its own
            ctx.stats = getattr(ctx._client, "stats", None)
        calls_before = limited_before = 0
        try:
            run.status, run.error = RunStatus.RUNNING, None
            run.started_at = utcnow()
            run.finished_at = None
            run.stage = kind.running_stage or run.stage
            kind.prepare(ctx)
            db.session.commit()
            if ctx.stats is not None:
                calls_before, limited_before = ctx.stats.calls, ctx.stats.rate_limited
            kind.run(ctx)
            self._count_calls(ctx, calls_before, limited_before)
            if run.status == RunStatus.RUNNING:
                run.status = RunStatus.PARTIAL if run.failed else RunStatus.SUCCEEDED
            run.finished_at, run.stage = utcnow(), kind.finished_stage
            db.session.commit()
        except Exception as exc:
            db.session.rollback()
            run = ctx.run = db.session.get(SyncRun, run_id)
            run.status, run.finished_at, run.stage = RunStatus.FAILED, utcnow(), None
            run.error = kind.failure_reason(exc)[:2000]
            self._count_calls(ctx, calls_before, limited_before)
            kind.failed(ctx, exc)
            db.session.commit()
            if kind.needs_admin(exc):
                return  # a retry cannot help; the page says what Procore said
            raise

    @staticmethod
    def _count_calls(ctx: RunContext, calls_before: int, limited_before: int) -> None:
        if ctx.stats is not None:
            ctx.run.api_calls = ctx.stats.calls - calls_before
            ctx.run.http_429 = ctx.stats.rate_limited - limited_before
