"""'When time cards are sent' changes while cards wait: real web server, real push worker."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.faults.conftest import wait_for
from tests.faults.test_push_crash import _linked_world
from tests.faults.test_web_faults import STEP5, SYNC, logged_in
from webapp.extensions import db
from webapp.models import TimeCardStatus, WorkType
from webapp.models.push import ProcorePush, PushState
from webapp.services import timecards as tc

pytestmark = pytest.mark.slow  # real processes


def test_card_submitted_under_approved_then_approved_after_switching_to_submitted_is_sent(
    stack,
):
    company, admin, worker, project, code = _linked_world(stack)  # trigger: approved
    base = stack.start_web()
    session = logged_in(base, admin.username)
    stack.start_worker("push")
    week = tc.monday_of(date.today())
    card = tc.get_or_create_card(company.id, worker, week, worker)
    for day in range(5):
        tc.create_entry(
            card,
            tc.EntryData(
                work_date=week + timedelta(days=day),
                project_id=project.id,
                cost_code_id=code.id,
                hours=Decimal("8.00"),
                work_type=WorkType.REGULAR,
                notes=f"Formwork day {day + 1}",
            ),
            worker,
        )
    tc.change_status(card, TimeCardStatus.SUBMITTED, worker)  # waits for approval

    reply = session.post(base + SYNC, data={**STEP5, "timecard_trigger": "submitted"}, timeout=30)
    assert reply.status_code == 200, reply.text[:500]
    tc.change_status(card, TimeCardStatus.APPROVED, admin)

    def sent():
        return len(
            [e for e in stack.sandbox.store.select("timecard_entries") if e.get("origin_id")]
        )

    wait_for(lambda: sent() == 5, 60, "the five entries to reach Procore")

    def all_done():
        db.session.rollback()
        states = db.session.scalars(
            sa.select(ProcorePush.state).where(ProcorePush.company_id == company.id)
        ).all()
        return len(states) == 5 and set(states) == {PushState.DONE}

    wait_for(all_done, 30, "every outbox row to end done")
    assert sent() == 5  # nothing doubled
