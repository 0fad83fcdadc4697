"""'View in Procore' links open Procore's web app, not its API host."""

import pytest

from webapp.services.push import procore_entry_url


@pytest.mark.parametrize(
    ("api_url", "web_url", "expected"),
    [
        ("https://api.procore.com", "", "https://app.procore.com/42/project/timesheets/list"),
        # Procore's developer sandbox serves the web app and the API on one host.
        (
            "https://sandbox.procore.com",
            "",
            "https://sandbox.procore.com/42/project/timesheets/list",
        ),
        # An operator's setting wins (another region, a proxy).
        (
            "https://api.procore.com",
            "https://app.example-region.test/",
            "https://app.example-region.test/42/project/timesheets/list",
        ),
    ],
)
def test_real_procore_links_open_the_projects_timesheets(api_url, web_url, expected):
    assert procore_entry_url(api_url, 7, 42, 9001, web_url) == expected


def test_the_local_sandbox_links_to_the_entry_record_itself():
    url = procore_entry_url("http://127.0.0.1:5001", 7, 42, 9001)
    assert url == "http://127.0.0.1:5001/companies/7/projects/42/timecard_entries/9001"


def test_no_link_without_a_project():
    assert procore_entry_url("https://api.procore.com", 7, None, 9001) is None
    assert procore_entry_url("http://127.0.0.1:5001", None, 42, None) is None
