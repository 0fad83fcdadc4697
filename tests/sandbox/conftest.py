"""Fixtures for the sandbox's own tests: a demo sandbox served in-process to `requests`."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import requests

from procore_sandbox.app import create_app
from procore_sandbox.config import SandboxConfig
from procore_sandbox.store import Store
from procore_sandbox.testing import mount_sandbox

BASE = "http://procore.test"
ADMIN_EMAIL = "dana.admin@summit.example.com"


@dataclass
class Procore:
    """A mounted sandbox plus a token for the demo admin, acting in the main company."""

    app: object
    store: Store
    config: SandboxConfig
    base: str = BASE
    token: str = ""
    refresh_token: str = ""
    company_id: int = 0
    other_company_id: int = 0
    session: requests.Session = field(default_factory=requests.Session)

    def url(self, path: str) -> str:
        return self.base + path

    def headers(self, company_id: int | None = None, token: str | None = None) -> dict:
        return {
            "Authorization": f"Bearer {token or self.token}",
            "Procore-Company-Id": str(company_id or self.company_id),
        }

    def get(self, path: str, **kw):
        kw.setdefault("headers", self.headers())
        return self.session.get(self.url(path), **kw)

    def post(self, path: str, **kw):
        kw.setdefault("headers", self.headers())
        return self.session.post(self.url(path), **kw)

    def patch(self, path: str, **kw):
        kw.setdefault("headers", self.headers())
        return self.session.patch(self.url(path), **kw)

    def delete(self, path: str, **kw):
        kw.setdefault("headers", self.headers())
        return self.session.delete(self.url(path), **kw)

    def mint(self, email: str | None = ADMIN_EMAIL) -> dict:
        body = {"email": email} if email else {}
        return self.session.post(self.url("/_sandbox/token"), json=body).json()

    def first_project(self) -> dict:
        rows = self.get("/rest/v1.0/projects", params={"company_id": self.company_id}).json()
        return rows[0]

    def people(self) -> list[dict]:
        return self.get(f"/rest/v1.0/companies/{self.company_id}/people").json()


def make_procore(**config) -> Procore:
    """A sandbox app (demo seed unless told) with an admin token, not yet mounted."""
    sandbox_config = SandboxConfig(seed=config.pop("seed", "demo"), **config)
    app = create_app(sandbox_config)
    store = app.extensions["procore_sandbox"].store
    companies = sorted(store.table("companies").values(), key=lambda c: c["id"])
    return Procore(
        app=app,
        store=store,
        config=sandbox_config,
        company_id=companies[0]["id"] if companies else 0,
        other_company_id=companies[1]["id"] if len(companies) > 1 else 0,
    )


@pytest.fixture
def procore():
    """The demo sandbox mounted at http://procore.test with an admin token."""
    p = make_procore()
    with mount_sandbox(p.app, BASE):
        tokens = p.mint()
        p.token, p.refresh_token = tokens["access_token"], tokens["refresh_token"]
        yield p
