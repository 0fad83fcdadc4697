"""ProcoreAPI: the one place Procore paths are written, and the endpoints that do more than
pass their arguments through (checked with `responses`: an unregistered URL is an error)."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import responses
from responses import matchers

from webapp.procore.api import ProcoreAPI, line_item_types_list
from webapp.procore.client import ProcoreClient
from webapp.procore.mapping import PROJECT
from webapp.services import imports, sync

API = "https://api.procore.test"
COMPANY = 4242
WEBAPP = Path(__file__).resolve().parents[2] / "webapp"


class Tokens:
    def access_token(self) -> str:
        return "fake-access-token"

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        return "fake-access-token-2"


@pytest.fixture
def mocked():
    with responses.RequestsMock() as rsps:
        yield rsps


def api_for(company=COMPANY) -> ProcoreAPI:
    return ProcoreAPI(ProcoreClient(API, company, Tokens(), sleep=lambda s: None))


def test_no_procore_path_is_written_outside_the_api_layer():
    """Two listings of the same projects drifted apart while seven services wrote paths."""
    offenders = sorted(
        str(path.relative_to(WEBAPP.parent))
        for path in WEBAPP.rglob("*")
        if path.is_file()
        and path.suffix in {".py", ".html", ".js", ".txt", ".json"}
        and path != WEBAPP / "procore" / "api.py"
        and "/rest/v" in path.read_text(encoding="utf-8", errors="replace")
    )
    assert offenders == []


def test_a_standard_cost_code_is_shown_within_its_list(mocked):
    """Procore shows a standard cost code only when asked with its list (400 without one)."""
    mocked.get(
        f"{API}/rest/v1.0/standard_cost_codes/55",
        match=[
            matchers.query_param_matcher(
                {"company_id": str(COMPANY), "standard_cost_code_list_id": "9"}
            )
        ],
        json={"id": 55, "full_code": "03-100"},
    )

    assert api_for().show_standard_cost_code(COMPANY, 9, 55)["full_code"] == "03-100"


def test_me_within_a_company_names_that_company_in_the_header(mocked):
    """Connect asks /me within the first company (for the user's name) before one is chosen;
    Procore wants the header to name that same company, and none without one."""
    mocked.get(
        f"{API}/rest/v1.0/me",
        match=[
            matchers.query_param_matcher({"company_id": "77"}),
            matchers.header_matcher({"Procore-Company-Id": "77"}),
        ],
        json={"id": 1, "name": "Dana Whitfield"},
    )
    mocked.get(
        f"{API}/rest/v1.0/me",
        match=[matchers.query_param_matcher({})],
        json={"id": 1, "login": "dana@example.test"},
    )
    api = api_for(company=None)

    assert api.me(77)["name"] == "Dana Whitfield"
    assert api.me()["login"] == "dana@example.test"
    assert "Procore-Company-Id" not in mocked.calls[1].request.headers


def test_the_full_sync_listing_reads_closed_projects_and_the_setup_import_does_not():
    """A project closed in Procore must read as closed to sync, not as deleted; set-up only
    offers projects crews can still log time on."""
    settings = SimpleNamespace(procore_company_id=COMPANY, standard_cost_code_list_id=None)

    (full,) = sync.list_endpoints(PROJECT, settings, full=True)
    (poll,) = sync.list_endpoints(PROJECT, settings, full=False)
    (setup,) = imports.listings(PROJECT, settings, include_inactive=False)

    assert full.params["filters[by_status]"] == "All"
    assert poll.params["filters[by_status]"] == "All"
    assert "filters[by_status]" not in setup.params
    assert full.path == poll.path == setup.path


def test_a_listing_resumed_after_a_checkpoint_starts_at_its_page(mocked):
    mocked.get(
        f"{API}/rest/v1.0/line_item_types",
        match=[
            matchers.query_param_matcher({"company_id": str(COMPANY), "page": "3", "per_page": "2"})
        ],
        json=[{"id": 5}],
    )
    pages = list(api_for().pages(line_item_types_list(COMPANY), 2, start_page=3))

    assert [(p.number, p.items) for p in pages] == [(3, [{"id": 5}])]
