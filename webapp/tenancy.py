"""Tenancy: every query is scoped to the signed-in user's company."""

from functools import wraps

import sqlalchemy as sa
from flask import abort
from flask_login import current_user, login_required

from webapp.extensions import db
from webapp.models import Role


def current_company_id() -> int:
    """The company of the signed-in user; 401 when nobody is signed in."""
    if not current_user.is_authenticated:
        abort(401)
    return current_user.company_id


def scoped(model) -> sa.Select:
    """A select of `model` limited to the current company."""
    return sa.select(model).where(model.company_id == current_company_id())


def get_scoped_or_404(model, object_id: int):
    """The current company's object with this id, or 404 (also for other companies' ids)."""
    obj = db.session.get(model, object_id)
    if obj is None or obj.company_id != current_company_id():
        abort(404)
    return obj


def require_role(*roles: Role):
    """Allow the view only to signed-in users with one of `roles` (403 otherwise)."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(*args, **kwargs):
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


admin_required = require_role(Role.ADMIN)
