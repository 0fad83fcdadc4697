"""Token refresh (reliability A1-A6): single flight across threads, save before use,
invalid_grant stops everything, transient errors retry, long jobs refresh mid-run.

Procore's token endpoint is played by `responses` with Procore's rules: refresh tokens are
single use and rotate on every refresh."""

import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import requests
import responses

from tests.conftest import make_company, make_user
from webapp.extensions import db
from webapp.models import ConnectionStatus, ProcoreConnection, Role
from webapp.models.base import utcnow
from webapp.procore.crypto import token_cipher
from webapp.procore.tokens import ConnectionTokens, NeedsReauth, TokenRefreshFailed
from webapp.services.connections import procore_client_for


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs, not even `except Exception`."""


class FakeTokenServer:
    """Procore's /oauth/token for the refresh grant: single-use, rotating refresh tokens."""

    def __init__(self, first_refresh: str, delay: float = 0.0) -> None:
        self.valid_refresh = {first_refresh}
        self.current_access = None
        self.issued = 0
        self.calls = 0
        self.invalid_grants = 0
        self.script: list[int] = []  # statuses to answer before behaving normally
        self.delay = delay
        self.lock = threading.Lock()
        self.last_refresh = first_refresh

    def __call__(self, request):
        body = parse_qs(request.body)
        with self.lock:
            self.calls += 1
            if self.script:
                return (self.script.pop(0), {}, "unavailable")
            token = body["refresh_token"][0]
            if token not in self.valid_refresh:
                self.invalid_grants += 1
                return (400, {}, '{"error": "invalid_grant", "error_description": "bad"}')
            self.valid_refresh.discard(token)  # dead from now on, even if the reply is lost
            self.issued += 1
            access, refresh = f"access-{self.issued}", f"refresh-{self.issued}"
            self.valid_refresh.add(refresh)
            self.current_access, self.last_refresh = access, refresh
        time.sleep(self.delay)
        reply = f'{{"access_token": "{access}", "refresh_token": "{refresh}", "expires_in": 5400}}'
        return (200, {"Content-Type": "application/json"}, reply)


def token_url(app) -> str:
    return app.config["PROCORE_LOGIN_URL"] + "/oauth/token"


def connect(company_id, access="access-0", refresh="refresh-0", expires_in=timedelta(minutes=5)):
    """A stored connection whose token is inside the 10-minute refresh margin by default."""
    cipher = token_cipher()
    db.session.add(
        ProcoreConnection(
            company_id=company_id,
            status=ConnectionStatus.ACTIVE,
            available_companies=[{"id": 77, "name": "Summit"}],
            procore_company_id=77,
            access_token_enc=cipher.encrypt(access),
            refresh_token_enc=cipher.encrypt(refresh),
            expires_at=utcnow() + expires_in,
            key_id=cipher.key_id,
        )
    )
    db.session.commit()


def stored(company_id) -> ProcoreConnection:
    db.session.expire_all()
    return db.session.get(ProcoreConnection, company_id)


def stored_refresh(company_id) -> str:
    return token_cipher().decrypt(stored(company_id).refresh_token_enc)


@pytest.fixture
def company_id(company):
    return company.id


@pytest.fixture
def server(app):
    fake = FakeTokenServer("refresh-0")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.POST, token_url(app), callback=fake)
        yield fake


def test_twenty_concurrent_jobs_cause_exactly_one_refresh(threaded_app):
    app = threaded_app
    company_id = make_company("Concurrent Co").id
    connect(company_id)
    fake = FakeTokenServer("refresh-0", delay=0.3)  # a slow Procore widens the race window
    results, errors = [], []
    barrier = threading.Barrier(20)

    def job():
        try:
            barrier.wait()
            results.append(ConnectionTokens(app, company_id).access_token())
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, token_url(app), callback=fake)
        threads = [threading.Thread(target=job) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
    assert fake.calls == 1 and fake.invalid_grants == 0
    assert results == ["access-1"] * 20
    assert stored_refresh(company_id) == fake.last_refresh == "refresh-1"
    assert stored(company_id).status == ConnectionStatus.ACTIVE


def test_tokens_lost_before_commit_end_in_needs_reauth_not_a_loop(
    app, company_id, server, admin_client, caplog, monkeypatch
):
    connect(company_id)
    original = ConnectionTokens._call_token_endpoint

    def killed_after_procore_answered(self, refresh_token):
        original(self, refresh_token)  # Procore rotated: refresh-0 is dead now
        raise Killed("process killed before commit")

    monkeypatch.setattr(ConnectionTokens, "_call_token_endpoint", killed_after_procore_answered)
    with pytest.raises(Killed):
        ConnectionTokens(app, company_id).access_token()
    monkeypatch.setattr(ConnectionTokens, "_call_token_endpoint", original)
    assert stored_refresh(company_id) == "refresh-0"  # nothing half-saved

    restarted = ConnectionTokens(app, company_id)  # the next job, in a new process
    with pytest.raises(NeedsReauth):
        restarted.access_token()
    with pytest.raises(NeedsReauth):
        restarted.access_token()
    with pytest.raises(NeedsReauth):
        ConnectionTokens(app, company_id).refresh_after_unauthorized("access-0")
    assert server.calls == 2 and server.invalid_grants == 1
    assert stored(company_id).status == ConnectionStatus.NEEDS_REAUTH
    page = admin_client.get("/settings/integrations/").get_data(as_text=True)
    assert 'id="procore-banner"' in page and ">Reconnect</button>" in page
    for secret in ("access-1", "refresh-1", "refresh-0", "access-0"):
        assert secret not in caplog.text


def test_after_a_committed_refresh_the_next_job_uses_the_stored_token(app, company_id, server):
    connect(company_id)
    assert ConnectionTokens(app, company_id).access_token() == "access-1"
    # The first process dies here; a new one starts with nothing in memory.
    assert ConnectionTokens(app, company_id).access_token() == "access-1"
    assert server.calls == 1


def test_invalid_grant_marks_needs_reauth_and_stops_token_calls(app, company_id, caplog):
    connect(company_id, refresh="revoked-elsewhere")
    fake = FakeTokenServer("something-else")
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, token_url(app), callback=fake)
        with pytest.raises(NeedsReauth):
            ConnectionTokens(app, company_id).access_token()
        for _ in range(3):
            with pytest.raises(NeedsReauth):
                ConnectionTokens(app, company_id).access_token()
        with app.test_request_context(), pytest.raises(NeedsReauth):
            procore_client_for(company_id)  # what every scheduled job calls first
    assert fake.calls == 1
    conn = stored(company_id)
    assert conn.status == ConnectionStatus.NEEDS_REAUTH and conn.refresh_failures == 1
    assert "reconnect" in conn.last_error
    assert f"procore work skipped company={company_id}" in caplog.text


def test_a_401_from_the_token_endpoint_also_means_reconnect(app, company_id):
    connect(company_id)
    with responses.RequestsMock() as rsps:
        rsps.post(token_url(app), status=401, json={"error": "invalid_client"})
        with pytest.raises(NeedsReauth):
            ConnectionTokens(app, company_id).access_token()
    assert stored(company_id).status == ConnectionStatus.NEEDS_REAUTH


def test_token_endpoint_503_twice_then_200_refreshes_with_backoff(app, company_id, server):
    connect(company_id)
    server.script = [503, 503]
    waits = []
    token = ConnectionTokens(app, company_id, sleep=waits.append).access_token()
    assert token == "access-1"
    assert server.calls == 3 and len(waits) == 2 and 0 < waits[0] <= waits[1] * 2
    conn = stored(company_id)
    assert conn.status == ConnectionStatus.ACTIVE and conn.refresh_failures == 0
    assert stored_refresh(company_id) == "refresh-1"


def test_network_errors_keep_the_connection_and_raise_a_retryable_error(app, company_id):
    connect(
        company_id, expires_in=timedelta(seconds=-5)
    )  # already expired: nothing to fall back on
    with responses.RequestsMock() as rsps:
        rsps.post(token_url(app), body=requests.ConnectionError("refused"))
        tokens = ConnectionTokens(app, company_id, sleep=lambda s: None)
        with pytest.raises(TokenRefreshFailed):
            tokens.access_token()
        assert len(rsps.calls) == 5
    conn = stored(company_id)
    assert conn.status == ConnectionStatus.ACTIVE and conn.refresh_failures == 1
    assert "network error" in conn.last_error
    assert stored_refresh(company_id) == "refresh-0"


def test_procore_down_while_the_token_still_works_uses_the_current_token(app, company_id):
    connect(company_id, expires_in=timedelta(minutes=5))
    with responses.RequestsMock() as rsps:
        rsps.post(token_url(app), status=503)
        token = ConnectionTokens(app, company_id, sleep=lambda s: None).access_token()
    assert token == "access-0"
    assert stored(company_id).status == ConnectionStatus.ACTIVE


def test_forced_refresh_after_401_happens_once_and_only_for_the_current_token(
    app, company_id, server
):
    connect(company_id, expires_in=timedelta(hours=1))
    tokens = ConnectionTokens(app, company_id)
    assert tokens.access_token() == "access-0" and server.calls == 0
    assert tokens.refresh_after_unauthorized("access-0") == "access-1"
    # A second worker whose request with access-0 also got 401 does not refresh again.
    assert ConnectionTokens(app, company_id).refresh_after_unauthorized("access-0") == "access-1"
    assert server.calls == 1


def test_a_job_longer_than_the_token_lifetime_never_sees_a_401(app, company_id, server):
    """A6: a fake clock runs a 4-hour job; every API call carries a live token."""
    connect(company_id, expires_in=timedelta(hours=1))
    start = time.time()
    fake_now = {"t": start}
    api_url = app.config["PROCORE_API_URL"] + "/rest/v1.0/projects"
    issued_at = {"access-0": start - 3600 * 0.5}
    statuses = []

    def api(request):
        token = request.headers["Authorization"].removeprefix("Bearer ")
        if server.current_access and token != server.current_access:
            return (401, {}, "{}")  # rotated away
        born = issued_at.setdefault(token, fake_now["t"])
        alive = fake_now["t"] - born < 5400
        return (200, {}, "[]") if alive else (401, {}, "{}")

    tokens = ConnectionTokens(app, company_id, clock=lambda: fake_now["t"])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.POST, token_url(app), callback=server)
        rsps.add_callback(responses.GET, api_url, callback=api)
        for _ in range(16):  # one call every 15 minutes
            headers = {"Authorization": f"Bearer {tokens.access_token()}"}
            statuses.append(requests.get(api_url, headers=headers, timeout=5).status_code)
            fake_now["t"] += 15 * 60
    assert statuses == [200] * 16
    assert server.calls == 2  # at 60 min (token from -30 min) and at 150 min
    assert stored(company_id).status == ConnectionStatus.ACTIVE


def test_a_disconnect_during_a_refresh_does_not_resurrect_the_tokens(
    app, company_id, server, db_backend
):
    if db_backend == "postgresql":
        pytest.skip("the row lock makes a disconnect during a refresh wait on PostgreSQL")
    connect(company_id)
    original = ConnectionTokens._call_token_endpoint

    def admin_disconnects_meanwhile(self, refresh_token):
        result = original(self, refresh_token)
        with db.engine.begin() as conn:  # another process: the admin clicked Disconnect
            conn.execute(
                ProcoreConnection.__table__.update().values(
                    status="disconnected", access_token_enc=None, refresh_token_enc=None
                )
            )
        return result

    tokens = ConnectionTokens(app, company_id)
    tokens._call_token_endpoint = admin_disconnects_meanwhile.__get__(tokens)
    with pytest.raises(NeedsReauth):
        tokens.access_token()
    conn = stored(company_id)
    assert conn.status == ConnectionStatus.DISCONNECTED and conn.access_token_enc is None


def test_admin_banner_readonly_notice_uses_status_only(app, company, company_id):
    connect(company_id)
    stored(company_id).status = ConnectionStatus.NEEDS_REAUTH
    db.session.commit()
    client = app.test_client()
    client.login(make_user(company, Role.MANAGER))
    page = client.get("/time/").get_data(as_text=True)
    assert "needs an admin to reconnect" in page and ">Reconnect</button>" not in page


def test_b7_a_second_401_after_a_fresh_token_puts_the_connection_in_needs_reauth(app, company_id):
    """B7: one forced refresh and one retry; the second 401 stops all work for the company."""
    from webapp.procore.errors import ProcoreAuthError

    connect(company_id, expires_in=timedelta(hours=1))
    fake = FakeTokenServer("refresh-0")
    api_url = app.config["PROCORE_API_URL"] + "/rest/v1.0/projects"
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, token_url(app), callback=fake)
        rsps.get(api_url, status=401, json={"errors": "The access token is invalid"})
        client = procore_client_for(company_id)
        with pytest.raises(ProcoreAuthError):
            client.get("/rest/v1.0/projects", params={"company_id": 77})
    assert fake.calls == 1
    assert stored(company_id).status == ConnectionStatus.NEEDS_REAUTH
    with pytest.raises(NeedsReauth):
        procore_client_for(company_id)
