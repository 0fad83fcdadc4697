"""Users admin pages: list and search, create, edit, deactivate and reactivate, invite links."""

from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_login import current_user, login_user

from webapp.htmx import hx_redirect, is_fragment_request, render_fragment, render_page_or_fragment
from webapp.models import Role, User
from webapp.pagination import paginate
from webapp.people.forms import clean_user_input
from webapp.services import invites
from webapp.services import people as service
from webapp.tenancy import admin_required, current_company_id, get_scoped_or_404

bp = Blueprint("people", __name__, url_prefix="/users")

NEW_USER_DEFAULTS = {"role": Role.WORKER.value}


def form_context(values: dict, errors: dict, user: User | None = None) -> dict:
    return {
        "values": values,
        "errors": errors,
        "user": user,
        "roles": list(Role),
        "time_zones": service.time_zone_names(),
    }


def values_of(user: User) -> dict:
    return {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "username": user.username,
        "email": user.email or "",
        "phone": user.phone or "",
        "employee_id": user.employee_id or "",
        "role": user.role.value,
        "time_zone": user.time_zone,
    }


@bp.get("/")
@admin_required
def index():
    q = request.args.get("q", "").strip()
    no_password = request.args.get("password") == "none"
    page = paginate(service.search_users(current_company_id(), q, without_password=no_password))
    return render_page_or_fragment(
        "people/index.html", "people/_table.html", results=page, q=q, no_password=no_password
    )


@bp.route("/new", methods=["GET", "POST"])
@admin_required
def create():
    if request.method == "GET":
        values = dict(NEW_USER_DEFAULTS, time_zone=current_user.time_zone)
        return render_page_or_fragment(
            "people/form.html", "people/_form.html", **form_context(values, {})
        )
    data, errors = clean_user_input(request.form)
    if not errors:
        try:
            user = service.create_user(current_company_id(), data)
        except service.ValidationFailed as refused:
            errors = refused.errors
        else:
            flash(f"{user.name} was added.", "success")
            return hx_redirect(url_for("people.index", q=user.username))
    return render_page_or_fragment(
        "people/form.html", "people/_form.html", status=422, **form_context(request.form, errors)
    )


@bp.route("/<int:user_id>/edit", methods=["GET", "POST"])
@admin_required
def edit(user_id: int):
    user = get_scoped_or_404(User, user_id)
    if request.method == "GET":
        return render_page_or_fragment(
            "people/form.html", "people/_form.html", **form_context(values_of(user), {}, user)
        )
    data, errors = clean_user_input(request.form)
    if not errors:
        try:
            service.update_user(user, data)
        except service.ValidationFailed as refused:
            errors = refused.errors
        else:
            if user.id == current_user.id and data.get("password"):
                # Your own new password ends your other sessions, not the one you used.
                login_user(user)
            flash(f"{user.name} was saved.", "success")
            return hx_redirect(url_for("people.index", q=user.username))
    return render_page_or_fragment(
        "people/form.html",
        "people/_form.html",
        status=422,
        **form_context(request.form, errors, user),
    )


@bp.post("/<int:user_id>/deactivate")
@admin_required
def deactivate(user_id: int):
    return _set_active(get_scoped_or_404(User, user_id), False)


@bp.post("/<int:user_id>/reactivate")
@admin_required
def reactivate(user_id: int):
    return _set_active(get_scoped_or_404(User, user_id), True)


def _set_active(user: User, active: bool):
    error = None
    try:
        service.set_user_active(user, active, acting_user_id=current_user.id)
    except service.ValidationFailed as refused:
        error = refused.errors["active"]
    if is_fragment_request():
        return render_fragment(
            "people/_row.html", 422 if error else 200, user=user, row_error=error
        )
    if error:
        flash(error, "error")
    else:
        flash(f"{user.name} is now {'active' if active else 'deactivated'}.", "success")
    return redirect(url_for("people.index"), 303)


@bp.post("/<int:user_id>/invite-link")
@admin_required
def invite_link(user_id: int):
    """A fresh invite link to copy (nothing is stored: the link is signed)."""
    user = get_scoped_or_404(User, user_id)
    link, error = None, None
    try:
        link = invite_url(invites.make_invite_token(user))
    except invites.InviteRefused as refused:
        error = str(refused)
    response = render_page_or_fragment(
        "people/invite_link.html",
        "people/_invite_link.html",
        status=422 if error else 200,
        user=user,
        link=link,
        error=error,
        valid_days=invites.INVITE_MAX_AGE.days,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def invite_url(token: str) -> str:
    """The link to send: on PUBLIC_BASE_URL when set (behind a proxy), else this host."""
    base = (current_app.config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    if base:
        return base + url_for("auth.invite", token=token)
    return url_for("auth.invite", token=token, _external=True)
