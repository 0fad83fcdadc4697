"""Typed errors for everything that can go wrong talking to Procore.

Messages name the method, the path template and Procore's own short message; they never
carry tokens or request bodies, so they are safe to log and to show to admins.
"""

from __future__ import annotations

from typing import Any

MAX_MESSAGE = 300


class ProcoreError(Exception):
    """A Procore call failed; `.status`, `.body`, `.method`, `.path` say how."""

    default_message = "Procore request failed"

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        body: Any = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.method = method
        self.path = path
        super().__init__(message or self._describe())

    def _describe(self) -> str:
        where = " ".join(part for part in (self.method, self.path) if part)
        parts = [self.default_message]
        if self.status is not None:
            parts.append(f"(HTTP {self.status})")
        if where:
            parts.append(f"on {where}")
        detail = body_message(self.body)
        text = " ".join(parts)
        return f"{text}: {detail}" if detail else text


class ProcoreAuthError(ProcoreError):
    """Procore rejected our token even after one forced refresh."""

    default_message = "Procore rejected the access token"


class NeedsReauth(ProcoreAuthError):
    """The connection's refresh token is dead; an admin must reconnect Procore."""

    default_message = "The Procore connection needs to be reconnected"


class ProcoreForbidden(ProcoreError):
    """403: the Procore user or app lacks permission (or the app is not installed)."""

    default_message = "Procore denied access"


class ProcoreNotFound(ProcoreError):
    """404: the record is missing or the caller cannot see it."""

    default_message = "Procore record not found"


class ProcoreConflict(ProcoreError):
    """409: a duplicate or conflicting create."""

    default_message = "Procore reported a conflict"


class ProcoreValidationError(ProcoreError):
    """400/422: Procore refused the data; `.field_errors` maps field -> messages."""

    default_message = "Procore rejected the request"

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        self.field_errors = parse_field_errors(kwargs.get("body"))
        super().__init__(message, **kwargs)


class ProcoreRateLimited(ProcoreError):
    """429 after the retries ran out (or a pause longer than we may wait); see `.reset_at`."""

    default_message = "Procore rate limit reached"

    def __init__(self, message: str | None = None, *, reset_at: float | None = None, **kwargs):
        self.reset_at = reset_at
        super().__init__(message, **kwargs)


class ProcoreUnavailable(ProcoreError):
    """5xx, 408 or connection failures that outlasted the retries."""

    default_message = "Procore is unavailable"


class ProcoreOutcomeUnknown(ProcoreError):
    """A non-idempotent request may have reached Procore; look it up before any retry."""

    default_message = "Procore may or may not have applied the request"


STATUS_ERRORS: dict[int, type[ProcoreError]] = {
    400: ProcoreValidationError,
    401: ProcoreAuthError,
    403: ProcoreForbidden,
    404: ProcoreNotFound,
    408: ProcoreUnavailable,
    409: ProcoreConflict,
    422: ProcoreValidationError,
    429: ProcoreRateLimited,
}


def error_for_status(status: int, **kwargs: Any) -> ProcoreError:
    """The typed error for an HTTP status (5xx -> ProcoreUnavailable)."""
    cls = STATUS_ERRORS.get(status)
    if cls is None:
        cls = ProcoreUnavailable if status >= 500 else ProcoreError
    return cls(status=status, **kwargs)


def _short(text: Any) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def body_message(body: Any) -> str:
    """Procore's own one-line message from any known error body shape ('' if none)."""
    if body is None or body == "":
        return ""
    if isinstance(body, str):
        return _short(body)
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return _short(error["message"])
    for key in ("message", "error_description", "error"):
        if isinstance(body.get(key), str) and body[key]:
            return _short(body[key])
    errors = body.get("errors")
    if isinstance(errors, str):
        return _short(errors)
    fields = parse_field_errors(body)
    if fields:
        return _short("; ".join(f"{k}: {', '.join(v)}" for k, v in fields.items()))
    return ""


def _add(out: dict[str, list[str]], field: Any, message: Any) -> None:
    key = str(field) if field not in (None, "") else "base"
    if isinstance(message, list):
        for item in message:
            _add(out, key, item)
        return
    if message not in (None, ""):
        out.setdefault(key, []).append(str(message))


def parse_field_errors(body: Any) -> dict[str, list[str]]:
    """Field -> messages from Procore's v1 (Rails map, generic model) and v2 error bodies."""
    out: dict[str, list[str]] = {}
    if isinstance(body, str):
        _add(out, "base", body.strip())
        return out
    if not isinstance(body, dict):
        return out
    errors = body.get("errors")
    if isinstance(errors, dict):  # Rails: {"errors": {"field": ["msg", ...]}}
        for field, messages in errors.items():
            _add(out, field, messages)
    elif isinstance(errors, list):  # [{"field"/"source": ..., "message": ...}] or ["msg"]
        for item in errors:
            if isinstance(item, dict):
                _add(out, item.get("field") or item.get("source"), item.get("message"))
            else:
                _add(out, "base", item)
    elif isinstance(errors, str):
        _add(out, "base", errors)
    error = body.get("error")
    if isinstance(error, dict):  # v2 / standardized v1: {"error": {"message", "details"}}
        details = error.get("details") or []
        for item in details if isinstance(details, list) else []:
            if isinstance(item, dict):
                _add(out, item.get("source") or item.get("field"), item.get("message"))
        if not details:
            _add(out, "base", error.get("message"))
    elif not out:
        message = body.get("message") or (error if isinstance(error, str) else None)
        _add(out, body.get("fields") if isinstance(body.get("fields"), str) else None, message)
    return out
