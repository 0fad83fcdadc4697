"""Login throttling: growing waits per (account, address), never a lock of an account.

The policy (the README states it too):

- Per (identifier, client address): after PAIR_FREE failures each further attempt of that
  pair must wait, twice as long after every new failure (1 s, 2 s, 4 s ... up to
  PAIR_MAX_DELAY). Someone guessing one account's password from
  one address slows to a crawl, while its owner, from any other address, is not affected.
- Per client address, for identifiers that have not logged in from it before: after
  ADDRESS_FREE failures the same doubling wait, up to ADDRESS_MAX_DELAY. This
  slows one address trying many accounts; people who already logged in from that address
  (an office behind one NAT) keep logging in.
- A record is forgotten FORGET_AFTER seconds after its last failure; a successful login
  clears its (identifier, address) record and remembers the pair for KNOWN_FOR seconds.
- The client address is the TCP peer's, or with TRUSTED_PROXIES=n the one the n-th proxy
  saw (ProxyFix), so X-Forwarded-For cannot be forged to dodge the throttle.
- Redis holds the records so every web process shares them. When Redis cannot be reached,
  the same policy runs on a bounded in-process table: attempts are still throttled (per
  process) and the right password still logs in.
"""

import hashlib
import threading
import time
from collections import OrderedDict

import redis
from flask import current_app

from webapp.redis_runtime import get_redis

PAIR_FREE = 5
PAIR_MAX_DELAY = 15 * 60
ADDRESS_FREE = 20
ADDRESS_MAX_DELAY = 5 * 60
FORGET_AFTER = 60 * 60
KNOWN_FOR = 30 * 24 * 3600
PREFIX = "login-throttle"

_RECORD_FAILURE = """
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local free, cap, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if n >= free then
  redis.call('HSET', KEYS[1], 'until', tostring(now + math.min(cap, 2 ^ (n - free))))
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return n
"""


def now() -> float:
    """The clock the throttle reads (tests move it)."""
    return time.time()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _pair_key(identifier: str, address: str | None) -> str:
    return f"{PREFIX}:pair:{_digest(identifier)}:{address or '-'}"


def _address_key(address: str | None) -> str:
    return f"{PREFIX}:addr:{address or '-'}"


def _known_key(identifier: str, address: str | None) -> str:
    return f"{PREFIX}:known:{_digest(identifier)}:{address or '-'}"


class _LocalStore:
    """The in-process stand-in for Redis: the same records, bounded, per process."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: OrderedDict[str, tuple[int, float, float]] = OrderedDict()

    def _live(self, key: str, at: float):
        record = self.records.get(key)
        if record is not None and record[2] <= at:
            del self.records[key]
            return None
        return record

    def wait(self, key: str, at: float) -> float:
        with self.lock:
            record = self._live(key, at)
            return max(0.0, record[1] - at) if record else 0.0

    def fail(self, key: str, free: int, cap: int, at: float) -> None:
        with self.lock:
            record = self._live(key, at)
            failures = (record[0] if record else 0) + 1
            until = record[1] if record else 0.0
            if failures >= free:
                until = at + min(cap, 2 ** min(failures - free, 32))
            self.records[key] = (failures, until, at + FORGET_AFTER)
            self.records.move_to_end(key)
            while len(self.records) > self.LIMIT:
                self.records.popitem(last=False)

    def mark(self, key: str, at: float, ttl: int) -> None:
        with self.lock:
            self.records[key] = (0, 0.0, at + ttl)
            self.records.move_to_end(key)

    def has(self, key: str, at: float) -> bool:
        with self.lock:
            return self._live(key, at) is not None

    def forget(self, key: str) -> None:
        with self.lock:
            self.records.pop(key, None)


REDIS_RETRY_AFTER = 30  # seconds this process uses its own table after Redis failed


def _local() -> _LocalStore:
    return current_app.extensions.setdefault("login_throttle_local", _LocalStore())


def _redis():
    """The shared Redis, unless it failed moments ago (then ConnectionError at once, so a
    login does not wait for a connect timeout on every check)."""
    if time.monotonic() < current_app.extensions.get("login_throttle_redis_down_until", 0):
        raise redis.exceptions.ConnectionError("skipped: Redis failed moments ago")
    return get_redis()


def _redis_down(what: str) -> None:
    extensions = current_app.extensions
    if time.monotonic() >= extensions.get("login_throttle_redis_down_until", 0):
        current_app.logger.warning("login throttle: Redis unreachable, %s in this process", what)
    extensions["login_throttle_redis_down_until"] = time.monotonic() + REDIS_RETRY_AFTER


def _wait(key: str, at: float) -> float:
    try:
        until = _redis().hget(key, "until")
    except redis.exceptions.RedisError:
        _redis_down("checking")
        return _local().wait(key, at)
    return max(0.0, float(until) - at) if until else 0.0


def _known(identifier: str, address: str | None, at: float) -> bool:
    key = _known_key(identifier, address)
    try:
        return bool(_redis().exists(key))
    except redis.exceptions.RedisError:
        _redis_down("checking")
        return _local().has(key, at)


def seconds_to_wait(identifier: str, address: str | None) -> int:
    """How long this (identifier, address) must wait before its next attempt (0: go ahead)."""
    at = now()
    wait = _wait(_pair_key(identifier, address), at)
    if not _known(identifier, address, at):
        wait = max(wait, _wait(_address_key(address), at))
    return int(-(-wait // 1))  # whole seconds, rounded up


def record_failure(identifier: str, address: str | None) -> None:
    """Count a failed attempt against the pair and the address."""
    at = now()
    limits = (
        (_pair_key(identifier, address), PAIR_FREE, PAIR_MAX_DELAY),
        (_address_key(address), ADDRESS_FREE, ADDRESS_MAX_DELAY),
    )
    try:
        script = _redis().register_script(_RECORD_FAILURE)
        for key, free, cap in limits:
            script(keys=[key], args=[free, cap, repr(at), FORGET_AFTER])
    except redis.exceptions.RedisError:
        _redis_down("counting")
        for key, free, cap in limits:
            _local().fail(key, free, cap, at)


def record_success(identifier: str, address: str | None) -> None:
    """Forget the pair's failures and remember that it logs in from this address."""
    at = now()
    pair, known = _pair_key(identifier, address), _known_key(identifier, address)
    try:
        _redis().pipeline().delete(pair).set(known, 1, ex=KNOWN_FOR).execute()
    except redis.exceptions.RedisError:
        _redis_down("clearing")
    # Either way: a record kept here while Redis was down must not outlive the success.
    _local().forget(pair)
    _local().mark(known, at, KNOWN_FOR)
