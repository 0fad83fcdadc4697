"""Validation of the wizard's small forms: each returns (values, {field: message})."""

from webapp.inputs import parse_id
from webapp.models import SyncDirection, TimecardTrigger
from webapp.procore.mapping import ENTITY_TYPES


def entity_or_none(value: str) -> str | None:
    """A known entity type name, or None."""
    return value if value in ENTITY_TYPES else None


def validate_step1(form, lists: list[dict]) -> tuple[dict, dict]:
    """Step 1: a standard cost code list of the chosen company."""
    errors = {}
    list_id = parse_id(form.get("standard_cost_code_list_id"))
    names = {item["id"]: item["name"] for item in lists}
    if list_id not in names:
        errors["standard_cost_code_list_id"] = "Choose the Global (Standard) Cost Code List."
    return {"id": list_id, "name": names.get(list_id)}, errors


def validate_step5(form) -> tuple[dict, dict]:
    """Step 5: a direction per entity and when time cards are sent."""
    values, errors = {}, {}
    for field in ("users_direction", "projects_direction", "cost_codes_direction"):
        try:
            values[field] = SyncDirection(form.get(field, ""))
        except ValueError:
            errors[field] = "Choose a direction."
    try:
        values["timecard_trigger"] = TimecardTrigger(form.get("timecard_trigger", ""))
    except ValueError:
        errors["timecard_trigger"] = "Choose when time cards are sent."
    values["keep_crewclock_email"] = form.get("keep_crewclock_email") == "on"
    if values["keep_crewclock_email"] and values.get("users_direction") != SyncDirection.BOTH:
        # Sending our email back to Procore needs users to sync Crewclock -> Procore too.
        errors["keep_crewclock_email"] = (
            "Crewclock can keep its email only when users sync Both ways; choose Both ways "
            "for users or untick this."
        )
    return values, errors


LINE_ITEM_TYPE_FIELD = "labor_line_item_type_id"


def validate_line_item_type(
    form, types: list[dict], current_id: int | None, unavailable: str | None
) -> tuple[bool, dict | None, str | None]:
    """Step 5's labour line item type: (keep what is saved, the choice, the error).

    Empty means none; otherwise one of the listed types. When Procore could not list them,
    only the saved choice (or none) passes, so the rest of the step can still be saved.
    """
    if LINE_ITEM_TYPE_FIELD not in form:
        return True, None, None
    raw = str(form.get(LINE_ITEM_TYPE_FIELD) or "").strip()
    if not raw:
        return False, None, None
    chosen = parse_id(raw)
    by_id = {t["id"]: t for t in types}
    if chosen is not None and chosen in by_id:
        return False, by_id[chosen], None
    if unavailable:
        if chosen is not None and chosen == current_id:
            return True, None, None
        return False, None, unavailable
    return False, None, "Choose a line item type from the list, or none."
