"""Procore sandbox figures: large-seed start time, a 1,000-item page, peak memory."""

import time

import requests

from bench.common import figure, peak_rss_mb, summary_ms
from procore_sandbox.app import create_app
from procore_sandbox.config import SandboxConfig
from procore_sandbox.testing import mount_sandbox

BASE = "http://procore.bench"


def main() -> None:
    started = time.perf_counter()
    app = create_app(SandboxConfig(seed="large", rate_limit_hourly=10**6, rate_limit_spike=10**6))
    figure("large seed start", f"{time.perf_counter() - started:.2f} s (budget 10 s)")

    store = app.extensions["procore_sandbox"].store
    company_id = min(store.table("companies"))
    with mount_sandbox(app, BASE):
        token = requests.post(
            f"{BASE}/_sandbox/token", json={"email": "dana.admin@large.example.com"}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Procore-Company-Id": str(company_id)}
        url = f"{BASE}/rest/v1.0/companies/{company_id}/users"
        samples = []
        for page in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10) * 2:
            t0 = time.perf_counter()
            reply = requests.get(url, params={"per_page": 1000, "page": page}, headers=headers)
            samples.append(time.perf_counter() - t0)
            assert reply.status_code == 200 and len(reply.json()) == 1000
        figure("1,000-user page", f"{summary_ms(samples)} (budget 100 ms)")
    figure("peak RSS", f"{peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
