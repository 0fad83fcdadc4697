"""Connecting Procore through Settings → Integrations, with Procore mocked by `responses`:
the whole OAuth flow, every bad callback (reliability A7, A8), Procore trouble during connect,
disconnect (A10), the Reconnect banner (G4) and admin-only access (E2)."""

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
import sqlalchemy as sa

from tests.conftest import make_user
from webapp.extensions import db
from webapp.models import ConnectionStatus, EntityType, ProcoreConnection, ProcoreLink, Role
from webapp.models.base import utcnow
from webapp.procore import tokens as tokens_module
from webapp.procore.crypto import token_cipher
from webapp.procore.tokens import ConnectionTokens, NeedsReauth
from webapp.services.connections import mark_needs_reauth, procore_client_for

INDEX = "/settings/integrations/"
CONNECT = "/settings/integrations/procore/connect"
CALLBACK = "/settings/integrations/procore/callback"
DISCONNECT = "/settings/integrations/procore/disconnect"
ACCESS = "fake-access-token-AAAA1111"
REFRESH = "fake-refresh-token-RRRR1111"
COMPANIES = [{"id": 5512345678901, "name": "Summit Builders Inc."}]
ME = {"id": 4242, "login": "dana.admin@summit.example.com", "name": "Dana Whitfield"}


def urls(app) -> dict:
    login = app.config["PROCORE_LOGIN_URL"]
    api = app.config["PROCORE_API_URL"]
    return {
        "token": f"{login}/oauth/token",
        "revoke": f"{login}/oauth/revoke",
        "me": f"{api}/rest/v1.0/me",
        "companies": f"{api}/rest/v1.0/companies",
    }


def start_connect(client) -> str:
    """Click 'Connect'; returns the state Procore would echo back."""
    response = client.post(CONNECT)
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    query = parse_qs(location.query)
    assert location.path == "/oauth/authorize"
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    return query["state"][0]


def mock_procore(rsps, app, access=ACCESS, refresh=REFRESH, companies=COMPANIES):
    u = urls(app)
    rsps.post(
        u["token"],
        json={
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": 5400,
            "created_at": 1,
        },
    )
    rsps.get(u["companies"], json=companies)
    rsps.get(u["me"], json=ME)


def token_calls(rsps, app) -> list:
    return [c for c in rsps.calls if c.request.url == urls(app)["token"]]


def connection(company) -> ProcoreConnection | None:
    db.session.expire_all()
    return db.session.get(ProcoreConnection, company.id)


def store_connection(company, status=ConnectionStatus.ACTIVE, access=ACCESS, refresh=REFRESH):
    cipher = token_cipher()
    conn = ProcoreConnection(
        company_id=company.id,
        status=status,
        procore_user_id=ME["id"],
        procore_login=ME["login"],
        procore_user_name=ME["name"],
        available_companies=COMPANIES,
        procore_company_id=COMPANIES[0]["id"],
        access_token_enc=cipher.encrypt(access),
        refresh_token_enc=cipher.encrypt(refresh),
        expires_at=utcnow() + timedelta(hours=1),
        key_id=cipher.key_id,
    )
    db.session.add(conn)
    db.session.commit()
    return conn


def test_connect_flow_stores_encrypted_tokens_and_shows_the_connection(app, admin_client, company):
    page = admin_client.get(INDEX).get_data(as_text=True)
    assert ">Connect</button>" in page
    state = start_connect(admin_client)
    with responses.RequestsMock() as rsps:
        mock_procore(rsps, app)
        response = admin_client.get(CALLBACK, query_string={"code": "good-code", "state": state})
        assert response.status_code == 303
        body = parse_qs(token_calls(rsps, app)[0].request.body)
    # client_secret_post + PKCE, to the exact registered redirect URI.
    assert body["grant_type"] == ["authorization_code"] and body["code"] == ["good-code"]
    assert body["client_secret"] == [app.config["PROCORE_CLIENT_SECRET"]]
    assert body["code_verifier"][0]
    assert body["redirect_uri"] == [app.config["PROCORE_REDIRECT_URI"]]

    conn = connection(company)
    assert conn.status == ConnectionStatus.ACTIVE
    assert conn.procore_login == ME["login"] and conn.procore_user_id == ME["id"]
    assert conn.available_companies == COMPANIES
    assert conn.procore_company_id == COMPANIES[0]["id"]
    assert ACCESS not in conn.access_token_enc and REFRESH not in conn.refresh_token_enc
    assert token_cipher().decrypt(conn.refresh_token_enc) == REFRESH

    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Connected to <strong>Summit Builders Inc.</strong>" in page
    assert "Dana Whitfield" in page and ME["login"] in page
    assert "Valid until" in page and ">Set Up<" in page and ">Disconnect<" in page
    assert 'href="/settings/integrations/procore/setup/"' in page  # the wizard's first step
    assert ACCESS not in page and REFRESH not in page


@pytest.mark.parametrize("case", ["missing", "forged", "reused", "expired"])
def test_bad_state_is_refused_without_calling_procore(
    app, admin_client, company, case, monkeypatch
):
    state = start_connect(admin_client)
    query = {"code": "some-code", "state": state}
    if case == "missing":
        del query["state"]
    elif case == "forged":
        query["state"] = "forged-" + state
    elif case == "reused":
        with responses.RequestsMock() as rsps:
            mock_procore(rsps, app)
            assert admin_client.get(CALLBACK, query_string=query).status_code == 303
        before = connection(company).access_token_enc
    elif case == "expired":
        later = tokens_module.oauth_clock() + 11 * 60
        monkeypatch.setattr(tokens_module, "oauth_clock", lambda: later)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_procore(rsps, app, access="second-access", refresh="second-refresh")
        response = admin_client.get(CALLBACK, query_string=query)
        assert token_calls(rsps, app) == []
    assert response.status_code == 400
    assert "Click Connect to start again" in response.get_data(as_text=True)
    if case == "reused":
        assert connection(company).access_token_enc == before
    else:
        assert connection(company) is None


def test_callback_in_another_companys_session_is_forbidden(
    app, admin_client, company, other_company
):
    state = start_connect(admin_client)
    other_client = app.test_client()
    other_client.login(make_user(other_company, Role.ADMIN))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_procore(rsps, app)
        response = other_client.get(CALLBACK, query_string={"code": "c", "state": state})
        assert token_calls(rsps, app) == []
    assert response.status_code == 403
    assert "different Crewclock account" in response.get_data(as_text=True)
    assert connection(company) is None and connection(other_company) is None


def test_callback_completed_by_a_non_admin_is_forbidden(app, admin_client, company):
    state = start_connect(admin_client)
    worker_client = app.test_client()
    worker_client.login(make_user(company, Role.WORKER))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_procore(rsps, app)
        response = worker_client.get(CALLBACK, query_string={"code": "c", "state": state})
        assert token_calls(rsps, app) == []
    assert response.status_code == 403
    assert connection(company) is None


def test_denied_consent_shows_a_message_and_stores_nothing(app, admin_client, company):
    state = start_connect(admin_client)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_procore(rsps, app)
        response = admin_client.get(
            CALLBACK, query_string={"error": "access_denied", "state": state}
        )
        assert token_calls(rsps, app) == []
    assert response.status_code == 400
    assert "Procore access was not allowed" in response.get_data(as_text=True)
    assert connection(company) is None


def test_code_already_used_is_a_plain_message(app, admin_client, company):
    state = start_connect(admin_client)
    with responses.RequestsMock() as rsps:
        rsps.post(
            urls(app)["token"],
            status=400,
            json={"error": "invalid_grant", "error_description": "The provided grant is invalid"},
        )
        response = admin_client.get(CALLBACK, query_string={"code": "used", "state": state})
    assert response.status_code == 400
    assert "code may have been used already" in response.get_data(as_text=True)
    assert connection(company) is None


@pytest.mark.parametrize(
    ("where", "status", "message"),
    [
        ("token", 503, "not responding"),
        ("token", 429, "rate-limiting"),
        ("companies", 429, "rate-limiting"),
        ("me", 502, "not responding"),
    ],
)
def test_procore_trouble_during_connect_says_so_and_stores_nothing(
    app, admin_client, company, where, status, message
):
    state = start_connect(admin_client)
    u = urls(app)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        if where == "token":
            rsps.post(u["token"], status=status, body="busy")
        else:
            mock_procore(rsps, app)
            rsps.replace(responses.GET, u[where], status=status, body="busy")
            rsps.post(u["revoke"], json={})
        response = admin_client.get(CALLBACK, query_string={"code": "c", "state": state})
        if where != "token":  # the orphaned grant is revoked rather than left alive
            assert [c.request.url for c in rsps.calls].count(u["revoke"]) == 1
    assert response.status_code == 503
    assert message in response.get_data(as_text=True)
    assert connection(company) is None


def test_disconnect_revokes_once_deletes_tokens_and_keeps_links(app, admin_client, company):
    store_connection(company)
    db.session.add(
        ProcoreLink(company_id=company.id, entity_type=EntityType.USER, local_id=1, procore_id=9)
    )
    db.session.commit()
    with responses.RequestsMock() as rsps:
        rsps.post(urls(app)["revoke"], json={})
        response = admin_client.post(DISCONNECT, headers={"HX-Request": "true"})
        assert len(rsps.calls) == 1
        assert parse_qs(rsps.calls[0].request.body)["token"] == [ACCESS]
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "Procore is disconnected" in text and ">Connect</button>" in text
    assert "<html" not in text  # the card fragment, swapped in place
    conn = connection(company)
    assert conn.status == ConnectionStatus.DISCONNECTED
    assert conn.access_token_enc is None and conn.refresh_token_enc is None
    assert conn.procore_company_id == COMPANIES[0]["id"]
    assert db.session.scalar(sa.select(sa.func.count(ProcoreLink.id))) == 1
    with pytest.raises(NeedsReauth):
        procore_client_for(company.id)
    with pytest.raises(NeedsReauth):
        ConnectionTokens(app, company.id).access_token()


def test_reconnecting_after_disconnect_restores_the_chosen_company(app, admin_client, company):
    conn = store_connection(company, status=ConnectionStatus.DISCONNECTED)
    conn.access_token_enc = conn.refresh_token_enc = None
    conn.available_companies = COMPANIES + [{"id": 7, "name": "Ridgeline Concrete LLC"}]
    db.session.commit()
    state = start_connect(admin_client)
    with responses.RequestsMock() as rsps:
        mock_procore(rsps, app, companies=conn.available_companies)
        assert admin_client.get(CALLBACK, query_string={"code": "c", "state": state}).status_code
    conn = connection(company)
    assert conn.status == ConnectionStatus.ACTIVE
    assert conn.procore_company_id == COMPANIES[0]["id"]
    assert token_cipher().decrypt(conn.access_token_enc) == ACCESS


def test_needs_reauth_shows_reconnect_banner_to_admins_and_a_notice_to_others(
    app, admin_client, company
):
    store_connection(company, status=ConnectionStatus.NEEDS_REAUTH)
    page = admin_client.get("/settings/").get_data(as_text=True)
    assert 'id="procore-banner"' in page and ">Reconnect</button>" in page
    worker_client = app.test_client()
    worker_client.login(make_user(company, Role.WORKER))
    page = worker_client.get("/time/").get_data(as_text=True)
    assert "needs an admin to reconnect" in page
    assert ">Reconnect</button>" not in page


def test_banner_is_absent_while_the_connection_is_healthy(app, admin_client, company):
    store_connection(company)
    assert 'id="procore-banner"' not in admin_client.get("/settings/").get_data(as_text=True)


def test_integration_settings_are_admin_only(app, company):
    store_connection(company)
    worker_client = app.test_client()
    worker_client.login(make_user(company, Role.SUPERVISOR))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(urls(app)["revoke"], json={})
        assert worker_client.get(INDEX).status_code == 403
        assert worker_client.post(CONNECT).status_code == 403
        assert worker_client.post(DISCONNECT).status_code == 403
        assert len(rsps.calls) == 0
    assert connection(company).status == ConnectionStatus.ACTIVE


def test_connect_state_lives_in_redis_without_tokens_and_expires(app, admin_client, redis_url):
    import redis

    start_connect(admin_client)
    conn = redis.Redis.from_url(redis_url)
    keys = conn.keys("crewclock:procore:oauth-state:*")
    assert len(keys) == 1
    assert 0 < conn.pttl(keys[0]) <= 600_000
    assert set(json.loads(conn.get(keys[0]))) == {"company_id", "user_id", "created_at"}


def test_a_second_401_marks_the_connection_for_reconnect_and_stops_jobs(app, company):
    store_connection(company)
    mark_needs_reauth(company.id, "Procore rejected the access token twice")
    conn = connection(company)
    assert conn.status == ConnectionStatus.NEEDS_REAUTH
    assert conn.last_error == "Procore rejected the access token twice"
    with pytest.raises(NeedsReauth):
        procore_client_for(company.id)
