"""Placeholder: replaced by the time card pages."""

from flask import Blueprint
from flask_login import login_required

bp = Blueprint("timecards", __name__, url_prefix="/time")


@bp.get("/")
@login_required
def my_time():
    return "my time"


@bp.get("/approvals")
@login_required
def approvals():
    return "approvals"
