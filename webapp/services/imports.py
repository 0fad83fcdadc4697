"""Imports from Procore: list records into staging for the wizard, then create or link what
the admin chose. Plain functions over ids; the Procore side comes in as a page fetcher.

Every page of a listing is committed together with the run's checkpoint, and every batch
of the apply phase is committed together with the records, links and checkpoint it made,
so a killed job rerun resumes where it stopped and never creates a record twice (links
are unique both ways, and already-linked Procore records are skipped as unchanged).
"""

from collections import defaultdict
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.models import (
    CostCode,
    EntityType,
    IntegrationSettings,
    ProcoreLink,
    ProcoreStagedRecord,
    Project,
    Role,
    RunStatus,
    SyncRun,
    SyncRunItem,
    User,
    project_cost_code,
)
from webapp.models.base import utcnow
from webapp.procore import api as procore_api
from webapp.procore import mapping
from webapp.procore.api import ProcoreAPI
from webapp.procore.errors import ProcoreAuthError
from webapp.procore.mapping import COST_CODE, ENTITY_TYPES, PROJECT, USER
from webapp.runs import service
from webapp.runs.kinds import STAGE_KINDS, RunKind
from webapp.runs.runner import Kind, RunContext, register
from webapp.services import links
from webapp.services.connections import get_connection, procore_client_for

PER_PAGE = 100  # the documented max for users and cost codes; one size for every list
APPLY_BATCH = 200
STAGE_KIND = "stage_{entity}"
IMPORT_KIND = RunKind.IMPORT.value

# (path, params, page, per_page) -> (items, total or None)
FetchPage = Callable[[str, dict, int, int], tuple[list, int | None]]


class ImportRefused(Exception):
    """The import cannot start (nothing chosen, no company picked, ...)."""


def settings_for(company_id: int) -> IntegrationSettings:
    """The company's wizard settings, created on first use."""
    settings = db.session.get(IntegrationSettings, company_id)
    if settings is None:
        settings = IntegrationSettings(company_id=company_id, completed_steps=[])
        db.session.add(settings)
        db.session.flush()
    return settings


def listings(entity_type: str, settings: IntegrationSettings, include_inactive: bool) -> list:
    """The Procore list endpoints (path, params) that hold all records of `entity_type`."""
    company = settings.procore_company_id
    if company is None:
        raise ImportRefused("Choose a Procore company first (step 1).")
    if entity_type == USER:
        paths = [procore_api.users_list(company)]
        if include_inactive:
            paths.append(procore_api.inactive_users_list(company))
        return paths
    if entity_type == PROJECT:
        # Active projects only: set-up offers the projects crews can still log time on, and
        # a project closed in Procore is not one to import. (Sync's complete listing asks for
        # all of them, so closing one later is seen as a change, not a deletion.)
        return [procore_api.projects_list(company, include_inactive=False)]
    if settings.standard_cost_code_list_id is None:
        raise ImportRefused("Choose a standard cost code list first (step 1).")
    return [procore_api.standard_cost_codes_list(company, settings.standard_cost_code_list_id)]


# -- runs --------------------------------------------------------------------------------
active_run = service.active
latest_run = service.latest


def create_run(company_id: int, kind: str, started_by_id: int | None) -> tuple[SyncRun, bool]:
    """(run, created): a new queued run, or the one of this kind already queued/running.

    Commits; the caller enqueues it (or enqueues again a queued one whose job was lost).
    """
    return service.start(company_id, kind, started_by_id=started_by_id, stage=None, enqueue=False)


def get_run(company_id: int, run_id: int) -> SyncRun | None:
    """A run of this company (None for another company's id)."""
    return service.get(company_id, run_id)


def run_items(run: SyncRun, outcomes=("skipped", "failed", "updated"), limit: int = 200) -> list:
    """The run's items with the given outcomes (reasons for the summary)."""
    return list(
        db.session.scalars(
            sa.select(SyncRunItem)
            .where(SyncRunItem.run_id == run.id, SyncRunItem.outcome.in_(outcomes))
            .order_by(SyncRunItem.id)
            .limit(limit)
        )
    )


def _start(run: SyncRun) -> None:
    run.status = RunStatus.RUNNING
    run.error = None
    run.started_at = run.started_at or utcnow()
    run.checkpoint = dict(run.checkpoint or {})
    db.session.commit()


def _finish(run: SyncRun) -> None:
    run.status = RunStatus.PARTIAL if run.failed else RunStatus.SUCCEEDED
    run.stage = "Finished"
    run.finished_at = utcnow()
    db.session.commit()


def _checkpoint(run: SyncRun, **values) -> None:
    checkpoint = dict(run.checkpoint or {})
    checkpoint.update(values)
    run.checkpoint = checkpoint


# -- staging -----------------------------------------------------------------------------
def refresh_row(row: ProcoreStagedRecord) -> dict:
    """Recompute a staged row's derived columns from payload + edits; returns its fields."""
    fields = mapping.effective_fields(row.entity_type, row.payload, row.edited)
    problems = mapping.field_problems(row.entity_type, fields)
    row.procore_active = mapping.procore_active(row.entity_type, row.payload)
    if not row.procore_active:
        problems["active"] = "Inactive in Procore."
    _set_problems(row, problems)
    row.search_text = mapping.search_text(row.entity_type, fields)
    row.sort_key = mapping.sort_key(row.entity_type, fields)
    key = {USER: "email", PROJECT: "number", COST_CODE: "code"}[row.entity_type]
    row.match_key = (fields.get(key) or "").lower() or None
    if row.entity_type == COST_CODE:
        row.parent_procore_id = mapping.cost_code_parent_id(row.payload)
    return fields


def _set_problems(row: ProcoreStagedRecord, problems: dict) -> None:
    row.problems = problems
    row.blocked = bool(problems)


def _add_problem(row: ProcoreStagedRecord, field: str, message: str) -> None:
    _set_problems(row, {**(row.problems or {}), field: message})


def stage_page(company_id: int, entity_type: str, items: list, run_id: int) -> int:
    """Upsert one listed page into staging, keeping the admin's edits and choices."""
    by_id = {}
    for item in items:
        pid = mapping.procore_id(item)
        if pid is not None:
            by_id[pid] = item
    if not by_id:
        return 0
    existing = {
        row.procore_id: row
        for row in db.session.scalars(
            sa.select(ProcoreStagedRecord).where(
                ProcoreStagedRecord.company_id == company_id,
                ProcoreStagedRecord.entity_type == entity_type,
                ProcoreStagedRecord.procore_id.in_(list(by_id)),
            )
        )
    }
    now = utcnow()
    columns = {c.key for c in sa.inspect(ProcoreStagedRecord).column_attrs}
    new_rows = []
    for pid, item in by_id.items():
        row = existing.get(pid)
        new = row is None
        if new:
            # Built outside the session and inserted below in one statement with the rest.
            row = ProcoreStagedRecord(
                company_id=company_id, entity_type=entity_type, procore_id=pid
            )
        row.payload = item
        refresh_row(row)
        if new:
            row.selected = not row.problems
        row.seen_run_id = run_id
        row.missing_from_procore = False
        row.fetched_at = now
        if new:
            new_rows.append({k: v for k, v in vars(row).items() if k in columns})
    if new_rows:
        db.session.execute(sa.insert(ProcoreStagedRecord), new_rows)
    return len(by_id)


def _list_into_staging(
    run: SyncRun, entity_type: str, fetch_page: FetchPage, include_inactive: bool
) -> None:
    """Page through every listing of `entity_type`, committing each page with the checkpoint."""
    settings = settings_for(run.company_id)
    paths = listings(entity_type, settings, include_inactive)
    state = (run.checkpoint or {}).get("list", {})
    if state.get("entity") != entity_type:
        state = {"entity": entity_type, "listing": 0, "page": 1}
    # Pages read now were refreshed as they were staged; a listing found already complete
    # may have had its cross-row checks committed before a crash, so those run in full.
    fresh_run_id = run.id if state["listing"] < len(paths) else None
    for index in range(state["listing"], len(paths)):
        path, params = paths[index]
        page = state["page"] if index == state["listing"] else 1
        while True:
            items, total = fetch_page(path, params, page, PER_PAGE)
            run.api_calls += 1
            if total is not None and index == 0:
                run.total = max(run.total or 0, total)
            stage_page(run.company_id, entity_type, items, run.id)
            run.done += len(items)
            run.stage = f"Reading {entity_type.replace('_', ' ')}s from Procore (page {page})"
            last = len(items) < PER_PAGE if total is None else page * PER_PAGE >= total
            next_state = {"entity": entity_type, "listing": index, "page": page + 1}
            if last:
                next_state = {"entity": entity_type, "listing": index + 1, "page": 1}
            _checkpoint(run, list=next_state)
            db.session.commit()
            if last or not items:
                break
            page += 1
    # A complete listing: rows it did not see are gone from Procore (or deactivated).
    db.session.execute(
        sa.update(ProcoreStagedRecord)
        .where(
            ProcoreStagedRecord.company_id == run.company_id,
            ProcoreStagedRecord.entity_type == entity_type,
            sa.or_(
                ProcoreStagedRecord.seen_run_id.is_(None),
                ProcoreStagedRecord.seen_run_id != run.id,
            ),
        )
        .values(missing_from_procore=True)
    )
    recompute_problems(run.company_id, entity_type, fresh_run_id=fresh_run_id)
    db.session.commit()


def _linked_staged_ids(company_id: int, entity_type: str) -> set[int]:
    """Procore ids of the listed staged rows that are linked already (one query, no id list)."""
    staged = sa.select(ProcoreStagedRecord.procore_id).where(
        ProcoreStagedRecord.company_id == company_id,
        ProcoreStagedRecord.entity_type == entity_type,
        ProcoreStagedRecord.missing_from_procore.is_(False),
    )
    return set(
        db.session.scalars(
            sa.select(ProcoreLink.procore_id).where(
                ProcoreLink.company_id == company_id,
                ProcoreLink.entity_type == EntityType(entity_type),
                ProcoreLink.procore_id.in_(staged),
            )
        )
    )


def recompute_problems(company_id: int, entity_type: str, fresh_run_id: int | None = None) -> None:
    """Recompute every staged row's problems, including those that need the other rows
    (duplicate emails/codes) and our records (email taken), and pre-select strong links.

    Rows staged by run `fresh_run_id` were just refreshed from their payload, so only the
    checks across rows run for them."""
    staged = (
        ProcoreStagedRecord.company_id == company_id,
        ProcoreStagedRecord.entity_type == entity_type,
        ProcoreStagedRecord.missing_from_procore.is_(False),
    )
    rows = list(db.session.scalars(sa.select(ProcoreStagedRecord).where(*staged)))
    fields_by_row = {}
    for row in rows:
        if fresh_run_id is None or row.seen_run_id != fresh_run_id:
            fields_by_row[row.id] = refresh_row(row)

    def fields_of(row: ProcoreStagedRecord) -> dict:
        if row.id not in fields_by_row:
            fields_by_row[row.id] = mapping.effective_fields(entity_type, row.payload, row.edited)
        return fields_by_row[row.id]

    linked = _linked_staged_ids(company_id, entity_type)
    by_key = defaultdict(list)
    for row in rows:
        if row.match_key and row.procore_active and row.procore_id not in linked:
            by_key[row.match_key].append(row)
    if entity_type in (USER, COST_CODE):
        for row_list in by_key.values():
            if len(row_list) < 2:
                continue
            for row in row_list:
                others = ", ".join(
                    mapping.display_name(entity_type, fields_of(o))
                    for o in row_list
                    if o is not row
                )
                field = "email" if entity_type == USER else "code"
                what = "Email" if entity_type == USER else "Code"
                kind = "profile" if entity_type == USER else "cost code"
                _add_problem(row, field, f"{what} also used by another Procore {kind}: {others}.")
    strong = _local_matches(company_id, entity_type, list(by_key))
    for row in rows:
        if row.procore_id in linked:
            continue
        match = strong.get(row.match_key or "")
        if match is None:
            continue
        local_company, local_id, label, local_linked = match
        if local_company != company_id:
            _add_problem(row, "email", "Email already used by another Crewclock account.")
        elif row.link_to_local_id is None and not local_linked:
            # Same person/code already here: link instead of importing a duplicate.
            row.link_to_local_id = local_id
        elif row.link_to_local_id is None:
            field = {USER: "email", PROJECT: "number", COST_CODE: "code"}[entity_type]
            _add_problem(
                row, field, f"Already used by {label}, who is linked to another Procore record."
            )


def _local_matches(company_id: int, entity_type: str, keys: list[str]) -> dict:
    """{match key: (company_id, local id, label, already linked)} for strong matches."""
    if not keys:
        return {}
    found = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        if entity_type == USER:
            query = sa.select(User.company_id, User.id, User.first_name, User.last_name, User.email)
            query = query.where(sa.func.lower(User.email).in_(chunk))
            rows = [
                (c, i, f"{f} {ln}", (e or "").lower())
                for c, i, f, ln, e in db.session.execute(query)
            ]
        elif entity_type == PROJECT:
            query = sa.select(Project.company_id, Project.id, Project.name, Project.number).where(
                Project.company_id == company_id, sa.func.lower(Project.number).in_(chunk)
            )
            rows = [(c, i, n, (num or "").lower()) for c, i, n, num in db.session.execute(query)]
        else:
            query = sa.select(CostCode.company_id, CostCode.id, CostCode.name, CostCode.code).where(
                CostCode.company_id == company_id, sa.func.lower(CostCode.code).in_(chunk)
            )
            rows = [
                (c, i, f"{code} {n}", code.lower()) for c, i, n, code in db.session.execute(query)
            ]
        linked = links.procore_ids_for(
            company_id, entity_type, [i for c, i, _, _ in rows if c == company_id]
        )
        for local_company, local_id, label, key in rows:
            found[key] = (local_company, local_id, label, local_id in linked)
    return found


def stage_records(run_id: int, fetch_page: FetchPage) -> SyncRun:
    """A staging run: list one kind of Procore record into staging for the wizard's tables."""
    run = db.session.get(SyncRun, run_id)
    if run is None or run.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
        return run
    entity_type = run.kind.removeprefix("stage_")
    if entity_type not in ENTITY_TYPES:
        raise ValueError(f"not a staging run: {run.kind}")
    _start(run)
    _list_into_staging(run, entity_type, fetch_page, include_inactive=entity_type == USER)
    _finish(run)
    return run


# -- applying the admin's choices ---------------------------------------------------------
def _item(
    run: SyncRun, row: ProcoreStagedRecord, fields: dict, outcome: str, reason=None, local_id=None
):
    db.session.add(
        SyncRunItem(
            company_id=run.company_id,
            run_id=run.id,
            entity_type=row.entity_type,
            procore_id=row.procore_id,
            local_id=local_id,
            label=mapping.display_name(row.entity_type, fields)[:300],
            outcome=outcome,
            reason=reason,
        )
    )
    setattr(run, outcome, getattr(run, outcome) + 1)


def _reasons(problems: dict | None) -> str:
    return " ".join(dict.fromkeys((problems or {}).values()))


def _chosen(row: ProcoreStagedRecord, auto: bool) -> bool:
    # Blocked rows count too, so the summary says why they were not imported.
    return row.link_to_local_id is not None or auto or row.selected or row.blocked


def _local_values(company_id: int, entity_type: str, fields: dict) -> dict:
    """The column values of a new local record made from a staged row's fields."""
    if entity_type == USER:
        return {
            "company_id": company_id,
            "first_name": fields["first_name"],
            "last_name": fields["last_name"],
            "username": fields["username"],
            "email": fields["email"],
            "phone": fields.get("phone"),
            "employee_id": fields.get("employee_id"),
            "role": Role(fields.get("role") or "worker"),
            "active": True,
        }
    if entity_type == PROJECT:
        return {
            "company_id": company_id,
            "name": fields["name"],
            "number": fields.get("number"),
            "street": fields["street"],
            "city": fields["city"],
            "state": fields["state"],
            "zip": fields["zip"],
            "country": fields["country"],
            "active": True,
        }
    return {
        "company_id": company_id,
        "code": fields["code"],
        "name": fields["name"],
        "active": True,
    }


def _create_local(company_id: int, entity_type: str, fields: dict):
    return links.local_model(entity_type)(**_local_values(company_id, entity_type, fields))


# Columns that tell a batch's new records apart in RETURNING, whose row order SQLite does
# not promise. Records equal in all of them are interchangeable, so any pairing is right.
_RETURNING_KEYS = {
    USER: ("username",),
    PROJECT: ("name", "number", "street", "city", "state", "zip", "country"),
    COST_CODE: ("code",),
}


def _insert_locals(company_id: int, entity_type: str, field_list: list[dict]) -> list[int]:
    """Insert new local records in one statement; their ids, in the order given."""
    model = links.local_model(entity_type)
    keys = _RETURNING_KEYS[entity_type]
    values = [_local_values(company_id, entity_type, fields) for fields in field_list]
    returned = db.session.execute(
        sa.insert(model).returning(model.id, *(getattr(model, key) for key in keys)), values
    )
    ids_by_key = defaultdict(list)
    for local_id, *key in returned:
        ids_by_key[tuple(key)].append(local_id)
    return [ids_by_key[tuple(v[key] for key in keys)].pop() for v in values]


class _ReplayRowByRow(Exception):
    """The bulk path met a case it does not decide itself; the batch goes row by row."""


def _taken_keys(company_id: int, entity_type: str, field_list: list[dict]) -> dict[str, set]:
    """Which of these records' unique keys our records already use, one query per key for
    the whole batch: {"email"/"username" (any company, lower-cased), "employee_id", "code"}."""
    taken: dict[str, set] = {"email": set(), "username": set(), "employee_id": set(), "code": set()}

    def wanted(key: str) -> list:
        return list({f[key] for f in field_list if f.get(key)})

    if entity_type == USER:
        for key, column in (("email", User.email), ("username", User.username)):
            values = wanted(key)
            if values:
                lowered = sa.func.lower(column)
                taken[key] = set(db.session.scalars(sa.select(lowered).where(lowered.in_(values))))
        employee_ids = wanted("employee_id")
        if employee_ids:
            taken["employee_id"] = set(
                db.session.scalars(
                    sa.select(User.employee_id).where(
                        User.company_id == company_id, User.employee_id.in_(employee_ids)
                    )
                )
            )
    elif entity_type == COST_CODE:
        codes = wanted("code")
        if codes:
            taken["code"] = set(
                db.session.scalars(
                    sa.select(CostCode.code).where(
                        CostCode.company_id == company_id, CostCode.code.in_(codes)
                    )
                )
            )
    return taken


def _take(entity_type: str, fields: dict, taken: dict[str, set]) -> None:
    """Count a record about to be created as using its keys (later rows of the batch)."""
    if entity_type == USER:
        taken["email"].add(fields["email"].lower())
        taken["username"].add(fields["username"].lower())
        if fields.get("employee_id"):
            taken["employee_id"].add(fields["employee_id"])
    elif entity_type == COST_CODE:
        taken["code"].add(fields["code"])


def _local_conflict(entity_type: str, fields: dict, taken: dict[str, set]) -> str | None:
    """Why creating this record would clash with one of ours (None when it would not)."""
    if entity_type == USER:
        if fields["email"] in taken["email"]:
            return "Email already used by another Crewclock user."
        if fields["username"] in taken["username"]:
            return "Username already taken."
        if fields.get("employee_id") and fields["employee_id"] in taken["employee_id"]:
            return f"Employee ID {fields['employee_id']} already belongs to another user."
    elif entity_type == COST_CODE and fields["code"] in taken["code"]:
        return f"Cost code {fields['code']} already exists; link it instead."
    return None


def _plan_row(run: SyncRun, row: ProcoreStagedRecord, auto: bool, linked: dict):
    """(fields, action, detail) for one row: action is unchanged, skipped (detail: reason),
    link (detail: local id), create, or None when the row was not chosen."""
    if row.procore_id in linked:
        return None, "unchanged", None
    if not _chosen(row, auto):
        return None, None, None
    fields = mapping.effective_fields(row.entity_type, row.payload, row.edited)
    if row.missing_from_procore or row.seen_run_id != run.id:
        reason = "No longer in Procore (deleted or deactivated since it was listed)."
        if not row.procore_active:
            reason = "Inactive in Procore."
        return fields, "skipped", reason
    if row.link_to_local_id is not None:
        return fields, "link", row.link_to_local_id
    if row.problems:
        return fields, "skipped", _reasons(row.problems)
    return fields, "create", None


def _apply_row(run: SyncRun, row: ProcoreStagedRecord, auto: bool, linked: dict) -> None:
    """One row on its own (the replay path): a savepoint per created record."""
    fields, action, detail = _plan_row(run, row, auto, linked)
    if action == "unchanged":
        run.unchanged += 1
        return
    if action is None:
        return
    if action == "skipped":
        _item(run, row, fields, "skipped", detail)
        return
    company_id = run.company_id
    if action == "link":
        target = db.session.get(links.local_model(row.entity_type), detail)
        if target is None or target.company_id != company_id:
            _item(run, row, fields, "skipped", "The record chosen to link to no longer exists.")
            return
        try:
            links.create_link(
                company_id,
                row.entity_type,
                target.id,
                row.procore_id,
                mapping.payload_hash(row.payload),
            )
        except links.LinkConflict as exc:
            _item(run, row, fields, "skipped", f"Cannot link: {exc}.")
            return
        _item(run, row, fields, "linked", None, target.id)
        return
    taken = _taken_keys(company_id, row.entity_type, [fields])
    conflict = _local_conflict(row.entity_type, fields, taken)
    if conflict:
        _item(run, row, fields, "skipped", conflict)
        return
    record = _create_local(company_id, row.entity_type, fields)
    try:
        with db.session.begin_nested():
            db.session.add(record)
            db.session.flush()
            links.create_link(
                company_id,
                row.entity_type,
                record.id,
                row.procore_id,
                mapping.payload_hash(row.payload),
            )
    except (IntegrityError, links.LinkConflict) as exc:
        reason = "Clashes with an existing record (duplicate email, username or code)."
        if isinstance(exc, links.LinkConflict):
            reason = f"Cannot link: {exc}."
        _item(run, row, fields, "failed", reason)
        return
    _item(run, row, fields, "created", None, record.id)


def _apply_batch_in_bulk(run: SyncRun, entity_type: str, rows: list, auto: bool, linked: dict):
    """Decide a whole batch with one lookup per kind of key, then insert its new records
    and links together: [(row, fields, outcome, reason, local id)].

    Raises IntegrityError or _ReplayRowByRow when the batch must be replayed row by row
    (a clash only the unique constraints saw, a stale link on a reused id)."""
    company_id = run.company_id
    plans = [(row, *_plan_row(run, row, auto, linked)) for row in rows]
    targets = {detail for _, _, action, detail in plans if action == "link"}
    model = links.local_model(entity_type)
    existing = set()
    if targets:
        existing = set(
            db.session.scalars(
                sa.select(model.id).where(model.company_id == company_id, model.id.in_(targets))
            )
        )
    target_links = links.procore_ids_for(company_id, entity_type, existing)
    taken = _taken_keys(
        company_id, entity_type, [fields for _, fields, action, _ in plans if action == "create"]
    )
    results, new_links, creates = [], [], []
    for row, fields, action, detail in plans:
        if action == "link":
            if detail not in existing:
                reason = "The record chosen to link to no longer exists."
                results.append((row, fields, "skipped", reason, None))
            elif detail in target_links:
                reason = f"Cannot link: already linked to Procore #{target_links[detail]}."
                results.append((row, fields, "skipped", reason, None))
            else:
                target_links[detail] = row.procore_id
                new_links.append((detail, row))
                results.append((row, fields, "linked", None, detail))
        elif action == "create":
            conflict = _local_conflict(entity_type, fields, taken)
            if conflict:
                results.append((row, fields, "skipped", conflict, None))
                continue
            _take(entity_type, fields, taken)
            creates.append((len(results), row, fields))
            results.append((row, fields, "created", None, None))
        elif action is not None:
            results.append((row, fields, action, detail, None))
    if creates:
        new_ids = _insert_locals(company_id, entity_type, [fields for _, _, fields in creates])
        # A link left behind by a deleted record whose id was reused: row by row says why.
        if set(new_ids) & targets or links.procore_ids_for(company_id, entity_type, new_ids):
            raise _ReplayRowByRow
        for (index, row, fields), local_id in zip(creates, new_ids, strict=True):
            results[index] = (row, fields, "created", None, local_id)
            new_links.append((local_id, row))
    if new_links:
        now = utcnow()
        db.session.execute(
            sa.insert(ProcoreLink),
            [
                {
                    "company_id": company_id,
                    "entity_type": EntityType(entity_type),
                    "local_id": local_id,
                    "procore_id": row.procore_id,
                    "payload_hash": mapping.payload_hash(row.payload),
                    "last_synced_at": now,
                }
                for local_id, row in new_links
            ],
        )
    return results


def _apply_batch(run: SyncRun, entity_type: str, rows: list, auto: bool) -> None:
    """Create or link one batch of staged rows: in bulk, or row by row when bulk cannot."""
    linked = links.local_ids_for(run.company_id, entity_type, [r.procore_id for r in rows])
    try:
        with db.session.begin_nested():
            results = _apply_batch_in_bulk(run, entity_type, rows, auto, linked)
    except (IntegrityError, _ReplayRowByRow):
        for row in rows:
            _apply_row(run, row, auto, linked)
        return
    items = []
    for row, fields, outcome, reason, local in results:
        setattr(run, outcome, getattr(run, outcome) + 1)
        if outcome == "unchanged":
            continue
        items.append(
            {
                "company_id": run.company_id,
                "run_id": run.id,
                "entity_type": entity_type,
                "procore_id": row.procore_id,
                "local_id": local,
                "label": mapping.display_name(entity_type, fields)[:300],
                "outcome": outcome,
                "reason": reason,
            }
        )
    if items:
        db.session.execute(sa.insert(SyncRunItem), items)


def _apply_entity(run: SyncRun, entity_type: str, auto: bool) -> None:
    """Create or link the chosen staged rows, a committed batch at a time."""
    state = (run.checkpoint or {}).get("apply", {})
    after_id = state.get("after_id", 0) if state.get("entity") == entity_type else 0
    while True:
        rows = list(
            db.session.scalars(
                sa.select(ProcoreStagedRecord)
                .where(
                    ProcoreStagedRecord.company_id == run.company_id,
                    ProcoreStagedRecord.entity_type == entity_type,
                    ProcoreStagedRecord.id > after_id,
                )
                .order_by(ProcoreStagedRecord.id)
                .limit(APPLY_BATCH)
            )
        )
        if not rows:
            break
        after_id = rows[-1].id
        run.stage = f"Importing {entity_type.replace('_', ' ')}s"
        # The checkpoint is written first so the transaction is open before the batch's
        # savepoint (SQLite would otherwise commit on releasing an outermost savepoint);
        # it still commits together with the batch's records, links and items.
        _checkpoint(run, apply={"entity": entity_type, "after_id": after_id})
        db.session.flush()
        _apply_batch(run, entity_type, rows, auto)
        db.session.commit()
    if entity_type == COST_CODE:
        link_cost_code_parents(run.company_id)


def link_cost_code_parents(company_id: int) -> int:
    """Set each linked cost code's parent to its linked division (Procore's hierarchy)."""
    staged = db.session.execute(
        sa.select(ProcoreStagedRecord.procore_id, ProcoreStagedRecord.parent_procore_id).where(
            ProcoreStagedRecord.company_id == company_id,
            ProcoreStagedRecord.entity_type == COST_CODE,
            ProcoreStagedRecord.parent_procore_id.is_not(None),
        )
    ).all()
    if not staged:
        return 0
    local = dict(
        db.session.execute(
            sa.select(ProcoreLink.procore_id, ProcoreLink.local_id).where(
                ProcoreLink.company_id == company_id, ProcoreLink.entity_type == COST_CODE
            )
        ).all()
    )
    wanted = {
        local[child]: local[parent]
        for child, parent in staged
        if child in local and parent in local
    }
    current = (
        dict(
            db.session.execute(
                sa.select(CostCode.id, CostCode.parent_id).where(
                    CostCode.company_id == company_id, CostCode.id.in_(list(wanted))
                )
            ).all()
        )
        if wanted
        else {}
    )
    changes = [
        {"id": child, "parent_id": parent}
        for child, parent in wanted.items()
        if child in current and current[child] != parent
    ]
    if changes:
        db.session.execute(sa.update(CostCode), changes)
    db.session.commit()
    return len(changes)


def import_plan(settings: IntegrationSettings) -> list[tuple[str, bool]]:
    """(entity type, auto) in import order; cost codes only with a chosen list."""
    plan = [(USER, settings.auto_import_users), (PROJECT, False)]
    if settings.standard_cost_code_list_id is not None:
        plan.append((COST_CODE, settings.auto_import_cost_codes))
    return plan


def run_import(run_id: int, fetch_page: FetchPage) -> SyncRun:
    """The set-up import: re-list each kind from Procore, then create or link what was chosen."""
    run = db.session.get(SyncRun, run_id)
    if run is None or run.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
        return run
    _start(run)
    settings = settings_for(run.company_id)
    for entity_type, auto in import_plan(settings):
        if entity_type in (run.checkpoint or {}).get("done", []):
            continue
        if (run.checkpoint or {}).get("apply", {}).get("entity") != entity_type:
            _list_into_staging(run, entity_type, fetch_page, include_inactive=False)
        _apply_entity(run, entity_type, auto)
        done = [*(run.checkpoint or {}).get("done", []), entity_type]
        _checkpoint(run, done=done, list={}, apply={})
        db.session.commit()
    if settings.standard_cost_code_list_id is not None:
        assign_list_codes_to_new_projects(run)
    _finish(run)
    return run


def assign_list_codes_to_new_projects(run: SyncRun) -> int:
    """Give every project this import created or linked, and that has no cost codes yet,
    every active cost code linked to the chosen standard list; the number of projects.

    Without codes a worker cannot enter time on a project. Projects that have codes keep
    exactly theirs (an admin's choice wins). Two statements whatever the size (a count and
    one INSERT ... SELECT of the missing pairs), committed with a summary item, so a rerun
    or a resumed run adds nothing twice. No Procore calls: the codes come from staging."""
    company_id = run.company_id
    list_codes = (
        sa.select(ProcoreLink.local_id)
        .join(
            ProcoreStagedRecord,
            sa.and_(
                ProcoreStagedRecord.company_id == company_id,
                ProcoreStagedRecord.entity_type == COST_CODE,
                ProcoreStagedRecord.procore_id == ProcoreLink.procore_id,
                ProcoreStagedRecord.missing_from_procore.is_(False),
            ),
        )
        .where(
            ProcoreLink.company_id == company_id,
            ProcoreLink.entity_type == EntityType(COST_CODE),
        )
    )
    run_projects = sa.select(SyncRunItem.local_id).where(
        SyncRunItem.run_id == run.id,
        SyncRunItem.company_id == company_id,
        SyncRunItem.entity_type == PROJECT,
        SyncRunItem.outcome.in_(("created", "linked")),
        SyncRunItem.local_id.is_not(None),
    )
    has_codes = sa.exists().where(project_cost_code.c.project_id == Project.id)
    projects = sa.and_(Project.company_id == company_id, Project.id.in_(run_projects), ~has_codes)
    child = sa.orm.aliased(CostCode)
    is_division = sa.exists().where(child.parent_id == CostCode.id)
    codes = sa.and_(
        CostCode.company_id == company_id,
        CostCode.active.is_(True),
        CostCode.id.in_(list_codes),
        ~is_division,  # divisions group codes; time is booked to the codes under them
    )
    code_count = db.session.scalar(sa.select(sa.func.count(CostCode.id)).where(codes))
    if not code_count:
        return 0
    project_count = db.session.scalar(sa.select(sa.func.count(Project.id)).where(projects))
    if not project_count:
        return 0
    pairs = (
        sa.select(Project.id, CostCode.id)
        .select_from(Project)
        .join(CostCode, sa.true())
        .where(projects, codes)
    )
    db.session.execute(
        sa.insert(project_cost_code).from_select(["project_id", "cost_code_id"], pairs)
    )
    noun = "project" if project_count == 1 else "projects"
    run.stage = f"Cost codes assigned to {project_count} {noun}"
    _checkpoint(run, codes_assigned=project_count)
    db.session.add(
        SyncRunItem(
            company_id=company_id,
            run_id=run.id,
            entity_type=PROJECT,
            label=f"Cost codes assigned to {project_count} {noun}",
            outcome="updated",
            reason=(
                f"Each got the {code_count} active codes of the standard cost code list, "
                "so workers can enter time on them. Projects that already had codes kept theirs."
            ),
        )
    )
    db.session.commit()
    return project_count


# -- the wizard's manual tables ----------------------------------------------------------
def staged_query(company_id: int, entity_type: str, q: str = "", only_problems: bool = False):
    """The staged rows the manual table lists, in table order, optionally searched."""
    query = sa.select(ProcoreStagedRecord).where(
        ProcoreStagedRecord.company_id == company_id,
        ProcoreStagedRecord.entity_type == entity_type,
        ProcoreStagedRecord.missing_from_procore.is_(False),
    )
    term = (q or "").strip().lower()[:100]
    if term:
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(ProcoreStagedRecord.search_text.like(f"%{escaped}%", escape="\\"))
    if only_problems:
        query = query.where(
            ProcoreStagedRecord.link_to_local_id.is_(None),
            ProcoreStagedRecord.blocked.is_(True),
        )
    return query.order_by(ProcoreStagedRecord.sort_key, ProcoreStagedRecord.id)


def get_staged(company_id: int, row_id: int) -> ProcoreStagedRecord | None:
    """A staged row of this company (None for another company's id)."""
    row = db.session.get(ProcoreStagedRecord, row_id)
    return row if row is not None and row.company_id == company_id else None


def staged_summary(company_id: int, entity_type: str) -> dict:
    """Counts for a step: listed, importable, to link, blocked, already linked."""
    staged = ProcoreStagedRecord
    linked = ProcoreLink.id.is_not(None)
    not_linked = ProcoreLink.id.is_(None)
    to_link = sa.and_(not_linked, staged.link_to_local_id.is_not(None))
    open_row = sa.and_(not_linked, staged.link_to_local_id.is_(None))
    blocked = sa.and_(open_row, staged.blocked.is_(True))
    importable = sa.and_(open_row, staged.blocked.is_(False))
    selected = sa.and_(importable, staged.selected.is_(True))

    def count(condition):
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    row = db.session.execute(
        sa.select(
            sa.func.count(staged.id),
            count(linked),
            count(to_link),
            count(importable),
            count(blocked),
            count(selected),
        )
        .select_from(staged)
        .outerjoin(
            ProcoreLink,
            sa.and_(
                ProcoreLink.company_id == company_id,
                ProcoreLink.entity_type == EntityType(entity_type),
                ProcoreLink.procore_id == staged.procore_id,
            ),
        )
        .where(
            staged.company_id == company_id,
            staged.entity_type == entity_type,
            staged.missing_from_procore.is_(False),
        )
    ).one()
    keys = ("total", "linked", "to_link", "importable", "blocked", "selected")
    return {key: int(value) for key, value in zip(keys, row, strict=True)}


def row_state(rows: list, company_id: int, entity_type: str) -> dict:
    """{row id: {"linked_to": local id or None, "fields": effective fields}} for a page."""
    linked = links.local_ids_for(company_id, entity_type, [r.procore_id for r in rows])
    return {
        row.id: {
            "linked_to": linked.get(row.procore_id),
            "fields": mapping.effective_fields(entity_type, row.payload, row.edited),
        }
        for row in rows
    }


def suggestions_for(company_id: int, entity_type: str, rows: list) -> dict:
    """{row id: [(local id, label, matched on)]}: likely existing matches, best first
    (users: email, then employee id, then name; projects: number, then name; codes: code)."""
    fields = {r.id: mapping.effective_fields(entity_type, r.payload, r.edited) for r in rows}
    model = links.local_model(entity_type)
    keys = _suggestion_keys(entity_type)
    wanted = {attr: set() for attr, _, _ in keys}
    for f in fields.values():
        for attr, source, _ in keys:
            value = source(f)
            if value:
                wanted[attr].add(value)
    conditions = []
    for attr, _, _ in keys:
        if wanted[attr]:
            conditions.append(_local_key(model, attr).in_(list(wanted[attr])))
    if not conditions:
        return {r.id: [] for r in rows}
    candidates = list(
        db.session.scalars(
            sa.select(model).where(model.company_id == company_id, sa.or_(*conditions)).limit(500)
        )
    )
    result = {}
    for row in rows:
        matches, seen = [], set()
        for attr, source, label in keys:
            value = source(fields[row.id])
            if not value:
                continue
            for cand in candidates:
                if cand.id not in seen and _local_value(cand, attr) == value:
                    seen.add(cand.id)
                    matches.append((cand.id, _local_label(entity_type, cand), label))
        result[row.id] = matches[:5]
    return result


def _suggestion_keys(entity_type: str):
    def lower(key):
        return lambda f: (f.get(key) or "").lower() or None

    if entity_type == USER:

        def full_name(f):
            if f.get("first_name") and f.get("last_name"):
                return f"{f['first_name']} {f['last_name']}".lower()
            return None

        return [
            ("email", lower("email"), "email"),
            ("employee_id", lower("employee_id"), "employee ID"),
            ("name", full_name, "name"),
        ]
    if entity_type == PROJECT:
        return [("number", lower("number"), "number"), ("name", lower("name"), "name")]
    return [("code", lower("code"), "code"), ("name", lower("name"), "name")]


def _local_key(model, attr: str):
    if attr == "name" and model is User:
        return sa.func.lower(User.first_name + " " + User.last_name)
    return sa.func.lower(getattr(model, attr))


def _local_value(record, attr: str) -> str | None:
    if attr == "name" and isinstance(record, User):
        return f"{record.first_name} {record.last_name}".lower()
    value = getattr(record, attr)
    return value.lower() if value else None


def _local_label(entity_type: str, record) -> str:
    if entity_type == USER:
        return f"{record.name} ({record.email or record.username})"
    if entity_type == PROJECT:
        return f"{record.number} {record.name}" if record.number else record.name
    return record.label


def link_choices(company_id: int, entity_type: str, limit: int = 300) -> list:
    """[(local id, label)] of our records not yet linked to Procore (edit row dropdown)."""
    model = links.local_model(entity_type)
    linked_ids = sa.select(ProcoreLink.local_id).where(
        ProcoreLink.company_id == company_id, ProcoreLink.entity_type == entity_type
    )
    order = {USER: (User.last_name, User.first_name), PROJECT: (Project.name,)}.get(
        entity_type, (CostCode.code,)
    )
    records = db.session.scalars(
        sa.select(model)
        .where(model.company_id == company_id, model.id.not_in(linked_ids))
        .order_by(*order)
        .limit(limit)
    )
    return [(r.id, _local_label(entity_type, r)) for r in records]


def edit_staged(company_id: int, row: ProcoreStagedRecord, form: dict) -> dict:
    """Apply an inline edit; {field: message} and nothing saved when it is invalid."""
    cleaned, errors = mapping.clean_edit(row.entity_type, form)
    if not errors:
        errors = _edit_conflicts(company_id, row, cleaned)
    if errors:
        return errors
    original = mapping.fields_for(row.entity_type, row.payload)
    row.edited = {k: v for k, v in cleaned.items() if v != original.get(k)} or None
    refresh_row(row)
    row.selected = True
    db.session.flush()
    return {}


def _edit_conflicts(company_id: int, row: ProcoreStagedRecord, fields: dict) -> dict:
    errors = {}
    if row.entity_type == USER:
        email, username = fields.get("email"), fields.get("username")
        other = db.session.scalar(
            sa.select(ProcoreStagedRecord).where(
                ProcoreStagedRecord.company_id == company_id,
                ProcoreStagedRecord.entity_type == USER,
                ProcoreStagedRecord.match_key == email,
                ProcoreStagedRecord.id != row.id,
                ProcoreStagedRecord.missing_from_procore.is_(False),
            )
        )
        if other is not None:
            name = mapping.display_name(
                USER, mapping.effective_fields(USER, other.payload, other.edited)
            )
            errors["email"] = f"Another Procore profile in this list uses this email ({name})."
        local = db.session.scalar(sa.select(User).where(sa.func.lower(User.email) == email))
        if local is not None and "email" not in errors:
            if local.company_id == company_id:
                errors["email"] = (
                    f"{local.name} already uses this email here; link the profile to them instead."
                )
            else:
                errors["email"] = "This email is already used by another Crewclock account."
        if db.session.scalar(sa.select(User.id).where(sa.func.lower(User.username) == username)):
            errors["username"] = "This username is already taken."
        if fields.get("employee_id") and db.session.scalar(
            sa.select(User.id).where(
                User.company_id == company_id, User.employee_id == fields["employee_id"]
            )
        ):
            errors["employee_id"] = "Another user here already has this employee ID."
    elif row.entity_type == COST_CODE and db.session.scalar(
        sa.select(CostCode.id).where(
            CostCode.company_id == company_id, CostCode.code == fields.get("code")
        )
    ):
        errors["code"] = "This cost code already exists here; link to it instead."
    return errors


def set_selected(row: ProcoreStagedRecord, selected: bool) -> str | None:
    """Tick or untick a row for import; the reason when a blocked row cannot be ticked."""
    if selected and row.problems:
        return _reasons(row.problems)
    row.selected = selected
    db.session.flush()
    return None


def set_link_choice(company_id: int, row: ProcoreStagedRecord, local_id: int | None) -> str | None:
    """Choose the local record to link this row to (None: import as new); the reason on refusal."""
    if local_id is None:
        row.link_to_local_id = None
        db.session.flush()
        return None
    model = links.local_model(row.entity_type)
    target = db.session.get(model, local_id)
    if target is None or target.company_id != company_id:
        return "That record does not exist."
    if links.procore_ids_for(company_id, row.entity_type, [local_id]):
        return "That record is already linked to another Procore record."
    taken = db.session.scalar(
        sa.select(ProcoreStagedRecord).where(
            ProcoreStagedRecord.company_id == company_id,
            ProcoreStagedRecord.entity_type == row.entity_type,
            ProcoreStagedRecord.link_to_local_id == local_id,
            ProcoreStagedRecord.id != row.id,
        )
    )
    if taken is not None:
        other = mapping.display_name(
            row.entity_type, mapping.fields_for(row.entity_type, taken.payload)
        )
        return f"Another Procore record ({other}) is already set to link to it."
    row.link_to_local_id = local_id
    db.session.flush()
    return None


def client_page_fetcher(company_id: int) -> FetchPage:
    """A FetchPage over the company's ProcoreClient (the one door to Procore)."""
    client = procore_client_for(company_id)

    def fetch(path: str, params: dict, page: int, per_page: int) -> tuple[list, int | None]:
        # One page per call: the generator sends its request only when advanced.
        listing = procore_api.Endpoint(path, params)
        found = next(ProcoreAPI(client).pages(listing, per_page, start_page=page), None)
        if found is None:
            return [], None
        return list(found.items), found.total

    return fetch


def choose_procore_company(company_id: int, procore_company_id: int) -> str | None:
    """Step 1: pick the Procore company (from the connection's list); the reason on refusal."""
    conn = get_connection(company_id)
    companies = {c.get("id"): c.get("name") for c in (conn.available_companies if conn else [])}
    if procore_company_id not in companies:
        return "Choose one of the companies your Procore login can see."
    settings = settings_for(company_id)
    changing = settings.procore_company_id not in (None, procore_company_id)
    linked = _link_count(company_id) if changing else 0
    if linked:
        # Every link points at a record of the current company: under another company a
        # reconciliation would see them all as deleted in Procore (and deactivate them).
        current = settings.procore_company_name or f"Procore company {settings.procore_company_id}"
        return (
            f"{linked} Crewclock {'record is' if linked == 1 else 'records are'} linked to "
            f"{current}, so the company cannot change while they are. Unlink them first "
            "('Unlink' on each linked user, project and cost code), then choose the other "
            "company; nothing was changed."
        )
    if settings.procore_company_id != procore_company_id:
        settings.standard_cost_code_list_id = None
        settings.standard_cost_code_list_name = None
    settings.procore_company_id = procore_company_id
    settings.procore_company_name = companies[procore_company_id]
    conn.procore_company_id = procore_company_id
    db.session.flush()
    return None


def _link_count(company_id: int) -> int:
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(ProcoreLink)
        .where(ProcoreLink.company_id == company_id)
    )


def cost_code_lists(company_id: int) -> list[dict]:
    """The chosen company's standard cost code lists (a small lookup through the client)."""
    settings = settings_for(company_id)
    if settings.procore_company_id is None:
        return []
    fetch = client_page_fetcher(company_id)
    items, _ = fetch(
        *procore_api.standard_cost_code_lists_list(settings.procore_company_id), 1, 100
    )
    return [{"id": i.get("id"), "name": i.get("name")} for i in items if i.get("id")]


# -- the run kinds -----------------------------------------------------------------------
@register
class ImportRunKind(Kind):
    """Staging listings and the set-up import: resumable from their checkpoints."""

    kinds = (*STAGE_KINDS, RunKind.IMPORT)
    finished_stage = "Finished"

    def failure_reason(self, exc: Exception) -> str:
        if isinstance(exc, ProcoreAuthError):
            return f"Procore needs reconnecting: {exc}"
        return super().failure_reason(exc)

    def run(self, ctx: RunContext) -> None:
        # Looked up on the module at run time: tests and fault knobs swap the fetcher.
        fetch = client_page_fetcher(ctx.company_id)
        if ctx.run.kind == IMPORT_KIND:
            run_import(ctx.run.id, fetch)
        else:
            stage_records(ctx.run.id, fetch)
