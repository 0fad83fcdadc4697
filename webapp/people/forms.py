"""The user form: parse and check request.form by hand, one message per field."""

import re

from webapp.models import Role
from webapp.services.people import time_zone_names

# Procore imports use the login email as the username, so '@' and '+' are allowed too.
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@+-]{2,79}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$")
PHONE_RE = re.compile(r"^[0-9+()\-. x]{3,40}$")
EMPLOYEE_ID_RE = re.compile(r"^[A-Za-z0-9._\-/ ]{1,40}$")
MIN_PASSWORD_LENGTH = 8


def clean_user_input(form) -> tuple[dict, dict[str, str]]:
    """Parse a user form (a mapping of strings) into typed values and per-field errors."""
    data: dict = {}
    errors: dict[str, str] = {}

    def text(name: str) -> str:
        return (form.get(name) or "").strip()

    for name, label in (("first_name", "First name"), ("last_name", "Last name")):
        value = text(name)
        if not value:
            errors[name] = f"{label} is required."
        elif len(value) > 100:
            errors[name] = f"{label} must be at most 100 characters."
        data[name] = value

    username = text("username").lower()
    if not username:
        errors["username"] = "Username is required."
    elif not USERNAME_RE.match(username):
        errors["username"] = (
            "Use 3-80 lower-case letters, digits, dots, dashes, underscores, @ or +, "
            "starting with a letter or digit."
        )
    data["username"] = username

    email = text("email").lower()
    if email and (len(email) > 254 or not EMAIL_RE.match(email)):
        errors["email"] = "Enter a valid email address, like name@example.com."
    data["email"] = email or None

    phone = text("phone")
    if phone and not PHONE_RE.match(phone):
        errors["phone"] = "Use digits and + ( ) - . x only (up to 40 characters)."
    data["phone"] = phone or None

    employee_id = text("employee_id")
    if employee_id and not EMPLOYEE_ID_RE.match(employee_id):
        errors["employee_id"] = "Use up to 40 letters, digits, spaces or . _ - /."
    data["employee_id"] = employee_id or None

    try:
        data["role"] = Role(text("role"))
    except ValueError:
        errors["role"] = "Choose a role."

    time_zone = text("time_zone")
    if time_zone not in time_zone_names():
        errors["time_zone"] = "Choose a time zone from the list."
    data["time_zone"] = time_zone

    password = form.get("password") or ""
    if password and len(password) < MIN_PASSWORD_LENGTH:
        errors["password"] = f"Use at least {MIN_PASSWORD_LENGTH} characters, or leave it empty."
    data["password"] = password or None
    return data, errors


def clean_new_password(form) -> tuple[str, dict[str, str]]:
    """A password chosen through an invite link: long enough, typed the same twice."""
    password = form.get("password") or ""
    confirm = form.get("confirm") or ""
    errors: dict[str, str] = {}
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        errors["password"] = f"Use at least {MIN_PASSWORD_LENGTH} characters."
    elif confirm != password:
        errors["confirm"] = "The two passwords do not match; type the same password twice."
    return password, errors
