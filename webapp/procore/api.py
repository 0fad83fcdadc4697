"""ProcoreAPI: one method per Procore endpoint Crewclock uses.

This is the only module in webapp/ that writes Procore paths and their query parameters;
everything else asks for an endpoint by name. The transport (hosts, headers, pagination,
retries, typed errors) stays in ProcoreClient; nothing here retries or interprets answers.

Listings that other code carries as data (the set-up import pages them through its own
page fetcher, the permissions check probes their first row) are built by the pure functions
below; ProcoreAPI pages or fetches them with the client.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from webapp.procore.client import Page, ProcoreClient

ME = "/rest/v1.0/me"
COMPANIES = "/rest/v1.0/companies"
# The only calls Procore lets a user-level token make without Procore-Company-Id (so before a
# company is chosen), and only while they name no company or project.
COMPANY_FREE_PATHS = frozenset({ME, COMPANIES})

LIST_PAGE_SIZE = 100


class Endpoint(NamedTuple):
    """A GET endpoint's path and its fixed query (a listing's paging is added when paged)."""

    path: str
    params: Mapping[str, Any]

    def changed_within(self, window: str) -> Endpoint:
        """The same listing limited to records updated within `window` ("from...to")."""
        return Endpoint(self.path, {**self.params, "filters[updated_at]": window})

    def first_row(self) -> Endpoint:
        """The listing's first page of one row: the cheapest proof it can be read."""
        return Endpoint(self.path, {**self.params, "page": 1, "per_page": 1})


# ---------------------------------------------------------------- endpoints as data
def users_list(procore_company_id: int) -> Endpoint:
    """The company's active users (Procore lists deactivated ones separately)."""
    return Endpoint(f"/rest/v1.0/companies/{procore_company_id}/users", {})


def inactive_users_list(procore_company_id: int) -> Endpoint:
    """The company's deactivated users."""
    return Endpoint(f"/rest/v1.0/companies/{procore_company_id}/users/inactive", {})


def user_show(procore_company_id: int, user_id: int) -> Endpoint:
    """One company user by id."""
    return Endpoint(f"/rest/v1.0/companies/{procore_company_id}/users/{user_id}", {})


def projects_list(procore_company_id: int, *, include_inactive: bool) -> Endpoint:
    """The company's projects; Procore lists only active ones unless asked for all."""
    params: dict[str, Any] = {"company_id": procore_company_id}
    if include_inactive:
        params["filters[by_status]"] = "All"
    return Endpoint("/rest/v1.1/projects", params)


def project_show(procore_company_id: int, project_id: int) -> Endpoint:
    """One project by id."""
    return Endpoint(f"/rest/v1.0/projects/{project_id}", {"company_id": procore_company_id})


def standard_cost_code_lists_list(procore_company_id: int) -> Endpoint:
    """The company's standard cost code lists."""
    return Endpoint("/rest/v1.0/standard_cost_code_lists", {"company_id": procore_company_id})


def standard_cost_codes_list(procore_company_id: int, list_id: int) -> Endpoint:
    """The standard cost codes of one list."""
    return Endpoint(
        "/rest/v1.0/standard_cost_codes",
        {"company_id": procore_company_id, "standard_cost_code_list_id": list_id},
    )


def standard_cost_code_show(procore_company_id: int, list_id: int, code_id: int) -> Endpoint:
    """One standard cost code; Procore only shows it within a named list (400 without one)."""
    return Endpoint(
        f"/rest/v1.0/standard_cost_codes/{code_id}",
        {"company_id": procore_company_id, "standard_cost_code_list_id": list_id},
    )


def line_item_types_list(procore_company_id: int) -> Endpoint:
    """The company's line item types (cost types)."""
    return Endpoint("/rest/v1.0/line_item_types", {"company_id": procore_company_id})


def timecard_time_types_list(project_id: int) -> Endpoint:
    """Timecard time types, asked through a project (they are company-wide)."""
    return Endpoint("/rest/v1.0/timecard_time_types", {"project_id": project_id})


def company_timecard_time_types(procore_company_id: int) -> Endpoint:
    """The company's timecard time types (not paginated)."""
    return Endpoint(f"/rest/v1.0/companies/{procore_company_id}/timecard_time_types", {})


def timecard_entries_list(project_id: int, start_date: str, end_date: str) -> Endpoint:
    """A project's timecard entries dated start_date..end_date (ISO dates)."""
    return Endpoint(
        f"/rest/v1.0/projects/{project_id}/timecard_entries",
        {"start_date": start_date, "end_date": end_date},
    )


def _timecard_entry(project_id: int, entry_id: int) -> str:
    return f"/rest/v1.0/projects/{project_id}/timecard_entries/{entry_id}"


def _hook(hook_id: int) -> str:
    return f"/rest/v1.0/webhooks/hooks/{hook_id}"


# ---------------------------------------------------------------------- the calls
class ProcoreAPI:
    """Crewclock's Procore endpoints over one ProcoreClient (methods mirror Procore's)."""

    def __init__(self, client: ProcoreClient) -> None:
        self.client = client

    # -- endpoints carried as data -----------------------------------------------------
    def pages(
        self, endpoint: Endpoint, per_page: int = LIST_PAGE_SIZE, *, start_page: int = 1
    ) -> Iterator[Page]:
        """The listing's pages, streamed (resume at start_page after a checkpoint)."""
        if start_page == 1:  # the plain form: stand-in clients need not know resuming
            return self.client.iter_pages(endpoint.path, endpoint.params, per_page)
        return self.client.iter_pages(
            endpoint.path, endpoint.params, per_page, start_page=start_page
        )

    def fetch(self, endpoint: Endpoint) -> Any:
        """One GET of the endpoint as it is (a show, or a probe's single page)."""
        return self.client.get(endpoint.path, params=endpoint.params)

    # -- who is connected ----------------------------------------------------------------
    def companies(self) -> Any:
        """The companies the token can see (no Procore-Company-Id needed)."""
        return self.client.get(COMPANIES, params={"per_page": 100})

    def me(self, procore_company_id: int | None = None) -> Any:
        """The token's Procore user; asked within a company, Procore includes the name.

        Procore wants Procore-Company-Id naming that same company then; the client sends it
        because the call names a company_id.
        """
        params = {"company_id": procore_company_id} if procore_company_id else None
        return self.client.get(ME, params=params)

    def company_configuration(self) -> Any:
        """The company's configuration (e.g. how time entries are recorded)."""
        return self.client.get("/rest/v1.0/company_configuration")

    # -- users ---------------------------------------------------------------------------
    def list_users(self, procore_company_id: int, per_page: int = LIST_PAGE_SIZE):
        """Pages of the company's active users."""
        return self.pages(users_list(procore_company_id), per_page)

    def list_inactive_users(self, procore_company_id: int, per_page: int = LIST_PAGE_SIZE):
        """Pages of the company's deactivated users."""
        return self.pages(inactive_users_list(procore_company_id), per_page)

    def show_user(self, procore_company_id: int, user_id: int) -> Any:
        """One company user."""
        return self.fetch(user_show(procore_company_id, user_id))

    def sync_users(self, procore_company_id: int, updates: list[dict]) -> Any:
        """Procore's bulk upsert of users (keyed by id, so safe to send again)."""
        return self.client.patch(
            f"/rest/v1.0/companies/{procore_company_id}/users/sync",
            json={"updates": updates},
            idempotent=True,
        )

    def people(self, procore_company_id: int) -> Iterator[dict]:
        """The company's people (users and workers), without reference-only users."""
        return self.client.iter_items(
            f"/rest/v1.0/companies/{procore_company_id}/people",
            {"filters[without_reference_users]": "true"},
            per_page=100,
        )

    # -- projects ------------------------------------------------------------------------
    def list_projects(
        self, procore_company_id: int, *, include_inactive: bool, per_page: int = LIST_PAGE_SIZE
    ):
        """Pages of the company's projects (active only unless include_inactive)."""
        listing = projects_list(procore_company_id, include_inactive=include_inactive)
        return self.pages(listing, per_page)

    def show_project(self, procore_company_id: int, project_id: int) -> Any:
        """One project."""
        return self.fetch(project_show(procore_company_id, project_id))

    def sync_projects(self, procore_company_id: int, updates: list[dict]) -> Any:
        """Procore's bulk upsert of projects (keyed by id, so safe to send again)."""
        return self.client.patch(
            "/rest/v1.0/projects/sync",
            json={"company_id": procore_company_id, "updates": updates},
            idempotent=True,
        )

    # -- standard cost codes -------------------------------------------------------------
    def list_standard_cost_code_lists(self, procore_company_id: int, per_page=LIST_PAGE_SIZE):
        """Pages of the company's standard cost code lists."""
        return self.pages(standard_cost_code_lists_list(procore_company_id), per_page)

    def list_standard_cost_codes(self, procore_company_id: int, list_id: int, per_page=100):
        """Pages of one list's standard cost codes."""
        return self.pages(standard_cost_codes_list(procore_company_id, list_id), per_page)

    def show_standard_cost_code(self, procore_company_id: int, list_id: int, code_id: int):
        """One standard cost code, asked within its list (Procore requires the list id)."""
        return self.fetch(standard_cost_code_show(procore_company_id, list_id, code_id))

    def sync_standard_cost_codes(
        self, procore_company_id: int, list_id: int, updates: list[dict]
    ) -> Any:
        """Procore's bulk upsert of one list's standard cost codes (safe to send again)."""
        return self.client.patch(
            "/rest/v1.0/standard_cost_codes/sync",
            json={
                "company_id": procore_company_id,
                "standard_cost_code_list_id": list_id,
                "updates": updates,
            },
            idempotent=True,
        )

    def list_line_item_types(self, procore_company_id: int, per_page: int = LIST_PAGE_SIZE):
        """Pages of the company's line item types."""
        return self.pages(line_item_types_list(procore_company_id), per_page)

    # -- project cost codes --------------------------------------------------------------
    def project_cost_codes(self, project_id: int) -> Iterator[dict]:
        """Every cost code of a project."""
        return self.client.iter_items("/rest/v1.0/cost_codes", {"project_id": project_id}, 100)

    def create_project_cost_code(self, project_id: int, cost_code: dict) -> Any:
        """Create a cost code in a project (a POST: never blindly retried)."""
        return self.client.post(
            "/rest/v1.0/cost_codes", json={"project_id": project_id, "cost_code": cost_code}
        )

    # -- timecards -----------------------------------------------------------------------
    def timecard_time_types(self, project_id: int) -> Iterator[dict]:
        """Every timecard time type, asked through a project."""
        return self.client.iter_items(*timecard_time_types_list(project_id), per_page=100)

    def timecard_entry_pages(
        self, project_id: int, start_date: str, end_date: str, per_page: int = LIST_PAGE_SIZE
    ) -> Iterator[Page]:
        """Pages of a project's entries dated start_date..end_date (ISO dates)."""
        return self.pages(timecard_entries_list(project_id, start_date, end_date), per_page)

    def timecard_entries(self, project_id: int, start_date: str, end_date: str):
        """Every entry of a project dated start_date..end_date (ISO dates), streamed."""
        endpoint = timecard_entries_list(project_id, start_date, end_date)
        return self.client.iter_items(endpoint.path, endpoint.params, per_page=100)

    def show_timecard_entry(self, project_id: int, entry_id: int) -> Any:
        """One timecard entry."""
        return self.client.get(_timecard_entry(project_id, entry_id))

    def create_timecard_entry(self, project_id: int, entry: dict) -> Any:
        """Create one entry (a POST: an unclear outcome raises, it is never resent blindly)."""
        return self.client.post(
            f"/rest/v1.0/projects/{project_id}/timecard_entries", json={"timecard_entry": entry}
        )

    def bulk_create_timecard_entries(self, project_id: int, entries: list[dict]) -> Any:
        """Create up to Procore's batch limit of entries in one POST."""
        return self.client.post(
            f"/rest/v1.1/projects/{project_id}/project_timecard_entries/bulk_create",
            json={"timecard_entries": entries},
        )

    def update_timecard_entry(self, project_id: int, entry_id: int, entry: dict) -> Any:
        """Update one entry with a full body."""
        return self.client.patch(
            _timecard_entry(project_id, entry_id), json={"timecard_entry": entry}
        )

    def delete_timecard_entry(self, project_id: int, entry_id: int) -> Any:
        """Delete one entry."""
        return self.client.delete(_timecard_entry(project_id, entry_id))

    # -- webhooks ------------------------------------------------------------------------
    def webhook_resources(self, procore_company_id: int) -> Any:
        """The resources and events Procore offers to company hooks."""
        return self.client.get("/rest/v1.0/webhooks/resources", {"company_id": procore_company_id})

    def webhook_hooks(self, procore_company_id: int, namespace: str) -> Any:
        """The company's hooks in our namespace."""
        return self.client.get(
            "/rest/v1.0/webhooks/hooks", {"company_id": procore_company_id, "namespace": namespace}
        )

    def create_webhook_hook(self, procore_company_id: int, hook: dict) -> Any:
        """Create a company hook."""
        return self.client.post(
            "/rest/v1.0/webhooks/hooks",
            json={"company_id": procore_company_id, "hook": hook},
            idempotent=False,
        )

    def update_webhook_hook(self, procore_company_id: int, hook_id: int, hook: dict) -> Any:
        """Update a company hook (e.g. its destination headers)."""
        return self.client.patch(
            _hook(hook_id), json={"company_id": procore_company_id, "hook": hook}
        )

    def webhook_triggers(self, procore_company_id: int, hook_id: int) -> Any:
        """A hook's triggers."""
        return self.client.get(f"{_hook(hook_id)}/triggers", {"company_id": procore_company_id})

    def create_webhook_trigger(
        self, procore_company_id: int, hook_id: int, trigger: dict, api_version: str
    ) -> Any:
        """Add one trigger to a hook (retried on an unclear outcome, as registration always
        has; registration lists the hook's triggers first and adds only missing ones)."""
        return self.client.post(
            f"{_hook(hook_id)}/triggers",
            json={"company_id": procore_company_id, "api_version": api_version, "trigger": trigger},
            idempotent=True,
        )
