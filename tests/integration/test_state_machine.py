"""D9: a Hypothesis state machine over the whole Procore engine (reliability.md §3).

Random sequences of local time-entry work (create, edit, delete, submit, approve, reject),
people editing and deleting linked users and projects in Procore, syncs, pushes, webhook
deliveries (duplicated, reordered, our own echoes included), workers killed after a chosen
reply or commit and rerun, faults that commit at Procore and drop the reply, and token
expiry. After every step: no duplicate links, no two Procore entries with one origin_id,
no `done` outbox row without Procore's id, the connection alive and no refresh token sent
twice. At the end of every sequence (and whenever the machine asks): a quiet full sync +
push leaves both sides agreeing (or a visible conflict/failure), and the next quiet cycle
writes nothing to Procore.

Runs on SQLite only: its own app fixture, not the per-backend one. The other app tests cover
PostgreSQL behaviour; 200 sequences twice would double the suite's longest test for no new
path (nothing here uses backend-specific SQL).
"""

from __future__ import annotations

import functools
import os
from datetime import timedelta
from decimal import Decimal

import pytest
from flask import request as sandbox_request
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from procore_sandbox.app import create_app as create_sandbox
from procore_sandbox.config import SandboxConfig
from procore_sandbox.testing import mount_sandbox
from tests.conftest import make_test_app
from tests.integration.push_support import WEEK
from tests.integration.state_machine_support import (
    BASE,
    Crash,
    World,
    build_world,
    done_without_procore_id,
    duplicate_links,
    duplicate_origins,
    record_disagreements,
    timecard_disagreements,
)
from webapp.extensions import db
from webapp.models import (
    ConnectionStatus,
    ProcoreConnection,
    ProcoreLink,
    TimeCardStatus,
    WorkType,
)
from webapp.models.sync import ConflictPolicy
from webapp.services import sync
from webapp.services import timecards as tc

SEQUENCES = int(os.environ.get("D9_SEQUENCES", "200"))  # CI: the 200 D9 asks for
STEPS = 12
TOKEN_LIFETIME = 5400

# Faults that commit at Procore and drop the reply, or refuse before doing anything.
FAULTS = [
    {"method": "POST", "path": r"/timecard_entries$", "action": "drop"},
    {"method": "PATCH", "path": r"/timecard_entries/\d+$", "action": "drop"},
    {"method": "DELETE", "path": r"/timecard_entries/\d+$", "action": "drop"},
    {"method": "PATCH", "path": r"/users/sync$", "action": "drop"},
    {"method": "PATCH", "path": r"/projects/sync$", "action": "drop"},
    {"method": "GET", "path": r"/timecard_entries$", "status": 503},
    {"method": "POST", "path": r"/timecard_entries$", "status": 500},
    {"method": "GET", "path": r"/users", "status": 502},
]
NAMES = ["Ana", "Bo", "Chen", "Dario"]
PHONES = ["+1 510 555 0101", "+1 510 555 0202", None]
CITIES = ["Oakland", "Fresno", "Reno"]


@pytest.fixture
def sqlite_app(redis_url, tmp_path):
    """The app on a SQLite file (deliberately not per-backend; see above). A file, not
    memory: the token refresh commits in its own session, which must not share (and roll
    back) the job's connection as the in-memory StaticPool would."""
    application = make_test_app(
        f"sqlite:///{tmp_path / 'd9.db'}", redis_url, instance_path=tmp_path / "instance"
    )
    application.config.update(
        PROCORE_API_URL=BASE,
        PROCORE_LOGIN_URL=BASE,
        PUBLIC_BASE_URL="http://crewclock.test",
        PUSH_UNKNOWN_SETTLE_SECONDS=0,
        PUSH_AUTO_ENQUEUE=False,
    )
    with application.app_context():
        db.create_all()
        yield application
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


@pytest.fixture
def sandbox_app():
    """The sandbox in-process, recording every refresh token its token endpoint receives."""
    app = create_sandbox(
        SandboxConfig(
            seed="demo",
            webhooks_enabled=False,
            rate_limit_spike=10**6,
            rate_limit_hourly=10**7,
            token_lifetime=TOKEN_LIFETIME,
        )
    )
    app.refresh_tokens_received = []

    @app.before_request
    def record_refresh_token():
        if sandbox_request.path == "/oauth/token":
            token = sandbox_request.form.get("refresh_token")
            if token:
                app.refresh_tokens_received.append(token)

    with mount_sandbox(app, BASE):
        yield app


def step(fn):
    """Remember that a step failed, so teardown does not pile a second failure on top."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except BaseException:
            self.broken = True
            raise

    return wrapper


def make_machine(app, sandbox_app):
    class ProcoreEngine(RuleBasedStateMachine):
        """Crewclock + the sandbox under random work, faults, crashes and clock jumps."""

        def __init__(self) -> None:
            super().__init__()
            self.broken = False
            self.world: World | None = None
            self.http = app.test_client()

        # ------------------------------------------------------------------ set-up
        @initialize(
            policy=st.sampled_from(list(ConflictPolicy)),
            cards=st.lists(
                st.sampled_from([TimeCardStatus.DRAFT, TimeCardStatus.APPROVED]),
                min_size=2,
                max_size=2,
            ),
        )
        @step
        def connect_and_link(self, policy, cards):
            """A fresh company on a fresh sandbox; each worker has a two-entry card."""
            sandbox_app.refresh_tokens_received.clear()
            self.world = build_world(app, sandbox_app, policy)
            store = self.world.store
            store._callbacks.clear()
            store.on_change(self.world.record_change)
            for worker, status in enumerate(cards):
                card = self.card(worker)
                for day in range(2):
                    self.new_entry(worker, day, day, "8.00", False)
                if status == TimeCardStatus.APPROVED:
                    tc.change_status(card, TimeCardStatus.SUBMITTED, self.world.admin)
                    tc.change_status(card, TimeCardStatus.APPROVED, self.world.admin)

        # ------------------------------------------------------------------ helpers
        def card(self, worker_index: int):
            worker = self.world.workers[worker_index % len(self.world.workers)]
            return tc.get_or_create_card(self.world.company_id, worker, WEEK, self.world.admin)

        def entries(self):
            from webapp.models import TimeEntry

            return list(
                db.session.scalars(
                    db.select(TimeEntry)
                    .where(TimeEntry.company_id == self.world.company_id)
                    .order_by(TimeEntry.id)
                )
            )

        def attempt(self, change) -> None:
            """A person's change through the service; a refused one changes nothing."""
            try:
                change()
            except tc.TimeCardError:
                db.session.rollback()

        # ------------------------------------------------------------------ local work
        @rule(
            worker=st.integers(0, 1),
            day=st.integers(0, 6),
            project=st.integers(0, 1),
            hours=st.sampled_from(["2.00", "4.50", "8.00"]),
            overtime=st.booleans(),
        )
        @step
        def add_entry(self, worker, day, project, hours, overtime):
            self.new_entry(worker, day, project, hours, overtime)

        def new_entry(self, worker, day, project, hours, overtime):
            card = self.card(worker)
            data = tc.EntryData(
                work_date=WEEK + timedelta(days=day),
                project_id=self.world.projects[project].id,
                cost_code_id=self.world.cost_code.id,
                hours=Decimal(hours),
                work_type=WorkType.OVERTIME if overtime else WorkType.REGULAR,
                notes=f"day {day}",
            )
            self.attempt(lambda: tc.create_entry(card, data, self.world.admin))

        @rule(
            pick=st.integers(0, 50),
            hours=st.sampled_from(["1.00", "6.25", "10.00"]),
            day=st.integers(0, 6),
            project=st.integers(0, 1),
        )
        @step
        def edit_entry(self, pick, hours, day, project):
            entries = self.entries()
            if not entries:
                return
            entry = entries[pick % len(entries)]
            data = tc.EntryData(
                work_date=WEEK + timedelta(days=day),
                project_id=self.world.projects[project].id,
                cost_code_id=entry.cost_code_id,
                hours=Decimal(hours),
                work_type=entry.work_type,
                notes=entry.notes,
            )
            self.attempt(lambda: tc.update_entry(entry, data, self.world.admin))

        @rule(pick=st.integers(0, 50))
        @step
        def delete_entry(self, pick):
            entries = self.entries()
            if entries:
                entry = entries[pick % len(entries)]
                self.attempt(lambda: tc.delete_entry(entry, self.world.admin))

        @rule(
            worker=st.integers(0, 1),
            to=st.sampled_from(
                [TimeCardStatus.SUBMITTED, TimeCardStatus.APPROVED, TimeCardStatus.REJECTED]
            ),
        )
        @step
        def change_card(self, worker, to):
            card = self.card(worker)
            db.session.commit()
            if to == TimeCardStatus.APPROVED and card.status != TimeCardStatus.SUBMITTED:
                self.attempt(lambda: tc.change_status(card, TimeCardStatus.SUBMITTED, card.user))
            self.attempt(lambda: tc.change_status(card, to, self.world.admin, "Fix the hours"))

        @rule(worker=st.integers(0, 1), phone=st.sampled_from(PHONES))
        @step
        def local_edit_of_a_worker(self, worker, phone):
            self.world.workers[worker].phone = phone
            db.session.commit()

        # ------------------------------------------------------------------ Procore side
        @rule(
            entity=st.sampled_from(["users", "projects"]),
            pick=st.integers(0, 1),
            value=st.integers(0, 3),
        )
        @step
        def person_edits_in_procore(self, entity, pick, value):
            pid = self.remote_id(entity, pick)
            if self.world.store.get(entity, pid) is None:
                return
            if entity == "users":
                changes = [
                    {"first_name": NAMES[value]},
                    {"mobile_phone": PHONES[value % len(PHONES)]},
                ][value % 2]
            else:
                changes = {"city": CITIES[value % len(CITIES)]}
            self.world.store.update(entity, pid, changes)

        @rule(entity=st.sampled_from(["users", "projects"]), pick=st.integers(0, 1))
        @step
        def person_deletes_in_procore(self, entity, pick):
            self.world.store.delete(entity, self.remote_id(entity, pick))

        def remote_id(self, entity: str, pick: int) -> int:
            local = (self.world.workers if entity == "users" else self.world.projects)[pick]
            kind = "user" if entity == "users" else "project"
            return db.session.scalar(
                db.select(ProcoreLink.procore_id).where(
                    ProcoreLink.company_id == self.world.company_id,
                    ProcoreLink.entity_type == kind,
                    ProcoreLink.local_id == local.id,
                )
            )

        # ------------------------------------------------------------------ jobs
        @rule(full=st.booleans())
        @step
        def sync_runs(self, full):
            kind = sync.FULL_KIND if full else sync.SYNC_KIND
            self.world.run_job(self.world.sync_job(self.world.new_run(kind)))

        @rule()
        @step
        def push_runs(self):
            self.world.run_job(self.world.push_job())

        @rule(
            count=st.integers(1, 4),
            duplicates=st.integers(0, 2),
            shuffle=st.booleans(),
            keep=st.booleans(),
        )
        @step
        def procore_delivers_webhooks(self, count, duplicates, shuffle, keep):
            """Some pending events, maybe reordered, some twice; `keep` = delivered again
            later too (at-least-once)."""
            mailbox = self.world.mailbox
            if not mailbox:
                return
            batch = mailbox[:count]
            if not keep:
                del mailbox[:count]
            batch = batch + batch[:duplicates]
            if shuffle:
                batch = list(reversed(batch))
            for event in batch:
                self.world.deliver(event, self.http)
            run_id = self.world.webhook_run_id()
            if run_id is not None:
                self.world.run_job(self.world.sync_job(run_id))

        @rule(fault=st.sampled_from(range(len(FAULTS))))
        @step
        def procore_misbehaves_once(self, fault):
            self.world.faults.add_rule({**FAULTS[fault], "count": 1})

        @rule(
            job=st.sampled_from(["push", "sync", "sync_full", "webhook"]),
            after=st.sampled_from(["call", "commit"]),
            n=st.integers(1, 8),
            rerun=st.booleans(),
        )
        @step
        def worker_killed_mid_job(self, job, after, n, rerun):
            """SIGKILL after the n-th reply or commit; RQ (or the next run) runs it again."""
            if job == "push":
                body = self.world.push_job()
            elif job == "webhook":
                run_id = self.world.webhook_run_id()
                if run_id is None:
                    return
                body = self.world.sync_job(run_id)
            else:
                kind = sync.FULL_KIND if job == "sync_full" else sync.SYNC_KIND
                body = self.world.sync_job(self.world.new_run(kind))
            outcome = self.world.run_job(body, crash=Crash(after, n))
            if outcome.killed and rerun:
                self.world.run_job(body)

        @rule(side=st.sampled_from(["both", "ours", "procore"]))
        @step
        def time_passes_past_token_expiry(self, side):
            """Both clocks move (the usual case), or only one: we think the token expired
            while Procore still takes it, or Procore expired it while we think it is fresh."""
            if side in ("both", "ours"):
                self.world.clock.offset += TOKEN_LIFETIME + 60
            if side in ("both", "procore"):
                store = self.world.store
                with store.lock:
                    for token in store.table("access_tokens").values():
                        token["created_at_ts"] -= TOKEN_LIFETIME + 60

        @rule()
        @step
        def quiet_cycle(self):
            self.check_quiet_cycle()

        # ------------------------------------------------------------------ invariants
        @invariant()
        @step
        def links_are_one_to_one(self):
            if self.world is not None:
                assert duplicate_links(self.world.company_id) == []

        @invariant()
        @step
        def procore_never_holds_an_origin_id_twice(self):
            if self.world is not None:
                assert duplicate_origins(self.world) == []

        @invariant()
        @step
        def done_rows_know_their_procore_entry(self):
            if self.world is not None:
                assert done_without_procore_id(self.world.company_id) == []

        @invariant()
        @step
        def tokens_rotate_cleanly(self):
            if self.world is None:
                return
            received = sandbox_app.refresh_tokens_received
            assert len(received) == len(set(received)), "a refresh token was sent twice"
            conn = db.session.get(ProcoreConnection, self.world.company_id)
            db.session.refresh(conn)
            assert conn.status == ConnectionStatus.ACTIVE, conn.last_error

        # ------------------------------------------------------------------ quiet cycle
        def check_quiet_cycle(self):
            world = self.world
            world.faults.clear_rules()
            # A later moment, so rows parked until a retry time (lost replies) are due.
            world.clock.offset += 600
            for run in (
                world.sync_job(world.new_run(sync.FULL_KIND)),
                world.push_job(),
            ):
                outcome = world.run_job(run)
                assert not outcome.killed and outcome.error is None, outcome.error
            db.session.expire_all()
            assert timecard_disagreements(world) == []
            assert record_disagreements(world) == []
            # Steady state: with nothing changed anywhere (Procore echoing our own writes
            # back by webhook), another cycle writes nothing to Procore.
            world.faults.reset_stats()
            echoes = list(world.mailbox)
            world.mailbox.clear()
            for event in echoes:
                world.deliver(event, self.http)
            run_id = world.webhook_run_id()
            jobs = [world.sync_job(run_id)] if run_id is not None else []
            jobs += [world.sync_job(world.new_run(sync.SYNC_KIND)), world.push_job()]
            for job in jobs:
                outcome = world.run_job(job)
                assert outcome.error is None, outcome.error
            assert world.writes() == {}

        def teardown(self):
            if self.world is not None and not self.broken:
                self.check_quiet_cycle()

    return ProcoreEngine


def test_random_sequences_of_work_faults_and_crashes_keep_both_sides_consistent(
    sqlite_app, sandbox_app
):
    machine = make_machine(sqlite_app, sandbox_app)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=SEQUENCES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
        ),
    )
