"""Rate limits, overload, injected faults and request statistics.

- Rate limits: per access token (or client address when there is none), two sliding windows
  (hourly and a 10-second spike window, sizes from the config). Every /rest response carries
  X-Rate-Limit-Limit/-Remaining/-Reset for whichever window is closer to exhaustion; over the
  limit the answer is 429 with those headers plus Retry-After. Rejected requests do not count.
- Overload: while `config.overload` is on, /rest and /oauth answer 503 + Retry-After.
- Fault rules (POST /_sandbox/faults): match method + path regex; optionally sleep `delay`
  seconds; then answer `status` (with `headers`/`body`), or with action "drop" run the request
  for real (the write commits) and drop the response: the connection is closed without a reply
  (in-process, the caller gets requests.ConnectionError). `count` limits how many requests a
  rule hits (null = until cleared).
- Action "late" (a create Procore applies after the caller gave up): answer `status` (default
  504) after `delay` seconds, and run the request for real `apply_after` seconds after it
  arrived (default: `delay`), in the background, whatever the caller saw. `delay` past the
  caller's read timeout gives the same as a slow reply, but the write may land even later
  than the reply. `wait_late()` waits for pending late writes; a reset cancels them.
- Stats: request counts per method + route template, per status, and 429s.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import re
import socket
import threading
import time
from collections import Counter, deque

from flask import Flask, Response, g, jsonify, request
from werkzeug.test import run_wsgi_app

from procore_sandbox.config import SandboxConfig
from procore_sandbox.store import Store

RATE_LIMIT_MESSAGE = (
    "You have surpassed the max number of requests for an hour. "
    "Please wait until your limit resets."
)
DROP_FLAG = "procore_sandbox.drop"
LATE_FLAG = "procore_sandbox.late"  # a late-applied replay: no rules, no limits, no stats
_ROUTE_PARAM = re.compile(r"<(?:[^>:]+:)?(\w+)>")  # "<int:id>" -> "{id}" in stats keys
RULE_KEYS = {
    "method", "path", "status", "count", "delay", "headers", "body", "action", "apply_after"
}  # fmt: skip


class DroppedResponse(ConnectionAbortedError):
    """Raised through the WSGI stack when a fault rule drops a response after the write."""


class FaultRuleError(ValueError):
    """A fault rule that cannot be used."""


def _track(path: str) -> bool:
    return path.startswith("/rest/") or path.startswith("/oauth/")


class Faults:
    """Per-app rate limiter, fault rules and stats."""

    def __init__(self, config: SandboxConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.lock = threading.Lock()
        self.windows: dict[str, tuple[deque, deque]] = {}
        self.rules: list[dict] = []
        self._rule_ids = itertools.count(1)
        self.app: Flask | None = None
        self.late: list[threading.Timer] = []  # late writes not yet applied
        self.reset_stats()

    # -- state ---------------------------------------------------------------------------
    def reset_stats(self) -> None:
        """Zero the request statistics."""
        with self.lock:
            self.by_route: Counter = Counter()
            self.by_status: Counter = Counter()
            self.by_route_status: Counter = Counter()
            self.rate_limited = 0
            self.dropped = 0
            self.injected = 0
            self.applied_late = 0

    def reset(self) -> None:
        """Forget rate-limit windows, fault rules, pending late writes and stats."""
        with self.lock:
            self.windows.clear()
            self.rules.clear()
            late, self.late = self.late, []
        for timer in late:
            timer.cancel()
        self.reset_stats()

    def stats(self) -> dict:
        """The statistics as JSON-able data."""
        with self.lock:
            return {
                "total": sum(self.by_status.values()),
                "requests": dict(self.by_route),
                "statuses": {str(k): v for k, v in self.by_status.items()},
                "by_route_status": {
                    f"{route} {status}": n for (route, status), n in self.by_route_status.items()
                },
                "rate_limited": self.rate_limited,
                "dropped": self.dropped,
                "injected": self.injected,
                "applied_late": self.applied_late,
                "late_pending": sum(1 for t in self.late if t.is_alive()),
            }

    def add_rule(self, rule: dict) -> dict:
        """Validate and append one fault rule; returns it with its id."""
        if not isinstance(rule, dict):
            raise FaultRuleError("a rule must be an object")
        unknown = set(rule) - RULE_KEYS
        if unknown:
            raise FaultRuleError(f"unknown rule keys: {', '.join(sorted(unknown))}")
        action = rule.get("action")
        status = rule.get("status")
        if action not in (None, "drop", "late"):
            raise FaultRuleError("action must be 'drop', 'late' or absent")
        if action == "late" and status is None:
            status = 504  # what a gateway answers when the app behind it is still working
        if status is None and action is None and not rule.get("delay"):
            raise FaultRuleError("a rule needs a status, a delay or action 'drop'")
        if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
            raise FaultRuleError("status must be an HTTP status code")
        try:
            pattern = re.compile(rule.get("path") or ".*")
        except re.error as exc:
            raise FaultRuleError(f"bad path regex: {exc}") from None
        count = rule.get("count")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise FaultRuleError("count must be a positive integer or null")
        delay = float(rule.get("delay") or 0)
        apply_after = rule.get("apply_after")
        if apply_after is not None and (
            action != "late" or not isinstance(apply_after, (int, float)) or apply_after < 0
        ):
            raise FaultRuleError("apply_after is a number of seconds >= 0, for action 'late'")
        headers = rule.get("headers") or {}
        if not isinstance(headers, dict):
            raise FaultRuleError("headers must be an object")
        stored = {
            "id": next(self._rule_ids),
            "method": (rule.get("method") or "*").upper(),
            "path": pattern.pattern,
            "status": status,
            "count": count,
            "delay": delay,
            "headers": {str(k): str(v) for k, v in headers.items()},
            "body": rule.get("body"),
            "action": action,
            "apply_after": None if action != "late" else float(apply_after or delay),
            "hits": 0,
            "_regex": pattern,
        }
        with self.lock:
            self.rules.append(stored)
        return self.public_rule(stored)

    @staticmethod
    def public_rule(rule: dict) -> dict:
        """A rule without its compiled regex."""
        return {k: v for k, v in rule.items() if not k.startswith("_")}

    def clear_rules(self) -> None:
        """Remove every fault rule."""
        with self.lock:
            self.rules.clear()

    def _take_rule(self, method: str, path: str) -> dict | None:
        with self.lock:
            for rule in self.rules:
                if rule["method"] not in ("*", method) or not rule["_regex"].search(path):
                    continue
                rule["hits"] += 1
                if rule["count"] is not None:
                    rule["count"] -= 1
                    if rule["count"] <= 0:
                        self.rules.remove(rule)
                return rule
        return None

    # -- rate limiting -------------------------------------------------------------------
    def _rate_key(self) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return "token:" + value.strip()
        return "addr:" + (request.remote_addr or "?")

    def check_rate(self, key: str) -> tuple[bool, dict]:
        """Count one request for key unless over a limit; returns (allowed, headers)."""
        config = self.config
        now = self.store.time()
        with self.lock:
            hourly, spike = self.windows.setdefault(key, (deque(), deque()))
            while hourly and hourly[0] <= now - config.hourly_window:
                hourly.popleft()
            while spike and spike[0] <= now - config.spike_window:
                spike.popleft()
            windows = [
                (config.rate_limit_hourly, hourly, config.hourly_window),
                (config.rate_limit_spike, spike, config.spike_window),
            ]
            exhausted = [(limit, q, span) for limit, q, span in windows if len(q) >= limit]
            allowed = not exhausted
            if allowed:
                hourly.append(now)
                spike.append(now)

            def reset_at(q: deque, span: float) -> float:
                return (q[0] + span) if q else now + span

            # Report the window closest to exhaustion (lowest remaining share).
            limit, queue, span = min(
                windows, key=lambda w: (max(0, w[0] - len(w[1])) / max(1, w[0]), -w[0])
            )
            headers = {
                "X-Rate-Limit-Limit": str(limit),
                "X-Rate-Limit-Remaining": str(max(0, limit - len(queue))),
                "X-Rate-Limit-Reset": str(math.ceil(reset_at(queue, span))),
            }
            if not allowed:
                wait = max(reset_at(q, s) for _, q, s in exhausted) - now
                headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return allowed, headers

    # -- request hooks -------------------------------------------------------------------
    def init_app(self, app: Flask) -> None:
        """Install the request hooks and the drop-the-response WSGI wrapper."""
        self.app = app
        app.before_request(self._before)
        app.after_request(self._after)
        app.wsgi_app = _DropMiddleware(app.wsgi_app)

    def _apply_later(self, seconds: float) -> None:
        """Run the current request again, for real, `seconds` from now (its reply unread)."""
        data = request.get_data(cache=True)
        environ = {
            k: v
            for k, v in request.environ.items()
            if k not in ("werkzeug.request", "werkzeug.socket", DROP_FLAG)
        }
        environ.update({"wsgi.input": io.BytesIO(data), "CONTENT_LENGTH": str(len(data))})
        environ[LATE_FLAG] = True
        app = self.app

        def apply() -> None:
            with contextlib.suppress(DroppedResponse):
                run_wsgi_app(app, environ, buffered=True)
            with self.lock:
                self.applied_late += 1

        timer = threading.Timer(seconds, apply)
        timer.daemon = True
        with self.lock:
            self.late = [t for t in self.late if t.is_alive()] + [timer]
        timer.start()

    def wait_late(self, timeout: float = 10.0) -> bool:
        """Wait until every pending late write has been applied; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.lock:
            pending = list(self.late)
        for timer in pending:
            timer.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in pending)

    def _before(self) -> Response | None:
        path = request.path
        if not _track(path) or request.environ.get(LATE_FLAG):
            return None
        g.sandbox_tracked = True
        rule = self._take_rule(request.method, path)
        if rule is not None:
            if rule["action"] == "late":
                self._apply_later(rule["apply_after"])
            if rule["delay"]:
                time.sleep(rule["delay"])
            if rule["action"] == "drop":
                g.sandbox_drop = True
            elif rule["action"] == "late":
                with self.lock:
                    self.injected += 1
                body = rule["body"]
                if body is None:
                    body = {"message": "Gateway Timeout: the request is still being processed"}
                resp = jsonify(body) if isinstance(body, (dict, list)) else Response(str(body))
                resp.status_code = rule["status"]
                resp.headers.update(rule["headers"])
                return resp
            elif rule["status"] is not None:
                with self.lock:
                    self.injected += 1
                body = rule["body"]
                if body is None:
                    body = {"message": f"Injected fault ({rule['status']})"}
                resp = jsonify(body) if isinstance(body, (dict, list)) else Response(str(body))
                resp.status_code = rule["status"]
                resp.headers.update(rule["headers"])
                return resp
        if self.config.overload:
            resp = Response("Service Unavailable: the server is under heavy load.", 503)
            resp.headers["Retry-After"] = str(self.config.overload_retry_after)
            resp.mimetype = "text/plain"
            return resp
        if path.startswith("/rest/"):
            allowed, headers = self.check_rate(self._rate_key())
            g.sandbox_rate_headers = headers
            if not allowed:
                with self.lock:
                    self.rate_limited += 1
                resp = Response(RATE_LIMIT_MESSAGE, 429, mimetype="text/plain")
                return resp
        return None

    def _after(self, response: Response) -> Response:
        if not g.get("sandbox_tracked"):
            return response
        headers = g.get("sandbox_rate_headers")
        if headers:
            for key, value in headers.items():
                response.headers.setdefault(key, value)
        rule = request.url_rule.rule if request.url_rule is not None else "(unrouted)"
        route = request.method + " " + _ROUTE_PARAM.sub(r"{\1}", rule)
        with self.lock:
            self.by_route[route] += 1
            self.by_status[response.status_code] += 1
            self.by_route_status[(route, response.status_code)] += 1
            if g.get("sandbox_drop"):
                self.dropped += 1
        if g.get("sandbox_drop"):
            request.environ[DROP_FLAG] = True
        return response


class _DropMiddleware:
    """Closes the connection instead of answering when a request was marked for dropping."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        captured: list = []

        def capture(status, headers, exc_info=None):
            captured.append((status, headers, exc_info))
            return lambda data: None

        result = self.wsgi_app(environ, capture)
        if environ.get(DROP_FLAG):
            body = b"".join(result)  # run the app to completion: the write is committed
            del body
            if hasattr(result, "close"):
                result.close()
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            raise DroppedResponse("sandbox fault: response dropped after the write")
        status, headers, exc_info = captured[0]
        start_response(status, headers, exc_info)
        return result
