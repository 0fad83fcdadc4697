"""What every REST resource shares: auth, company scope, errors, pagination, filters, sync."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from flask import Response, g, jsonify, request

from procore_sandbox.context import current, current_store

DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 1000  # v1.0 lists; endpoint-specific caps are passed to paginate()
SYNC_MAX = 1000
INVALID_TOKEN = "The access token is invalid"


class ApiError(Exception):
    """An error answer: status plus JSON body."""

    def __init__(self, status: int, message: str, body: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body if body is not None else {"message": message}

    def response(self) -> Response:
        """The JSON response for this error."""
        resp = jsonify(self.body)
        resp.status_code = self.status
        return resp


class ValidationError(ApiError):
    """422 with Rails-style field errors: {"errors": {field: [messages]}}."""

    def __init__(self, errors: dict[str, list[str]], status: int = 422) -> None:
        super().__init__(status, "Validation failed", {"errors": errors})
        self.errors = errors


def not_found(what: str = "Record") -> ApiError:
    """404 for a record that is missing or invisible to the caller."""
    return ApiError(
        404, f"{what} not found", {"message": f"{what} not found", "error": "not_found"}
    )


def bad_request(message: str) -> ApiError:
    """400 for malformed requests (missing params, bad JSON, bad filter values)."""
    return ApiError(400, message, {"message": message, "error": "bad_request"})


# -- authentication and company scope ---------------------------------------------------
def access_token_record(raw: str | None) -> dict | None:
    """The live (unexpired, unrevoked) access-token record for a raw token, else None."""
    if not raw:
        return None
    store = current_store()
    token = store.get("access_tokens", raw)
    if token is None or token.get("revoked"):
        return None
    if token["created_at_ts"] + token["expires_in"] <= store.time():
        return None
    return token


def bearer_token() -> str | None:
    """The raw bearer token of this request, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def authenticate() -> dict:
    """Require a live bearer token; sets g.token and g.client_id. 401 otherwise."""
    token = access_token_record(bearer_token())
    if token is None:
        raise ApiError(401, INVALID_TOKEN, {"message": INVALID_TOKEN, "error": "invalid_token"})
    g.token = token
    g.client_id = token["client_id"]
    return token


def login_user() -> dict | None:
    """The directory user record the token was issued to (None for client credentials)."""
    user_id = g.token.get("user_id")
    return current_store().get("users", user_id) if user_id else None


def visible_company_ids() -> set[int]:
    """Companies the token may act in: all for client credentials, else the login's own."""
    if "visible_companies" in g:
        return g.visible_companies
    store = current_store()
    user = login_user()
    if g.token.get("user_id") is None:
        ids = set(store.table("companies"))
    elif user is None or not user.get("email_address"):
        ids = set()
    else:
        same_login = store.select_by("users", "email_address", user["email_address"], True)
        ids = {u["company_id"] for u in same_login if u.get("is_active")}
    g.visible_companies = ids
    return ids


def header_company_id(required: bool = True) -> int | None:
    """The Procore-Company-Id header as an int; 400 when required and missing/invalid,
    404 when the company is not one the token can see."""
    raw = request.headers.get("Procore-Company-Id")
    if raw is None or not raw.strip():
        if not required:
            return None
        raise bad_request(
            "Missing Procore-Company-Id header! Every request must include the "
            "Procore-Company-Id header."
        )
    try:
        company_id = int(raw.strip())
    except ValueError:
        raise bad_request("Procore-Company-Id header must be an integer") from None
    if (
        company_id not in visible_company_ids()
        or current_store().get("companies", company_id) is None
    ):
        raise not_found("Company")
    return company_id


def scoped_company(company_id: Any) -> int:
    """Check a company id from the path/query/body against the header: both must name the
    same company the token can see. 404 otherwise."""
    header_id = header_company_id()
    try:
        wanted = int(company_id)
    except (TypeError, ValueError):
        raise not_found("Company") from None
    if wanted != header_id:
        raise not_found("Company")
    return wanted


def company_project(project_id: Any) -> dict:
    """A project of the header's company, or 404."""
    company_id = header_company_id()
    try:
        project = current_store().get("projects", int(project_id))
    except (TypeError, ValueError):
        project = None
    if project is None or project["company_id"] != company_id:
        raise not_found("Project")
    return project


def require_param(name: str, source: dict | None = None) -> str:
    """A required query (or body) parameter; 400 when missing."""
    value = request.args.get(name)
    if value is None and source is not None:
        value = source.get(name)
    if value is None or value == "":
        raise bad_request(f"{name} is required")
    return value


def source_app() -> str | None:
    """The client id to record as a change's source_application_id."""
    return g.get("client_id")


# -- bodies ------------------------------------------------------------------------------
def json_body() -> dict:
    """The JSON object body; 400 when missing or malformed."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise bad_request("Request body must be a JSON object")
    return data


def wrapped(body: dict, key: str) -> dict:
    """body[key] as a dict (Procore wraps resources in a singular key); 400 otherwise."""
    inner = body.get(key)
    if not isinstance(inner, dict):
        raise bad_request(f"param is missing or the value is empty: {key}")
    return inner


def pick(attrs: dict, allowed: Iterable[str]) -> dict:
    """The allowed attributes present in attrs (unknown ones are ignored, as Rails does)."""
    return {key: attrs[key] for key in allowed if key in attrs}


def as_origin_id(value: Any) -> str | None:
    """origin_id values are stored as strings; numbers are accepted."""
    if value is None or value == "":
        return None
    return str(value)


# -- pagination --------------------------------------------------------------------------
def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        return default


def page_url(page: int) -> str:
    """This request's URL on its own host, keeping every query param but `page`."""
    params = [(k, v) for k, v in request.args.items(multi=True) if k != "page"]
    params.append(("page", str(page)))
    return f"{request.host_url.rstrip('/')}{request.path}?{urlencode(params)}"


def paginate(
    items: list,
    serialize: Callable[[Any], dict] = lambda x: x,
    *,
    default_per_page: int = DEFAULT_PER_PAGE,
    max_per_page: int = MAX_PER_PAGE,
) -> Response:
    """One page of items as a JSON array with Total, Per-Page and Link headers."""
    per_page = max(1, min(_int_arg("per_page", default_per_page), max_per_page))
    page = max(1, _int_arg("page", 1))
    total = len(items)
    last = max(1, -(-total // per_page))
    start = (page - 1) * per_page
    body = [serialize(item) for item in items[start : start + per_page]]
    resp = jsonify(body)
    resp.headers["Total"] = str(total)
    resp.headers["Per-Page"] = str(per_page)
    links = []
    if page > 1:
        links.append(f'<{page_url(1)}>; rel="first"')
        links.append(f'<{page_url(page - 1)}>; rel="prev"')
    if page < last:
        links.append(f'<{page_url(last)}>; rel="last"')
        links.append(f'<{page_url(page + 1)}>; rel="next"')
    if links:
        resp.headers["Link"] = ", ".join(links)
    return resp


# -- filters -----------------------------------------------------------------------------
_DT_FORMATS = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M%z")


def _parse_bound(text: str, end: bool) -> str:
    text = text.strip().strip('"').strip("'").strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = date.fromisoformat(text)
        return f"{day.isoformat()}T{'23:59:59' if end else '00:00:00'}Z"
    candidate = text[:-1] + "+00:00" if text.endswith("Z") else text
    for fmt in _DT_FORMATS:
        try:
            moment = datetime.strptime(candidate, fmt)
        except ValueError:
            continue
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise bad_request(f"invalid date/time in range filter: {text!r}")


def range_filter(name: str) -> tuple[str, str] | None:
    """filters[<name>]=<start>...<end> (dates or ISO datetimes, optional quotes) as a pair
    of UTC ISO strings (inclusive), or None when absent; 400 when malformed."""
    raw = request.args.get(f"filters[{name}]")
    if raw is None or raw == "":
        return None
    raw = raw.strip().strip('"')
    if "..." not in raw:
        raise bad_request(f"filters[{name}] must be a range like <start>...<end>")
    start, _, end = raw.partition("...")
    return _parse_bound(start, end=False), _parse_bound(end, end=True)


def id_list_filter(name: str = "id") -> set[int] | None:
    """filters[<name>][]=1&filters[<name>][]=2 (or filters[<name>]=1,2) as ints."""
    values = request.args.getlist(f"filters[{name}][]") + request.args.getlist(f"filters[{name}]")
    if not values:
        return None
    ids: set[int] = set()
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                ids.add(int(part))
            except ValueError:
                raise bad_request(f"filters[{name}] must contain integers") from None
    return ids


def apply_common_filters(
    rows: Iterable[dict],
    *,
    ranges: tuple[str, ...] = ("updated_at", "created_at"),
    ids: bool = False,
    origin_id: bool = False,
    search_fields: tuple[str, ...] = (),
) -> list[dict]:
    """Filter rows by the supported filters[...] params; unsupported filters are ignored."""
    rows = list(rows)
    for field in ranges:
        bounds = range_filter(field)
        if bounds is not None:
            low, high = bounds
            rows = [r for r in rows if r.get(field) and low <= r[field] <= high]
    if ids:
        wanted = id_list_filter("id")
        if wanted is not None:
            rows = [r for r in rows if r["id"] in wanted]
    if origin_id:
        value = request.args.get("filters[origin_id]")
        if value is not None:
            rows = [r for r in rows if r.get("origin_id") == value]
    if search_fields:
        term = (request.args.get("filters[search]") or "").strip().lower()
        if term:
            rows = [
                r
                for r in rows
                if any(term in str(r.get(f) or "").lower() for f in search_fields)
                or term in f"{r.get('first_name') or ''} {r.get('last_name') or ''}".lower()
            ]
    return rows


# -- sync --------------------------------------------------------------------------------
def check_sync_size(updates: Any, too_large_status: int = 400) -> list:
    """The `updates` array of a sync body; 400 when missing, 400/413 when > 1000 items."""
    if not isinstance(updates, list):
        raise bad_request("updates must be an array")
    if len(updates) > SYNC_MAX:
        message = f"Too many updates: at most {SYNC_MAX} per request"
        if too_large_status == 413:
            raise ApiError(413, message, {"message": message, "error": "payload_too_large"})
        raise bad_request(message)
    return updates


def run_sync(
    updates: list,
    *,
    find_by_id: Callable[[Any], dict | None],
    find_by_origin: Callable[[str], dict | None],
    create: Callable[[dict], dict],
    update: Callable[[dict, dict], dict],
    serialize: Callable[[dict], dict],
) -> dict:
    """Procore's sync semantics (§9.1): per-item create/update by id or origin_id; item
    errors go to `errors` with the submitted attributes; the call itself always succeeds."""
    entities: list[dict] = []
    errors: list[dict] = []
    for item in updates:
        if not isinstance(item, dict):
            errors.append({"errors": {"base": ["must be an object"]}})
            continue
        try:
            if item.get("id") is not None:
                record = find_by_id(item["id"])
                if record is None:
                    raise ValidationError({"id": ["Entity with this ID not found"]})
                entities.append(serialize(update(record, item)))
            elif as_origin_id(item.get("origin_id")) is not None:
                record = find_by_origin(as_origin_id(item["origin_id"]))
                if record is None:
                    entities.append(serialize(create(item)))
                else:
                    entities.append(serialize(update(record, item)))
            else:
                entities.append(serialize(create(item)))
        except ApiError as exc:
            field_errors = exc.body.get("errors") if isinstance(exc.body, dict) else None
            if not isinstance(field_errors, dict):
                field_errors = {"base": [str(exc)]}
            errors.append({**item, "errors": field_errors})
    return {"entities": entities, "errors": errors}


def find_origin(table: str, origin_id: str, **scope: Any) -> dict | None:
    """The record in `table` with this origin_id within the given scope (e.g. company)."""
    store = current_store()
    with store.lock:
        for record in store.table(table).values():
            if record.get("origin_id") == origin_id and all(
                record.get(k) == v for k, v in scope.items()
            ):
                return record
    return None


def check_origin_unique(table: str, origin_id: str | None, company_id: int, own_id=None) -> None:
    """422 when another record of the company already uses this origin_id."""
    if origin_id is None:
        return
    other = find_origin(table, origin_id, company_id=company_id)
    if other is not None and other["id"] != own_id:
        raise ValidationError({"origin_id": ["has already been taken"]})


def config():
    """The running sandbox's config."""
    return current().config
