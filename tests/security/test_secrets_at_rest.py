"""E6: after a full run (connect, set-up import, push of an approved card, sync) no access or
refresh token, no client secret and no email address sits in Redis (keys, values, RQ job
arguments) or in the logs; in the database the tokens exist only as Fernet ciphertext.

Every Procore call goes to the in-process sandbox; jobs run on a real RQ SimpleWorker
against the test redis-server, so the job hashes inspected are the ones RQ really wrote.
"""

import contextlib
import logging
import os
import pickle
import zlib
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
import sqlalchemy as sa
from rq import SimpleWorker

from tests.integration.push_support import WEEK
from tests.integration.setup_support import ADMIN_EMAIL, SANDBOX_URL, demo_ids, sandbox_fixture
from webapp import jobs
from webapp.extensions import db
from webapp.models import (
    CostCode,
    IntegrationSettings,
    ProcoreConnection,
    Project,
    RunStatus,
    SyncRun,
    TimeCardStatus,
    TimecardTrigger,
    TimeEntryMode,
    User,
    WorkType,
)
from webapp.models.base import utcnow
from webapp.procore.crypto import token_cipher
from webapp.redis_runtime import get_queue, get_redis
from webapp.runs import queueing
from webapp.services import imports, push, sync_runs
from webapp.services import timecards as tc
from webapp.services.connections import complete_connection

sandbox = sandbox_fixture("demo")


@pytest.fixture
def no_outbound_http():
    """Overrides the suite's blocker: here every call goes to the in-process sandbox."""
    yield None


def _work(queue_name: str) -> None:
    SimpleWorker([get_queue(queue_name)], connection=get_redis()).work(burst=True)


def _decoded_job_data(raw: bytes) -> str:
    """RQ's `data` field: a (zlib-compressed) pickle of (func, instance, args, kwargs)."""
    with contextlib.suppress(zlib.error):
        raw = zlib.decompress(raw)
    return repr(pickle.loads(raw))


def _redis_dump() -> str:
    """Every key and every value in Redis as text, RQ job arguments decoded."""
    redis = get_redis()
    parts = []
    for key in redis.scan_iter(count=500):
        parts.append(repr(key))
        kind = redis.type(key)
        if kind == b"string":
            parts.append(repr(redis.get(key)))
        elif kind == b"hash":
            for field, value in redis.hgetall(key).items():
                parts.append(repr(field))
                parts.append(_decoded_job_data(value) if field == b"data" else repr(value))
        elif kind == b"list":
            parts.append(repr(redis.lrange(key, 0, -1)))
        elif kind == b"set":
            parts.append(repr(redis.smembers(key)))
        elif kind == b"zset":
            parts.append(repr(redis.zrange(key, 0, -1, withscores=True)))
        elif kind == b"stream":
            parts.append(repr(redis.xrange(key)))
    return "\n".join(parts)


def _database_dump() -> str:
    """Every row of every table as text (works on SQLite and PostgreSQL alike)."""
    parts = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


def _full_run(app, sandbox_app, company, admin) -> dict:
    """Connect, import, approve and push one card, sync; the secrets that were in play."""
    base = app.config["PROCORE_API_URL"]
    ids = demo_ids(sandbox_app)
    grant = requests.post(f"{base}/_sandbox/token", json={"email": ADMIN_EMAIL}, timeout=5).json()
    complete_connection(company.id, admin.id, grant)
    assert imports.choose_procore_company(company.id, ids["company"]) is None
    settings = db.session.get(IntegrationSettings, company.id)
    settings.standard_cost_code_list_id = ids["list"]
    settings.timecard_trigger = TimecardTrigger.ON_APPROVAL
    db.session.commit()

    run, _ = imports.create_run(company.id, imports.IMPORT_KIND, admin.id)
    db.session.commit()
    queueing.enqueue_run(run)
    _work("imports")
    db.session.expire_all()
    worker = db.session.scalar(
        sa.select(User).where(User.company_id == company.id, User.id != admin.id).limit(1)
    )
    project = db.session.scalar(sa.select(Project).where(Project.company_id == company.id))
    code = db.session.scalar(sa.select(CostCode).where(CostCode.company_id == company.id))
    assert worker and project and code, "the set-up import brought in nothing"
    project.time_entry_mode = TimeEntryMode.HOURS
    db.session.get(IntegrationSettings, company.id).setup_completed_at = utcnow()  # wizard done
    if code not in project.cost_codes:
        project.cost_codes.append(code)
    db.session.commit()

    app.config["PUSH_AUTO_ENQUEUE"] = True
    card = tc.get_or_create_card(company.id, worker, WEEK, worker)
    tc.create_entry(
        card,
        tc.EntryData(
            work_date=WEEK + timedelta(days=1),
            project_id=project.id,
            cost_code_id=code.id,
            hours=Decimal("7.50"),
            work_type=WorkType.REGULAR,
            notes=f"Poured footings for {worker.email}",
        ),
        worker,
    )
    tc.change_status(card, TimeCardStatus.SUBMITTED, worker)
    tc.change_status(card, TimeCardStatus.APPROVED, admin)
    _work("push")
    assert push.card_sync_states(company.id, [card.id])[card.id].label == "Sent"

    sync_run, created = sync_runs.start_sync(company.id, user_id=admin.id)
    assert created
    _work("sync")
    db.session.expire_all()
    assert db.session.get(SyncRun, sync_run.id).status == RunStatus.SUCCEEDED

    connection = db.session.get(ProcoreConnection, company.id)
    cipher = token_cipher()
    emails = db.session.scalars(sa.select(User.email).where(User.company_id == company.id)).all()
    return {
        "tokens": {
            grant["access_token"],
            grant["refresh_token"],
            cipher.decrypt(connection.access_token_enc),
            cipher.decrypt(connection.refresh_token_enc),
        },
        "client_secret": app.config["PROCORE_CLIENT_SECRET"],
        "emails": set(emails),
        "connection": connection,
    }


@pytest.fixture
def full_run(app, sandbox, company, admin, caplog, monkeypatch):
    monkeypatch.setattr(jobs, "_app_pid", os.getpid())  # in-process worker: keep the DB pool
    app.config["PROCORE_API_URL"] = app.config["PROCORE_LOGIN_URL"] = SANDBOX_URL
    app.config["PUSH_UNKNOWN_SETTLE_SECONDS"] = 0
    caplog.set_level(logging.DEBUG)
    return _full_run(app, sandbox, company, admin)


def test_no_token_secret_or_email_is_left_in_redis_after_a_full_run(full_run):
    dump = _redis_dump()
    # The job hashes really were there, their arguments decoded from the pickled call.
    # Every kind's job is handle_run(run id) under job id run-<id>: import, push and sync.
    assert "rq:job:run-" in dump and dump.count("webapp.jobs.handle_run") >= 3
    for secret in (*full_run["tokens"], full_run["client_secret"]):
        assert secret not in dump
    leaked = [email for email in full_run["emails"] if email in dump]
    assert leaked == []


def test_logs_of_a_full_run_show_no_token_secret_or_email_argument(full_run, caplog):
    text = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for record in caplog.get_records("setup")  # the run happens in the fixture
    )
    assert "procore GET /rest/v1.0/companies/{id}/users" in text  # the run was captured
    for secret in (*full_run["tokens"], full_run["client_secret"]):
        assert secret not in text
    jobs_logged = "\n".join(
        record.getMessage() for record in caplog.get_records("setup") if record.name == "rq.worker"
    )
    assert "handle_run(" in jobs_logged  # RQ logs each job's call with its arguments
    assert [email for email in full_run["emails"] if email in jobs_logged] == []


def test_database_holds_tokens_only_as_fernet_ciphertext(full_run):
    dump = _database_dump()
    for secret in (*full_run["tokens"], full_run["client_secret"]):
        assert secret not in dump
    connection = full_run["connection"]
    for stored in (connection.access_token_enc, connection.refresh_token_enc):
        assert stored.startswith("gAAAAA")  # Fernet's version byte, base64
        assert token_cipher().decrypt(stored) in full_run["tokens"]
