"""Settings → Integrations: the list of integrations (Procore)."""

from flask import Blueprint, render_template

from webapp.tenancy import admin_required

bp = Blueprint("integrations", __name__, url_prefix="/settings/integrations")


@bp.get("/")
@admin_required
def index():
    return render_template("integrations/index.html")
