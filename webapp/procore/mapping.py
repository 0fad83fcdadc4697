"""Pure functions: Procore JSON -> our fields, the Auto Import guidelines, payload hashes.

Nothing here touches the database or the network, so every rule is testable on its own
(and fuzzable: any JSON in, a dict out, never an exception).
"""

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

USER = "user"
PROJECT = "project"
COST_CODE = "cost_code"
ENTITY_TYPES = (USER, PROJECT, COST_CODE)

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
USERNAME_RE = re.compile(r"^[a-z0-9._@+-]{3,80}$")
ROLES = ("admin", "manager", "supervisor", "worker")

# The Auto Import guidelines, worded as the help tooltip shows them.
USER_GUIDELINES = (
    "First and last name are filled in.",
    "A valid email address, not shared with another Procore profile being imported "
    "and not already used by another Crewclock user.",
    "The profile is active in Procore.",
)
ADDRESS_FIELDS = (
    ("street", "street"),
    ("city", "city"),
    ("state", "state"),
    ("zip", "zip"),
    ("country", "country"),
)

# Editable fields of each kind, in table order: (our field, label).
EDITABLE_FIELDS = {
    USER: (
        ("first_name", "First name"),
        ("last_name", "Last name"),
        ("username", "Username"),
        ("email", "Email"),
        ("phone", "Phone"),
        ("employee_id", "Employee ID"),
        ("role", "Role"),
    ),
    PROJECT: (
        ("name", "Name"),
        ("number", "Number"),
        ("street", "Street"),
        ("city", "City"),
        ("state", "State"),
        ("zip", "Zip"),
        ("country", "Country"),
    ),
    COST_CODE: (
        ("code", "Code"),
        ("name", "Name"),
    ),
}
MAX_LENGTHS = {
    "first_name": 100,
    "last_name": 100,
    "username": 80,
    "email": 254,
    "phone": 40,
    "employee_id": 40,
    "name": 200,
    "number": 50,
    "street": 200,
    "city": 100,
    "state": 50,
    "zip": 20,
    "country": 2,
    "code": 50,
}


def _text(value: Any) -> str | None:
    """A stripped string, or None for blanks and non-scalars."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value).strip()
    return text or None


def procore_int(value: Any) -> int | None:
    """A whole number from a Procore payload (a JSON number or a numeric string), or None.

    Lenient on purpose, unlike webapp.inputs.parse_int for request input: Procore's own
    payloads may carry ids as strings, and a true/false is never an id."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's Infinity
        return None


def parse_procore_time(raw: Any) -> datetime | None:
    """A timestamp from a Procore payload ("2026-01-05T14:03:00Z"), timezone-aware, or None.

    A stamp without a zone is read as UTC: the columns it goes into refuse naive times."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def payload_hash(payload: Any) -> str:
    """A stable SHA-256 of a JSON payload (key order does not matter)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def procore_id(payload: Any) -> int | None:
    """The record's Procore id, or None when the payload has no usable id."""
    return procore_int(payload.get("id")) if isinstance(payload, dict) else None


# -- users -------------------------------------------------------------------------------
def user_fields(payload: dict) -> dict:
    """Our user fields from a Procore company user."""
    email = _text(payload.get("email_address"))
    return {
        "first_name": _text(payload.get("first_name")),
        "last_name": _text(payload.get("last_name")),
        "username": email.lower() if email else None,
        "email": email.lower() if email else None,
        "phone": _text(payload.get("mobile_phone")) or _text(payload.get("business_phone")),
        "employee_id": _text(payload.get("employee_id")),
        "role": "worker",
    }


def user_active(payload: dict) -> bool:
    """True when Procore says the profile is active (missing means active)."""
    return payload.get("is_active", True) is not False


# -- projects ----------------------------------------------------------------------------
def project_fields(payload: dict) -> dict:
    """Our project fields from a Procore project."""
    country = _text(payload.get("country_code"))
    return {
        "name": _text(payload.get("name")),
        "number": _text(payload.get("project_number")),
        "street": _text(payload.get("address")),
        "city": _text(payload.get("city")),
        "state": _text(payload.get("state_code")),
        "zip": _text(payload.get("zip")),
        "country": country.upper() if country else None,
    }


def project_active(payload: dict) -> bool:
    """True unless Procore marks the project inactive."""
    return payload.get("active", True) is not False


# -- cost codes --------------------------------------------------------------------------
def cost_code_fields(payload: dict) -> dict:
    """Our cost code fields from a Procore standard cost code (code = the full code)."""
    return {
        "code": _text(payload.get("full_code")) or _text(payload.get("code")),
        "name": _text(payload.get("name")),
    }


def cost_code_parent_id(payload: dict) -> int | None:
    """The Procore id of the code's division (None for divisions themselves)."""
    return procore_int(payload.get("parent_id"))


# -- one entry point per kind ------------------------------------------------------------
def fields_for(entity_type: str, payload: dict) -> dict:
    """Our fields for a Procore payload of `entity_type`."""
    if entity_type == USER:
        return user_fields(payload)
    if entity_type == PROJECT:
        return project_fields(payload)
    return cost_code_fields(payload)


def effective_fields(entity_type: str, payload: dict, edited: dict | None) -> dict:
    """The fields an import would write: Procore's values with the admin's edits on top."""
    fields = fields_for(entity_type, payload)
    for key, value in (edited or {}).items():
        if key in fields:
            fields[key] = value
    return fields


def procore_active(entity_type: str, payload: dict) -> bool:
    """Whether Procore lists the record as active."""
    if entity_type == USER:
        return user_active(payload)
    if entity_type == PROJECT:
        return project_active(payload)
    return True


def clean_edit(entity_type: str, form: dict) -> tuple[dict, dict]:
    """Validate an inline edit: (cleaned values, {field: message}); only known fields."""
    cleaned: dict = {}
    errors: dict = {}
    for field, label in EDITABLE_FIELDS[entity_type]:
        value = _text(form.get(field))
        if value is not None and len(value) > MAX_LENGTHS.get(field, 200):
            errors[field] = f"{label} is too long (at most {MAX_LENGTHS[field]} characters)."
            continue
        cleaned[field] = value
    if entity_type == USER:
        for field in ("email", "username"):
            if cleaned.get(field):
                cleaned[field] = cleaned[field].lower()
        if cleaned.get("role") not in ROLES:
            errors["role"] = "Choose a role."
    if entity_type == PROJECT and cleaned.get("country"):
        cleaned["country"] = cleaned["country"].upper()
    for field, message in field_problems(entity_type, cleaned).items():
        errors.setdefault(field, message)
    return cleaned, errors


def field_problems(entity_type: str, fields: dict) -> dict:
    """Format problems of effective fields that block an import: {field: message}."""
    problems: dict = {}
    if entity_type == USER:
        if not fields.get("first_name"):
            problems["first_name"] = "First name is missing."
        if not fields.get("last_name"):
            problems["last_name"] = "Last name is missing."
        email = fields.get("email")
        if not email:
            problems["email"] = "Email address is missing."
        elif not EMAIL_RE.match(email):
            problems["email"] = "Email address is not valid."
        username = fields.get("username")
        if not username:
            problems["username"] = "Username is missing."
        elif not USERNAME_RE.match(username):
            problems["username"] = "Username must be 3–80 characters: letters, digits and . _ @ + -"
    elif entity_type == PROJECT:
        if not fields.get("name"):
            problems["name"] = "Name is missing."
        missing = [label for field, label in ADDRESS_FIELDS if not fields.get(field)]
        if missing:
            problems["street" if "street" in missing else missing[0]] = (
                "Address incomplete: " + ", ".join(missing) + " missing."
            )
        country = fields.get("country")
        if country and not re.fullmatch(r"[A-Z]{2}", country):
            problems["country"] = "Country must be a two-letter code such as US."
    else:
        if not fields.get("code"):
            problems["code"] = "Code is missing."
        if not fields.get("name"):
            problems["name"] = "Name is missing."
    return problems


def search_text(entity_type: str, fields: dict) -> str:
    """Lower-cased text the manual table's search matches against."""
    keys = {
        USER: ("first_name", "last_name", "email", "username", "employee_id"),
        PROJECT: ("name", "number", "city"),
        COST_CODE: ("code", "name"),
    }[entity_type]
    return " ".join(str(fields.get(k) or "") for k in keys).lower()[:2000]


def sort_key(entity_type: str, fields: dict) -> str:
    """The order the manual table lists rows in (last, first name; project name; code)."""
    if entity_type == USER:
        key = f"{fields.get('last_name') or ''} {fields.get('first_name') or ''}"
    elif entity_type == PROJECT:
        key = fields.get("name") or ""
    else:
        key = fields.get("code") or ""
    return key.lower()[:300]


def display_name(entity_type: str, fields: dict) -> str:
    """A short human label for summaries and reasons."""
    if entity_type == USER:
        name = " ".join(p for p in (fields.get("first_name"), fields.get("last_name")) if p)
        return name or fields.get("email") or "(no name)"
    if entity_type == PROJECT:
        number = fields.get("number")
        return (
            f"{number} {fields.get('name') or ''}".strip() if number else fields.get("name") or ""
        )
    return f"{fields.get('code') or ''} {fields.get('name') or ''}".strip()
