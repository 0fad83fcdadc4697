"""The project form: parse and check request.form by hand, one message per field."""

from decimal import Decimal, InvalidOperation

from webapp.inputs import parse_id
from webapp.models import TimeEntryMode
from webapp.services.projects import ISO_COUNTRY_CODES

TEXT_LIMITS = {
    "name": ("Name", 200),
    "number": ("Number", 50),
    "street": ("Street", 200),
    "city": ("City", 100),
    "state": ("State", 50),
    "zip": ("Zip", 20),
}
COORDINATE_STEP = Decimal("0.000001")


def _coordinate(form, name: str, label: str, limit: int, errors: dict) -> Decimal | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        errors[name] = f"{label} must be a number like 40.712800."
        return None
    if not -limit <= value <= limit:
        errors[name] = f"{label} must be between -{limit} and {limit}."
        return None
    return value.quantize(COORDINATE_STEP)


def clean_project_input(form) -> tuple[dict, dict[str, str]]:
    """Parse a project form into typed values and per-field errors."""
    data: dict = {}
    errors: dict[str, str] = {}
    for name, (label, limit) in TEXT_LIMITS.items():
        value = (form.get(name) or "").strip()
        if len(value) > limit:
            errors[name] = f"{label} must be at most {limit} characters."
        data[name] = value or None
    if not data["name"]:
        errors["name"] = "Name is required."

    country = (form.get("country") or "").strip().upper()
    if country and country not in ISO_COUNTRY_CODES:
        errors["country"] = "Use the two-letter ISO country code, like US or CA."
    data["country"] = country or None

    data["latitude"] = _coordinate(form, "latitude", "Latitude", 90, errors)
    data["longitude"] = _coordinate(form, "longitude", "Longitude", 180, errors)
    one_missing = (data["latitude"] is None) != (data["longitude"] is None)
    if one_missing and not errors.get("latitude") and not errors.get("longitude"):
        missing = "latitude" if data["latitude"] is None else "longitude"
        errors[missing] = "Enter both latitude and longitude, or neither."

    data["active"] = form.get("active") in ("on", "1", "true", "y")
    try:
        data["time_entry_mode"] = TimeEntryMode(form.get("time_entry_mode", ""))
    except ValueError:
        errors["time_entry_mode"] = "Choose how workers enter time."

    supervisor_ids = []
    for raw in form.getlist("supervisor_ids") if hasattr(form, "getlist") else []:
        supervisor_id = parse_id(raw)
        if supervisor_id is None:
            errors["supervisor_ids"] = "Choose supervisors from the list."
        else:
            supervisor_ids.append(supervisor_id)
    data["supervisor_ids"] = supervisor_ids
    return data, errors
