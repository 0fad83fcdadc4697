"""The cost code form: parse and check request.form by hand, one message per field."""

import re

from webapp.inputs import parse_id

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/ ]{0,49}$")


def clean_cost_code_input(form) -> tuple[dict, dict[str, str]]:
    """Parse a cost code form into typed values and per-field errors."""
    errors: dict[str, str] = {}
    code = (form.get("code") or "").strip()
    if not code:
        errors["code"] = "Code is required, like 03-300."
    elif not CODE_RE.match(code):
        errors["code"] = (
            "Use up to 50 letters, digits, dots, dashes, slashes or spaces, like 03-300."
        )
    name = (form.get("name") or "").strip()
    if not name:
        errors["name"] = "Name is required."
    elif len(name) > 200:
        errors["name"] = "Name must be at most 200 characters."
    phase = (form.get("phase") or "").strip()
    if len(phase) > 100:
        errors["phase"] = "Phase must be at most 100 characters."
    raw_parent = (form.get("parent_id") or "").strip()
    parent_id = None
    if raw_parent:
        parent_id = parse_id(raw_parent)
        if parent_id is None:
            errors["parent_id"] = "Choose a division from the list."
    data = {
        "code": code,
        "name": name,
        "phase": phase or None,
        "parent_id": parent_id,
        "active": form.get("active") in ("on", "1", "true", "y"),
    }
    return data, errors


def clean_project_ids(form) -> tuple[list[int], list[int], dict[str, str]]:
    """The project ids ticked, and those shown, on the cost code's 'Used on projects' form."""
    lists = []
    for name in ("project_ids", "shown_project_ids"):
        ids = [parse_id(raw) for raw in form.getlist(name)]
        if None in ids:
            return [], [], {"project_ids": "Choose projects from the list."}
        lists.append(ids)
    return lists[0], lists[1], {}
