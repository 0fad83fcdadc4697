"""Placeholder: replaced by the admin pages."""

from flask import Blueprint

from webapp.tenancy import admin_required

bp = Blueprint("costcodes", __name__, url_prefix="/cost-codes")


@bp.get("/")
@admin_required
def index():
    return "costcodes"
