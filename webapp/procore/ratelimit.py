"""A request budget shared by every worker that calls Procore for one (app, Procore company).

Procore runs two sliding windows per token at once, an hourly one and a 10-second spike one,
and its `X-Rate-Limit-*` headers describe whichever is closer to exhaustion. We learn both
limits from the headers (the window is inferred from how far ahead `X-Rate-Limit-Reset` is)
and keep one Redis sorted set of our own call times; `acquire()` admits a call only while
both windows hold fewer calls than the limit minus a little headroom, and blocks while a
shared "paused until" key is set (Remaining hit 0, a 429, or a 503 with Retry-After).
All state changes run as Lua scripts, so they are atomic across processes and machines.

Clocks: times are the caller's clock (time.time in production, a fake one in tests), so the
workers' clocks must agree to within a second (NTP). Reset times from Procore are converted
to local time against the response's Date header, so Procore's clock skew does not matter.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
import uuid
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from webapp.procore.errors import ProcoreRateLimited

SPIKE_WINDOW = 10.0
HOUR_WINDOW = 3600.0
HEADROOM = 0.1  # derived: keep 10% of each window for calls we do not see (refreshes, web)
PAUSE_JITTER = 1.0  # seconds spread over workers waking from a shared pause
PACE_JITTER = 0.2

# KEYS: pause, calls, state. ARGV: now, member, spike window, hour window, headroom.
# Returns {admitted (0/1), wait seconds as a string}.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if paused > now then
  return {0, tostring(paused - now), 'pause'}
end
local windows = {{'spike_limit', tonumber(ARGV[3])}, {'hour_limit', tonumber(ARGV[4])}}
local headroom = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[4]))
local wait = 0
for _, w in ipairs(windows) do
  local limit = tonumber(redis.call('HGET', KEYS[3], w[1]) or '0')
  if limit > 0 then
    local allowed = math.max(1, math.floor(limit * (1 - headroom)))
    local low = '(' .. tostring(now - w[2])
    local count = redis.call('ZCOUNT', KEYS[2], low, '+inf')
    if count >= allowed then
      local entry = redis.call('ZRANGEBYSCORE', KEYS[2], low, '+inf', 'WITHSCORES',
                               'LIMIT', count - allowed, 1)
      local until_free = tonumber(entry[2]) + w[2] - now
      if until_free > wait then wait = until_free end
    end
  end
end
if wait > 0 then
  return {0, tostring(wait), 'pace'}
end
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(ARGV[4])) + 60)
return {1, '0', ''}
"""

# KEYS: pause, state. ARGV: now, limit field ('' = none), limit, remaining, reset, pause_until.
_RECORD = """
local now = tonumber(ARGV[1])
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[2], 'limit', ARGV[3], 'remaining', ARGV[4], 'reset', ARGV[5],
             'updated_at', ARGV[1])
end
redis.call('EXPIRE', KEYS[2], 7 * 24 * 3600)
if ARGV[6] ~= '' then
  local target = tonumber(ARGV[6])
  local current = tonumber(redis.call('GET', KEYS[1]) or '0')
  if target > now and target > current then
    redis.call('SET', KEYS[1], ARGV[6], 'PX', math.ceil((target - now) * 1000) + 1000)
  end
end
return 1
"""


def budget_key(client_id: str, procore_company_id: int | str) -> str:
    """The Redis key prefix of the budget for one (OAuth app, Procore company)."""
    app = hashlib.sha256(client_id.encode()).hexdigest()[:12]
    return f"crewclock:procore-budget:{app}:{procore_company_id}"


def _number(value: Any) -> float | None:
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


def server_time(headers: Mapping[str, str]) -> float | None:
    """Epoch seconds of the response's Date header, if it parses."""
    raw = headers.get("Date")
    if not raw:
        return None
    try:
        return parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date (measured against Date)."""
    raw = headers.get("Retry-After")
    if raw is None or not str(raw).strip():
        return None
    seconds = _number(raw)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(str(raw)).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    reference = server_time(headers)
    return max(0.0, when - (reference if reference is not None else now))


def reset_in_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds until X-Rate-Limit-Reset, measured against Procore's Date header when present."""
    reset = _number(headers.get("X-Rate-Limit-Reset"))
    if reset is None:
        return None
    reference = server_time(headers)
    return max(0.0, reset - (reference if reference is not None else now))


class RequestBudget:
    """Shared, Redis-backed pacing and pausing for all calls to one Procore company."""

    def __init__(
        self,
        redis,
        key: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        spike_window: float = SPIKE_WINDOW,
        hour_window: float = HOUR_WINDOW,
        headroom: float = HEADROOM,
        rng: random.Random | None = None,
    ) -> None:
        self.redis = redis
        self.key = key
        self.sleep = sleep
        self.clock = clock
        self.spike_window = spike_window
        self.hour_window = hour_window
        self.headroom = headroom
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        # One hash tag so the scripts' keys share a slot on Redis Cluster too.
        self.pause_key = f"{{{key}}}:pause"
        self.calls_key = f"{{{key}}}:calls"
        self.state_key = f"{{{key}}}:state"
        self._acquire = redis.register_script(_ACQUIRE)
        self._record = redis.register_script(_RECORD)

    def acquire(self, max_wait: float | None = None) -> float:
        """Block until this process may send one call; returns the seconds waited.

        Raises ProcoreRateLimited when a shared pause lasts longer than max_wait, so a job
        can reschedule itself instead of holding a worker for up to an hour.
        """
        waited = 0.0
        while True:
            now = self.clock()
            admitted, wait, reason = self._acquire(
                keys=[self.pause_key, self.calls_key, self.state_key],
                args=[
                    repr(now),
                    f"{now!r}:{uuid.uuid4().hex}",
                    self.spike_window,
                    self.hour_window,
                    self.headroom,
                ],
            )
            if int(admitted):
                return waited
            wait = float(wait)
            jitter = PAUSE_JITTER if reason in (b"pause", "pause") else PACE_JITTER
            if max_wait is not None and waited + wait > max_wait:
                raise ProcoreRateLimited(
                    "Procore request budget is paused longer than this job may wait",
                    reset_at=now + wait,
                )
            wait += self.rng.uniform(0, jitter)
            self.sleep(wait)
            waited += wait

    def record(self, headers: Mapping[str, str], status: int | None = None) -> None:
        """Learn limits from a response's headers; pause everyone on Remaining 0, 429 or 503."""
        now = self.clock()
        limit = _number(headers.get("X-Rate-Limit-Limit"))
        remaining = _number(headers.get("X-Rate-Limit-Remaining"))
        reset_in = reset_in_seconds(headers, now)
        field = ""
        if limit is not None and limit > 0 and reset_in is not None:
            field = self._window_field(int(limit), reset_in)
        pause_until: float | None = None
        if remaining is not None and remaining <= 0 and reset_in is not None:
            pause_until = now + reset_in
        if status in (429, 503):
            retry_after = retry_after_seconds(headers, now)
            if retry_after is not None:
                pause_until = max(pause_until or 0.0, now + retry_after)
            elif status == 429:
                wait = reset_in if reset_in is not None else 1.0
                pause_until = max(pause_until or 0.0, now + wait)
        self._record(
            keys=[self.pause_key, self.state_key],
            args=[
                repr(now),
                field,
                "" if limit is None else int(limit),
                "" if remaining is None else int(remaining),
                "" if reset_in is None else repr(now + reset_in),
                "" if pause_until is None else repr(pause_until),
            ],
        )

    def _window_field(self, limit: int, reset_in: float) -> str:
        """Which window these headers describe: a spike window never resets further ahead
        than its length; an hourly limit we already know keeps its window near its reset."""
        if reset_in > self.spike_window + 1:
            return "hour_limit"
        known_hour = _number(self.redis.hget(self.state_key, "hour_limit"))
        known_spike = _number(self.redis.hget(self.state_key, "spike_limit"))
        if known_hour == limit and known_spike != limit:
            return "hour_limit"
        return "spike_limit"

    def status(self) -> dict[str, Any]:
        """What the Integrations page shows: last seen limit/remaining/reset and any pause."""
        now = self.clock()
        state = {
            (k.decode() if isinstance(k, bytes) else k): _number(v)
            for k, v in self.redis.hgetall(self.state_key).items()
        }
        paused_until = _number(self.redis.get(self.pause_key))
        limit = state.get("limit")
        remaining = state.get("remaining")
        reset_at = state.get("reset")
        if reset_at is not None and reset_at <= now and limit is not None:
            remaining = limit  # the window reported last has reset since
        return {
            "limit": None if limit is None else int(limit),
            "remaining": None if remaining is None else int(remaining),
            "reset_at": reset_at,
            "paused_until": paused_until if paused_until and paused_until > now else None,
            "spike_limit": _int_or_none(state.get("spike_limit")),
            "hour_limit": _int_or_none(state.get("hour_limit")),
            "updated_at": state.get("updated_at"),
        }


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(math.floor(value))
