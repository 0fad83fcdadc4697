"""Login throttling: at most a few failures per identifier and address in a window."""

import redis
from flask import current_app

from webapp.redis_runtime import get_redis

MAX_FAILURES = 5
WINDOW_SECONDS = 300


def _keys(identifier: str, address: str | None) -> list[str]:
    return [f"login-fail:id:{identifier}", f"login-fail:ip:{address or '-'}"]


def is_throttled(identifier: str, address: str | None) -> bool:
    """True when this identifier or address failed too often recently."""
    try:
        counts = get_redis().mget(_keys(identifier, address))
    except redis.exceptions.RedisError:
        current_app.logger.warning("login throttle unavailable (Redis down)")
        return False
    return any(int(c or 0) >= MAX_FAILURES * (4 if i else 1) for i, c in enumerate(counts))


def record_failure(identifier: str, address: str | None) -> None:
    try:
        pipe = get_redis().pipeline()
        for key in _keys(identifier, address):
            pipe.set(key, 0, ex=WINDOW_SECONDS, nx=True)  # window starts at the first failure
            pipe.incr(key)
        pipe.execute()
    except redis.exceptions.RedisError:
        current_app.logger.warning("login failure not counted (Redis down)")


def clear_failures(identifier: str, address: str | None) -> None:
    try:
        get_redis().delete(_keys(identifier, address)[0])
    except redis.exceptions.RedisError:
        current_app.logger.warning("login failures not cleared (Redis down)")
