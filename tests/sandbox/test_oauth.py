"""OAuth: login + consent, code rules, PKCE, token encodings, refresh rotation, revoke."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from procore_sandbox.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REDIRECT_URIS

from .conftest import ADMIN_EMAIL

REDIRECT = DEFAULT_REDIRECT_URIS[0]


def authorize(procore, email=ADMIN_EMAIL, action="allow", **extra):
    """Drive the browser flow with one client: login page, consent page, redirect."""
    client = procore.app.test_client()
    params = {
        "response_type": "code",
        "client_id": DEFAULT_CLIENT_ID,
        "redirect_uri": REDIRECT,
        "state": "st-123",
        **extra,
    }
    page = client.get("/oauth/authorize", query_string=params)
    assert b'<label for="email">Email</label>' in page.data
    assert b'<label for="password">Password</label>' in page.data
    assert b"Log in</button>" in page.data
    consent = client.post(
        "/oauth/authorize",
        data={**params, "action": "login", "email": email, "password": "sandbox"},
    )
    assert b">Allow</button>" in consent.data and b">Deny</button>" in consent.data
    nonce = re.search(rb'name="nonce" value="([^"]+)"', consent.data).group(1).decode()
    reply = client.post("/oauth/authorize", data={**params, "action": action, "nonce": nonce})
    assert reply.status_code == 302
    return parse_qs(urlsplit(reply.headers["Location"]).query), reply.headers["Location"]


def exchange(procore, code, **extra):
    return requests.post(
        procore.url("/oauth/token"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "redirect_uri": REDIRECT,
            **extra,
        },
    )


def refresh(procore, refresh_token):
    return requests.post(
        procore.url("/oauth/token"),
        json={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
        },
    )


def test_allow_redirects_to_the_registered_uri_with_code_and_state(procore):
    query, location = authorize(procore)
    assert location.startswith(REDIRECT + "?")
    assert query["state"] == ["st-123"] and query["code"][0]

    reply = exchange(procore, query["code"][0])
    assert reply.status_code == 200
    body = reply.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 5400
    assert body["access_token"] and body["refresh_token"] and isinstance(body["created_at"], int)
    me = requests.get(
        procore.url("/rest/v1.0/me"), headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.json()["login"] == ADMIN_EMAIL


def test_deny_redirects_with_access_denied_and_state(procore):
    query, _ = authorize(procore, action="deny")
    assert query["error"] == ["access_denied"] and query["state"] == ["st-123"]
    assert "code" not in query


def test_wrong_password_shows_the_login_page_again(procore):
    client = procore.app.test_client()
    params = {"response_type": "code", "client_id": DEFAULT_CLIENT_ID, "redirect_uri": REDIRECT}
    page = client.post(
        "/oauth/authorize",
        data={**params, "action": "login", "email": ADMIN_EMAIL, "password": "nope"},
    )
    assert page.status_code == 401 and b"Invalid email or password" in page.data


def test_redirect_uri_must_match_exactly(procore):
    client = procore.app.test_client()
    page = client.get(
        "/oauth/authorize",
        query_string={
            "response_type": "code",
            "client_id": DEFAULT_CLIENT_ID,
            "redirect_uri": REDIRECT + "/",
        },
    )
    assert page.status_code == 400 and b"not registered" in page.data


def test_authorization_code_works_once(procore):
    query, _ = authorize(procore)
    assert exchange(procore, query["code"][0]).status_code == 200
    again = exchange(procore, query["code"][0])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_authorization_code_expires_after_ten_minutes(procore):
    query, _ = authorize(procore)
    procore.store.clock_offset = 601
    reply = exchange(procore, query["code"][0])
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_grant"


def test_code_exchange_needs_the_same_redirect_uri(procore):
    query, _ = authorize(procore)
    reply = exchange(procore, query["code"][0], redirect_uri=DEFAULT_REDIRECT_URIS[1])
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_grant"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_pkce_s256_needs_the_matching_verifier(procore):
    verifier = "v" * 50
    query, _ = authorize(procore, code_challenge=_challenge(verifier), code_challenge_method="S256")
    wrong = exchange(procore, query["code"][0], code_verifier="x" * 50)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"

    query, _ = authorize(procore, code_challenge=_challenge(verifier), code_challenge_method="S256")
    assert exchange(procore, query["code"][0]).status_code == 400  # verifier missing

    query, _ = authorize(procore, code_challenge=_challenge(verifier), code_challenge_method="S256")
    assert exchange(procore, query["code"][0], code_verifier=verifier).status_code == 200


@pytest.mark.parametrize("style", ["form", "multipart", "json", "basic"])
def test_token_endpoint_accepts_every_client_encoding(procore, style):
    fields = {
        "grant_type": "refresh_token",
        "refresh_token": procore.refresh_token,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
    }
    url = procore.url("/oauth/token")
    if style == "form":
        reply = requests.post(url, data=fields)
    elif style == "multipart":
        reply = requests.post(url, files={k: (None, v) for k, v in fields.items()})
    elif style == "json":
        reply = requests.post(url, json=fields)
    else:
        reply = requests.post(
            url,
            data={"grant_type": "refresh_token", "refresh_token": procore.refresh_token},
            auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["refresh_token"] != procore.refresh_token


def test_bad_client_secret_is_invalid_client_401(procore):
    reply = requests.post(
        procore.url("/oauth/token"),
        data={
            "grant_type": "client_credentials",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": "wrong",
        },  # fmt: skip
    )
    assert reply.status_code == 401 and reply.json()["error"] == "invalid_client"


def test_refresh_rotates_and_the_old_refresh_token_dies(procore):
    first = refresh(procore, procore.refresh_token)
    assert first.status_code == 200
    reused = refresh(procore, procore.refresh_token)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert refresh(procore, first.json()["refresh_token"]).status_code == 200


def test_refresh_token_dies_even_when_the_reply_is_lost(procore):
    requests.post(
        procore.url("/_sandbox/faults"),
        json={"method": "POST", "path": "^/oauth/token$", "action": "drop", "count": 1},
    )
    with pytest.raises(requests.exceptions.ConnectionError):
        refresh(procore, procore.refresh_token)
    retry = refresh(procore, procore.refresh_token)
    assert retry.status_code == 400 and retry.json()["error"] == "invalid_grant"


def test_client_credentials_gets_no_refresh_token(procore):
    reply = requests.post(
        procore.url("/oauth/token"),
        json={
            "grant_type": "client_credentials",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
        },  # fmt: skip
    )
    assert reply.status_code == 200 and "refresh_token" not in reply.json()
    token = reply.json()["access_token"]
    # DMSA tokens need Procore-Company-Id even on /companies.
    no_header = requests.get(
        procore.url("/rest/v1.0/companies"), headers={"Authorization": f"Bearer {token}"}
    )
    assert no_header.status_code == 400


def test_expired_access_token_gets_401_and_token_info_reports_lifetime(procore):
    info = requests.get(procore.url("/oauth/token/info"), headers=procore.headers())
    assert info.json()["expires_in_seconds"] == 5400
    assert info.json()["application"] == {"uid": DEFAULT_CLIENT_ID}
    procore.store.clock_offset = 5401
    reply = procore.get(f"/rest/v1.0/companies/{procore.company_id}/users")
    assert reply.status_code == 401 and reply.json()["message"] == "The access token is invalid"


def test_token_lifetime_is_configurable_at_runtime(procore):
    requests.post(procore.url("/_sandbox/config"), json={"token_lifetime": 30})
    assert procore.mint()["expires_in"] == 30


def test_revoke_kills_access_and_refresh_token(procore):
    reply = requests.post(
        procore.url("/oauth/revoke"),
        data={
            "token": procore.token,
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
        },  # fmt: skip
    )
    assert reply.status_code == 200
    assert procore.get("/rest/v1.0/me").status_code == 401
    assert refresh(procore, procore.refresh_token).status_code == 400
    # Revoking an unknown token is still 200.
    assert requests.post(procore.url("/oauth/revoke"), data={"token": "nope"}).status_code == 200
