"""OAuth 2.0 server: /oauth/authorize (login + consent), /oauth/token, info, revoke.

Strict where Procore is: exact redirect-URI match, single-use 10-minute codes, single-use
rotating refresh tokens (the old one dies as soon as the refresh is processed, even if the
reply never reaches the client), no refresh token for client credentials.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from urllib.parse import urlencode

from flask import Blueprint, jsonify, redirect, render_template, request, session

from procore_sandbox.context import current
from procore_sandbox.seed import PASSWORD

bp = Blueprint("oauth", __name__, template_folder="templates")

CODE_LIFETIME = 600  # seconds
OOB = "urn:ietf:wg:oauth:2.0:oob"
INVALID_GRANT = (
    "The provided authorization grant is invalid, expired, revoked, does not match the "
    "redirection URI used in the authorization request, or was issued to another client."
)
INVALID_CLIENT = (
    "Client authentication failed due to unknown client, no client authentication included, "
    "or unsupported authentication method."
)


def oauth_error(error: str, description: str, status: int = 400):
    """An OAuth JSON error ({"error", "error_description"})."""
    resp = jsonify({"error": error, "error_description": description})
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


# -- authorize ---------------------------------------------------------------------------
AUTHORIZE_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
)


def _authorize_params() -> dict:
    source = request.form if request.method == "POST" else request.args
    return {key: source.get(key) for key in AUTHORIZE_PARAMS if source.get(key) is not None}


def _redirect_with(redirect_uri: str, **params) -> object:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if "?" in redirect_uri else "?"
    return redirect(f"{redirect_uri}{separator}{query}", code=302)


def _login_user(store, email: str) -> dict | None:
    email = email.strip().lower()
    if not email:
        return None
    with store.lock:
        for user in store.table("users").values():
            if user.get("is_active") and (user.get("email_address") or "").lower() == email:
                return user
    return None


@bp.route("/oauth/authorize", methods=["GET", "POST"])
def authorize():
    """Log in, then Allow/Deny; redirect back with `code` and `state` or an error."""
    sandbox = current()
    store = sandbox.store
    params = _authorize_params()
    app = store.get("oauth_apps", params.get("client_id", ""))
    if app is None:
        return render_template("oauth/error.html", message="Unknown client_id."), 400
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in app["redirect_uris"] and redirect_uri != OOB:
        return render_template(
            "oauth/error.html",
            message="The redirect URI is not registered for this application (exact match).",
        ), 400
    state = params.get("state")
    if params.get("response_type") != "code":
        return _redirect_with(redirect_uri, error="unsupported_response_type", state=state)
    method = params.get("code_challenge_method")
    if params.get("code_challenge") and (method or "plain") != "S256":
        return _redirect_with(
            redirect_uri,
            error="invalid_request",
            error_description="code_challenge_method must be S256",
            state=state,
        )

    action = request.form.get("action") if request.method == "POST" else None
    if action == "login":
        user = _login_user(store, request.form.get("email", ""))
        if user is None or not hmac.compare_digest(request.form.get("password", ""), PASSWORD):
            return render_template(
                "oauth/login.html", params=params, error="Invalid email or password."
            ), 401
        session["sandbox_user_id"] = user["id"]
    user = store.get("users", session.get("sandbox_user_id"))
    if user is None or not user.get("is_active"):
        session.pop("sandbox_user_id", None)
        return render_template("oauth/login.html", params=params, error=None)

    if action in ("allow", "deny"):
        if not hmac.compare_digest(request.form.get("nonce", ""), session.get("nonce", "-")):
            return render_template("oauth/error.html", message="Form expired; try again."), 400
        session.pop("nonce", None)
        if action == "deny":
            return _redirect_with(redirect_uri, error="access_denied", state=state)
        code = secrets.token_urlsafe(32)
        with store.lock:
            store.table("oauth_codes")[code] = {
                "code": code,
                "client_id": app["client_id"],
                "redirect_uri": redirect_uri,
                "user_id": user["id"],
                "expires_at_ts": store.time() + CODE_LIFETIME,
                "code_challenge": params.get("code_challenge"),
            }
        if redirect_uri == OOB:
            return render_template("oauth/oob.html", code=code)
        return _redirect_with(redirect_uri, code=code, state=state)

    session["nonce"] = secrets.token_urlsafe(16)
    return render_template(
        "oauth/authorize.html", params=params, app=app, user=user, nonce=session["nonce"]
    )


@bp.post("/oauth/logout")
def logout():
    """Forget the sandbox login (to switch users in the authorize flow)."""
    session.pop("sandbox_user_id", None)
    return redirect(request.form.get("next") or "/", code=303)


# -- token -------------------------------------------------------------------------------
def _token_params() -> dict:
    """Parameters from JSON, form-urlencoded or multipart bodies (and the query string)."""
    data: dict = {}
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            data.update({k: v for k, v in body.items() if v is not None})
    else:
        data.update(request.form.to_dict())
    for key, value in request.args.items():
        data.setdefault(key, value)
    return data


def _client_credentials(params: dict) -> tuple[str | None, str | None]:
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        return auth.username, auth.password
    return params.get("client_id"), params.get("client_secret")


def issue_tokens(store, config, client_id: str, user_id: int | None, refresh: bool) -> dict:
    """Create an access token (and a refresh token when `refresh`) and return the reply."""
    now = store.time()
    access = secrets.token_urlsafe(40)
    reply = {
        "access_token": access,
        "token_type": "bearer",
        "expires_in": int(config.token_lifetime),
        "created_at": int(now),
    }
    with store.lock:
        record = {
            "token": access,
            "client_id": client_id,
            "user_id": user_id,
            "created_at_ts": now,
            "expires_in": int(config.token_lifetime),
            "revoked": False,
            "refresh_token": None,
        }
        if refresh:
            refresh_token = secrets.token_urlsafe(40)
            record["refresh_token"] = refresh_token
            store.table("refresh_tokens")[refresh_token] = {
                "token": refresh_token,
                "client_id": client_id,
                "user_id": user_id,
                "access_token": access,
                "created_at_ts": now,
            }
            reply["refresh_token"] = refresh_token
        store.table("access_tokens")[access] = record
        store._dirty = True
    return reply


def _pkce_ok(challenge: str | None, verifier: str | None) -> bool:
    if not challenge:
        return verifier is None
    if not verifier:
        return False
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return hmac.compare_digest(computed, challenge)


@bp.post("/oauth/token")
def token():
    """authorization_code, refresh_token and client_credentials grants."""
    sandbox = current()
    store, config = sandbox.store, sandbox.config
    params = _token_params()
    client_id, client_secret = _client_credentials(params)
    app = store.get("oauth_apps", client_id or "")
    if app is None or not hmac.compare_digest(client_secret or "", app["client_secret"]):
        return oauth_error("invalid_client", INVALID_CLIENT, 401)
    grant_type = params.get("grant_type")
    if not grant_type:
        return oauth_error("invalid_request", "Missing required parameter: grant_type.")

    if grant_type == "authorization_code":
        code = params.get("code")
        if not code:
            return oauth_error("invalid_request", "Missing required parameter: code.")
        with store.lock:  # single use: the code is gone whatever happens next
            grant = store.table("oauth_codes").pop(code, None)
        if (
            grant is None
            or grant["client_id"] != app["client_id"]
            or grant["expires_at_ts"] <= store.time()
            or params.get("redirect_uri") != grant["redirect_uri"]
            or not _pkce_ok(grant.get("code_challenge"), params.get("code_verifier"))
        ):
            return oauth_error("invalid_grant", INVALID_GRANT)
        reply = issue_tokens(store, config, app["client_id"], grant["user_id"], refresh=True)
    elif grant_type == "refresh_token":
        raw = params.get("refresh_token")
        if not raw:
            return oauth_error("invalid_request", "Missing required parameter: refresh_token.")
        with store.lock:  # single use: dead from this moment, even if the reply is lost
            old = store.table("refresh_tokens").pop(raw, None)
            if old is not None and old["client_id"] != app["client_id"]:
                store.table("refresh_tokens")[raw] = old
                old = None
        if old is None:
            return oauth_error("invalid_grant", INVALID_GRANT)
        reply = issue_tokens(store, config, app["client_id"], old["user_id"], refresh=True)
    elif grant_type == "client_credentials":
        reply = issue_tokens(store, config, app["client_id"], None, refresh=False)
    else:
        return oauth_error(
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        )
    resp = jsonify(reply)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Pragma"] = "no-cache"
    return resp


@bp.get("/oauth/token/info")
def token_info():
    """Who the bearer token belongs to and how long it lives."""
    from procore_sandbox.api.common import access_token_record, bearer_token

    raw = bearer_token() or request.args.get("access_token")
    record = access_token_record(raw)
    if record is None:
        return oauth_error("invalid_token", "The access token is invalid", 401)
    store = current().store
    remaining = math.ceil(record["created_at_ts"] + record["expires_in"] - store.time())
    return jsonify(
        {
            "resource_owner_id": record["user_id"],
            "scopes": [],
            "expires_in_seconds": max(0, remaining),
            "application": {"uid": record["client_id"]},
            "created_at": int(record["created_at_ts"]),
        }
    )


@bp.post("/oauth/revoke")
def revoke():
    """Revoke an access token (and its refresh token) or a refresh token. Always 200."""
    store = current().store
    params = _token_params()
    client_id, client_secret = _client_credentials(params)
    if client_id is not None:
        app = store.get("oauth_apps", client_id)
        if app is None or not hmac.compare_digest(client_secret or "", app["client_secret"]):
            return oauth_error("invalid_client", INVALID_CLIENT, 401)
    raw = params.get("token") or ""
    with store.lock:
        access = store.table("access_tokens").get(raw)
        refresh = store.table("refresh_tokens").pop(raw, None)
        if access is not None:
            access["revoked"] = True
            if access.get("refresh_token"):
                store.table("refresh_tokens").pop(access["refresh_token"], None)
        if refresh is not None:
            linked = store.table("access_tokens").get(refresh["access_token"])
            if linked is not None:
                linked["revoked"] = True
        store._dirty = True
    return jsonify({})
