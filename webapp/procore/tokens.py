"""Procore OAuth: the authorization-code flow, and the single-flight token refresh.

Procore refresh tokens are single use and rotate on every refresh; the old one dies the
moment Procore processes the call, even if the reply is lost. Two workers refreshing at once
can therefore kill the connection, so a refresh is single flight across every process: a
Redis lock keeps waiters off the database, `SELECT ... FOR UPDATE` is the real serialization
point on PostgreSQL, and after acquiring we re-read, because someone else may already have
refreshed. The new pair is committed (compare-and-swap on the old refresh token) before the
new access token is handed to anyone.

Tokens never leave this module and the connection row in plaintext: not in the Flask session,
Redis, job arguments, pages or logs.
"""

import hashlib
import json
import logging
import random
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
import requests
import sqlalchemy as sa
from authlib.integrations.base_client import OAuthError
from flask import Flask, current_app
from sqlalchemy.orm import Session

from webapp.extensions import db, oauth
from webapp.models.procore import ConnectionStatus, ProcoreConnection
from webapp.procore.api import ProcoreAPI
from webapp.procore.client import ProcoreClient
from webapp.procore.crypto import token_cipher
from webapp.procore.errors import (
    NeedsReauth,
    ProcoreAuthError,
    ProcoreError,
    ProcoreRateLimited,
    ProcoreUnavailable,
)

log = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(minutes=10)  # longer than any single API step of a job
STATE_LIFETIME = 600  # seconds; Procore's codes live 10 minutes too
LOCK_TTL_MS = 60_000
LOCK_WAIT = 65.0  # a dead holder's lock expires after LOCK_TTL_MS
REFRESH_ATTEMPTS = 5
HTTP_TIMEOUT = 15
OAUTH_CLIENT = "procore"
_STATE_KEY = "crewclock:procore:oauth-state:{}"
_LOCK_KEY = "crewclock:procore:refresh-lock:{}"
_SESSION_KEY = "procore_oauth_pending"
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end"
)


class TokenRefreshFailed(ProcoreError):
    """Procore's token endpoint could not be reached or answered oddly; try again later."""


class ConnectFailed(Exception):
    """The connect callback cannot complete; `message` is shown to the admin as is."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- registration ---------------------------------------------------------------------------
def register_procore_oauth(app: Flask) -> None:
    """Register the Authlib client for Procore with this app's hosts and credentials."""
    login = app.config["PROCORE_LOGIN_URL"].rstrip("/")
    # The registry is a process-wide singleton and tests build many apps: each app keeps its
    # own client in app.extensions, and the registry always points at the newest one.
    oauth._clients.pop(OAUTH_CLIENT, None)
    client = oauth.register(
        OAUTH_CLIENT,
        client_id=app.config["PROCORE_CLIENT_ID"],
        client_secret=app.config["PROCORE_CLIENT_SECRET"],
        authorize_url=f"{login}/oauth/authorize",
        access_token_url=f"{login}/oauth/token",
        api_base_url=app.config["PROCORE_API_URL"].rstrip("/") + "/",
        client_kwargs={
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_post",
            "default_timeout": HTTP_TIMEOUT,
        },
    )
    app.extensions["procore_oauth"] = client
    if app.config.get("TOKEN_ENCRYPTION_KEYS"):
        token_cipher(app)  # a malformed key fails at start, not at the first connect


def _oauth_client():
    return current_app.extensions["procore_oauth"]


def _now(clock) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


def oauth_clock() -> float:
    """Clock for state lifetimes (tests replace it)."""
    return time.time()


# -- authorization-code flow ------------------------------------------------------------------
def _state_key(state: str) -> str:
    return _STATE_KEY.format(hashlib.sha256(state.encode("utf-8")).hexdigest())


def begin_authorization(session, redis_conn, company_id: int, user_id: int) -> str:
    """Start a connect: remember who started it, and return Procore's authorize URL.

    Redis holds who started the flow (single use, 10 minutes); the browser session holds
    the PKCE verifier, so completing needs both the server's record and the same session.
    """
    state = secrets.token_urlsafe(32)
    redirect_uri = current_app.config["PROCORE_REDIRECT_URI"]
    auth = _oauth_client().create_authorization_url(redirect_uri, state=state)
    record = {"company_id": company_id, "user_id": user_id, "created_at": oauth_clock()}
    redis_conn.set(_state_key(state), json.dumps(record), px=STATE_LIFETIME * 1000)
    state_hash = _state_key(state).rsplit(":", 1)[1]
    session[_SESSION_KEY] = {"state": state_hash, "verifier": auth["code_verifier"]}
    return auth["url"]


def consume_authorization(session, redis_conn, state: str | None, company_id: int, user_id: int):
    """Check and spend the `state` of a callback; returns the PKCE verifier.

    Raises ConnectFailed(400) for a missing, unknown, reused or expired state or a different
    browser session, and ConnectFailed(403) when the flow was started by another company or
    another admin. Nothing here calls Procore.
    """
    pending = session.pop(_SESSION_KEY, None)
    if not state:
        raise ConnectFailed(
            400,
            "The reply from Procore had no security check. Nothing was connected. "
            "Click Connect to start again.",
        )
    raw = redis_conn.getdel(_state_key(state))  # single use, atomically
    if raw is None:
        raise ConnectFailed(
            400,
            "This Procore sign-in has expired or was already used. Nothing was connected. "
            "Click Connect to start again.",
        )
    record = json.loads(raw)
    if record["company_id"] != company_id or record["user_id"] != user_id:
        log.warning(
            "audit action=procore.callback_rejected reason=other_account company=%s user=%s",
            company_id,
            user_id,
        )
        raise ConnectFailed(
            403,
            "This Procore sign-in was started by a different Crewclock account, so "
            "nothing was connected. Click Connect to connect this company.",
        )
    if oauth_clock() - record["created_at"] > STATE_LIFETIME:
        raise ConnectFailed(
            400,
            "This Procore sign-in took longer than 10 minutes and has expired. Nothing "
            "was connected. Click Connect to start again.",
        )
    state_hash = _state_key(state).rsplit(":", 1)[1]
    if not pending or not secrets.compare_digest(pending.get("state", ""), state_hash):
        raise ConnectFailed(
            400,
            "This Procore sign-in was started in a different browser session. Nothing "
            "was connected. Click Connect to start again.",
        )
    return pending["verifier"]


def exchange_code(code: str, verifier: str) -> dict:
    """Trade an authorization code for tokens (PKCE, client_secret_post)."""
    try:
        return _oauth_client().fetch_access_token(
            redirect_uri=current_app.config["PROCORE_REDIRECT_URI"],
            code=code,
            code_verifier=verifier,
        )
    except OAuthError as exc:
        log.info("procore token exchange refused: %s", exc.error)
        raise ConnectFailed(
            400,
            "Procore did not accept the sign-in (the code may have been used already or "
            "expired). Nothing was connected. Click Connect to start again.",
        ) from exc
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        raise _unavailable(status) from exc
    except (requests.RequestException, ValueError) as exc:
        log.warning("procore token exchange failed: %s", type(exc).__name__)
        raise _unavailable(None) from exc


def _unavailable(status: int | None) -> ConnectFailed:
    if status == 429:
        return ConnectFailed(
            503,
            "Procore is rate-limiting requests right now, so nothing was connected. "
            "Wait a minute and click Connect again.",
        )
    return ConnectFailed(
        503,
        "Procore is not responding right now, so nothing was connected. "
        "Try Connect again in a few minutes.",
    )


class IssuedToken:
    """TokenSource for a token just issued at connect: nothing stored yet, nothing to refresh."""

    def __init__(self, token: str) -> None:
        self._token = token

    def access_token(self) -> str:
        return self._token

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        raise NeedsReauth("Procore rejected the token it just issued.")


def fetch_identity(access_token: str) -> tuple[dict, list[dict]]:
    """The companies a new token can see, and the Procore user behind it."""
    # A person is waiting on this request: one quick retry at most, never a long pause.
    client = ProcoreClient(
        current_app.config["PROCORE_API_URL"],
        None,
        IssuedToken(access_token),
        max_attempts=2,
        max_wait=3.0,
    )
    try:
        api = ProcoreAPI(client)
        companies = api.companies()
        if not isinstance(companies, list):
            raise ConnectFailed(502, "Procore answered in an unexpected format. Nothing was saved.")
        # /me includes the user's name only when asked in the context of a company; asked
        # that way, Procore wants Procore-Company-Id naming the same company (the client
        # sends it because the call names a company_id).
        first = next((c.get("id") for c in companies if isinstance(c, dict)), None)
        me = api.me(first)
    except ProcoreRateLimited as exc:
        raise _unavailable(429) from exc
    except ProcoreUnavailable as exc:
        raise _unavailable(None) from exc
    except (ProcoreAuthError, ProcoreError) as exc:
        detail = f" (HTTP {exc.status})" if exc.status else ""
        raise ConnectFailed(
            502,
            f"Procore refused to say who you are{detail}. Nothing was connected. "
            "Click Connect to try again.",
        ) from exc
    if not isinstance(me, dict):
        raise ConnectFailed(502, "Procore answered in an unexpected format. Nothing was saved.")
    return me, companies


def revoke_token(access_token: str) -> bool:
    """Ask Procore to revoke a token (and its refresh token); False when unreachable."""
    config = current_app.config
    try:
        response = requests.post(
            config["PROCORE_LOGIN_URL"].rstrip("/") + "/oauth/revoke",
            data={
                "token": access_token,
                "client_id": config["PROCORE_CLIENT_ID"],
                "client_secret": config["PROCORE_CLIENT_SECRET"],
            },
            timeout=HTTP_TIMEOUT,
        )
    except requests.RequestException as exc:
        log.warning("procore revoke failed: %s", type(exc).__name__)
        return False
    log.info("procore POST /oauth/revoke -> %s", response.status_code)
    return response.status_code < 400


# -- refresh ----------------------------------------------------------------------------------
@dataclass
class _Outcome:
    """What one pass under the lock decided."""

    token: str | None = None
    reauth: str | None = None
    failure: str | None = None


class ConnectionTokens:
    """A TokenSource for one company's connection: refreshes ahead of expiry, single flight.

    Works in any thread or process: it uses its own short database sessions, never the
    caller's, so a refresh commits only the token pair.
    """

    def __init__(
        self,
        app: Flask,
        company_id: int,
        *,
        clock=time.time,
        sleep=time.sleep,
        margin: timedelta = REFRESH_MARGIN,
        http: requests.Session | None = None,
    ) -> None:
        self.app = app
        self.company_id = company_id
        self.clock = clock
        self.sleep = sleep
        self.margin = margin
        self.http = http or requests.Session()
        with app.app_context():
            self._engine = db.engine
        self._cipher = token_cipher(app)
        self.token_calls = 0

    # TokenSource -----------------------------------------------------------------------
    def access_token(self) -> str:
        """A usable access token, refreshed first when it expires within the margin."""
        with Session(self._engine) as session:
            conn = session.get(ProcoreConnection, self.company_id)
            self._require_active(conn)
            if self._fresh(conn):
                return self._cipher.decrypt(conn.access_token_enc)
        return self._refresh(rejected=None)

    def refresh_after_unauthorized(self, rejected_token: str) -> str:
        """After a 401: refresh once, unless someone already replaced the rejected token."""
        return self._refresh(rejected=rejected_token)

    def rejected_after_refresh(self) -> None:
        """A second 401 after a fresh token: stop all Procore work until an admin reconnects."""
        table = ProcoreConnection
        with Session(self._engine) as session, session.begin():
            session.execute(
                sa.update(table)
                .where(table.company_id == self.company_id, table.status == ConnectionStatus.ACTIVE)
                .values(
                    status=ConnectionStatus.NEEDS_REAUTH,
                    last_error="Procore rejected a freshly refreshed token; reconnect.",
                    updated_at=_now(self.clock),
                )
                .execution_options(synchronize_session=False)
            )
        log.warning("audit action=procore.rejected_after_refresh company=%s", self.company_id)

    # internals -------------------------------------------------------------------------
    def _require_active(self, conn: ProcoreConnection | None) -> None:
        if conn is None or conn.status != ConnectionStatus.ACTIVE or not conn.has_tokens:
            raise NeedsReauth("The Procore connection needs an admin to reconnect it.")

    def _fresh(self, conn: ProcoreConnection, margin: timedelta | None = None) -> bool:
        margin = self.margin if margin is None else margin
        return conn.expires_at is not None and conn.expires_at - _now(self.clock) > margin

    def _refresh(self, rejected: str | None) -> str:
        lock = self._acquire_lock()
        try:
            outcome = self._refresh_locked(rejected)
        finally:
            self._release_lock(lock)
        if outcome.reauth:
            raise NeedsReauth(outcome.reauth)
        if outcome.failure:
            raise TokenRefreshFailed(outcome.failure)
        return outcome.token

    def _refresh_locked(self, rejected: str | None) -> _Outcome:
        table = ProcoreConnection
        with Session(self._engine) as session, session.begin():
            conn = session.scalars(
                sa.select(table).where(table.company_id == self.company_id).with_for_update()
            ).one_or_none()
            self._require_active(conn)
            current = self._cipher.decrypt(conn.access_token_enc)
            if rejected is None and self._fresh(conn):
                return _Outcome(token=current)  # someone else refreshed while we waited
            if rejected is not None and current != rejected and self._fresh(conn, timedelta(0)):
                return _Outcome(token=current)
            old_refresh_enc = conn.refresh_token_enc
            # Take the write lock before the single-use refresh token is spent: on SQLite
            # (where FOR UPDATE is a no-op) a writer elsewhere would otherwise make the
            # commit below fail after Procore rotated the pair, losing the connection.
            session.execute(
                sa.update(table)
                .where(table.company_id == self.company_id)
                .values(updated_at=conn.updated_at)
                .execution_options(synchronize_session=False)
            )
            kind, reply = self._call_token_endpoint(self._cipher.decrypt(old_refresh_enc))
            now = _now(self.clock)
            if kind == "ok":
                new_access = reply["access_token"]
                values = {
                    "access_token_enc": self._cipher.encrypt(new_access),
                    "refresh_token_enc": self._cipher.encrypt(reply["refresh_token"]),
                    "expires_at": now + timedelta(seconds=int(reply.get("expires_in") or 5400)),
                    "key_id": self._cipher.key_id,
                    "refresh_failures": 0,
                    "last_refresh_at": now,
                    "last_error": None,
                    "updated_at": now,
                }
                swapped = session.execute(
                    sa.update(table)
                    .where(
                        table.company_id == self.company_id,
                        table.refresh_token_enc == old_refresh_enc,
                        table.status == ConnectionStatus.ACTIVE,
                    )
                    .values(**values)
                    .execution_options(synchronize_session=False)
                ).rowcount
                if swapped != 1:  # disconnected meanwhile: the new pair must not be kept
                    return _Outcome(reauth="The Procore connection changed during a refresh.")
                log.info("procore token refreshed company=%s", self.company_id)
                return _Outcome(token=new_access)
            conn.refresh_failures = (conn.refresh_failures or 0) + 1
            conn.updated_at = now
            if kind == "reauth":
                conn.status = ConnectionStatus.NEEDS_REAUTH
                conn.last_error = f"Procore refused the refresh token ({reply}); reconnect."
                log.warning(
                    "audit action=procore.refresh_failed company=%s reason=%s",
                    self.company_id,
                    reply,
                )
                return _Outcome(reauth=conn.last_error)
            conn.last_error = f"Token refresh failed: {reply}"
            if rejected is None and self._fresh(conn, timedelta(minutes=1)):
                # Procore is down but the current token still works for a while: use it.
                return _Outcome(token=current)
            return _Outcome(failure=conn.last_error)

    def _call_token_endpoint(self, refresh_token: str) -> tuple[str, object]:
        """('ok', reply) | ('reauth', reason) | ('failed', reason), retrying transient errors."""
        config = self.app.config
        url = config["PROCORE_LOGIN_URL"].rstrip("/") + "/oauth/token"
        data = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": config["PROCORE_CLIENT_ID"],
            "client_secret": config["PROCORE_CLIENT_SECRET"],
        }
        reason = "no attempt"
        retry_after = None
        for attempt in range(REFRESH_ATTEMPTS):
            if attempt:
                self.sleep(self._delay(attempt, retry_after))
                retry_after = None
            self.token_calls += 1
            try:
                response = self.http.post(url, data=data, timeout=HTTP_TIMEOUT)
            except requests.RequestException as exc:
                reason = f"network error ({type(exc).__name__})"
                log.warning("procore POST /oauth/token failed: %s", reason)
                continue
            log.info("procore POST /oauth/token -> %s", response.status_code)
            error = _oauth_error(response)
            if response.status_code == 401 or error == "invalid_grant":
                return "reauth", error or f"HTTP {response.status_code}"
            if response.status_code == 429 or response.status_code >= 500:
                reason = f"HTTP {response.status_code}"
                retry_after = response.headers.get("Retry-After")
                continue
            if response.status_code != 200 or error:
                return "failed", error or f"HTTP {response.status_code}"
            try:
                reply = response.json()
            except ValueError:
                reason = "unreadable reply"
                continue
            if not reply.get("access_token") or not reply.get("refresh_token"):
                return "failed", "reply without a token pair"
            return "ok", reply
        return "failed", reason

    @staticmethod
    def _delay(attempt: int, retry_after: str | None) -> float:
        if retry_after and retry_after.isdigit():
            return min(float(retry_after), 30.0)
        return min(2.0 ** (attempt - 1), 8.0) * random.uniform(0.5, 1.0)

    # Redis lock (fronts the row lock so waiters do not pile up on the database) --------
    def _acquire_lock(self) -> str | None:
        key = _LOCK_KEY.format(self.company_id)
        value = uuid.uuid4().hex
        try:
            conn = self._redis()
            deadline = time.monotonic() + LOCK_WAIT
            while not conn.set(key, value, nx=True, px=LOCK_TTL_MS):
                if time.monotonic() > deadline:
                    raise TokenRefreshFailed("Another process is still refreshing the token.")
                time.sleep(0.02)
        except redis.exceptions.RedisError:
            log.warning("redis unavailable; refresh relies on the database row lock only")
            return None
        return value

    def _release_lock(self, value: str | None) -> None:
        if value is None:
            return
        try:
            self._redis().eval(_RELEASE, 1, _LOCK_KEY.format(self.company_id), value)
        except redis.exceptions.RedisError:
            log.warning("could not release the refresh lock; it expires by itself")

    def _redis(self):
        from webapp.redis_runtime import get_redis

        with self.app.app_context():
            return get_redis()


def _oauth_error(response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None
