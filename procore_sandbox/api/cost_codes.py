"""Standard cost code lists and codes, project cost codes, line item types, time types."""

from __future__ import annotations

from flask import jsonify, request

from procore_sandbox.api import bp
from procore_sandbox.api.common import (
    ValidationError,
    apply_common_filters,
    as_origin_id,
    bad_request,
    check_origin_unique,
    check_sync_size,
    find_origin,
    json_body,
    not_found,
    paginate,
    pick,
    require_param,
    run_sync,
    scoped_company,
    source_app,
    wrapped,
)
from procore_sandbox.api.projects import project_param
from procore_sandbox.context import current_store
from procore_sandbox.store import Store


def _int(raw) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _company_param(body: dict | None = None) -> int:
    return scoped_company(require_param("company_id", body))


# -- standard cost code lists ------------------------------------------------------------
def serialize_list(ccl: dict) -> dict:
    """A standard cost code list."""
    return {
        "id": ccl["id"],
        "name": ccl["name"],
        "is_erp_list": ccl.get("is_erp_list", False),
        "available_to_use_on_new_projects": ccl.get("available_to_use_on_new_projects", True),
    }


@bp.get("/v1.0/standard_cost_code_lists")
def list_cost_code_lists():
    """Standard cost code lists of ?company_id=."""
    company_id = _company_param()
    return paginate(
        current_store().select("cost_code_lists", company_id=company_id), serialize_list
    )


def _list_of(company_id: int, list_id) -> dict:
    ccl = current_store().get("cost_code_lists", _int(list_id))
    if ccl is None or ccl["company_id"] != company_id:
        raise not_found("Standard cost code list")
    return ccl


@bp.get("/v1.0/standard_cost_code_lists/<int:list_id>")
def show_cost_code_list(list_id: int):
    """One standard cost code list."""
    return jsonify(serialize_list(_list_of(_company_param(), list_id)))


# -- standard cost codes -----------------------------------------------------------------
STD_FIELDS = ("parent_id", "code", "name", "origin_id", "origin_data")


def serialize_standard_code(code: dict, view: str = "extended") -> dict:
    """A standard cost code in the given view (default/compact/extended)."""
    if view == "default":
        return {"id": code["id"], "standard_cost_code_list_id": code["standard_cost_code_list_id"]}
    if view == "compact":
        return {
            "id": code["id"],
            "standard_cost_code_list_id": code["standard_cost_code_list_id"],
            "origin_id": code.get("origin_id"),
        }
    return {
        "id": code["id"],
        "standard_cost_code_list_id": code["standard_cost_code_list_id"],
        "parent_id": code.get("parent_id"),
        "code": code["code"],
        "full_code": code["full_code"],
        "name": code["name"],
        "origin_id": code.get("origin_id"),
        "origin_data": code.get("origin_data"),
        "created_at": code["created_at"],
        "updated_at": code["updated_at"],
    }


def _view() -> str:
    view = request.args.get("view", "extended")
    if view not in ("default", "compact", "extended"):
        raise bad_request("view must be default, compact or extended")
    return view


def _validate_code(
    store: Store, table: str, scope: dict, attrs: dict, own: dict | None, fields, company_id
) -> dict:
    attrs = pick(attrs, fields)
    if "origin_id" in attrs:
        attrs["origin_id"] = as_origin_id(attrs["origin_id"])
    merged = {**(own or {}), **attrs}
    errors: dict[str, list[str]] = {}
    for key in ("code", "name"):
        if not str(merged.get(key) or "").strip():
            errors[key] = ["can't be blank"]
    parent = None
    if merged.get("parent_id") is not None:
        parent = store.get(table, _int(merged["parent_id"]))
        if parent is None or any(parent.get(k) != v for k, v in scope.items()):
            errors["parent_id"] = ["does not exist"]
    if errors:
        raise ValidationError(errors)
    check_origin_unique(table, attrs.get("origin_id"), company_id, own and own["id"])
    if "parent_id" in attrs:
        attrs["parent_id"] = parent["id"] if parent else None
    code = str(merged["code"]).strip()
    if parent and code.startswith(f"{parent['full_code']}-"):
        # Create/update take the segment only (for 02-300 under 02: "300"); Procore would
        # otherwise store 02-02-300, so the stricter reading refuses it.
        raise ValidationError(
            {"code": [f"must be the segment without its parent's code ({parent['full_code']}-)"]}
        )
    attrs["full_code"] = f"{parent['full_code']}-{code}" if parent else code
    with store.lock:
        for other in store.table(table).values():
            if (
                other["full_code"] == attrs["full_code"]
                and all(other.get(k) == v for k, v in scope.items())
                and (own is None or other["id"] != own["id"])
            ):
                raise ValidationError({"code": ["has already been taken"]})
    return attrs


def create_standard_code(store, ccl: dict, attrs: dict, source_app_id=None) -> dict:
    """Validate and add a standard cost code to a list."""
    scope = {"standard_cost_code_list_id": ccl["id"]}
    clean = _validate_code(
        store, "standard_cost_codes", scope, attrs, None, STD_FIELDS, ccl["company_id"]
    )
    record = {"parent_id": None, "origin_id": None, "origin_data": None}
    record.update(company_id=ccl["company_id"], standard_cost_code_list_id=ccl["id"], **clean)
    return store.insert("standard_cost_codes", record, source_application_id=source_app_id)


def update_standard_code(store, code: dict, attrs: dict, source_app_id=None) -> dict:
    """Validate and apply a partial update to a standard cost code."""
    scope = {"standard_cost_code_list_id": code["standard_cost_code_list_id"]}
    clean = _validate_code(
        store, "standard_cost_codes", scope, attrs, code, STD_FIELDS, code["company_id"]
    )
    return store.update(
        "standard_cost_codes", code["id"], clean, source_application_id=source_app_id
    )


@bp.get("/v1.0/standard_cost_codes")
def list_standard_codes():
    """Standard cost codes of ?company_id=&standard_cost_code_list_id=."""
    company_id = _company_param()
    ccl = _list_of(company_id, require_param("standard_cost_code_list_id"))
    view = _view()
    rows = current_store().select_by("standard_cost_codes", "standard_cost_code_list_id", ccl["id"])
    rows = apply_common_filters(rows, ranges=(), origin_id=True)
    return paginate(rows, lambda c: serialize_standard_code(c, view))


def _standard_code(company_id: int, code_id: int) -> dict:
    code = current_store().get("standard_cost_codes", code_id)
    if code is None or code["company_id"] != company_id:
        raise not_found("Standard cost code")
    return code


@bp.get("/v1.0/standard_cost_codes/<int:code_id>")
def show_standard_code(code_id: int):
    """One standard cost code of ?company_id=&standard_cost_code_list_id= (both required, as
    Procore's reference marks them: 400 without the list, 404 when the code is not in it)."""
    company_id = _company_param()
    ccl = _list_of(company_id, require_param("standard_cost_code_list_id"))
    code = _standard_code(company_id, code_id)
    if code["standard_cost_code_list_id"] != ccl["id"]:
        raise not_found("Standard cost code")
    return jsonify(serialize_standard_code(code, _view()))


@bp.post("/v1.0/standard_cost_codes")
def create_standard_code_view():
    """Create a standard cost code: 201 / 422."""
    body = json_body()
    company_id = _company_param(body)
    ccl = _list_of(company_id, require_param("standard_cost_code_list_id", body))
    attrs = wrapped(body, "standard_cost_code")
    code = create_standard_code(current_store(), ccl, attrs, source_app())
    return jsonify(serialize_standard_code(code)), 201


@bp.patch("/v1.0/standard_cost_codes/<int:code_id>")
def update_standard_code_view(code_id: int):
    """Partial update of a standard cost code."""
    body = json_body()
    code = _standard_code(_company_param(body), code_id)
    attrs = wrapped(body, "standard_cost_code")
    return jsonify(
        serialize_standard_code(update_standard_code(current_store(), code, attrs, source_app()))
    )


@bp.patch("/v1.0/standard_cost_codes/sync")
def sync_standard_codes():
    """Bulk upsert of standard cost codes (413 over 1000 items)."""
    body = json_body()
    company_id = _company_param(body)
    ccl = _list_of(company_id, require_param("standard_cost_code_list_id", body))
    updates = check_sync_size(body.get("updates"), too_large_status=413)
    store = current_store()

    def find_by_id(raw):
        code = store.get("standard_cost_codes", _int(raw))
        return code if code and code["standard_cost_code_list_id"] == ccl["id"] else None

    def create(item):
        return create_standard_code(
            store, ccl, _segment_of_full_code(store, ccl, item, None), source_app()
        )

    def update(code, item):
        attrs = _segment_of_full_code(
            store, ccl, {k: v for k, v in item.items() if k != "id"}, code
        )
        return update_standard_code(store, code, attrs, source_app())

    return jsonify(
        run_sync(
            updates,
            find_by_id=find_by_id,
            find_by_origin=lambda o: find_origin("standard_cost_codes", o, company_id=company_id),
            create=create,
            update=update,
            serialize=serialize_standard_code,
        )
    )


def _segment_of_full_code(store: Store, ccl: dict, item: dict, own: dict | None) -> dict:
    """A sync element's attributes with `code` turned into the segment under its parent.

    The sync action takes `code` *including* the parent's prefixes (§9.2), unlike create and
    update, which take the segment: under division "03", "03-100" is stored as code "100".
    A code that does not start with the parent's full code is an item error. A missing parent
    or blank code is left to the usual validation, which names those fields.
    """
    if "code" not in item or item["code"] is None or not str(item["code"]).strip():
        return item
    parent_raw = item["parent_id"] if "parent_id" in item else (own or {}).get("parent_id")
    if parent_raw is None:
        return item
    parent = store.get("standard_cost_codes", _int(parent_raw))
    if parent is None or parent["standard_cost_code_list_id"] != ccl["id"]:
        return item  # validation answers parent_id "does not exist"
    full = str(item["code"]).strip()
    prefix = f"{parent['full_code']}-"
    if not full.startswith(prefix) or len(full) == len(prefix):
        message = f"must start with its parent's full code ({prefix}...): sync takes the full code"
        raise ValidationError({"code": [message]})
    return {**item, "code": full[len(prefix) :]}


# -- project cost codes ------------------------------------------------------------------
CODE_FIELDS = ("code", "name", "parent_id", "standard_cost_code_id", "position", "origin_id",
               "origin_data")  # fmt: skip


def serialize_cost_code(code: dict, line_item_types: list[dict] | None = None) -> dict:
    """A project cost code."""
    return {
        "id": code["id"],
        "name": code["name"],
        "code": code["code"],
        "full_code": code["full_code"],
        "sortable_code": code["full_code"],
        "position": code.get("position"),
        "parent": {"id": code["parent_id"]} if code.get("parent_id") else None,
        "standard_cost_code_id": code.get("standard_cost_code_id"),
        "standard_cost_code_list_id": code.get("standard_cost_code_list_id"),
        "biller": None,
        "biller_id": code["project_id"],
        "biller_type": "Project",
        "biller_origin_id": None,
        "budgeted": code.get("budgeted", False),
        "origin_id": code.get("origin_id"),
        "origin_data": code.get("origin_data"),
        "created_at": code["created_at"],
        "updated_at": code["updated_at"],
        "deleted_at": code.get("deleted_at"),
        "line_item_types": [serialize_line_item_type(t) for t in line_item_types or []],
    }


def create_cost_code(store, project: dict, attrs: dict, source_app_id=None) -> dict:
    """Validate and add a project cost code."""
    scope = {"project_id": project["id"]}
    clean = _validate_code(
        store, "cost_codes", scope, attrs, None, CODE_FIELDS, project["company_id"]
    )
    record = {
        "parent_id": None,
        "standard_cost_code_id": None,
        "standard_cost_code_list_id": project.get("standard_cost_code_list_id"),
        "position": None,
        "budgeted": False,
        "origin_id": None,
        "origin_data": None,
        "deleted_at": None,
    }
    record.update(company_id=project["company_id"], project_id=project["id"], **clean)
    return store.insert("cost_codes", record, source_application_id=source_app_id)


def update_cost_code(store, code: dict, attrs: dict, source_app_id=None) -> dict:
    """Validate and apply a partial update to a project cost code."""
    scope = {"project_id": code["project_id"]}
    clean = _validate_code(store, "cost_codes", scope, attrs, code, CODE_FIELDS, code["company_id"])
    return store.update("cost_codes", code["id"], clean, source_application_id=source_app_id)


def _company_line_item_types(company_id: int) -> list[dict]:
    return current_store().select("line_item_types", company_id=company_id)


@bp.get("/v1.0/cost_codes")
def list_cost_codes():
    """Cost codes of ?project_id= (default and max 100 per page)."""
    project = project_param()
    rows = current_store().select("cost_codes", project_id=project["id"])
    rows = [c for c in rows if not c.get("deleted_at")]
    rows = apply_common_filters(rows, ranges=(), origin_id=True)
    types = _company_line_item_types(project["company_id"])
    return paginate(rows, lambda c: serialize_cost_code(c, types), max_per_page=100)


def _cost_code(project: dict, code_id: int) -> dict:
    code = current_store().get("cost_codes", code_id)
    if code is None or code["project_id"] != project["id"]:
        raise not_found("Cost code")
    return code


@bp.get("/v1.0/cost_codes/<int:code_id>")
def show_cost_code(code_id: int):
    """One project cost code (?project_id=)."""
    project = project_param()
    types = _company_line_item_types(project["company_id"])
    return jsonify(serialize_cost_code(_cost_code(project, code_id), types))


@bp.post("/v1.0/cost_codes")
def create_cost_code_view():
    """Create a project cost code: body {project_id, cost_code: {code, name}} -> 201 / 422."""
    body = json_body()
    project = project_param(body)
    code = create_cost_code(current_store(), project, wrapped(body, "cost_code"), source_app())
    return jsonify(serialize_cost_code(code)), 201


@bp.patch("/v1.0/cost_codes/<int:code_id>")
def update_cost_code_view(code_id: int):
    """Partial update of a project cost code."""
    body = json_body()
    project = project_param(body)
    code = _cost_code(project, code_id)
    updated = update_cost_code(current_store(), code, wrapped(body, "cost_code"), source_app())
    return jsonify(serialize_cost_code(updated))


@bp.patch("/v1.0/cost_codes/sync")
def sync_cost_codes():
    """Bulk upsert of a project's cost codes (?project_id=)."""
    body = json_body()
    project = project_param(body)
    updates = check_sync_size(body.get("updates"))
    store = current_store()

    def find_by_id(raw):
        code = store.get("cost_codes", _int(raw))
        return code if code and code["project_id"] == project["id"] else None

    return jsonify(
        run_sync(
            updates,
            find_by_id=find_by_id,
            find_by_origin=lambda o: find_origin("cost_codes", o, company_id=project["company_id"]),
            create=lambda item: create_cost_code(store, project, item, source_app()),
            update=lambda code, item: update_cost_code(
                store, code, {k: v for k, v in item.items() if k != "id"}, source_app()
            ),
            serialize=serialize_cost_code,
        )
    )


@bp.post("/v1.0/cost_codes/copy_from_standard_list")
def copy_from_standard_list():
    """Copy every code of a standard list into a project (existing full codes kept)."""
    body = json_body()
    project = project_param(body)
    ccl = _list_of(project["company_id"], require_param("standard_cost_code_list_id", body))
    store = current_store()
    existing = {c["full_code"]: c for c in store.select("cost_codes", project_id=project["id"])}
    mapping = {c["standard_cost_code_id"]: c["id"] for c in existing.values()}
    created = []
    standard = sorted(
        store.select("standard_cost_codes", standard_cost_code_list_id=ccl["id"]),
        key=lambda c: c["full_code"],
    )
    for position, std in enumerate(standard):
        if std["full_code"] in existing:
            mapping[std["id"]] = existing[std["full_code"]]["id"]
            continue
        record = store.insert(
            "cost_codes",
            {
                "company_id": project["company_id"],
                "project_id": project["id"],
                "parent_id": mapping.get(std["parent_id"]),
                "code": std["code"],
                "full_code": std["full_code"],
                "name": std["name"],
                "standard_cost_code_id": std["id"],
                "standard_cost_code_list_id": ccl["id"],
                "position": position,
                "budgeted": False,
                "origin_id": None,
                "origin_data": None,
                "deleted_at": None,
            },
            source_application_id=source_app(),
        )
        mapping[std["id"]] = record["id"]
        created.append(record)
    return jsonify([serialize_cost_code(c) for c in created]), 201


# -- line item types ---------------------------------------------------------------------
LIT_FIELDS = ("name", "code", "base_type", "origin_id", "origin_data")
# Procore's OpenAPI enum for base_type. The timecard tutorial speaks of a `labor` base type,
# but the sources disagree; the stricter reading refuses anything outside the enum.
BASE_TYPES = {"equipment", "materials", "commitment", "owner_cost", "professional_services",
              "other"}  # fmt: skip


def serialize_line_item_type(row: dict) -> dict:
    """A line item type (cost type)."""
    return {
        "id": row["id"],
        "name": row["name"],
        "code": row["code"],
        "base_type": row.get("base_type"),
        "origin_id": row.get("origin_id"),
        "origin_data": row.get("origin_data"),
    }


def _lit_company(body: dict | None = None) -> int:
    raw = request.args.get("company_id") or (body or {}).get("company_id")
    if raw:
        return scoped_company(raw)
    if request.args.get("project_id") or (body or {}).get("project_id"):
        return project_param(body)["company_id"]
    raise bad_request("company_id or project_id is required")


def _validate_lit(company_id: int, attrs: dict, own: dict | None) -> dict:
    attrs = pick(attrs, LIT_FIELDS)
    if "origin_id" in attrs:
        attrs["origin_id"] = as_origin_id(attrs["origin_id"])
    merged = {**(own or {}), **attrs}
    errors = {k: ["can't be blank"] for k in ("name", "code") if not merged.get(k)}
    if merged.get("base_type") not in BASE_TYPES:
        errors["base_type"] = ["is not included in the list"]
    if errors:
        raise ValidationError(errors)
    check_origin_unique("line_item_types", attrs.get("origin_id"), company_id, own and own["id"])
    return attrs


@bp.get("/v1.0/line_item_types")
def list_line_item_types():
    """Line item types of ?company_id= (or ?project_id=)."""
    company_id = _lit_company()
    rows = apply_common_filters(_company_line_item_types(company_id), ranges=(), origin_id=True)
    return paginate(rows, serialize_line_item_type)


@bp.post("/v1.0/line_item_types")
def create_line_item_type():
    """Create a line item type: 201 / 422."""
    body = json_body()
    company_id = _lit_company(body)
    clean = _validate_lit(company_id, wrapped(body, "line_item_type"), None)
    record = {"origin_id": None, "origin_data": None, "company_id": company_id, **clean}
    row = current_store().insert("line_item_types", record)
    return jsonify(serialize_line_item_type(row)), 201


@bp.patch("/v1.0/line_item_types/sync")
def sync_line_item_types():
    """Bulk upsert of line item types."""
    body = json_body()
    company_id = _lit_company(body)
    updates = check_sync_size(body.get("updates"))
    store = current_store()

    def find_by_id(raw):
        row = store.get("line_item_types", _int(raw))
        return row if row and row["company_id"] == company_id else None

    def create(item):
        clean = _validate_lit(company_id, item, None)
        return store.insert(
            "line_item_types",
            {"origin_id": None, "origin_data": None, "company_id": company_id, **clean},
        )

    def update(row, item):
        clean = _validate_lit(company_id, {k: v for k, v in item.items() if k != "id"}, row)
        return store.update("line_item_types", row["id"], clean)

    return jsonify(
        run_sync(
            updates,
            find_by_id=find_by_id,
            find_by_origin=lambda o: find_origin("line_item_types", o, company_id=company_id),
            create=create,
            update=update,
            serialize=serialize_line_item_type,
        )
    )


# -- timecard time types -----------------------------------------------------------------
def serialize_time_type(row: dict) -> dict:
    """A timecard time type."""
    return {
        "id": row["id"],
        "time_type": row["time_type"],
        "abbreviated_time_type": row["abbreviated_time_type"],
        "global": row.get("global", False),
    }


@bp.get("/v1.0/timecard_time_types")
def list_time_types():
    """Time types usable in ?project_id= (paginated)."""
    project = project_param()
    rows = current_store().select("time_types", company_id=project["company_id"])
    return paginate(rows, serialize_time_type)


@bp.get("/v1.0/companies/<int:company_id>/timecard_time_types")
def list_company_time_types(company_id: int):
    """A company's time types: [{id, time_type}] (not paginated)."""
    company_id = scoped_company(company_id)
    rows = current_store().select("time_types", company_id=company_id)
    return jsonify([{"id": r["id"], "time_type": r["time_type"]} for r in rows])
