"""Log in and out, and set a password through an invite link."""

import secrets
from functools import cache

import sqlalchemy as sa
from flask import (
    Blueprint,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.auth import throttle
from webapp.extensions import db
from webapp.models import User
from webapp.models.base import utcnow
from webapp.people.forms import MIN_PASSWORD_LENGTH, clean_new_password
from webapp.services import invites

bp = Blueprint("auth", __name__)


def home_url_for(user: User) -> str:
    """Where a user lands after logging in."""
    if user.can_approve:
        return url_for("timecards.approvals")
    return url_for("timecards.my_time")


MAX_IDENTIFIER = 254  # the longest email address; nothing longer names an account


@cache
def _dummy_hash() -> str:
    """A hash made like real ones, checked when no password can match."""
    return generate_password_hash(secrets.token_hex(16))


def password_matches(user: User | None, password: str) -> bool:
    """Check the password in about the same time whether or not the account exists (or has
    a password yet), so the login's speed does not tell which usernames are real."""
    if user is None or not user.password_hash:
        check_password_hash(_dummy_hash(), password)
        return False
    return user.check_password(password)


@bp.get("/")
def index():
    if current_user.is_authenticated:
        return redirect(home_url_for(current_user))
    return redirect(url_for("auth.login"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated and request.method == "GET":
        return redirect(home_url_for(current_user))
    error = None
    identifier = ""
    if request.method == "POST":
        identifier = request.form.get("identifier", "").strip().lower()[:MAX_IDENTIFIER]
        password = request.form.get("password", "")
        address = request.remote_addr
        wait = throttle.seconds_to_wait(identifier, address)
        if wait:
            error = (
                f"Too many failed attempts. Wait {wait} second{'s' if wait != 1 else ''} "
                "and try again."
            )
            page = render_template("auth/login.html", error=error, identifier=identifier)
            return page, 429, {"Retry-After": str(wait)}
        user = db.session.scalar(
            sa.select(User).where(sa.or_(User.email == identifier, User.username == identifier))
        )
        if not password_matches(user, password) or not user.active:
            throttle.record_failure(identifier, address)
            error = "That email/username and password do not match an active account."
            return render_template("auth/login.html", error=error, identifier=identifier), 401
        throttle.record_success(identifier, address)
        session.clear()  # a fresh session on login (no fixation)
        login_user(user)
        user.last_login_at = utcnow()
        db.session.commit()
        return redirect(home_url_for(user))
    return render_template("auth/login.html", error=error, identifier=identifier)


@bp.post("/account/login-notices/dismiss")
@login_required
def dismiss_login_notices():
    """'Got it' on the notice that sync changed the person's login email."""
    from webapp.services import login_notices

    login_notices.dismiss(current_user.id)
    db.session.commit()
    return redirect(request.referrer or home_url_for(current_user), code=303)


@bp.post("/logout")
@login_required
def logout():
    # Logging out ends this user's sessions everywhere, so a copied cookie dies with it.
    current_user.end_sessions()
    db.session.commit()
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


INVITE_GONE = "This invite link has expired or was already used. Ask your admin for a new one."


def _keep_token_private(response):
    """The URL holds the token: send no Referer from this page and let nothing cache it."""
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _invite_gone():
    page = render_template(
        "errors/error.html", status=410, title="Invite link expired", message=INVITE_GONE
    )
    return _keep_token_private(make_response(page, 410))


@bp.route("/invite/<token>", methods=["GET", "POST"])
def invite(token: str):
    try:
        user = invites.user_for_invite(token)
    except invites.InviteInvalid:
        return _invite_gone()
    if current_user.is_authenticated and current_user.id != user.id:
        # Never switch accounts behind someone's back: they log out first, on purpose.
        page = render_template("auth/invite_signed_in.html")
        return _keep_token_private(make_response(page, 403))
    errors: dict[str, str] = {}
    if request.method == "POST":
        password, errors = clean_new_password(request.form)
        if not errors:
            try:
                user = invites.set_password_from_invite(token, password)
            except invites.InviteInvalid:
                return _invite_gone()
            session.clear()  # a fresh session on login (no fixation)
            login_user(user)
            user.last_login_at = utcnow()
            db.session.commit()
            flash(
                f"Welcome, {user.first_name}: your password is set. Next time, log in as "
                f"{user.username} with it.",
                "success",
            )
            return _keep_token_private(redirect(url_for("timecards.my_time"), 303))
    page = render_template(
        "auth/invite.html",
        invitee=user,
        errors=errors,
        min_length=MIN_PASSWORD_LENGTH,
    )
    return _keep_token_private(make_response(page, 422 if errors else 200))
