"""Users of a company: search, create, edit, deactivate (admin pages and imports)."""

from functools import lru_cache
from zoneinfo import available_timezones

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.models import Role, User
from webapp.services.search import matching_any

# Fields an admin may set through the form; company_id and password_hash never come from input.
USER_FIELDS = ("first_name", "last_name", "username", "email", "phone", "employee_id", "role")


class ValidationFailed(ValueError):
    """Input refused: `errors` maps each field name to a message shown beside it."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@lru_cache(maxsize=1)
def time_zone_names() -> tuple[str, ...]:
    """IANA time zone names a user may pick, sorted."""
    return tuple(sorted(z for z in available_timezones() if "/" in z or z == "UTC"))


def search_users(company_id: int, q: str = "", without_password: bool = False) -> sa.Select:
    """Users of the company matching `q` in name, username, email or employee id, by name."""
    query = sa.select(User).where(User.company_id == company_id)
    if without_password:
        query = query.where(sa.or_(User.password_hash.is_(None), User.password_hash == ""))
    query = matching_any(
        query,
        q,
        User.first_name + " " + User.last_name,
        User.username,
        User.email,
        User.employee_id,
    )
    return query.order_by(User.last_name, User.first_name, User.id)


# Usernames and emails are unique across the installation, but an admin may only learn that
# one is taken by a user of their own company: for anyone else's the message is neutral.
USERNAME_TAKEN = "That username is already taken; choose another."
USERNAME_UNUSABLE = "This username cannot be used; choose another."
EMAIL_TAKEN = "Another user already has this email address."
EMAIL_UNUSABLE = "This email address cannot be used."


def uniqueness_errors(company_id: int, data: dict, user_id: int | None = None) -> dict[str, str]:
    """Messages for a username/email taken anywhere (precise only within the company), or
    an employee id taken in the company."""
    errors: dict[str, str] = {}
    others = sa.select(User.company_id)
    if user_id:
        others = others.where(User.id != user_id)
    for field, taken, unusable in (
        ("username", USERNAME_TAKEN, USERNAME_UNUSABLE),
        ("email", EMAIL_TAKEN, EMAIL_UNUSABLE),
    ):
        if not data.get(field):
            continue
        holder = db.session.scalar(others.where(getattr(User, field) == data[field]).limit(1))
        if holder is not None:
            errors[field] = taken if holder == company_id else unusable
    if data.get("employee_id") and db.session.scalar(
        others.where(User.company_id == company_id, User.employee_id == data["employee_id"]).limit(
            1
        )
    ):
        errors["employee_id"] = "Another user in your company has this employee id."
    return errors


def other_active_admins(company_id: int, user_id: int) -> int:
    """How many active admins the company has besides `user_id`."""
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(User)
        .where(
            User.company_id == company_id,
            User.role == Role.ADMIN,
            User.active.is_(True),
            User.id != user_id,
        )
    )


def create_user(company_id: int, data: dict) -> User:
    """Create a user in the company from cleaned `data`; raises ValidationFailed."""
    errors = uniqueness_errors(company_id, data)
    if errors:
        raise ValidationFailed(errors)
    user = User(company_id=company_id, time_zone=data["time_zone"])
    for field in USER_FIELDS:
        setattr(user, field, data[field])
    if data.get("password"):
        user.set_password(data["password"])
    db.session.add(user)
    _commit_or_refuse()
    return user


def update_user(user: User, data: dict) -> User:
    """Apply cleaned `data` to `user`; refuses to demote the last active admin."""
    errors = uniqueness_errors(user.company_id, data, user_id=user.id)
    if (
        user.role == Role.ADMIN
        and user.active
        and data["role"] != Role.ADMIN
        and other_active_admins(user.company_id, user.id) == 0
    ):
        errors["role"] = "This is the last active admin; make someone else an admin first."
    if errors:
        raise ValidationFailed(errors)
    for field in USER_FIELDS:
        setattr(user, field, data[field])
    user.time_zone = data["time_zone"]
    if data.get("password"):
        user.set_password(data["password"])
    _commit_or_refuse()
    return user


def set_user_active(user: User, active: bool, acting_user_id: int) -> User:
    """Deactivate or reactivate `user`; an admin cannot deactivate themselves or the last admin."""
    if not active:
        if user.id == acting_user_id:
            raise ValidationFailed({"active": "You cannot deactivate your own account."})
        if user.role == Role.ADMIN and other_active_admins(user.company_id, user.id) == 0:
            raise ValidationFailed({"active": "This is the last active admin."})
    user.active = active
    user.end_sessions()  # a deactivated user's open sessions end now, not when they expire
    db.session.commit()
    return user


def _commit_or_refuse() -> None:
    """Commit, turning a unique-constraint race into a field error with nothing saved."""
    try:
        db.session.commit()
    except IntegrityError as error:
        db.session.rollback()
        message = str(error.orig).lower()
        # A race with another request: the holder's company is unknown, so stay neutral.
        if "email" in message:
            errors = {"email": EMAIL_UNUSABLE}
        elif "employee_id" in message:
            errors = {"employee_id": "Another user has this employee id."}
        else:
            errors = {"username": USERNAME_UNUSABLE}
        raise ValidationFailed(errors) from error
