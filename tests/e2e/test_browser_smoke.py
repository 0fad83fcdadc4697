"""The demo admin logs in through a real browser and reaches Settings → Integrations."""

import pytest

from tests.e2e.conftest import log_in, screenshot

pytestmark = pytest.mark.e2e


def test_admin_logs_in_and_opens_integrations(stack, page):
    log_in(page, stack.web_url, "admin@example.com", "demo-password")
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Integrations").click()
    assert page.get_by_role("heading", name="Procore").is_visible()
    assert page.get_by_role("button", name="Connect").is_visible()
    screenshot(page, "01-integrations")
