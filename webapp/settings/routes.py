"""Settings: the admin's hub (Integrations lives here)."""

from flask import Blueprint, render_template

from webapp.tenancy import admin_required

bp = Blueprint("settings", __name__, url_prefix="/settings")


@bp.get("/")
@admin_required
def index():
    return render_template("settings/index.html")
