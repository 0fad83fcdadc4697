"""The Procore REST API under /rest: one module per resource family.

Every route needs a live bearer token and the Procore-Company-Id header, except
/rest/v1.0/me and /rest/v1.0/companies for user tokens (client-credentials tokens need the
header there too, and so does /me when it is asked about a company or project). Views read
the header's company from g.company_id.
"""

from flask import Blueprint, g, request

from procore_sandbox.api.common import ApiError, authenticate, header_company_id

bp = Blueprint("api", __name__, url_prefix="/rest")

HEADER_EXEMPT_FOR_USERS = {"api.me", "api.list_companies"}
# Procore's /me reference: no header needed "unless a company_id or project_id parameter is
# also included" (procore-api.md §2.6, Correction); the stricter reading refuses it then.
SCOPING_PARAMS = ("company_id", "project_id")


@bp.before_request
def _authenticate_and_scope():
    authenticate()
    exempt = request.endpoint in HEADER_EXEMPT_FOR_USERS and g.token.get("user_id") is not None
    if exempt and request.endpoint == "api.me" and any(request.args.get(p) for p in SCOPING_PARAMS):
        exempt = False
    g.company_id = header_company_id(required=not exempt)


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return exc.response()


from procore_sandbox.api import (  # noqa: E402,F401  (routes register on import)
    companies,
    company_settings,
    cost_codes,
    projects,
    timecards,
    users,
)
