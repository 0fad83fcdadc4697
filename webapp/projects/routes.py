"""Placeholder: replaced by the admin pages."""

from flask import Blueprint

from webapp.tenancy import admin_required

bp = Blueprint("projects", __name__, url_prefix="/projects")


@bp.get("/")
@admin_required
def index():
    return "projects"
