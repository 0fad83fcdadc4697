"""Companies and who-am-I."""

from flask import g, jsonify, request

from procore_sandbox.api import bp
from procore_sandbox.api.common import (
    company_project,
    login_user,
    not_found,
    paginate,
    scoped_company,
    visible_company_ids,
)
from procore_sandbox.api.users import serialize_user
from procore_sandbox.context import current_store


def serialize_company(company: dict) -> dict:
    """A company as GET /rest/v1.0/companies lists it."""
    return {
        "id": company["id"],
        "name": company["name"],
        "is_active": company["is_active"],
        "logo_url": company.get("logo_url"),
        "pcn_business_experience": company.get("pcn_business_experience", False),
        "my_company": company.get("my_company", False),
    }


@bp.get("/v1.0/companies")
def list_companies():
    """Companies the token can act in."""
    store = current_store()
    ids = visible_company_ids()
    with store.lock:
        rows = [c for c in store.table("companies").values() if c["id"] in ids]
    return paginate(rows, serialize_company)


@bp.get("/v1.0/me")
def me():
    """The login behind the token: {id, login, name}; name only with company/project id,
    which must name the header's company (or one of its projects), else 404."""
    if request.args.get("company_id"):
        scoped_company(request.args["company_id"])
    if request.args.get("project_id"):
        company_project(request.args["project_id"])
    user = login_user()
    if user is None:
        # Client-credentials tokens act as the app's service account.
        return jsonify({"id": None, "login": g.client_id, "name": "Service Account"})
    body = {"id": user["id"], "login": user.get("email_address")}
    if request.args.get("company_id") or request.args.get("project_id"):
        body["name"] = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p)
    return jsonify(body)


@bp.get('/<any("v1.0","v1.1","v1.2","v1.3"):version>/companies/<int:company_id>/me')
def company_me(version: str, company_id: int):
    """The caller's directory record in a company."""
    scoped_company(company_id)
    user = login_user()
    if user is None:
        raise not_found("User")
    email = (user.get("email_address") or "").lower()
    store = current_store()
    with store.lock:
        for row in store.table("users").values():
            if (
                row["company_id"] == company_id
                and (row.get("email_address") or "").lower() == email
            ):
                return jsonify(serialize_user(row))
    raise not_found("User")
