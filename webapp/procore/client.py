"""ProcoreClient: the one door to Procore's REST API.

Every call sends the bearer token, `Procore-Company-Id`, `Accept: application/json` and a
timeout; passes the shared request budget; is retried with exponential backoff and full
jitter when that is safe (idempotent calls on 408/429/5xx/connection errors; POST only when
Procore certainly did not act on it); gets one forced token refresh on a 401; and ends in a
typed error from webapp.procore.errors. One log line per HTTP request, never with tokens,
query strings or bodies.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import parse_qs, urljoin, urlsplit, urlunsplit

import requests
from urllib3.exceptions import NewConnectionError

from webapp.procore.api import COMPANY_FREE_PATHS
from webapp.procore.errors import (
    ProcoreAuthError,
    ProcoreError,
    ProcoreOutcomeUnknown,
    ProcoreRateLimited,
    ProcoreUnavailable,
    error_for_status,
)
from webapp.procore.ratelimit import RequestBudget, reset_in_seconds, retry_after_seconds

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_ATTEMPTS = 5
BACKOFF_BASE = 1.0  # seconds; attempt n waits uniform(0, base * 2**(n-1)), capped
BACKOFF_CAP = 60.0
MAX_WAIT = 600.0  # derived: a call never sleeps more than 10 min in total; jobs reschedule
HEADER_WAIT_JITTER = 1.0
DEFAULT_TIMEOUT = (5.0, 60.0)  # (connect, read) seconds
RATE_HEADERS = ("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset")

_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9A-HJKMNP-TV-Z]{26})$"
)


class TokenSource(Protocol):
    """Where the client gets bearer tokens (implemented by webapp.procore.tokens)."""

    def access_token(self) -> str:
        """A currently valid access token (refreshing ahead of expiry if needed)."""
        ...

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        """A new access token after Procore rejected `rejected_token` with 401."""
        ...


@dataclass
class CallStats:
    """Plain counters of one run's Procore traffic ("API calls used" in sync history)."""

    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    refreshes: int = 0
    connection_errors: int = 0
    by_status: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record_response(self, status: int) -> None:
        """Count one HTTP exchange that got an answer."""
        with self._lock:
            self.calls += 1
            self.by_status[status] += 1
            if status == 429:
                self.rate_limited += 1

    def record_connection_error(self) -> None:
        """Count one HTTP request that got no answer (it still may have cost quota)."""
        with self._lock:
            self.calls += 1
            self.connection_errors += 1

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly snapshot."""
        with self._lock:
            return {
                "calls": self.calls,
                "retries": self.retries,
                "rate_limited": self.rate_limited,
                "refreshes": self.refreshes,
                "connection_errors": self.connection_errors,
                "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            }

    def _bump(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)


@dataclass(frozen=True)
class Page:
    """One page of a list endpoint: its items, its 1-based number and Procore's Total."""

    items: list
    number: int
    total: int | None = None


def path_template(path: str) -> str:
    """The path with ids replaced by {id} and no query string, for logs and metrics."""
    only_path = urlsplit(path).path or "/"
    return "/".join("{id}" if _ID_SEGMENT.match(seg) else seg for seg in only_path.split("/"))


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly never reached Procore (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError) or isinstance(exc, requests.ReadTimeout):
        return False
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, NewConnectionError)


def _next_link(header: str | None) -> tuple[bool, str | None]:
    """(header had any links, URL of rel="next" or None) from an RFC 8288 Link header."""
    if not header:
        return False, None
    found = False
    for match in re.finditer(r"<([^>]*)>\s*((?:;[^,<]*)*)", header):
        found = True
        rels = re.search(r';\s*rel\s*=\s*"?([^";]+)"?', match.group(2) or "")
        if rels and "next" in rels.group(1).lower().split():
            return True, match.group(1).strip()
    return found, None


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(str(headers.get(name, "")).strip())
    except ValueError:
        return None


def _json_or_text(resp: requests.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text


def _scope_param(params: Mapping[str, Any] | None, query: str, name: str) -> str | None:
    """A company_id/project_id the call names, in `params` or the URL's own query."""
    value = (params or {}).get(name)
    if value in (None, ""):
        value = next(iter(parse_qs(query).get(name, [])), None)
    return None if value in (None, "") else str(value)


class ProcoreClient:
    """Calls Procore's REST API for one Procore company with one token source."""

    def __init__(
        self,
        api_url: str,
        procore_company_id: int | None,
        tokens: TokenSource,
        budget: RequestBudget | None = None,
        session: requests.Session | None = None,
        stats: CallStats | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS,
        max_wait: float = MAX_WAIT,
        rng: random.Random | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.procore_company_id = procore_company_id
        self.tokens = tokens
        self.budget = budget
        self.session = session or requests.Session()
        self.stats = stats if stats is not None else CallStats()
        self.sleep = sleep
        self.clock = clock
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._base = urlsplit(self.api_url)
        # Procore's clock as of its latest answer (its Date header): sync cursors follow
        # Procore's clock, not ours, so a skewed host cannot skip or re-read changes.
        self.last_server_date: datetime | None = None

    # -- public verbs -------------------------------------------------------------------
    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET path and return the parsed JSON body."""
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None, params=None, *, idempotent: bool = False) -> Any:
        """POST (never blindly retried: an unclear outcome raises ProcoreOutcomeUnknown)."""
        return self.request("POST", path, params=params, json=json, idempotent=idempotent)

    def patch(self, path: str, json: Any = None, params=None, *, idempotent: bool = False) -> Any:
        """PATCH; pass idempotent=True for sync actions keyed by id/origin_id."""
        return self.request("PATCH", path, params=params, json=json, idempotent=idempotent)

    def put(self, path: str, json: Any = None, params=None) -> Any:
        """PUT and return the parsed JSON body."""
        return self.request("PUT", path, params=params, json=json)

    def delete(self, path: str, params=None) -> Any:
        """DELETE and return the parsed JSON body (None for 204)."""
        return self.request("DELETE", path, params=params)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Send one logical call (with its retries) and return the parsed JSON body."""
        resp = self._send(method, path, params=params, json=json, idempotent=idempotent)
        return _json_or_text(resp)

    # -- lists --------------------------------------------------------------------------
    def iter_pages(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        per_page: int = 100,
        *,
        start_page: int = 1,
    ) -> Iterator[Page]:
        """Yield a list endpoint page by page (resume with start_page after a checkpoint).

        Follows Link rel="next" when Procore sends Link headers; otherwise stops when
        Total/Per-Page say the last page was reached, or on a short or empty page. Bare
        arrays and v2 {"data": [...]} bodies are both accepted.
        """
        number = start_page
        query: dict[str, Any] | None = {**(params or {}), "page": number, "per_page": per_page}
        target = path
        seen: set[str] = set()
        size: int | None = None
        previous: list | None = None
        while True:
            resp = self._send("GET", target, params=query, json=None, idempotent=True)
            items = self._list_body(resp, target)
            if not items:
                return
            if items == previous:
                # A server ignoring page= would otherwise feed us the same page forever.
                raise ProcoreError(
                    "Procore returned the same page twice; stopping the listing",
                    method="GET",
                    path=path_template(target),
                )
            previous = items
            total = _int_header(resp.headers, "Total")
            yield Page(items=items, number=number, total=total)
            seen.add(resp.url)
            has_links, next_url = _next_link(resp.headers.get("Link"))
            if has_links:
                if not next_url:
                    return
                target = self._same_host(urljoin(resp.url, next_url))
                if target in seen:
                    return  # a server repeating itself must not make us loop forever
                query = None
                page_param = parse_qs(urlsplit(target).query).get("page")
                number = (
                    int(page_param[0]) if page_param and page_param[0].isdigit() else number + 1
                )
                continue
            size = _int_header(resp.headers, "Per-Page") or size
            if size is None:
                # No Per-Page header: a first page shorter than asked while Total says more
                # exist means Procore capped per_page; its real page size is this page's.
                capped = total is not None and total > len(items) and len(items) < per_page
                size = len(items) if capped else per_page
            if total is not None:
                if number * size >= total:
                    return
            elif len(items) < size:
                return
            number += 1
            target = path  # a followed Link's own page= must not fight the computed one
            query = {**(params or {}), "page": number, "per_page": per_page}

    def iter_items(
        self, path: str, params: Mapping[str, Any] | None = None, per_page: int = 100
    ) -> Iterator[Any]:
        """Yield every item of a list endpoint, one page in memory at a time."""
        for page in self.iter_pages(path, params, per_page):
            yield from page.items

    @staticmethod
    def _list_body(resp: requests.Response, target: str) -> list:
        body = _json_or_text(resp)
        if isinstance(body, dict) and isinstance(body.get("data"), list):
            body = body["data"]
        if body is None:
            return []
        if not isinstance(body, list):
            raise ProcoreError(
                "Procore answered a list request with something that is not a list",
                status=resp.status_code,
                method="GET",
                path=path_template(target),
            )
        return body

    # -- plumbing -----------------------------------------------------------------------
    def _same_host(self, url: str) -> str:
        """An absolute URL on our API host; a Link to any other host keeps only its path,
        so the bearer token never leaves the configured Procore host."""
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) == (self._base.scheme, self._base.netloc):
            return url
        return urlunsplit((self._base.scheme, self._base.netloc, parts.path, parts.query, ""))

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return self._same_host(path)
        return f"{self.api_url}/{path.lstrip('/')}"

    def _headers(
        self, token: str, url: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        company_id = self.procore_company_id
        parts = urlsplit(url)
        rel = parts.path[len(self._base.path.rstrip("/")) :].rstrip("/")
        if rel in COMPANY_FREE_PATHS:
            # Procore's /me reference: the header may be left out only while no company_id or
            # project_id is asked about; with one, the header must name that same company.
            asked = _scope_param(params, parts.query, "company_id")
            if asked is not None:
                company_id = asked
            elif company_id is None and _scope_param(params, parts.query, "project_id"):
                raise ValueError(
                    f"Procore-Company-Id is required for {path_template(rel)} with a project_id"
                )
        elif company_id is None:
            raise ValueError(f"Procore-Company-Id is required for {path_template(rel)}")
        if company_id is not None:
            headers["Procore-Company-Id"] = str(company_id)
        return headers

    def _backoff(self, attempt: int) -> float:
        return self.rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))

    def _retry_wait(self, resp: requests.Response, attempt: int) -> float:
        """Retry-After, else (429) X-Rate-Limit-Reset, else exponential backoff."""
        now = self.clock()
        header_wait = retry_after_seconds(resp.headers, now)
        if header_wait is None and resp.status_code == 429:
            header_wait = reset_in_seconds(resp.headers, now)
        if header_wait is None:
            return self._backoff(attempt)
        return header_wait + self.rng.uniform(0, HEADER_WAIT_JITTER)

    def _reset_at(self, resp: requests.Response) -> float | None:
        now = self.clock()
        wait = retry_after_seconds(resp.headers, now)
        if wait is None:
            wait = reset_in_seconds(resp.headers, now)
        return None if wait is None else now + wait

    def _log(self, method, template, status, started, attempt, headers=None) -> None:
        rate = " ".join(
            f"{name[13:].lower()}={headers.get(name)}"
            for name in RATE_HEADERS
            if headers is not None and headers.get(name) is not None
        )
        log.info(
            "procore %s %s status=%s duration_ms=%d attempt=%d company=%s %s",
            method,
            template,
            status,
            (self.clock() - started) * 1000,
            attempt,
            self.procore_company_id,
            rate,
        )

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        idempotent: bool | None,
    ) -> requests.Response:
        method = method.upper()
        retry_safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        url = self._url(path)
        template = path_template(url[len(self.api_url) :] if url.startswith(self.api_url) else url)
        token = self.tokens.access_token()
        refreshed = False
        waited = 0.0
        attempt = 0
        where = {"method": method, "path": template}
        while True:
            attempt += 1
            if self.budget is not None:
                try:
                    waited += self.budget.acquire(max_wait=max(0.0, self.max_wait - waited))
                except ProcoreRateLimited as exc:
                    exc.method, exc.path = method, template
                    raise
            headers = self._headers(token, url, params)
            started = self.clock()
            try:
                resp = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                self.stats.record_connection_error()
                self._log(method, template, type(exc).__name__, started, attempt)
                if not (retry_safe or _never_sent(exc)):
                    raise ProcoreOutcomeUnknown(
                        f"No answer from Procore for {method} {template}; it may have been applied",
                        **where,
                    ) from None
                wait = self._backoff(attempt)
                if attempt >= self.max_attempts or waited + wait > self.max_wait:
                    raise ProcoreUnavailable(
                        f"Procore could not be reached for {method} {template} "
                        f"after {attempt} attempts ({type(exc).__name__})",
                        **where,
                    ) from None
                self._pause(wait)
                waited += wait
                continue

            status = resp.status_code
            self.stats.record_response(status)
            self._note_server_date(resp.headers)
            self._log(method, template, status, started, attempt, resp.headers)
            if self.budget is not None:
                self.budget.record(resp.headers, status)
            if status < 300:
                return resp
            body = _json_or_text(resp)
            if status == 401:
                if refreshed:
                    # The token source decides what a rejected fresh token means (a second 401
                    # right after a refresh: the connection needs an admin to reconnect);
                    # fakes may not implement it.
                    rejected = getattr(self.tokens, "rejected_after_refresh", None)
                    if rejected is not None:
                        rejected()
                    raise ProcoreAuthError(status=status, body=body, **where)
                self.stats._bump("refreshes")
                token = self.tokens.refresh_after_unauthorized(token)
                refreshed = True
                attempt -= 1  # the forced refresh is its own allowance, not a retry
                continue
            if status in RETRY_STATUSES or status >= 500:
                rejected_unprocessed = status == 429 or (
                    status == 503 and resp.headers.get("Retry-After") is not None
                )
                if not (retry_safe or rejected_unprocessed):
                    raise ProcoreOutcomeUnknown(status=status, body=body, **where)
                wait = self._retry_wait(resp, attempt)
                if attempt >= self.max_attempts or waited + wait > self.max_wait:
                    if status == 429:
                        raise ProcoreRateLimited(
                            status=status, body=body, reset_at=self._reset_at(resp), **where
                        )
                    raise ProcoreUnavailable(status=status, body=body, **where)
                self._pause(wait)
                waited += wait
                continue
            raise error_for_status(status, body=body, **where)

    def _note_server_date(self, headers: Mapping[str, str]) -> None:
        raw = headers.get("Date")
        if not raw:
            return
        # An unreadable Date keeps the last one Procore sent.
        with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
            self.last_server_date = parsedate_to_datetime(raw).astimezone(UTC)

    def _pause(self, seconds: float) -> None:
        self.stats._bump("retries")
        if seconds > 0:
            self.sleep(seconds)
