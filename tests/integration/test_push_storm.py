"""A storm of 5xx, 429 and lost replies over many entries: exactly N in Procore, none lost."""

import random
import re
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
import sqlalchemy as sa

from tests.integration.push_support import *  # noqa: F403 (fixtures)
from tests.integration.push_support import WEEK
from webapp.extensions import db
from webapp.models import ProcorePush, PushState, TimeCardStatus, TimeEntry, WorkType
from webapp.models.base import utcnow
from webapp.models.push import WORK_STATES
from webapp.procore import mapping_timecards as mapping
from webapp.services import timecards as tc

FAULTS = (
    {"status": 500},
    {"status": 502},
    {"status": 503, "headers": {"Retry-After": "0"}},
    {"status": 429, "headers": {"Retry-After": "0"}},
    {"action": "drop"},  # Procore commits, the reply is lost
)


class StormSession(requests.Session):
    """Before a share of API requests, arm a one-shot sandbox fault for exactly that call."""

    def __init__(self, faults, rate: float, seed: int) -> None:
        super().__init__()
        self.faults, self.rate, self.rng = faults, rate, random.Random(seed)
        self.armed = 0

    def request(self, method, url, *args, **kwargs):
        path = url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        if "/rest/" in url and self.rng.random() < self.rate:
            rule = dict(self.rng.choice(FAULTS))
            rule.update(method=method, path="^/" + re.escape(path) + "$", count=1)
            self.faults.add_rule(rule)
            self.armed += 1
        return super().request(method, url, *args, **kwargs)


def approved_cards_with(world, total: int, per_card: int, week=WEEK, cards=None) -> int:
    """Approved cards holding `total` entries (inserted directly: the rules are not on test)."""
    made = 0
    while made < total:
        for worker in world.workers:
            if made >= total:
                break
            card = tc.get_or_create_card(world.company.id, worker, week, worker)
            count = min(per_card, total - made)
            db.session.add_all(
                TimeEntry(
                    company_id=world.company.id,
                    time_card_id=card.id,
                    work_date=week + timedelta(days=i % 7),
                    project_id=world.project.id,
                    cost_code_id=world.cost_code.id,
                    hours=Decimal("0.25"),
                    work_type=WorkType.OVERTIME if i % 5 == 0 else WorkType.REGULAR,
                    notes=f"storm {made + i}",
                )
                for i in range(count)
            )
            db.session.commit()
            db.session.refresh(card)
            tc.change_status(card, TimeCardStatus.SUBMITTED, worker)
            tc.change_status(card, TimeCardStatus.APPROVED, world.admin)
            if cards is not None:
                cards.append(card)
            made += count
        week += timedelta(days=7)
    return made


def push_until_quiet(world, client, rounds: int = 30) -> None:
    start = utcnow()
    for n in range(rounds):
        # A few minutes between rounds: a create without an answer is sent again only after
        # it was looked up over the window (Procore may apply it late).
        world.push(client=client, now=lambda n=n: start + timedelta(minutes=4 * n))
        waiting = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(ProcorePush)
            .where(ProcorePush.state.in_(WORK_STATES))
        )
        if not waiting:
            return
        # Time passes: rows parked until a rate-limit reset or a retry time become due.
        db.session.execute(sa.update(ProcorePush).values(next_attempt_at=None))
        db.session.commit()
    raise AssertionError("the push did not settle")


@pytest.mark.parametrize(("bulk", "total"), [(False, 1000), (True, 400)])
def test_fault_storm_ends_with_exactly_one_procore_entry_per_local_entry(world, bulk, total):
    world.settings.use_bulk_timecards = bulk
    db.session.commit()
    made = approved_cards_with(world, total, per_card=100)
    rejected: list = []  # approved, partly sent through the storm, then sent back
    approved_cards_with(world, 60, per_card=15, week=WEEK + timedelta(weeks=30), cards=rejected)
    storm = StormSession(world.sandbox.faults, rate=0.2, seed=20260302 + int(bulk))
    client = world.sandbox.client(session=storm)
    world.push(client=client)
    for card in rejected:
        world.reject(card)
    push_until_quiet(world, client)

    remote = world.sandbox.entries()
    origins = [e["origin_id"] for e in remote]
    rejected_ids = {e.id for card in rejected for e in card.entries}
    local_ids = set(db.session.scalars(sa.select(TimeEntry.id))) - rejected_ids
    assert len(local_ids) == made == total
    assert len(origins) == total, "lost or duplicated entries"
    assert len(set(origins)) == total, "duplicates in Procore"
    assert all(o.isdigit() for o in origins), "integer origin ids (Procore v1.0 schemas)"
    namespace = world.settings.timecard_origin_namespace
    assert {mapping.entry_id_from_origin(o, namespace) for o in origins} == local_ids
    rows = list(db.session.scalars(sa.select(ProcorePush)))
    kept = [r for r in rows if r.time_entry_id not in rejected_ids]
    assert {r.state for r in kept} == {PushState.DONE}
    by_origin = {e["origin_id"]: e["id"] for e in remote}
    assert all(by_origin[r.origin_id] == r.procore_id for r in kept)
    # None for rejected cards: removed from Procore, or never sent.
    gone = [r for r in rows if r.time_entry_id in rejected_ids]
    assert len(gone) == 60 and not any(r.origin_id in by_origin for r in gone)
    assert {r.state for r in gone} <= {PushState.DONE, PushState.SKIPPED}
    assert all(r.procore_id is None for r in gone)
    # The storm really happened: about a fifth of all calls met a fault.
    assert storm.armed >= 0.1 * client.stats.calls > 0
    if not bulk:
        assert world.sandbox.faults.stats()["dropped"] > 0
