"""Fixtures of the security suite: the two-company world, and no real HTTP to Procore."""

import pytest
import responses

from tests.security.support import build_world


@pytest.fixture(autouse=True)
def no_outbound_http(monkeypatch):
    """Any call to Procore fails like an unreachable host at once (no retry waits)."""
    from webapp.procore import client

    monkeypatch.setattr(client.ProcoreClient, "_backoff", lambda self, attempt: 0.0)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def world(app):
    """Companies A (Alpha) and B (Bravo), each with every role and one of every object."""
    return build_world()
