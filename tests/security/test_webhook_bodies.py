"""Issue 17 item 9: webhook bodies that carry the right secret but are malformed answer 400
and store nothing; events Crewclock has no use for are answered 2xx (Procore would otherwise
retry them for 12 hours and pause every delivery) and are not stored either."""

import json

import pytest

from tests.security.support import ROUTES, diff, is_webhook_receiver, snapshot
from webapp.extensions import db
from webapp.models.sync import ProcoreWebhookEvent

WEBHOOK_URL = next(r.rule for r in ROUTES if r.unsafe and is_webhook_receiver(r.rule, r.endpoint))


def event(**changes) -> dict:
    body = {
        "ulid": "01J0000000000000000000WXYZ",
        "id": 43,
        "company_id": 1000,  # company A's Procore company in the world
        "resource_name": "Projects",
        "resource_id": 1010,
        "event_type": "update",
        "timestamp": "2026-01-05T12:00:00Z",
        "metadata": {},
    }
    body.update(changes)
    return body


def deliver(client, app, body=None, raw=None):
    return client.post(
        WEBHOOK_URL,
        data=raw if raw is not None else json.dumps(body),
        content_type="application/json",
        headers={"Authorization": app.config["WEBHOOK_SECRET"]},
        csrf=False,
    )


MALFORMED = {
    "5000-deep nesting": "[" * 5000 + "]" * 5000,
    "3000-deep object": '{"":' * 3000 + "1" + "}" * 3000,
    "resource_id past 64 bits": json.dumps(event(resource_id=2**64)),
    "resource_id just past signed 64 bits": json.dumps(event(resource_id=2**63)),
    "company_id past 64 bits": json.dumps(event(company_id=10**30)),
    "resource_id in unicode digits": json.dumps(event(resource_id="²")),
    "company_id in arabic-indic digits": json.dumps(event(company_id="١٠٠٠")),
    "ulid with a NUL byte": json.dumps(event(ulid="01J0\x00")),
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bodies_with_the_right_secret_are_400_and_store_nothing(raw, world, client, app):
    before = snapshot()

    response = deliver(client, app, raw=raw)

    assert response.status_code == 400
    assert diff(before, snapshot()) == []


IGNORED = {
    "a company that is not connected": event(company_id=987654),
    "no company at all": event(company_id=None),
    "a v4.0 reason Crewclock does not sync": event(event_type=None, reason="restore"),
}


@pytest.mark.parametrize("body", IGNORED.values(), ids=IGNORED.keys())
def test_events_crewclock_has_no_use_for_are_acknowledged_and_not_kept(body, world, client, app):
    before = snapshot()

    response = deliver(client, app, body=body)

    assert 200 <= response.status_code < 300
    assert diff(before, snapshot()) == []


def test_a_v4_event_with_string_ids_for_a_connected_company_is_stored(world, client, app):
    body = {
        "id": "01J0000000000000000000V4V4",
        "reason": "update",
        "company_id": "1000",
        "resource_type": "Projects",
        "resource_id": "1010",
        "timestamp": "2026-01-05T12:00:00Z",
    }

    response = deliver(client, app, body=body)

    assert response.status_code == 202
    stored = db.session.scalar(
        db.select(ProcoreWebhookEvent).where(
            ProcoreWebhookEvent.dedupe_key == "ulid:01J0000000000000000000V4V4"
        )
    )
    assert stored is not None and stored.resource_id == 1010


def test_nul_bytes_in_an_event_never_reach_the_database(world, client, app):
    response = deliver(
        client, app, body=event(ulid="01J000000000000000000NULNUL", timestamp="2026\x00")
    )

    assert response.status_code == 202
    stored = db.session.scalar(
        db.select(ProcoreWebhookEvent).where(
            ProcoreWebhookEvent.dedupe_key == "ulid:01J000000000000000000NULNUL"
        )
    )
    assert stored.event_timestamp == "2026"
