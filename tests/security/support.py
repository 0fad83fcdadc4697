"""The security suite's map of the app: every route, how to fill its URL parameters with a
given company's objects, a two-company world built through the models, and DB snapshots.

When you add a route whose URL names a new kind of object, add the parameter to URL_PARAMS
(or ENDPOINT_PARAMS); until then the suite fails for that route, so no route goes unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from config import TestConfig
from webapp import create_app
from webapp.extensions import db
from webapp.models import (
    ClockSession,
    Company,
    CostCode,
    EntityType,
    IntegrationSettings,
    ProcoreConnection,
    ProcoreLink,
    ProcoreLookup,
    ProcorePush,
    ProcoreStagedRecord,
    Project,
    Role,
    RunStatus,
    SyncRun,
    SyncRunItem,
    TimeCard,
    TimeCardEvent,
    TimeCardStatus,
    TimeEntry,
    User,
)
from webapp.procore.crypto import token_cipher

PASSWORD = "pass-word-1"
FAST_HASH = "pbkdf2:sha256:1000"
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
ROLES = ("admin", "manager", "supervisor", "worker")
# Every name in company B's world contains this word; company A's never does, so any page
# A's users see that contains it has leaked another tenant's data.
B_MARKER = "Bravo"

# Routes anyone may call without signing in (the webhook receiver authenticates by secret;
# an invite link by its signed token, whose checks tests/integration/test_invites.py covers).
PUBLIC_ENDPOINTS = {"auth.login", "auth.index", "auth.invite", "static"}


def is_webhook_receiver(rule: str, endpoint: str) -> bool:
    """Procore's webhook receiver: public, CSRF-exempt, authenticated by WEBHOOK_SECRET."""
    return "webhook" in rule.lower() or "webhook" in endpoint.lower()


# ---------------------------------------------------------------- the two-company world


@dataclass
class Tenant:
    """One company of the world: ids only (the session is cleared between requests)."""

    company_id: int
    users: dict[str, int] = field(default_factory=dict)  # role -> user id
    usernames: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)  # object name -> id


@dataclass
class World:
    a: Tenant
    b: Tenant


def _user(company_id: int, role: Role, prefix: str, label: str, n: int) -> User:
    user = User(
        company_id=company_id,
        first_name=f"{label}{n}",
        last_name=f"{prefix}{role.value.capitalize()}",
        username=f"{prefix.lower()}-{role.value}-{n}",
        email=f"{prefix.lower()}-{role.value}-{n}@example.test",
        role=role,
        password_hash=generate_password_hash(PASSWORD, method=FAST_HASH),
    )
    db.session.add(user)
    return user


def build_tenant(prefix: str, procore_base: int) -> Tenant:
    """A company with every role and one of every object a route parameter can name."""
    company = Company(name=f"{prefix} Builders")
    db.session.add(company)
    db.session.flush()
    cid = company.id
    tenant = Tenant(company_id=cid)
    people = {}
    for n, role in enumerate(Role, start=1):
        people[role.value] = _user(cid, role, prefix, "Pat", n)
    second_worker = _user(cid, Role.WORKER, prefix, "Sam", 9)
    db.session.flush()
    for role, user in people.items():
        tenant.users[role] = user.id
        tenant.usernames[role] = user.username
    tenant.users["worker2"] = second_worker.id

    division = CostCode(company_id=cid, code="03", name=f"{prefix} Concrete division")
    db.session.add(division)
    db.session.flush()
    code = CostCode(company_id=cid, code="03-300", name=f"{prefix} Cast-in-place", parent=division)
    spare_code = CostCode(company_id=cid, code="09-900", name=f"{prefix} Painting")
    project = Project(company_id=cid, name=f"{prefix} Tower", number=f"{prefix[:1]}-100")
    other_project = Project(company_id=cid, name=f"{prefix} Depot", number=f"{prefix[:1]}-200")
    project.cost_codes = [code]
    project.supervisors = [people["supervisor"], people["manager"]]
    db.session.add_all([code, spare_code, project, other_project])
    db.session.flush()

    monday = date.today() - timedelta(days=date.today().weekday())
    submitted = TimeCard(
        company_id=cid,
        user_id=people["worker"].id,
        week_start=monday - timedelta(days=7),
        status=TimeCardStatus.SUBMITTED,
        submitted_at=datetime.now(UTC),
    )
    draft = TimeCard(company_id=cid, user_id=people["worker"].id, week_start=monday)
    unsupervised = TimeCard(
        company_id=cid,
        user_id=second_worker.id,
        week_start=monday - timedelta(days=7),
        status=TimeCardStatus.SUBMITTED,
        submitted_at=datetime.now(UTC),
    )
    db.session.add_all([submitted, draft, unsupervised])
    db.session.flush()
    entries = {}
    for name, card, proj, day in (
        ("submitted_entry", submitted, project, submitted.week_start),
        ("entry", draft, project, draft.week_start),
        ("unsupervised_entry", unsupervised, other_project, unsupervised.week_start),
    ):
        entries[name] = TimeEntry(
            company_id=cid,
            time_card_id=card.id,
            work_date=day,
            project_id=proj.id,
            cost_code_id=code.id if proj is project else None,
            start_time=time(7, 0),
            end_time=time(15, 30),
            break_minutes=30,
            hours=Decimal("8.00"),
            notes=f"{prefix} pour",
        )
    db.session.add_all(entries.values())
    db.session.add(
        TimeCardEvent(company_id=cid, time_card_id=submitted.id, action="submitted", detail="")
    )
    db.session.flush()

    cipher = token_cipher()
    db.session.add(
        ProcoreConnection(
            company_id=cid,
            procore_user_id=procore_base + 1,
            procore_login=f"{prefix.lower()}@procore.example.test",
            procore_user_name=f"{prefix} Procore Admin",
            available_companies=[{"id": procore_base, "name": f"{prefix} Procore Co"}],
            procore_company_id=procore_base,
            access_token_enc=cipher.encrypt(f"{prefix}-access-token"),
            refresh_token_enc=cipher.encrypt(f"{prefix}-refresh-token"),
            key_id=cipher.key_id,
            expires_at=datetime.now(UTC) + timedelta(hours=2),
            connected_by_id=people["admin"].id,
            connected_at=datetime.now(UTC),
        )
    )
    db.session.add(
        IntegrationSettings(
            company_id=cid,
            procore_company_id=procore_base,
            procore_company_name=f"{prefix} Procore Co",
            completed_steps=[],
        )
    )
    for entity, local_id, offset in (
        (EntityType.PROJECT, project.id, 10),
        (EntityType.USER, people["worker"].id, 11),
        (EntityType.COST_CODE, code.id, 12),
    ):
        db.session.add(
            ProcoreLink(
                company_id=cid,
                entity_type=entity,
                local_id=local_id,
                procore_id=procore_base + offset,
            )
        )
    run = SyncRun(
        company_id=cid,
        kind="import",
        status=RunStatus.PARTIAL,
        started_by_id=people["admin"].id,
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
        total=2,
        done=2,
        created=1,
        failed=1,
    )
    stage_run = SyncRun(
        company_id=cid,
        kind="stage_project",
        status=RunStatus.SUCCEEDED,
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
    )
    hours_run = SyncRun(
        company_id=cid,
        kind="hours_check",
        status=RunStatus.SUCCEEDED,
        started_by_id=people["admin"].id,
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
        cursor_before=(monday - timedelta(days=7)).isoformat(),
        checkpoint={
            "week_start": (monday - timedelta(days=7)).isoformat(),
            "rows": [
                {
                    "person": f"{prefix} Worker",
                    "project": f"{prefix} Tower",
                    "cost_code": f"03-300 {prefix} Cast-in-place",
                    "crewclock": "8.00",
                    "procore": "0.00",
                    "difference": "-8.00",
                    "kinds": ["missing"],
                    "reasons": [f"Missing in Procore: 1 entry ({prefix})"],
                }
            ],
            "matching": 0,
            "resendable": 1,
        },
    )
    perm_run = SyncRun(
        company_id=cid,
        kind="permissions_check",
        status=RunStatus.PARTIAL,
        started_by_id=people["admin"].id,
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
        checkpoint={
            "checks": [
                {
                    "label": f"Company users ({prefix})",
                    "need": "Import and sync users",
                    "result": "refused",
                    "advice": f"Give them the Directory tool ({prefix}).",
                }
            ]
        },
    )
    db.session.add_all([run, stage_run, hours_run, perm_run])
    db.session.flush()
    db.session.add(
        SyncRunItem(
            company_id=cid,
            run_id=hours_run.id,
            entity_type="time_entry",
            local_id=entries["submitted_entry"].id,
            outcome="missing",
            reason=f"{prefix} entry no longer in Procore",
        )
    )
    db.session.add(
        SyncRunItem(
            company_id=cid,
            run_id=run.id,
            entity_type="project",
            procore_id=procore_base + 20,
            label=f"{prefix} Annex",
            outcome="failed",
            reason=f"{prefix} annex has no number",
        )
    )
    staged = ProcoreStagedRecord(
        company_id=cid,
        entity_type="project",
        procore_id=procore_base + 20,
        payload={
            "id": procore_base + 20,
            "name": f"{prefix} Annex",
            "project_number": f"{prefix[:1]}-300",
            "active": True,
        },
        selected=True,
        seen_run_id=stage_run.id,
    )
    from webapp.services.imports import refresh_row

    refresh_row(staged)
    db.session.add(staged)
    push = ProcorePush(
        company_id=cid,
        time_entry_id=entries["submitted_entry"].id,
        time_card_id=submitted.id,
        origin_id=f"crewclock-{prefix.lower()}-{entries['submitted_entry'].id}",
    )
    lookup = ProcoreLookup(
        company_id=cid, kind="party_for_user", key=str(people["worker"].id), procore_id=7
    )
    # The admin's own open clock: the suite signs in as the admin, so the clock-out and
    # cancel routes are exercised past their ownership check.
    clock = ClockSession(
        company_id=cid,
        user_id=people["admin"].id,
        project_id=project.id,
        cost_code_id=code.id,
        started_at=datetime.now(UTC) - timedelta(hours=2),
        notes=f"{prefix} clocked in",
    )
    db.session.add_all([push, lookup, clock])
    db.session.flush()

    tenant.ids.update(_build_sync_rows(cid, prefix, procore_base, project.id))
    tenant.ids.update(
        project=project.id,
        other_project=other_project.id,
        division=division.id,
        cost_code=code.id,
        spare_cost_code=spare_code.id,
        card=submitted.id,
        draft_card=draft.id,
        unsupervised_card=unsupervised.id,
        entry=entries["entry"].id,
        submitted_entry=entries["submitted_entry"].id,
        staged_row=staged.id,
        run=run.id,
        stage_run=stage_run.id,
        hours_check=hours_run.id,
        permissions_check=perm_run.id,
        push=push.id,
        clock=clock.id,
    )
    return tenant


def _build_sync_rows(company_id: int, prefix: str, procore_base: int, project_id: int) -> dict:
    """Sync bookkeeping rows, where those models exist yet (they land with the sync issue)."""
    try:
        from webapp.models import sync
    except ImportError:
        return {}
    conflict = sync.SyncConflict(
        company_id=company_id,
        entity_type="project",
        local_id=project_id,
        procore_id=procore_base + 10,
        label=f"{prefix} Tower",
        local_values={"name": f"{prefix} Tower"},
        procore_values={"name": f"{prefix} Tower II"},
    )
    db.session.add_all(
        [
            conflict,
            sync.SyncState(company_id=company_id),
            sync.SyncCursor(company_id=company_id, entity_type="project"),
            sync.ProcoreWebhookEvent(
                company_id=company_id,
                dedupe_key=f"ulid:{prefix}-event",
                procore_company_id=procore_base,
                resource_name="Projects",
                resource_id=procore_base + 10,
                event_type="update",
            ),
        ]
    )
    db.session.flush()
    return {"conflict": conflict.id}


class _AnyId(dict):
    def __missing__(self, key):
        return 1


def dummy_tenant() -> Tenant:
    """A tenant whose every object id is 1 (to check which URLs the suite can build)."""
    return Tenant(company_id=1, users=_AnyId(), usernames={}, ids=_AnyId())


def build_world() -> World:
    """Company A ("Alpha") and company B ("Bravo"), committed."""
    world = World(a=build_tenant("Alpha", 1000), b=build_tenant(B_MARKER, 2000))
    db.session.commit()
    db.session.remove()
    return world


# ---------------------------------------------------------------- routes and their parameters

Filler = Callable[[Tenant], object]

# URL parameter -> the object of a company it names. Add a row for every new parameter.
URL_PARAMS: dict[str, Filler] = {
    "user_id": lambda t: t.users["worker"],
    "project_id": lambda t: t.ids["project"],
    "cost_code_id": lambda t: t.ids["cost_code"],
    "card_id": lambda t: t.ids["card"],
    "entry_id": lambda t: t.ids["entry"],
    "row_id": lambda t: t.ids["staged_row"],
    "run_id": lambda t: t.ids["run"],
    "push_id": lambda t: t.ids["push"],
    "check_id": lambda t: t.ids["hours_check"],
    "perm_check_id": lambda t: t.ids["permissions_check"],
    "local_id": lambda t: t.ids["project"],  # with entity_type "project"
    "conflict_id": lambda t: t.ids["conflict"],
    "clock_id": lambda t: t.ids["clock"],
}
# URL parameters that name no company's object (the same value for every company).
# An invite token names no object the suite can fill per company: a forged one must be refused.
CONSTANT_PARAMS: dict[str, object] = {
    "entity_type": "project",
    "step": 1,
    "token": "forged-invite-token",
}
# Per-route values where the generic one would not reach the view's interesting path.
ENDPOINT_PARAMS: dict[tuple[str, str], object] = {
    ("setup.toggle_auto", "entity_type"): "user",
}
SKIPPED_ENDPOINTS = {"static"}


@dataclass(frozen=True)
class Route:
    rule: str
    method: str
    endpoint: str
    arguments: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.method} {self.rule}"

    @property
    def unsafe(self) -> bool:
        return self.method in UNSAFE_METHODS

    @property
    def object_params(self) -> tuple[str, ...]:
        """Parameters that name a company's object (unknown ones count: they must fail)."""
        return tuple(
            a
            for a in self.arguments
            if a not in CONSTANT_PARAMS and (self.endpoint, a) not in ENDPOINT_PARAMS
        )

    def url(self, tenant: Tenant, query: dict | None = None) -> str:
        """The route's URL naming `tenant`'s objects; AssertionError for unknown parameters."""
        values = {}
        for name in self.arguments:
            if (self.endpoint, name) in ENDPOINT_PARAMS:
                values[name] = ENDPOINT_PARAMS[(self.endpoint, name)]
            elif name in CONSTANT_PARAMS:
                values[name] = CONSTANT_PARAMS[name]
            elif name in URL_PARAMS:
                values[name] = URL_PARAMS[name](tenant)
            else:
                raise AssertionError(
                    f"{self.id} ({self.endpoint}) has the URL parameter <{name}>, which the "
                    f"security suite cannot fill. Add it to URL_PARAMS (the object of a company "
                    f"it names) or CONSTANT_PARAMS in tests/security/support.py, so the "
                    f"tenancy, role and CSRF checks cover this route."
                )
        path = ROUTE_RULES[(self.rule, self.method)].build(values, append_unknown=False)[1]
        if query:
            path += "?" + urlencode(query)
        return path


def _route_app():
    import tempfile

    return create_app(
        TestConfig,
        instance_path=tempfile.mkdtemp(prefix="crewclock-routes-"),
        SQLALCHEMY_DATABASE_URI="sqlite://",
    )


ROUTE_APP = _route_app()
ROUTE_RULES = {}
ROUTES: list[Route] = []
for _rule in sorted(ROUTE_APP.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
    if _rule.endpoint in SKIPPED_ENDPOINTS:
        continue
    for _method in sorted(_rule.methods - {"HEAD", "OPTIONS"}):
        ROUTE_RULES[(_rule.rule, _method)] = _rule
        ROUTES.append(Route(_rule.rule, _method, _rule.endpoint, tuple(sorted(_rule.arguments))))

GET_ROUTES = [r for r in ROUTES if r.method == "GET"]
UNSAFE_ROUTES = [r for r in ROUTES if r.unsafe]
OBJECT_ROUTES = [r for r in ROUTES if r.object_params]
BLUEPRINTS = sorted(ROUTE_APP.blueprints)


def route_ids(routes) -> list[str]:
    return [r.id for r in routes]


# ---------------------------------------------------------------- requests


def sign_in(client, tenant: Tenant, role: str) -> None:
    """Log in through the real form as `tenant`'s user with `role`."""
    response = client.post(
        "/login", data={"identifier": tenant.usernames[role], "password": PASSWORD}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


def hx_headers(fragment: bool) -> dict:
    return {"HX-Request": "true"} if fragment else {}


def plausible_form(tenant: Tenant) -> dict:
    """Values most forms accept, naming `tenant`'s objects: requests that would succeed."""
    today = date.today()
    return {
        "name": "Changed name",
        "first_name": "Changed",
        "last_name": "Name",
        "username": "changed-name",
        "email": "changed@example.test",
        "role": "worker",
        "time_zone": "America/New_York",
        "code": "05-500",
        "phase": "",
        "number": "X-1",
        "country": "US",
        "time_entry_mode": "hours",
        "active": "on",
        "work_date": today.isoformat(),
        "week": today.isoformat(),
        "hours": "8",
        "work_type": "regular",
        "notes": "changed",
        "note": "Please fix the hours.",
        "selected": "on",
        "auto": "on",
        "project_id": str(tenant.ids["project"]),
        "cost_code_id": str(tenant.ids["spare_cost_code"]),
        "card_id": str(tenant.ids["draft_card"]),
        "entry_id": str(tenant.ids["entry"]),
        "break_minutes": "15",
        "user_id": str(tenant.users["worker"]),
        "parent_id": str(tenant.ids["division"]),
        "supervisor_ids": str(tenant.users["supervisor"]),
        "project_ids": str(tenant.ids["other_project"]),
        "shown_project_ids": str(tenant.ids["other_project"]),
        "local_id": str(tenant.ids["other_project"]),
        "push_id": str(tenant.ids["push"]),
        "run_id": str(tenant.ids["run"]),
        "row_id": str(tenant.ids["staged_row"]),
        "procore_company_id": "1000",
        "keep": "crewclock",
        "policy": "hold",
    }


# ---------------------------------------------------------------- database snapshots


# Columns a sign-in or a no-op write touches; every other column must hold still.
VOLATILE_COLUMNS = {"last_login_at", "updated_at"}


def _scoped_select(table: sa.Table, company_id: int | None) -> sa.Select:
    query = sa.select(*[c for c in table.c if c.name not in VOLATILE_COLUMNS])
    if company_id is None:
        return query
    if table.name == "company":
        return query.where(table.c.id == company_id)
    if "company_id" in table.c:
        return query.where(table.c.company_id == company_id)
    for fk in table.foreign_keys:  # association tables: rows naming the company's objects
        target = fk.column.table
        if "company_id" in target.c:
            return query.join_from(table, target, fk.parent == fk.column).where(
                target.c.company_id == company_id
            )
    return query


def snapshot(company_id: int | None = None) -> dict[str, list[tuple]]:
    """Every committed row (of one company, or all), as comparable tuples per table."""
    db.session.rollback()  # what a request left uncommitted never reaches the database
    state = {}
    for table in db.metadata.sorted_tables:
        rows = db.session.execute(_scoped_select(table, company_id)).all()
        state[table.name] = sorted(tuple(repr(v) for v in row) for row in rows)
    db.session.rollback()
    return state


def diff(before: dict, after: dict) -> list[str]:
    """Human-readable differences between two snapshots."""
    changes = []
    for name in before:
        gone = set(before[name]) - set(after.get(name, []))
        new = set(after.get(name, [])) - set(before[name])
        if gone or new:
            changes.append(f"{name}: -{sorted(gone)[:2]} +{sorted(new)[:2]}")
    return changes


def owners() -> dict[tuple[str, str], int]:
    """(table, primary key) -> company_id for every company-owned row."""
    db.session.rollback()
    found = {}
    for table in db.metadata.sorted_tables:
        if "company_id" not in table.c:
            continue
        pk = list(table.primary_key.columns)
        for row in db.session.execute(sa.select(*pk, table.c.company_id)).all():
            found[(table.name, repr(tuple(row[:-1])))] = row[-1]
    db.session.rollback()
    return found


def roles() -> dict[int, str]:
    db.session.rollback()
    found = {uid: str(role) for uid, role in db.session.execute(sa.select(User.id, User.role))}
    db.session.rollback()
    return found


_LOCAL_MODELS = {"user": User, "project": Project, "cost_code": CostCode}


def cross_tenant_references() -> list[str]:
    """Rows of one company that point at another company's rows (should never exist)."""
    db.session.rollback()
    problems = []
    for table in db.metadata.sorted_tables:
        joined = table
        companies = []
        for n, fk in enumerate(sorted(table.foreign_keys, key=lambda f: f.parent.name)):
            if "company_id" not in fk.column.table.c:
                continue
            target = fk.column.table.alias(f"ref{n}")
            joined = joined.outerjoin(target, fk.parent == target.c[fk.column.name])
            companies.append(target.c.company_id)
        if "company_id" in table.c:
            companies.append(table.c.company_id)
        if len(companies) < 2:
            continue
        for row in db.session.execute(sa.select(*companies).select_from(joined)).all():
            if len({v for v in row if v is not None}) > 1:
                problems.append(f"a {table.name} row spans companies {tuple(row)}")
    for entity, local in _LOCAL_MODELS.items():
        for model, kind, id_col in (
            (ProcoreLink, EntityType(entity), ProcoreLink.local_id),
            (ProcoreStagedRecord, entity, ProcoreStagedRecord.link_to_local_id),
        ):
            bad = db.session.execute(
                sa.select(model.id)
                .join(local, local.id == id_col)
                .where(model.entity_type == kind, local.company_id != model.company_id)
            ).all()
            problems += [
                f"{model.__tablename__} {row} names another company's {entity}" for row in bad
            ]
    bad_push = db.session.execute(
        sa.select(ProcorePush.id)
        .join(TimeCard, TimeCard.id == ProcorePush.time_card_id)
        .where(TimeCard.company_id != ProcorePush.company_id)
    ).all()
    problems += [f"procore_push {row} names another company's card" for row in bad_push]
    db.session.rollback()
    return problems


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_STYLE = re.compile(r"\sstyle\s*=", re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
