"""Shared by the set-up/import tests: the demo sandbox in-process and a page fetcher on it."""

import pytest
import requests

from procore_sandbox.app import create_app as create_sandbox_app
from procore_sandbox.config import SandboxConfig
from procore_sandbox.testing import mount_sandbox

SANDBOX_URL = "http://procore.test"
ADMIN_EMAIL = "dana.admin@summit.example.com"


class SandboxFetcher:
    """A FetchPage over `requests` with a sandbox-minted token (counts its calls)."""

    def __init__(self, procore_company_id: int, email: str = ADMIN_EMAIL) -> None:
        reply = requests.post(f"{SANDBOX_URL}/_sandbox/token", json={"email": email}, timeout=5)
        self.token = reply.json()["access_token"]
        self.company = procore_company_id
        self.calls = 0

    def __call__(self, path, params, page, per_page):
        self.calls += 1
        response = requests.get(
            f"{SANDBOX_URL}{path}",
            params={**params, "page": page, "per_page": per_page},
            headers={
                "Authorization": f"Bearer {self.token}",
                "Procore-Company-Id": str(self.company),
            },
            timeout=10,
        )
        response.raise_for_status()
        total = response.headers.get("Total")
        return response.json(), int(total) if total else None


def sandbox_fixture(seed: str):
    """A fixture running the sandbox (seed) in-process for every `requests` call."""

    @pytest.fixture
    def _sandbox():
        app = create_sandbox_app(SandboxConfig(seed=seed, webhooks_enabled=False))
        with mount_sandbox(app, SANDBOX_URL):
            yield app

    return _sandbox


def sandbox_stats() -> dict:
    """/_sandbox/stats of the mounted sandbox."""
    return requests.get(f"{SANDBOX_URL}/_sandbox/stats", timeout=5).json()


def reset_stats() -> None:
    requests.post(f"{SANDBOX_URL}/_sandbox/stats/reset", timeout=5)


def demo_ids(sandbox_app) -> dict:
    """The demo seed's main company id and its standard cost code list id."""
    store = sandbox_app.extensions["procore_sandbox"].store
    company = next(c for c in store.table("companies").values() if c["my_company"])
    ccl = next(
        c for c in store.table("cost_code_lists").values() if c["company_id"] == company["id"]
    )
    return {"company": company["id"], "list": ccl["id"], "store": store}
