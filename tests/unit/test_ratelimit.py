"""The shared request budget on a real redis-server: pauses every worker on Remaining 0 or
429, paces several clients together under Procore's limit, and reports its state."""

import json
import threading
import time
from collections import deque
from email.utils import formatdate

import pytest
import redis
import responses

from webapp.procore.client import ProcoreClient
from webapp.procore.errors import ProcoreRateLimited
from webapp.procore.ratelimit import RequestBudget, budget_key

API = "https://api.procore.test"
COMPANY = 4242


class FakeClock:
    def __init__(self, now: float = 1_750_000_000.0):
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class StaticTokens:
    def access_token(self) -> str:
        return "fake-access-token"

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return "fake-access-token-2"


@pytest.fixture
def rconn(redis_url):
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()


@pytest.fixture
def clock():
    return FakeClock()


def budget(rconn, clock, company=COMPANY, **kwargs):
    key = budget_key("crewclock-test-app", company)
    return RequestBudget(rconn, key, sleep=clock.sleep, clock=clock, **kwargs)


def headers(clock, limit, remaining, reset_in, **extra):
    return {
        "Date": formatdate(clock.now, usegmt=True),
        "X-Rate-Limit-Limit": str(limit),
        "X-Rate-Limit-Remaining": str(remaining),
        "X-Rate-Limit-Reset": str(int(clock.now + reset_in)),
        **extra,
    }


def test_remaining_zero_pauses_every_worker_until_reset(rconn, clock):
    worker_a = budget(rconn, clock)
    worker_b = budget(rconn, clock)

    worker_a.record(headers(clock, 600, 0, 7), 200)
    start = clock.now
    worker_b.acquire()

    assert clock.now - start >= 7
    assert worker_b.status()["paused_until"] is None  # the pause is over once we got through


def test_a_429_seen_by_one_worker_pauses_the_other_for_retry_after(rconn, clock):
    worker_a = budget(rconn, clock)
    worker_b = budget(rconn, clock)

    worker_a.record(headers(clock, 25, 0, 4, **{"Retry-After": "9"}), 429)

    assert worker_b.status()["paused_until"] == pytest.approx(clock.now + 9)
    start = clock.now
    worker_b.acquire()
    assert clock.now - start >= 9


def test_pause_is_per_procore_company(rconn, clock):
    budget(rconn, clock, company=1).record(headers(clock, 600, 0, 30), 200)

    other = budget(rconn, clock, company=2)
    assert other.acquire() == 0
    assert clock.sleeps == []


def test_a_pause_longer_than_the_job_may_wait_raises_with_reset_time(rconn, clock):
    b = budget(rconn, clock)
    b.record(headers(clock, 3600, 0, 1800), 200)

    with pytest.raises(ProcoreRateLimited) as caught:
        b.acquire(max_wait=600)

    assert caught.value.reset_at == pytest.approx(clock.now + 1800)
    assert clock.sleeps == []


def test_status_reports_the_last_seen_limit_remaining_and_reset(rconn, clock):
    b = budget(rconn, clock)
    assert b.status()["limit"] is None  # nothing seen yet: the page says "unknown"

    b.record(headers(clock, 3600, 3590, 2000), 200)
    status = b.status()

    assert status["limit"] == 3600
    assert status["remaining"] == 3590
    assert status["reset_at"] == pytest.approx(clock.now + 2000)
    assert status["hour_limit"] == 3600
    assert status["paused_until"] is None

    clock.now += 2001
    assert b.status()["remaining"] == 3600  # that window has reset since


def test_reset_is_converted_with_the_date_header_despite_clock_skew(rconn, clock):
    b = budget(rconn, clock)
    skewed = {
        "Date": formatdate(clock.now - 120, usegmt=True),  # Procore's clock 2 min behind
        "X-Rate-Limit-Limit": "25",
        "X-Rate-Limit-Remaining": "0",
        "X-Rate-Limit-Reset": str(int(clock.now - 120 + 5)),
    }
    b.record(skewed, 200)

    assert b.status()["paused_until"] == pytest.approx(clock.now + 5)


class SlidingWindowServer:
    """A Procore-like endpoint: `limit` requests per `window` seconds per token, 429 beyond."""

    def __init__(self, clock, limit, window, hourly=3600):
        self.clock = clock
        self.limit = limit
        self.window = window
        self.hourly = hourly
        self.times: deque = deque()
        self.accepted: list[float] = []
        self.rejected = 0
        self.lock = threading.Lock()

    def __call__(self, request):
        with self.lock:
            now = self.clock()
            while self.times and self.times[0] <= now - self.window:
                self.times.popleft()
            allowed = len(self.times) < self.limit
            if allowed:
                self.times.append(now)
                self.accepted.append(now)
            else:
                self.rejected += 1
            reset = (self.times[0] + self.window) if self.times else now + self.window
            spike = {
                "Date": formatdate(now, usegmt=True),
                "X-Rate-Limit-Limit": str(self.limit),
                "X-Rate-Limit-Remaining": str(max(0, self.limit - len(self.times))),
                "X-Rate-Limit-Reset": str(int(reset) + (reset % 1 > 0)),
            }
        if not allowed:
            return 429, {**spike, "Retry-After": str(max(1, int(reset - now) + 1))}, "limited"
        return 200, spike, json.dumps([])

    def max_in_any_window(self) -> int:
        times = sorted(self.accepted)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while times[lo] <= t - self.window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best


def test_two_workers_sharing_a_budget_stay_under_the_spike_limit(rconn, clock):
    server = SlidingWindowServer(clock, limit=25, window=10)
    with responses.RequestsMock() as mocked:
        mocked.add_callback("GET", f"{API}/rest/v1.0/projects", callback=server)
        workers = [
            ProcoreClient(
                API,
                COMPANY,
                StaticTokens(),
                budget=budget(rconn, clock),
                sleep=clock.sleep,
                clock=clock,
            )
            for _ in range(2)
        ]
        for n in range(120):
            workers[n % 2].get("/rest/v1.0/projects")
            clock.now += 0.01  # each call takes a little time

    assert server.rejected == 0
    assert len(server.accepted) == 120
    assert server.max_in_any_window() <= 22  # paced below the limit, not just pausing at it
    # 120 calls at <= 22 (25 minus headroom) per 10 s need at least five windows.
    assert clock.now - 1_750_000_000.0 >= 40


def test_concurrent_threads_with_their_own_redis_connections_never_exceed_the_limit(
    redis_url, rconn
):
    """Real threads, real time, a 1-second window: the Lua admission is atomic."""
    server = SlidingWindowServer(time.time, limit=5, window=1.0)
    errors = []

    def worker(n_calls):
        conn = redis.Redis.from_url(redis_url)  # a separate connection, like a worker process
        b = RequestBudget(conn, budget_key("crewclock-test-app", 99), spike_window=1.0)
        client = ProcoreClient(API, 99, StaticTokens(), budget=b)
        try:
            for _ in range(n_calls):
                client.get("/rest/v1.0/projects")
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    with responses.RequestsMock() as mocked:
        mocked.add_callback("GET", f"{API}/rest/v1.0/projects", callback=server)
        # Teach the budget the limit first, as the first response of a run does.
        worker(1)
        threads = [threading.Thread(target=worker, args=(5,)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)

    assert errors == []
    assert len(server.accepted) == 16
    assert server.rejected == 0
    assert server.max_in_any_window() <= 5


def test_b1_after_one_worker_gets_429_no_worker_sends_before_reset(rconn, clock):
    reset = int(clock.now) + 7
    sent = []
    answers = [(429, reset)]

    def callback(request):
        sent.append(clock.now)
        limited = answers.pop(0) if answers else None
        base = {
            "Date": formatdate(clock.now, usegmt=True),
            "X-Rate-Limit-Limit": "25",
            "X-Rate-Limit-Remaining": "0" if limited else "20",
            "X-Rate-Limit-Reset": str(reset),
        }
        return (429, base, "limited") if limited else (200, base, "[]")

    def worker(**kwargs):
        return ProcoreClient(
            API,
            COMPANY,
            StaticTokens(),
            budget=budget(rconn, clock),
            sleep=clock.sleep,
            clock=clock,
            **kwargs,
        )

    with responses.RequestsMock() as mocked:
        mocked.add_callback("GET", f"{API}/rest/v1.0/projects", callback=callback)
        with pytest.raises(ProcoreRateLimited):
            worker(max_attempts=1).get("/rest/v1.0/projects")  # A gives up at once
        worker().get("/rest/v1.0/projects")  # B must wait for the shared pause

    assert len(sent) == 2
    assert sent[1] >= reset
