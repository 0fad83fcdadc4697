"""Connect, refresh and disconnect against procore_sandbox (served in-process through its
`requests` adapter): real login/consent pages, single-use codes, rotating refresh tokens."""

import re
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import requests

from procore_sandbox.app import create_app as create_sandbox
from procore_sandbox.config import SandboxConfig
from procore_sandbox.seed import PASSWORD
from procore_sandbox.testing import mount_sandbox
from tests.conftest import CSRFClient, make_company, make_test_app, make_user
from webapp.extensions import db
from webapp.models import ConnectionStatus, ProcoreConnection, Role
from webapp.models.base import utcnow
from webapp.procore.crypto import token_cipher
from webapp.procore.tokens import ConnectionTokens, NeedsReauth

CONNECT = "/settings/integrations/procore/connect"
DISCONNECT = "/settings/integrations/procore/disconnect"
PROCORE_ADMIN = "dana.admin@summit.example.com"


@pytest.fixture
def sandbox(app):
    """The sandbox app answering every `requests` call to the configured Procore hosts."""
    sandbox_app = create_sandbox(SandboxConfig(seed="demo"))
    assert app.config["PROCORE_LOGIN_URL"] == app.config["PROCORE_API_URL"]
    with mount_sandbox(sandbox_app, app.config["PROCORE_LOGIN_URL"]):
        yield sandbox_app


def sandbox_calls(sandbox_app, route: str) -> int:
    return sandbox_app.extensions["procore_sandbox"].faults.stats()["requests"].get(route, 0)


def authorize_at_sandbox(sandbox_app, authorize_url: str, action: str = "allow") -> str:
    """Log in at the sandbox's page and click Allow/Deny; returns the redirect back to us."""
    browser = sandbox_app.test_client()
    parts = urlsplit(authorize_url)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    page = browser.get(f"{parts.path}?{parts.query}")
    assert page.status_code == 200 and "Log in" in page.get_data(as_text=True)
    consent = browser.post(
        parts.path, data={**params, "action": "login", "email": PROCORE_ADMIN, "password": PASSWORD}
    )
    html = consent.get_data(as_text=True)
    assert "Allow" in html
    nonce = re.search(r'name="nonce" value="([^"]+)"', html).group(1)
    back = browser.post(parts.path, data={**params, "nonce": nonce, "action": action})
    assert back.status_code == 302
    return back.headers["Location"]


def connect_through_sandbox(client, sandbox_app, action="allow"):
    """Click Connect, authorise at the sandbox, follow the redirect back to our callback."""
    authorize_url = client.post(CONNECT).headers["Location"]
    back = urlsplit(authorize_at_sandbox(sandbox_app, authorize_url, action))
    return client.get(f"{back.path}?{back.query}"), back


def me_status(app, access_token: str) -> int:
    url = app.config["PROCORE_API_URL"] + "/rest/v1.0/me"
    return requests.get(
        url, headers={"Authorization": f"Bearer {access_token}"}, timeout=5
    ).status_code


def stored(company_id) -> ProcoreConnection:
    db.session.expire_all()
    return db.session.get(ProcoreConnection, company_id)


def test_admin_connects_refreshes_and_disconnects_against_the_sandbox(
    app, sandbox, admin_client, company
):
    response, _ = connect_through_sandbox(admin_client, sandbox)
    assert response.status_code == 303
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Procore is connected." in page and "Connected to <strong>" in page
    assert PROCORE_ADMIN in page and ">Disconnect<" in page

    conn = stored(company.id)
    assert conn.status == ConnectionStatus.ACTIVE
    assert "Summit Builders Inc." in [c["name"] for c in conn.available_companies]
    assert conn.procore_login == PROCORE_ADMIN and conn.procore_user_name
    first_access = token_cipher().decrypt(conn.access_token_enc)
    first_refresh = token_cipher().decrypt(conn.refresh_token_enc)
    assert me_status(app, first_access) == 200

    # A 401 mid-job: one forced refresh through the sandbox's rotating refresh tokens.
    tokens = ConnectionTokens(app, company.id)
    second_access = tokens.refresh_after_unauthorized(first_access)
    assert second_access != first_access and me_status(app, second_access) == 200
    assert token_cipher().decrypt(stored(company.id).refresh_token_enc) != first_refresh
    assert sandbox_calls(sandbox, "POST /oauth/token") == 2  # the code, then one refresh

    response = admin_client.post(DISCONNECT)
    assert response.status_code == 200
    assert sandbox_calls(sandbox, "POST /oauth/revoke") == 1
    assert me_status(app, second_access) == 401  # revoked at Procore
    assert stored(company.id).access_token_enc is None
    with pytest.raises(NeedsReauth):
        ConnectionTokens(app, company.id).access_token()


def test_denying_at_the_sandbox_connects_nothing(app, sandbox, admin_client, company):
    response, back = connect_through_sandbox(admin_client, sandbox, action="deny")
    assert parse_qs(back.query)["error"] == ["access_denied"]
    assert response.status_code == 400
    assert "not allowed" in response.get_data(as_text=True)
    assert sandbox_calls(sandbox, "POST /oauth/token") == 0
    assert stored(company.id) is None


def test_a_code_used_once_is_refused_the_second_time(app, sandbox, admin_client, company):
    response, back = connect_through_sandbox(admin_client, sandbox)
    assert response.status_code == 303
    before = stored(company.id).access_token_enc
    code = parse_qs(back.query)["code"][0]
    # A fresh, valid state, but an authorization code the sandbox already consumed.
    state = parse_qs(urlsplit(admin_client.post(CONNECT).headers["Location"]).query)["state"][0]
    again = admin_client.get(back.path, query_string={"code": code, "state": state})
    assert again.status_code == 400
    assert "used already" in again.get_data(as_text=True)
    assert stored(company.id).access_token_enc == before


def test_a_refresh_token_revoked_at_procore_leads_to_reconnect(app, sandbox, admin_client, company):
    connect_through_sandbox(admin_client, sandbox)
    refresh = token_cipher().decrypt(stored(company.id).refresh_token_enc)
    requests.post(
        app.config["PROCORE_LOGIN_URL"] + "/oauth/revoke", data={"token": refresh}, timeout=5
    )
    conn = stored(company.id)
    conn.expires_at = utcnow() + timedelta(minutes=1)
    db.session.commit()
    with pytest.raises(NeedsReauth):
        ConnectionTokens(app, company.id).access_token()
    assert stored(company.id).status == ConnectionStatus.NEEDS_REAUTH
    page = admin_client.get("/settings/integrations/").get_data(as_text=True)
    assert ">Reconnect</button>" in page
    # Reconnecting from the banner restores the connection.
    response, _ = connect_through_sandbox(admin_client, sandbox)
    assert response.status_code == 303
    assert stored(company.id).status == ConnectionStatus.ACTIVE


@pytest.fixture
def threaded_app(request, db_backend, redis_url, tmp_path):
    if db_backend == "postgresql":
        yield request.getfixturevalue("app")
        return
    application = make_test_app(
        f"sqlite:///{tmp_path / 'threads.db'}", redis_url, instance_path=tmp_path / "instance"
    )
    application.test_client_class = CSRFClient
    redis.Redis.from_url(redis_url).flushdb()
    with application.app_context():
        db.create_all()
        yield application
        db.session.remove()
        db.engine.dispose()


def test_twenty_concurrent_jobs_refresh_once_at_the_sandbox(threaded_app):
    app = threaded_app
    sandbox_app = create_sandbox(SandboxConfig(seed="demo"))
    company = make_company("Threads Co")
    client = app.test_client()
    client.login(make_user(company, Role.ADMIN))
    with mount_sandbox(sandbox_app, app.config["PROCORE_LOGIN_URL"]):
        connect_through_sandbox(client, sandbox_app)
        conn = stored(company.id)
        conn.expires_at = utcnow() + timedelta(minutes=2)  # inside the refresh margin
        db.session.commit()
        company_id = company.id
        results, errors = [], []
        barrier = threading.Barrier(20)

        def job():
            try:
                barrier.wait()
                token = ConnectionTokens(app, company_id).access_token()
                results.append((token, me_status(app, token)))
            except Exception as exc:  # collected, asserted below
                errors.append(exc)

        threads = [threading.Thread(target=job) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
    assert sandbox_calls(sandbox_app, "POST /oauth/token") == 2  # the code + exactly 1 refresh
    assert len({token for token, _ in results}) == 1 and len(results) == 20
    assert {status for _, status in results} == {200}
    assert stored(company.id).status == ConnectionStatus.ACTIVE
    assert sandbox_app.extensions["procore_sandbox"].faults.stats()["statuses"].get("400") is None
