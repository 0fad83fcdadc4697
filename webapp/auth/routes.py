"""Log in and out."""

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from webapp.auth.throttle import clear_failures, is_throttled, record_failure
from webapp.extensions import db
from webapp.models import User
from webapp.models.base import utcnow

bp = Blueprint("auth", __name__)


def home_url_for(user: User) -> str:
    """Where a user lands after logging in."""
    if user.can_approve:
        return url_for("timecards.approvals")
    return url_for("timecards.my_time")


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
        identifier = request.form.get("identifier", "").strip().lower()
        password = request.form.get("password", "")
        if is_throttled(identifier, request.remote_addr):
            error = "Too many failed attempts. Wait a few minutes and try again."
            return render_template("auth/login.html", error=error, identifier=identifier), 429
        user = db.session.scalar(
            sa.select(User).where(sa.or_(User.email == identifier, User.username == identifier))
        )
        if user is None or not user.check_password(password) or not user.active:
            record_failure(identifier, request.remote_addr)
            error = "That email/username and password do not match an active account."
            return render_template("auth/login.html", error=error, identifier=identifier), 401
        clear_failures(identifier, request.remote_addr)
        session.clear()  # a fresh session on login (no fixation)
        login_user(user)
        user.last_login_at = utcnow()
        db.session.commit()
        return redirect(home_url_for(user))
    return render_template("auth/login.html", error=error, identifier=identifier)


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
