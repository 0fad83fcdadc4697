"""Company users (the directory) and company people (the `party_id` of timecards)."""

from __future__ import annotations

import re

from flask import g, jsonify, request

from procore_sandbox.api import bp
from procore_sandbox.api.common import (
    ApiError,
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
    run_sync,
    scoped_company,
    source_app,
    wrapped,
)
from procore_sandbox.context import current_store
from procore_sandbox.store import Store

VERSIONS = '<any("v1.0","v1.1","v1.2","v1.3"):version>'
USER_FIELDS = (
    "first_name",
    "last_name",
    "email_address",
    "job_title",
    "employee_id",
    "is_employee",
    "is_active",
    "business_phone",
    "business_phone_extension",
    "mobile_phone",
    "fax_number",
    "address",
    "city",
    "state_code",
    "zip",
    "country_code",
    "notes",
    "initials",
    "origin_id",
    "origin_data",
    "vendor_id",
    "work_classification_id",
    "default_permission_template_id",
    "company_permission_template_id",
    "email_signature",
)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ISO2_RE = re.compile(r"^[A-Z]{2}$")


def full_name(row: dict) -> str:
    """'First Last' without blanks."""
    return " ".join(p for p in (row.get("first_name"), row.get("last_name")) if p)


def serialize_user(user: dict) -> dict:
    """A company user as the list returns it (the "normal" view, OAS24 `CompanyUser7`)."""
    return {
        **_user_scalars(user),
        "permission_template": None,
        "company_permission_template": None,
    }


def serialize_user_show(user: dict) -> dict:
    """A company user as show, create, update and sync return it (OAS24 `CompanyUser2`): the
    list's scalars plus a few more, without the two permission-template objects."""
    return {
        **_user_scalars(user),
        "is_insurance_manager": user.get("is_insurance_manager", False),
        "default_permission_template_id": user.get("default_permission_template_id"),
        "company_permission_template_id": user.get("company_permission_template_id"),
        "locale": user.get("locale"),
    }


def _user_scalars(user: dict) -> dict:
    first, last = user.get("first_name"), user.get("last_name")
    return {
        "id": user["id"],
        "first_name": first,
        "last_name": last,
        "name": full_name(user),
        "initials": user.get("initials") or "".join(p[0] for p in (first, last) if p).upper(),
        "email_address": user.get("email_address"),
        "email_signature": user.get("email_signature"),
        "job_title": user.get("job_title"),
        "employee_id": user.get("employee_id"),
        "is_employee": user.get("is_employee", False),
        "is_active": user.get("is_active", True),
        "business_phone": user.get("business_phone"),
        "business_phone_extension": user.get("business_phone_extension"),
        "mobile_phone": user.get("mobile_phone"),
        "fax_number": user.get("fax_number"),
        "address": user.get("address"),
        "city": user.get("city"),
        "state_code": user.get("state_code"),
        "zip": user.get("zip"),
        "country_code": user.get("country_code"),
        "notes": user.get("notes"),
        "avatar": None,
        "business_id": user.get("business_id"),
        "contact_id": user.get("contact_id"),
        "erp_integrated_accountant": user.get("erp_integrated_accountant", False),
        "last_login_at": user.get("last_login_at"),
        "welcome_email_sent_at": user.get("welcome_email_sent_at"),
        "created_at": user["created_at"],
        "updated_at": user["updated_at"],
        "origin_id": user.get("origin_id"),
        "origin_data": user.get("origin_data"),
        "work_classification_id": user.get("work_classification_id"),
        "vendor": user.get("vendor"),
    }


def _validate_user(store: Store, company_id: int, attrs: dict, own: dict | None) -> dict:
    """Clean user attributes or raise ValidationError / ApiError(409)."""
    attrs = pick(attrs, USER_FIELDS)
    if "origin_id" in attrs:
        attrs["origin_id"] = as_origin_id(attrs["origin_id"])
    merged = {**(own or {}), **attrs}
    errors: dict[str, list[str]] = {}
    if not (merged.get("last_name") or "").strip():
        errors["last_name"] = ["can't be blank"]
    email = (merged.get("email_address") or "").strip()
    if own is None or "email_address" in attrs:
        if not email:
            errors["email_address"] = ["can't be blank"]
        elif not EMAIL_RE.match(email):
            errors["email_address"] = ["is invalid"]
    for key in ("state_code", "country_code"):
        value = attrs.get(key)
        if value not in (None, "") and not ISO2_RE.match(str(value)):
            errors[key] = ["must be an ISO-3166 alpha-2 code"]
    if errors:
        raise ValidationError(errors)
    check_origin_unique("users", attrs.get("origin_id"), company_id, own and own["id"])
    if email and (own is None or "email_address" in attrs):
        lowered = email.lower()
        with store.lock:
            for other in store.table("users").values():
                if (
                    other["company_id"] == company_id
                    and (other.get("email_address") or "").lower() == lowered
                    and (own is None or other["id"] != own["id"])
                ):
                    raise ApiError(
                        409,
                        "Email address has already been taken",
                        {"errors": {"email_address": ["has already been taken"]}},
                    )
    return attrs


def create_user(
    store: Store, company_id: int, attrs: dict, source_application_id: str | None = None
) -> dict:
    """Validate and add a directory user (and the matching person)."""
    clean = _validate_user(store, company_id, attrs, None)
    record = {key: None for key in USER_FIELDS}
    record.update(
        company_id=company_id,
        is_employee=False,
        is_active=True,
        vendor=None,
        last_login_at=None,
        is_admin=False,
    )
    record.update(clean)
    user = store.insert("users", record, source_application_id=source_application_id)
    store.insert(
        "people",
        {
            "company_id": company_id,
            "user_id": user["id"],
            "first_name": user.get("first_name"),
            "last_name": user.get("last_name"),
            "employee_id": user.get("employee_id"),
            "is_employee": user.get("is_employee"),
            "is_active": user.get("is_active"),
            "email": user.get("email_address"),
            "origin_id": None,
            "work_classification_id": None,
        },
    )
    return user


def update_user(
    store: Store, user: dict, attrs: dict, source_application_id: str | None = None
) -> dict:
    """Validate and apply a partial update to a directory user."""
    clean = _validate_user(store, user["company_id"], attrs, user)
    updated = store.update("users", user["id"], clean, source_application_id=source_application_id)
    mirrored = {
        "first_name": updated.get("first_name"),
        "last_name": updated.get("last_name"),
        "employee_id": updated.get("employee_id"),
        "is_employee": updated.get("is_employee"),
        "is_active": updated.get("is_active"),
        "email": updated.get("email_address"),
    }
    with store.lock:
        people = [p for p in store.table("people").values() if p.get("user_id") == user["id"]]
    for person in people:
        store.update("people", person["id"], mirrored)
    return updated


def _company_user(company_id: int, user_id: int) -> dict:
    user = current_store().get("users", user_id)
    if user is None or user["company_id"] != company_id:
        raise not_found("User")
    return user


USER_VIEWS = ("normal", "extended", "ids_only")


def _list_serializer(version: str):
    """The list item shape for this version: v1.3 takes `view` (ids_only, extended, normal;
    default normal); earlier versions have no `view` and ignore it, as Rails ignores unknown
    params. An unknown view on v1.3 is refused (the stricter reading)."""
    if version != "v1.3":
        return serialize_user
    view = request.args.get("view") or "normal"
    if view not in USER_VIEWS:
        raise bad_request("view must be one of: extended, ids_only, normal")
    if view == "ids_only":
        return lambda user: {"id": user["id"]}
    return serialize_user  # extended: Procore documents no extra fields, so normal's


def _list_users(company_id: int, active: bool, version: str = "v1.0"):
    serialize = _list_serializer(version)
    rows = [
        u
        for u in current_store().select_by("users", "company_id", company_id)
        if bool(u.get("is_active", True)) is active
    ]
    rows = apply_common_filters(
        rows,
        origin_id=True,
        search_fields=("email_address", "job_title", "first_name", "last_name"),
    )
    vendor_ids = request.args.getlist("filters[vendor_id][]") + request.args.getlist(
        "filters[vendor_id]"
    )
    if vendor_ids:
        rows = [u for u in rows if str((u.get("vendor") or {}).get("id")) in set(vendor_ids)]
    return paginate(rows, serialize)


@bp.get(f"/{VERSIONS}/companies/<int:company_id>/users")
def list_users(version: str, company_id: int):
    """Active directory users of a company."""
    return _list_users(scoped_company(company_id), active=True, version=version)


@bp.get("/v1.0/companies/<int:company_id>/users/inactive")
def list_inactive_users(company_id: int):
    """Inactive directory users of a company."""
    return _list_users(scoped_company(company_id), active=False)


@bp.get(f"/{VERSIONS}/companies/<int:company_id>/users/<int:user_id>")
def show_user(version: str, company_id: int, user_id: int):
    """One directory user."""
    return jsonify(serialize_user_show(_company_user(scoped_company(company_id), user_id)))


@bp.post(f"/{VERSIONS}/companies/<int:company_id>/users")
def create_user_view(version: str, company_id: int):
    """Create a directory user: 201, 409 on a taken email, 422 on field errors."""
    company_id = scoped_company(company_id)
    attrs = wrapped(json_body(), "user")
    user = create_user(current_store(), company_id, attrs, source_app())
    return jsonify(serialize_user_show(user)), 201


@bp.patch(f"/{VERSIONS}/companies/<int:company_id>/users/<int:user_id>")
def update_user_view(version: str, company_id: int, user_id: int):
    """Partial update of a directory user."""
    user = _company_user(scoped_company(company_id), user_id)
    attrs = wrapped(json_body(), "user")
    return jsonify(serialize_user_show(update_user(current_store(), user, attrs, source_app())))


@bp.patch(f"/{VERSIONS}/companies/<int:company_id>/users/sync")
def sync_users(version: str, company_id: int):
    """Bulk upsert of directory users by id or origin_id (§9.1)."""
    company_id = scoped_company(company_id)
    updates = check_sync_size(json_body().get("updates"))
    store = current_store()

    def find_by_id(raw):
        try:
            user = store.get("users", int(raw))
        except (TypeError, ValueError):
            return None
        return user if user and user["company_id"] == company_id else None

    result = run_sync(
        updates,
        find_by_id=find_by_id,
        find_by_origin=lambda origin: find_origin("users", origin, company_id=company_id),
        create=lambda item: create_user(store, company_id, item, source_app()),
        update=lambda user, item: update_user(
            store, user, {k: v for k, v in item.items() if k != "id"}, source_app()
        ),
        serialize=serialize_user_show,
    )
    return jsonify(result)


# -- people ------------------------------------------------------------------------------
PERSON_FIELDS = ("first_name", "last_name", "employee_id", "is_employee", "origin_id")


def serialize_person(person: dict) -> dict:
    """A company person; its id is the `party_id` of timecard entries."""
    return {
        "id": person["id"],
        "first_name": person.get("first_name"),
        "last_name": person.get("last_name"),
        "name": full_name(person),
        "employee_id": person.get("employee_id"),
        "is_employee": person.get("is_employee", False),
        "user_id": person.get("user_id"),
        "user_uuid": None,
        "work_classification_id": person.get("work_classification_id"),
        "origin_id": person.get("origin_id"),
        "contact": {"is_active": person.get("is_active", True), "email": person.get("email")},
    }


@bp.get("/v1.0/companies/<int:company_id>/people")
def list_people(company_id: int):
    """Company people (login users and reference users)."""
    company_id = scoped_company(company_id)
    store = current_store()
    with store.lock:
        rows = [p for p in store.table("people").values() if p["company_id"] == company_id]
    args = request.args
    if args.get("filters[reference_users_only]") == "true":
        rows = [p for p in rows if p.get("user_id") is None]
    if args.get("filters[without_reference_users]") == "true":
        rows = [p for p in rows if p.get("user_id") is not None]
    if args.get("filters[is_employee]") in ("true", "false"):
        wanted = args["filters[is_employee]"] == "true"
        rows = [p for p in rows if bool(p.get("is_employee")) is wanted]
    rows = apply_common_filters(rows, ranges=(), search_fields=("email", "employee_id"))
    return paginate(rows, serialize_person)


@bp.get("/v1.0/companies/<int:company_id>/people/<int:person_id>")
def show_person(company_id: int, person_id: int):
    """One company person."""
    company_id = scoped_company(company_id)
    person = current_store().get("people", person_id)
    if person is None or person["company_id"] != company_id:
        raise not_found("Person")
    return jsonify(serialize_person(person))


@bp.post("/v1.0/companies/<int:company_id>/people")
def create_person(company_id: int):
    """Create a reference person (no login): 201, 422 without last_name."""
    company_id = scoped_company(company_id)
    attrs = pick(wrapped(json_body(), "person"), (*PERSON_FIELDS, "active"))
    if not (attrs.get("last_name") or "").strip():
        raise ValidationError({"last_name": ["can't be blank"]})
    origin = as_origin_id(attrs.get("origin_id"))
    check_origin_unique("people", origin, company_id)
    person = current_store().insert(
        "people",
        {
            "company_id": company_id,
            "user_id": None,
            "first_name": attrs.get("first_name"),
            "last_name": attrs["last_name"],
            "employee_id": attrs.get("employee_id"),
            "is_employee": bool(attrs.get("is_employee", False)),
            "is_active": bool(attrs.get("active", True)),
            "email": None,
            "origin_id": origin,
            "work_classification_id": None,
        },
        source_application_id=g.get("client_id"),
    )
    return jsonify(serialize_person(person)), 201
