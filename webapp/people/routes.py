"""Placeholder: replaced by the admin pages."""

from flask import Blueprint

from webapp.tenancy import admin_required

bp = Blueprint("people", __name__, url_prefix="/users")


@bp.get("/")
@admin_required
def index():
    return "people"
