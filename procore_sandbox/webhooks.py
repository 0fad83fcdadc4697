"""Webhooks: the v1.0 hooks/triggers/deliveries API and a background deliverer.

Every store change that matches a hook's trigger becomes one v2.0 event (procore-api.md
§10.4) queued for that hook. Each hook is one destination with its own queue, worked by its
own thread (so a slow receiver never delays another), never by the request that made the
change. Delivery is at-least-once: a failed attempt (connect error, timeout, non-2xx) pauses
the whole queue and retries its head with exponential backoff (`webhook_backoff_base`
doubling up to `webhook_backoff_cap`); after `webhook_give_up_after` seconds of failing the
queue is flushed and its events recorded as discarded; any success resets the cycle. Tests
compress those three settings (and `webhook_timeout`) instead of waiting hours.

Delivery records (table `hook_deliveries`), one per attempt or discarded event:
  ok        the receiver answered 2xx
  retried   the attempt failed and the event stays queued for another try
  failed    the attempt failed and the retry window is over (the queue is then discarded)
  discarded the event was dropped without being delivered
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Blueprint, Flask, current_app, g, has_request_context, jsonify, request

from procore_sandbox.api.common import (
    ApiError,
    ValidationError,
    authenticate,
    bad_request,
    company_project,
    header_company_id,
    json_body,
    not_found,
    scoped_company,
)
from procore_sandbox.store import NULL_SOURCE_APPLICATION, RESOURCE_NAMES, Store

log = logging.getLogger(__name__)

EVENT_TYPES = ("create", "update", "delete")
BULK_TRIGGER_LIMIT = 500
NAMESPACE_RE = re.compile(r"^[a-z0-9-]+$")
API_VERSIONS = {"v2": "v2.0", "v2.0": "v2.0", "v3": "v3.0", "v3.0": "v3.0", "v4": "v4.0"}
API_VERSIONS["v4.0"] = "v4.0"
RESPONSE_BODY_LIMIT = 10_000
MASK_KEEP = 5

bp = Blueprint("sandbox_webhooks", __name__)  # /rest/v1.0/webhooks/...
control_bp = Blueprint("sandbox_webhooks_control", __name__, url_prefix="/_sandbox/webhooks")

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_event_counter = itertools.count()


def new_ulid(ms: int | None = None) -> str:
    """A 26-character ULID: 48-bit millisecond time then 80 random bits, Crockford base32."""
    ms = int(time.time() * 1000) if ms is None else ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_event_id(ms: int | None = None) -> int:
    """A unique event id above 2**53 (Procore's can be 64-bit): milliseconds << 20 | counter."""
    ms = int(time.time() * 1000) if ms is None else ms
    return (ms << 20) | (next(_event_counter) & 0xFFFFF)


def iso_micro(ts: float) -> str:
    """Unix seconds -> 'YYYY-MM-DDTHH:MM:SS.ffffffZ'."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def mask_headers(headers: dict | None) -> dict:
    """The hook's headers with every Authorization value reduced to its last 5 characters."""
    masked = {}
    for key, value in (headers or {}).items():
        if key.lower() == "authorization" and isinstance(value, str):
            visible = value[-MASK_KEEP:] if len(value) > MASK_KEEP else ""
            value = "*" * max(len(value) - MASK_KEEP, 8) + visible
        masked[key] = value
    return masked


def format_event(change: dict, api_version: str) -> dict:
    """The JSON body Procore POSTs for one change, in the hook's payload version."""
    if api_version == "v4.0":
        return {
            "id": change["ulid"],
            "timestamp": change["timestamp"],
            "reason": change["event_type"],
            "company_id": _str_or_none(change["company_id"]),
            "project_id": _str_or_none(change["project_id"]),
            "user_id": _str_or_none(change["user_id"]),
            "resource_type": change["resource_name"],
            "resource_id": _str_or_none(change["resource_id"]),
        }
    event = {
        "id": change["id"],
        "ulid": change["ulid"],
        "timestamp": change["timestamp"],
        "metadata": {
            "source_user_id": change["user_id"],
            "source_company_id": None,
            "source_project_id": None,
            "source_application_id": change["source_application_id"],
            "source_operation_id": None,
        },
        "user_id": change["user_id"],
        "company_id": change["company_id"],
        "project_id": change["project_id"],
        "api_version": "v2.0" if api_version == "v2.0" else "v3.0",
        "event_type": change["event_type"],
        "resource_name": change["resource_name"],
        "resource_id": change["resource_id"],
    }
    if api_version == "v3.0":
        event["related_resources"] = []
    return event


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


# -- delivery engine ------------------------------------------------------------------------


@dataclass
class _Queued:
    change: dict
    hook_uid: str | None  # ids restart after a sandbox reset; this tells hooks apart
    repeats_left: int = 0  # extra copies still to send (the duplicate-delivery test switch)


@dataclass
class _Destination:
    """One hook's queue and its retry state (guarded by Deliverer._lock)."""

    hook_id: int
    events: deque = field(default_factory=deque)
    failures: int = 0
    failing_since: float | None = None  # monotonic time of the first failure of this cycle
    next_attempt_at: float = 0.0  # monotonic
    worker: threading.Thread | None = None
    busy: bool = False


class Deliverer:
    """Matches store changes to triggers and delivers them from background threads."""

    def __init__(self, store: Store, config: Any) -> None:
        self.store = store
        self.config = config
        # A leaf lock: nothing else is ever acquired while holding it (the store calls us
        # sometimes with its own lock held, and we read the store outside this lock).
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queues: dict[int, _Destination] = {}
        self._stopped = False
        self.duplicate_deliveries = False  # send every event twice (at-least-once drills)
        self.paused = False  # hold every queue (events still queue) until unpaused

    def set_paused(self, paused: bool) -> None:
        """Hold or release deliveries, e.g. so a test sees events only after its own call."""
        with self._lock:
            self.paused = paused
            self._changed.notify_all()

    # -- intake (runs in the thread that changed the data; never blocks on the network) ----
    def on_change(
        self,
        company_id: int | None,
        project_id: int | None,
        resource_name: str,
        event_type: str,
        resource_id: Any,
        source_application_id: str | None,
    ) -> None:
        """Queue one event per hook whose trigger matches this change."""
        hooks = self.matching_hooks(company_id, project_id, resource_name, event_type)
        if not hooks:
            return
        now = self.store.time()
        ms = int(now * 1000)
        change = {
            "id": new_event_id(ms),
            "ulid": new_ulid(ms),
            "timestamp": iso_micro(now),
            "user_id": _acting_user_id(),
            "company_id": company_id,
            "project_id": project_id,
            "event_type": event_type,
            "resource_name": resource_name,
            "resource_id": resource_id,
            "source_application_id": (
                None if self.store.settings.get(NULL_SOURCE_APPLICATION) else source_application_id
            ),
        }
        for hook_id, hook_uid in hooks:
            self.enqueue(hook_id, change, hook_uid)

    def matching_hooks(
        self, company_id: int | None, project_id: int | None, resource_name: str, event_type: str
    ) -> list[tuple[int, str | None]]:
        """(id, uid) of hooks with a trigger for (resource_name, event_type) in this scope."""
        with self.store.lock:
            hooks = self.store.table("hooks")
            found = []
            for trigger in self.store.table("hook_triggers").values():
                if trigger["resource_name"] != resource_name:
                    continue
                if trigger["event_type"] != event_type:
                    continue
                hook = hooks.get(trigger["webhook_hook_id"])
                if hook is None or any(hook["id"] == known for known, _ in found):
                    continue
                if hook["owned_by_project_id"] is not None:
                    if project_id is None or hook["owned_by_project_id"] != project_id:
                        continue
                elif hook["owned_by_company_id"] != company_id:
                    continue
                found.append((hook["id"], hook.get("uid")))
            return found

    def enqueue(self, hook_id: int, change: dict, hook_uid: str | None = None) -> None:
        """Append an event to a hook's queue and make sure a worker is on it."""
        repeats = 1 if self.duplicate_deliveries else 0
        with self._lock:
            if self._stopped:
                return
            destination = self._queues.get(hook_id)
            if destination is None:
                destination = self._queues[hook_id] = _Destination(hook_id)
            destination.events.append(_Queued(change, hook_uid, repeats))
            if destination.worker is None:
                destination.worker = threading.Thread(
                    target=self._work,
                    args=(destination,),
                    name=f"sandbox-webhook-{hook_id}",
                    daemon=True,
                )
                destination.worker.start()
            self._changed.notify_all()

    # -- workers ----------------------------------------------------------------------------
    def _work(self, destination: _Destination) -> None:
        while True:
            with self._lock:
                while True:
                    if self._stopped or not destination.events:
                        destination.worker = None
                        if not destination.events:
                            self._queues.pop(destination.hook_id, None)
                        self._changed.notify_all()
                        return
                    if self.paused:
                        self._changed.wait()
                        continue
                    wait = destination.next_attempt_at - time.monotonic()
                    if wait <= 0:
                        break
                    self._changed.wait(wait)
                queued = destination.events[0]
                destination.busy = True
            try:
                self._attempt(destination, queued)
            except Exception:  # a bug here must not kill the queue silently
                log.exception("webhook delivery crashed for hook %s", destination.hook_id)
                with self._lock:
                    destination.next_attempt_at = time.monotonic() + 1.0
            finally:
                with self._lock:
                    destination.busy = False
                    self._changed.notify_all()

    def _attempt(self, destination: _Destination, queued: _Queued) -> None:
        hook = self.store.get("hooks", destination.hook_id)
        if hook is None or hook.get("uid") != queued.hook_uid:
            # The hook was deleted (or the sandbox reset): this event goes nowhere.
            with self._lock:
                if destination.events and destination.events[0] is queued:
                    destination.events.popleft()
                destination.failures = 0
                destination.failing_since = None
                destination.next_attempt_at = 0.0
            return
        payload = format_event(queued.change, hook["api_version"])
        started = self.store.time()
        result = self._post(hook, payload)
        completed = self.store.time()
        ok = result["response_status"] is not None and 200 <= result["response_status"] < 300

        discard: list[_Queued] = []
        with self._lock:
            now = time.monotonic()
            if ok:
                outcome = "ok"
                destination.failures = 0
                destination.failing_since = None
                destination.next_attempt_at = 0.0
                if queued.repeats_left > 0:
                    queued.repeats_left -= 1
                elif destination.events and destination.events[0] is queued:
                    destination.events.popleft()
            else:
                destination.failures += 1
                if destination.failing_since is None:
                    destination.failing_since = now
                give_up_at = destination.failing_since + float(self.config.webhook_give_up_after)
                if now >= give_up_at:
                    outcome = "failed"
                    discard = list(destination.events)
                    destination.events.clear()
                    destination.failures = 0
                    destination.failing_since = None
                    destination.next_attempt_at = 0.0
                else:
                    outcome = "retried"
                    delay = min(
                        float(self.config.webhook_backoff_base) * 2 ** (destination.failures - 1),
                        float(self.config.webhook_backoff_cap),
                    )
                    destination.next_attempt_at = min(now + delay, give_up_at)

        self._record(hook, queued.change, payload, outcome, started, completed, result)
        for dropped in discard:
            body = format_event(dropped.change, hook["api_version"])
            self._record(hook, dropped.change, body, "discarded", completed, completed, {})

    def _post(self, hook: dict, payload: dict) -> dict:
        headers = {"Content-Type": "application/json", "User-Agent": "Procore-Sandbox-Webhooks"}
        for key, value in (hook.get("destination_headers") or {}).items():
            if key.lower() == "authorization":
                headers["Authorization"] = value
        timeout = float(self.config.webhook_timeout)
        try:
            response = requests.post(
                hook["destination_url"],
                data=json.dumps(payload),
                headers=headers,
                timeout=(timeout, timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return {"response_status": None, "response_error": f"{type(exc).__name__}: {exc}"}
        return {
            "response_status": response.status_code,
            "response_headers": dict(response.headers),
            "response_body": response.text[:RESPONSE_BODY_LIMIT],
            "response_error": None,
        }

    def _record(
        self,
        hook: dict,
        change: dict,
        payload: dict,
        outcome: str,
        started: float,
        completed: float,
        result: dict,
    ) -> None:
        self.store.insert(
            "hook_deliveries",
            {
                "webhook_hook_id": hook["id"],
                "event_id": change["id"],
                "event": payload,
                "outcome": outcome,
                "started_at": iso_micro(started),
                "completed_at": iso_micro(completed),
                "response_status": result.get("response_status"),
                "response_headers": result.get("response_headers") or {},
                "response_body": result.get("response_body"),
                "response_error": result.get("response_error"),
            },
            notify=False,
        )

    # -- control ----------------------------------------------------------------------------
    def pending(self) -> int:
        """Events queued (or being delivered) across all hooks."""
        with self._lock:
            return sum(len(d.events) for d in self._queues.values())

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queue is empty and no delivery is in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while any(d.events or d.busy for d in self._queues.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def clear(self) -> None:
        """Forget every queued event (sandbox reset)."""
        with self._lock:
            for destination in self._queues.values():
                destination.events.clear()
            self._changed.notify_all()

    def stop(self) -> None:
        """Stop delivering; workers finish their current attempt and exit."""
        with self._lock:
            self._stopped = True
            self._changed.notify_all()


def _acting_user_id() -> int | None:
    """The sandbox user behind the current API request, if any (None for UI edits)."""
    if not has_request_context() or "token" not in g:
        return None
    return g.token.get("user_id")


def deliverer() -> Deliverer:
    """The Deliverer of the app handling this request."""
    return current_app.extensions["sandbox_webhooks"]


def init_app(app: Flask) -> None:
    """Register the webhooks API and start listening to store changes."""
    sandbox = app.extensions["procore_sandbox"]
    engine = Deliverer(sandbox.store, sandbox.config)
    app.extensions["sandbox_webhooks"] = engine
    if getattr(sandbox.config, "webhooks_enabled", True):
        sandbox.store.on_change(engine.on_change)
    app.register_blueprint(bp)
    app.register_blueprint(control_bp)


# -- management API (v1.0) -------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookResource:
    """What Procore's resources list says about one resource (procore-api.md §10.1)."""

    scopes: tuple[str, ...]  # hook scopes that may subscribe to it
    excluded: tuple[str, ...] = ()  # the list's `except`: events that cannot be subscribed to
    tools: str = ""
    product_category: str = "Core"

    def events(self) -> tuple[str, ...]:
        return tuple(event for event in EVENT_TYPES if event not in self.excluded)


# As a capture of Procore's developer sandbox shows them (procore-api.md §10.1): deletions of
# company users and projects raise no event, and projects are a company-level resource only.
WEBHOOK_RESOURCES = {
    "Company Users": WebhookResource(("company",), ("delete",), "Directory"),
    "Projects": WebhookResource(("company",), ("delete",), "Portfolio"),
    "Standard Cost Codes": WebhookResource(("company",), (), "Admin"),
    "Cost Codes": WebhookResource(("project",), (), "Admin", "Project Management"),
    "Timecard Entries": WebhookResource(("project",), (), "Timecard", "Project Management"),
}
assert set(WEBHOOK_RESOURCES) == set(RESOURCE_NAMES.values())  # noqa: S101 - import-time check
DELIVERY_STATUS = {
    "any": None,
    "successful": ("ok",),
    "failing": ("retried", "failed"),
    "discarded": ("discarded",),
}


def _store() -> Store:
    return current_app.extensions["procore_sandbox"].store


@bp.before_request
def _authenticate() -> None:
    """Like every /rest call: a live bearer token and a visible Procore-Company-Id."""
    authenticate()
    header_company_id()


@bp.errorhandler(ApiError)
def _api_error(error: ApiError):
    return error.response()


def _body() -> dict:
    return json_body()


def _int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"{name} must be an integer") from None


@dataclass
class _Scope:
    company_id: int
    project_id: int | None

    @property
    def kind(self) -> str:
        return "company" if self.project_id is None else "project"


def _scope(source: dict) -> _Scope:
    """The company or project a call acts in (project_id wins when both are given); it must
    belong to the Procore-Company-Id company, else 404."""
    project_id = source.get("project_id")
    if project_id not in (None, ""):
        project = company_project(project_id)
        return _Scope(project["company_id"], project["id"])
    company_id = source.get("company_id")
    if company_id in (None, ""):
        raise bad_request("You must supply either a company_id or project_id")
    return _Scope(scoped_company(company_id), None)


def _hook_in_scope(hook_id: int, scope: _Scope) -> dict:
    hook = _store().get("hooks", hook_id)
    if (
        hook is None
        or hook["company_id"] != scope.company_id
        or hook["owned_by_project_id"] != scope.project_id
    ):
        raise not_found("Hook")
    return hook


def hook_json(hook: dict) -> dict:
    """A hook as the API shows it (Authorization masked)."""
    return {
        "id": hook["id"],
        "api_version": hook["api_version"],
        "namespace": hook["namespace"],
        "destination_url": hook["destination_url"],
        "destination_headers": mask_headers(hook["destination_headers"]),
        "owned_by_company_id": hook["owned_by_company_id"],
        "owned_by_project_id": hook["owned_by_project_id"],
        "owned_by_user_id": hook["owned_by_user_id"],
        "created_at": hook["created_at"],
        "updated_at": hook["updated_at"],
    }


def trigger_json(trigger: dict) -> dict:
    """A trigger as the API shows it."""
    keys = ("id", "webhook_hook_id", "resource_name", "resource_id", "event_type")
    return {key: trigger[key] for key in keys + ("company_id", "project_id", "user_id")}


def delivery_json(delivery: dict) -> dict:
    """A delivery record as the API shows it."""
    keys = (
        "id",
        "event_id",
        "event",
        "outcome",
        "started_at",
        "completed_at",
        "response_status",
        "response_headers",
        "response_body",
        "response_error",
    )
    return {key: delivery.get(key) for key in keys}


def _hook_fields(data: Any, *, partial: bool) -> tuple[dict, dict]:
    """Validated hook attributes from a `hook` object, and field errors."""
    if not isinstance(data, dict):
        raise bad_request("param is missing or the value is empty: hook")
    fields: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    if "api_version" in data or not partial:
        version = API_VERSIONS.get(str(data.get("api_version") or "").strip())
        if version is None:
            errors["api_version"] = ["must be one of v2.0, v3.0, v4.0"]
        fields["api_version"] = version
    if "namespace" in data:
        namespace = data["namespace"]
        if namespace in (None, ""):
            fields["namespace"] = None
        elif not isinstance(namespace, str) or not NAMESPACE_RE.match(namespace):
            errors["namespace"] = ["may only contain lowercase letters, digits and dashes"]
        else:
            fields["namespace"] = namespace
    elif not partial:
        fields["namespace"] = None
    if "destination_url" in data or not partial:
        url = data.get("destination_url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            errors["destination_url"] = ["must be an absolute http(s) URL"]
        fields["destination_url"] = url
    if "destination_headers" in data:
        headers = data["destination_headers"]
        if headers is None:
            headers = {}
        if not isinstance(headers, dict) or any(
            key.lower() != "authorization" or not isinstance(value, str)
            for key, value in headers.items()
        ):
            errors["destination_headers"] = ["only an Authorization header (a string) is allowed"]
        fields["destination_headers"] = headers
    elif not partial:
        fields["destination_headers"] = {}
    return fields, errors


@bp.post("/rest/v1.0/webhooks/hooks")
def create_hook():
    data = _body()
    scope = _scope({**request.args, **data})
    fields, errors = _hook_fields(data.get("hook"), partial=False)
    if errors:
        raise ValidationError(errors)
    hook = _store().insert(
        "hooks",
        {
            **fields,
            "uid": os.urandom(8).hex(),
            "company_id": scope.company_id,  # the company a project hook lives in, too
            "owned_by_company_id": scope.company_id if scope.project_id is None else None,
            "owned_by_project_id": scope.project_id,
            "owned_by_user_id": _acting_user_id(),
        },
        notify=False,
    )
    return jsonify(hook_json(hook)), 201


@bp.get("/rest/v1.0/webhooks/hooks")
def list_hooks():
    scope = _scope(request.args)
    namespace = request.args.get("namespace")
    version = request.args.get("api_version")
    hooks = [
        hook
        for hook in _store().select("hooks")
        if hook["company_id"] == scope.company_id
        and hook["owned_by_project_id"] == scope.project_id
    ]
    if namespace is not None and namespace != "*":
        hooks = [hook for hook in hooks if (hook["namespace"] or "") == namespace]
    if version:
        wanted = API_VERSIONS.get(version.strip(), version)
        hooks = [hook for hook in hooks if hook["api_version"] == wanted]
    return jsonify([hook_json(hook) for hook in hooks])


@bp.get("/rest/v1.0/webhooks/hooks/<int:hook_id>")
def show_hook(hook_id: int):
    return jsonify(hook_json(_hook_in_scope(hook_id, _scope(request.args))))


@bp.patch("/rest/v1.0/webhooks/hooks/<int:hook_id>")
def update_hook(hook_id: int):
    data = _body()
    hook = _hook_in_scope(hook_id, _scope({**request.args, **data}))
    fields, errors = _hook_fields(data.get("hook", {}), partial=True)
    if errors:
        raise ValidationError(errors)
    hook = _store().update("hooks", hook["id"], fields, notify=False)
    return jsonify(hook_json(hook))


@bp.delete("/rest/v1.0/webhooks/hooks/<int:hook_id>")
def delete_hook(hook_id: int):
    source = {**request.args, **(request.get_json(silent=True) or {})}
    hook = _hook_in_scope(hook_id, _scope(source))
    store = _store()
    for trigger in store.select("hook_triggers", webhook_hook_id=hook["id"]):
        store.delete("hook_triggers", trigger["id"], notify=False)
    store.delete("hooks", hook["id"], notify=False)
    return "", 204


def _trigger_errors(hook: dict, spec: Any) -> tuple[dict | None, dict, str]:
    """A normalised (resource_name, event_type) spec, its field errors and, when the trigger
    is one Procore does not offer, a message naming the resource and the event."""
    if not isinstance(spec, dict):
        return None, {"trigger": ["must be an object"]}, ""
    errors: dict[str, list[str]] = {}
    scope = "company" if hook["owned_by_project_id"] is None else "project"
    resource_name = spec.get("resource_name")
    resource = WEBHOOK_RESOURCES.get(resource_name) if isinstance(resource_name, str) else None
    event_type = str(spec.get("event_type") or "").lower()
    if not resource_name:
        errors["resource_name"] = ["can't be blank"]
    elif resource is None:
        errors["resource_name"] = ["is not a webhook resource"]
    if not event_type:
        errors["event_type"] = ["can't be blank"]
    elif event_type not in EVENT_TYPES:
        errors["event_type"] = ["must be one of create, update, delete"]
    message = ""
    if not errors and scope not in resource.scopes:
        other = " and ".join(resource.scopes)
        message = (
            f"{resource_name} {event_type} cannot be subscribed to on {scope} hooks: "
            f"{resource_name} is a webhook resource of {other} hooks only"
        )
        errors["resource_name"] = [message]
    elif not errors and event_type not in resource.events():
        offered = ", ".join(resource.events()) or "none"
        message = (
            f"{resource_name} {event_type} cannot be subscribed to: {resource_name} offers "
            f"{offered} events only"
        )
        errors["event_type"] = [message]
    if not errors:
        for existing in _store().select("hook_triggers", webhook_hook_id=hook["id"]):
            if existing["resource_name"] == resource_name and existing["event_type"] == event_type:
                errors["event_type"] = ["has already been taken for this resource"]
    return {"resource_name": resource_name, "event_type": event_type}, errors, message


def _refusal(errors: dict, message: str) -> ApiError:
    """422 with Rails-style field errors, plus a `message` when there is one to give."""
    if not message:
        return ValidationError(errors)
    return ApiError(422, message, {"message": message, "errors": errors})


def _check_version(hook: dict, data: dict) -> None:
    version = data.get("api_version")
    if version and API_VERSIONS.get(str(version).strip()) != hook["api_version"]:
        raise ValidationError({"api_version": ["must match the hook's api_version"]})


def _create_trigger(hook: dict, spec: dict) -> dict:
    return _store().insert(
        "hook_triggers",
        {
            "webhook_hook_id": hook["id"],
            "resource_name": spec["resource_name"],
            "resource_id": None,
            "event_type": spec["event_type"],
            "company_id": hook["owned_by_company_id"],
            "project_id": hook["owned_by_project_id"],
            "user_id": _acting_user_id(),
        },
        notify=False,
    )


@bp.post("/rest/v1.0/webhooks/hooks/<int:hook_id>/triggers")
def create_trigger(hook_id: int):
    data = _body()
    hook = _hook_in_scope(hook_id, _scope({**request.args, **data}))
    _check_version(hook, data)
    spec, errors, message = _trigger_errors(hook, data.get("trigger"))
    if errors:
        raise _refusal(errors, message)
    return jsonify(trigger_json(_create_trigger(hook, spec))), 201


@bp.get("/rest/v1.0/webhooks/hooks/<int:hook_id>/triggers")
def list_triggers(hook_id: int):
    hook = _hook_in_scope(hook_id, _scope(request.args))
    triggers = _store().select("hook_triggers", webhook_hook_id=hook["id"])
    return jsonify([trigger_json(trigger) for trigger in triggers])


@bp.delete("/rest/v1.0/webhooks/hooks/<int:hook_id>/triggers/<int:trigger_id>")
def delete_trigger(hook_id: int, trigger_id: int):
    source = {**request.args, **(request.get_json(silent=True) or {})}
    hook = _hook_in_scope(hook_id, _scope(source))
    trigger = _store().get("hook_triggers", trigger_id)
    if trigger is None or trigger["webhook_hook_id"] != hook["id"]:
        raise not_found("Trigger")
    _store().delete("hook_triggers", trigger_id, notify=False)
    return "", 200


def _bulk_items(data: dict) -> list:
    items = data.get("triggers")
    if not isinstance(items, list) or not items:
        raise bad_request("triggers must be a non-empty array")
    if len(items) > BULK_TRIGGER_LIMIT:
        message = f"At most {BULK_TRIGGER_LIMIT} triggers per request, got {len(items)}"
        raise ApiError(413, message, {"message": message, "error": "payload_too_large"})
    return items


@bp.post("/rest/v1.0/webhooks/hooks/<int:hook_id>/triggers/bulk")
def bulk_create_triggers(hook_id: int):
    data = _body()
    hook = _hook_in_scope(hook_id, _scope({**request.args, **data}))
    items = _bulk_items(data)
    _check_version(hook, data)
    success, failed = [], []
    for spec in items:
        clean, errors, message = _trigger_errors(hook, spec)
        if errors:
            failed.append(
                {
                    "code": "422",
                    "message": message or "Unprocessable Entity",
                    "trigger": spec if isinstance(spec, dict) else {"value": spec},
                    "errors": {key: "; ".join(messages) for key, messages in errors.items()},
                }
            )
        else:
            success.append(trigger_json(_create_trigger(hook, clean)))
    if failed:
        return jsonify({"success": success, "failed": failed}), 207
    return jsonify({"success": success}), 200


@bp.delete("/rest/v1.0/webhooks/hooks/<int:hook_id>/triggers/bulk")
def bulk_delete_triggers(hook_id: int):
    data = _body()
    hook = _hook_in_scope(hook_id, _scope({**request.args, **data}))
    items = _bulk_items(data)
    store = _store()
    success, failed = [], []
    for item in items:
        raw = item.get("id") if isinstance(item, dict) else item
        try:
            trigger_id = int(raw)
        except (TypeError, ValueError):
            failed.append({"code": "400", "trigger": raw})
            continue
        trigger = store.get("hook_triggers", trigger_id)
        if trigger is None or trigger["webhook_hook_id"] != hook["id"]:
            failed.append({"code": "404", "trigger": trigger_id})
            continue
        store.delete("hook_triggers", trigger_id, notify=False)
        success.append(trigger_id)
    if failed:
        return jsonify({"success": success, "failed": failed}), 207
    return jsonify({"success": success}), 200


@bp.get("/rest/v1.0/webhooks/hooks/<int:hook_id>/deliveries")
def list_deliveries(hook_id: int):
    hook = _hook_in_scope(hook_id, _scope(request.args))
    status = request.args.get("filters[status]") or request.args.get("filter[status]") or "any"
    if status not in DELIVERY_STATUS:
        raise bad_request("filters[status] must be any, successful, failing or discarded")
    outcomes = DELIVERY_STATUS[status]
    page_size = _int(request.args.get("page_size"), "page_size") or 100
    if not 1 <= page_size <= 1000:
        raise bad_request("page_size must be between 1 and 1000")
    page_start = _int(request.args.get("page_start"), "page_start")
    rows = []
    for delivery in _store().select("hook_deliveries", webhook_hook_id=hook["id"]):
        if page_start is not None and delivery["id"] <= page_start:
            continue
        if outcomes is not None and delivery["outcome"] not in outcomes:
            continue
        rows.append(delivery_json(delivery))
        if len(rows) == page_size:
            break
    return jsonify(rows)


@bp.get("/rest/v1.0/webhooks/resources")
def list_resources():
    """The resources a hook of this scope (company_id or project_id) may subscribe to.

    Fields per Procore's description (`api_version`, `product_category`, `tools`, `except`,
    and `create`/`update`/`delete`); `name` is ours to say which resource an entry is (the
    description names no such field), and each event field carries the event type when it
    can be subscribed to, else null.
    """
    scope = _scope(request.args)
    return jsonify(
        [
            {
                "name": name,
                "tools": resource.tools,
                "product_category": resource.product_category,
                "api_version": "v2",
                "except": list(resource.excluded),
                **{event: event if event in resource.events() else None for event in EVENT_TYPES},
            }
            for name, resource in WEBHOOK_RESOURCES.items()
            if scope.kind in resource.scopes
        ]
    )


@bp.get("/rest/v1.0/webhooks/resources/api_versions")
def list_resource_api_versions():
    _scope(request.args)
    return jsonify(["v2.0", "v3.0", "v4.0"])


# -- sandbox control (tests) -------------------------------------------------------------------


@control_bp.get("")
def webhook_settings():
    engine = deliverer()
    return jsonify(
        {
            "duplicate_deliveries": engine.duplicate_deliveries,
            "paused": engine.paused,
            "pending": engine.pending(),
        }
    )


@control_bp.patch("")
def change_webhook_settings():
    data = request.get_json(silent=True) or {}
    engine = deliverer()
    if "duplicate_deliveries" in data:
        engine.duplicate_deliveries = bool(data["duplicate_deliveries"])
    if "paused" in data:
        engine.set_paused(bool(data["paused"]))
    return webhook_settings()


@control_bp.post("/wait")
def wait_for_deliveries():
    """Block until every queued event is delivered or discarded (or `timeout` seconds)."""
    data = request.get_json(silent=True) or {}
    idle = deliverer().wait_idle(float(data.get("timeout", 10)))
    return jsonify({"idle": idle, "pending": deliverer().pending()}), 200 if idle else 504
