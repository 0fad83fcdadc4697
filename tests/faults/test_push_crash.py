"""C2: the worker dies right after Procore committed a time card entry, before the reply."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.faults.conftest import add_user, connect_company, wait_for
from webapp.extensions import db
from webapp.models import (
    CostCode,
    EntityType,
    ProcoreLink,
    Project,
    Role,
    TimeCardStatus,
    TimecardTrigger,
    TimeEntryMode,
    WorkType,
)
from webapp.models.base import utcnow
from webapp.models.push import ProcorePush, PushState
from webapp.services import imports
from webapp.services import timecards as tc

pytestmark = pytest.mark.slow  # real processes, killed for real

WEEK = date(2026, 3, 2)  # a Monday
ENTRY_POST = r"/timecard_entries(/bulk_create)?$"


def _linked_world(stack):
    """A worker, project and cost code linked to the sandbox's; push on approval."""
    company, admin, _ = connect_company(stack)
    store = stack.sandbox.store
    main = next(c for c in store.table("companies").values() if c["my_company"])

    def remote(table, **equals):
        rows = store.select(table, company_id=main["id"], **equals)
        assert len(rows) == 1, (table, equals)
        return rows[0]

    settings = imports.settings_for(company.id)
    settings.timecard_trigger = TimecardTrigger.ON_APPROVAL
    settings.setup_completed_at = utcnow()
    code = CostCode(company_id=company.id, code="03-100", name="Formwork")
    project = Project(
        company_id=company.id,
        name="Harbor Warehouse",
        time_entry_mode=TimeEntryMode.HOURS,
        cost_codes=[code],
    )
    worker = add_user(company, Role.WORKER, "james")
    db.session.add_all([code, project])
    db.session.commit()
    james = remote("users", email_address="james.smith@summit.example.com")
    for entity, local_id, procore_id in (
        (EntityType.USER, worker.id, james["id"]),
        (EntityType.PROJECT, project.id, remote("projects", name="Harbor Warehouse")["id"]),
        (EntityType.COST_CODE, code.id, remote("standard_cost_codes", full_code="03-100")["id"]),
    ):
        db.session.add(
            ProcoreLink(
                company_id=company.id, entity_type=entity, local_id=local_id, procore_id=procore_id
            )
        )
    db.session.commit()
    return company, admin, worker, project, code


def test_sigkill_after_procore_committed_the_entry_ends_with_one_entry_and_a_done_row(stack):
    company, admin, worker, project, code = _linked_world(stack)
    committed = stack.requests.hold("POST", ENTRY_POST, seconds=30)
    first = stack.start_worker("push")

    card = tc.get_or_create_card(company.id, worker, WEEK, worker)
    entry = tc.create_entry(
        card,
        tc.EntryData(
            work_date=WEEK + timedelta(days=1),
            project_id=project.id,
            cost_code_id=code.id,
            hours=Decimal("8.00"),
            work_type=WorkType.REGULAR,
            notes="Formwork",
        ),
        worker,
    )
    tc.change_status(card, TimeCardStatus.SUBMITTED, worker)
    tc.change_status(card, TimeCardStatus.APPROVED, admin)  # enqueues the push after commit
    assert committed.wait(30), "the push never reached the sandbox"
    stack.kill(first)  # Procore has the entry; its reply never reaches us

    origin = db.session.scalar(
        sa.select(ProcorePush.origin_id).where(ProcorePush.company_id == company.id)
    )
    created = [e for e in stack.sandbox.store.select("timecard_entries") if e.get("origin_id")]
    assert [e["origin_id"] for e in created] == [origin]

    stack.fast_forward()  # lease expired, the dead job found and retried
    stack.start_worker("push", FAULTS_PUSH_SETTLE_SECONDS=1)

    def row_done():
        db.session.rollback()
        row = db.session.scalar(sa.select(ProcorePush).where(ProcorePush.company_id == company.id))
        return row if row.state == PushState.DONE else None

    row = wait_for(row_done, 60, "the outbox row to end done")
    remote_entries = [
        e for e in stack.sandbox.store.select("timecard_entries") if e.get("origin_id") == origin
    ]
    assert len(remote_entries) == 1  # no duplicate in Procore
    assert row.procore_id == remote_entries[0]["id"] == created[0]["id"]
    assert row.time_entry_id == entry.id
    assert stack.requests.count("POST", "timecard_entries") == 1  # reconciled, never re-sent
