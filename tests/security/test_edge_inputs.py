"""Issue 17 (items 5-8): deterministic probes of the inputs an attacker reaches for first.

Every route of the URL map gets NUL bytes, ids beyond 64 bits, dates at the calendar's edges
and Unicode digits in every query and form field the app reads (collected from the templates
and the views, so a new field is probed without touching this file), both as the one odd
value in an otherwise valid request and in every field at once. None may answer 500, and no
NUL byte may reach the database (PostgreSQL refuses them with a 500; SQLite stores them).
Ids beyond 64 bits in a URL are 404, like any other id that names nothing.
"""

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.routing.converters import NumberConverter

from tests.security.support import (
    CONSTANT_PARAMS,
    ENDPOINT_PARAMS,
    ROUTE_RULES,
    ROUTES,
    URL_PARAMS,
    is_webhook_receiver,
    plausible_form,
    route_ids,
    sign_in,
)
from webapp.extensions import db

WEBAPP = Path(__file__).resolve().parents[2] / "webapp"

# The field names the app reads: <input name=...> in templates, .get("...") in the views.
_FIELD_PATTERNS = (
    (re.compile(r"""\bname=["']([a-z_]+)["']"""), "*.html"),
    (re.compile(r"""\.(?:get|getlist)\(\s*["']([a-z_]+)["']"""), "*.py"),
)
_READ_FIELDS = {
    name
    for pattern, glob in _FIELD_PATTERNS
    for path in WEBAPP.rglob(glob)
    if "procore" not in path.parts
    for name in pattern.findall(path.read_text())
}
# A mangled CSRF token is refused before any view runs: probing it would test nothing.
FIELD_NAMES = sorted(
    (_READ_FIELDS | {"q", "page", "week", "identifier", "password"}) - {"csrf_token"}
)

BEYOND_64_BITS = (str(2**64), str(2**63), str(10**30))
PROBES = {
    "nul": ("Ada\x00Admin", "\x00"),
    "huge_id": BEYOND_64_BITS,
    "edge_date": ("0001-01-01", "9999-12-31", "0001-01-08"),
    "unicode_digits": ("²", "١٢", "12³"),
}
ID_FIELD = re.compile(r"(^|_)(id|ids|page|minutes|step)$")
DATE_FIELDS = {"week", "work_date", "date"}

PROBED_ROUTES = [r for r in ROUTES if r.endpoint not in ("auth.logout",)]


def _holds(kind: str, name: str) -> bool:
    """Whether field `name` is one where a value of this probe kind belongs."""
    if kind == "edge_date":
        return name in DATE_FIELDS
    return bool(ID_FIELD.search(name))


def _targeted(base: dict, kind: str, value: str) -> dict:
    """A valid request whose fields of the probe's kind all carry `value`."""
    form = dict(base)
    for name in FIELD_NAMES:
        if kind == "nul":
            form[name] = f"{base.get(name, 'text')}{value}"
        elif (
            kind in ("huge_id", "unicode_digits")
            and ID_FIELD.search(name)
            or kind == "edge_date"
            and name in DATE_FIELDS
        ):
            form[name] = value
    return form


def _requests(route, tenant):
    """(description, query, form) for each probe of `route`."""
    base = plausible_form(tenant)
    for kind, values in PROBES.items():
        for value in values:
            everywhere = dict.fromkeys(FIELD_NAMES, value)
            for shape, fields in (("one kind", _targeted(base, kind, value)), ("all", everywhere)):
                label = f"{kind} {value!r} in {shape}"
                if route.method == "GET":
                    yield label, fields, None
                else:
                    yield label, fields if kind != "nul" else None, fields


def stored_nul_bytes() -> list[str]:
    """Every text column value in the database that holds a NUL byte (SQLite stores them;
    PostgreSQL refuses the statement, which the 500 check above catches)."""
    if db.engine.dialect.name != "sqlite":
        return []
    db.session.rollback()
    found = []
    for table in db.metadata.sorted_tables:
        for column in table.c:
            if not isinstance(column.type, sa.String):
                continue
            holds_nul = sa.func.instr(sa.cast(column, sa.Text), sa.func.char(0)) > 0
            rows = db.session.execute(sa.select(column).where(holds_nul)).all()
            found += [f"{table.name}.{column.name}={row[0]!r}" for row in rows]
    db.session.rollback()
    return found


@pytest.mark.parametrize("route", PROBED_ROUTES, ids=route_ids(PROBED_ROUTES))
def test_nul_bytes_huge_ids_edge_dates_and_unicode_digits_never_500(route, world, client, app):
    """A person (or a scanner) who types these gets an answer, never the error page."""
    if route.endpoint != "auth.login":
        sign_in(client, world.a, "admin")
    url = route.url(world.a)
    headers = {"Authorization": app.config["WEBHOOK_SECRET"]}
    failures = []
    for label, query, form in _requests(route, world.a):
        for hx in ({}, {"HX-Request": "true"}):
            response = client.open(
                url,
                method=route.method,
                query_string=query,
                data=form,
                headers=headers | hx,
                csrf=not is_webhook_receiver(route.rule, route.endpoint),
            )
            if response.status_code >= 500:
                failures.append(f"{label} {hx}: {response.status_code}")
    assert failures == []
    # procore-api.md is not involved: PostgreSQL refuses NUL in text, so none may be stored.
    assert stored_nul_bytes() == []


INT_ROUTES = [
    r
    for r in ROUTES
    if any(
        type(ROUTE_RULES[(r.rule, r.method)]._converters[a]).__name__.startswith(("Integer", "Id"))
        for a in r.arguments
    )
]


def _is_int_param(route, name: str) -> bool:
    converter = ROUTE_RULES[(route.rule, route.method)]._converters.get(name)
    return converter is not None and isinstance(converter, NumberConverter)


INT_ROUTES = [r for r in ROUTES if any(_is_int_param(r, a) for a in r.arguments)]


def _url_with(route, tenant, name: str, huge: str) -> str:
    """The route's URL with `name` = huge and every other parameter filled as usual."""
    marker = 987654321987
    values = {}
    for arg in route.arguments:
        if arg == name:
            values[arg] = marker
        elif (route.endpoint, arg) in ENDPOINT_PARAMS:
            values[arg] = ENDPOINT_PARAMS[(route.endpoint, arg)]
        elif arg in CONSTANT_PARAMS:
            values[arg] = CONSTANT_PARAMS[arg]
        else:
            values[arg] = URL_PARAMS[arg](tenant)
    path = ROUTE_RULES[(route.rule, route.method)].build(values, append_unknown=False)[1]
    return path.replace(str(marker), huge)


@pytest.mark.parametrize("route", INT_ROUTES, ids=route_ids(INT_ROUTES))
def test_ids_beyond_64_bits_in_the_url_are_404(route, world, client):
    """An id no database row can have names nothing: Not found, in the app's own page."""
    sign_in(client, world.a, "admin")
    for name in (a for a in route.arguments if _is_int_param(route, a)):
        for huge in (*BEYOND_64_BITS, "١", "12³"):
            url = _url_with(route, world.a, name, huge)
            response = client.open(url, method=route.method, data=plausible_form(world.a))
            assert response.status_code == 404, f"{route.id} {name}={huge}"
            assert "Not found" in response.get_data(as_text=True)
