"""The company's Procore line item types (cost types), for step 5's labour choice."""

from webapp.procore.api import line_item_types_list
from webapp.services import imports

PER_PAGE = 100
MAX_PAGES = 5  # companies keep a handful of cost types; stop well before a runaway listing
# Procore's documented base_type values have no labour value (a company's labour cost type
# usually has base_type "other"), so a labour type is known by its name or code; "labor" as a
# base_type is still honoured where Procore sends it.
LABOUR_NAMES = {"labor", "labour"}
LABOUR_CODES = {"l", "lab", "labor", "labour"}


def is_labour(item: dict) -> bool:
    """Whether a Procore line item type looks like the labour cost type (a suggestion only)."""

    def text(key: str) -> str:
        value = item.get(key)
        return value.strip().lower() if isinstance(value, str) else ""

    return (
        text("base_type") == "labor" or text("name") in LABOUR_NAMES or text("code") in LABOUR_CODES
    )


def company_line_item_types(company_id: int) -> list[dict]:
    """The chosen Procore company's line item types, labour ones first (a small lookup).

    Raises ProcoreError when Procore cannot answer; the caller shows it beside the field.
    """
    settings = imports.settings_for(company_id)
    if settings.procore_company_id is None:
        return []
    fetch = imports.client_page_fetcher(company_id)
    listing = line_item_types_list(settings.procore_company_id)
    found: list[dict] = []
    for page in range(1, MAX_PAGES + 1):
        items, _total = fetch(listing.path, listing.params, page, PER_PAGE)
        found.extend(items)
        if len(items) < PER_PAGE:
            break
    types = [
        {
            "id": item["id"],
            "name": str(item.get("name") or item.get("code") or item["id"]),
            "code": item.get("code"),
            "labor": is_labour(item),
        }
        for item in found
        if isinstance(item, dict) and isinstance(item.get("id"), int)
    ]
    return sorted(types, key=lambda t: (not t["labor"], t["name"].lower()))


def apply_choice(settings, choice: dict | None) -> None:
    """Save the chosen line item type (None = send entries without one)."""
    settings.labor_line_item_type_id = choice["id"] if choice else None
    settings.labor_line_item_type_name = choice["name"] if choice else None
