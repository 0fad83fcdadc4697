"""Sandbox settings: the registered app, token lifetime, rate limits, webhook timing."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

DEFAULT_CLIENT_ID = "crewclock-dev"
DEFAULT_CLIENT_SECRET = "crewclock-dev-secret"  # a published development value, not a secret
DEFAULT_REDIRECT_URIS = (
    "http://127.0.0.1:5000/settings/integrations/procore/callback",
    "http://localhost:5000/settings/integrations/procore/callback",
)
# Fields /_sandbox/config may change at runtime.
RUNTIME_FIELDS = (
    "token_lifetime",
    "rate_limit_hourly",
    "rate_limit_spike",
    "spike_window",
    "hourly_window",
    "overload",
    "overload_retry_after",
    "webhook_timeout",
    "webhook_backoff_base",
    "webhook_backoff_cap",
    "webhook_give_up_after",
)


def _env_list(name: str, default: tuple[str, ...]) -> list[str]:
    raw = os.environ.get(name)
    return [part.strip() for part in raw.split(",") if part.strip()] if raw else list(default)


@dataclass
class SandboxConfig:
    """Everything tunable about the sandbox; `from_env()` reads SANDBOX_* variables."""

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    redirect_uris: list[str] = field(default_factory=lambda: list(DEFAULT_REDIRECT_URIS))
    seed: str = "demo"
    data_file: str | None = None
    token_lifetime: int = 5400  # seconds; `expires_in` of new access tokens
    rate_limit_hourly: int = 3600
    rate_limit_spike: int = 100
    hourly_window: float = 3600.0
    spike_window: float = 10.0
    overload: bool = False  # answer every API/OAuth call with 503 + Retry-After
    overload_retry_after: int = 5
    # Webhook delivery timing (procore_sandbox/webhooks.py); compress these in tests.
    webhook_timeout: float = 5.0
    webhook_backoff_base: float = 1.0
    webhook_backoff_cap: float = 3600.0
    webhook_give_up_after: float = 12 * 3600.0
    webhooks_enabled: bool = True
    secret_key: str = "sandbox-session-key"  # signs the sandbox's own login cookie only

    @classmethod
    def from_env(cls, **overrides) -> SandboxConfig:
        """Defaults, then SANDBOX_* environment variables, then explicit overrides."""
        env = os.environ
        config = cls(
            client_id=env.get("SANDBOX_CLIENT_ID", DEFAULT_CLIENT_ID),
            client_secret=env.get("SANDBOX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET),
            redirect_uris=_env_list("SANDBOX_REDIRECT_URIS", DEFAULT_REDIRECT_URIS),
            token_lifetime=int(env.get("SANDBOX_TOKEN_LIFETIME", "5400")),
            rate_limit_hourly=int(env.get("SANDBOX_RATE_LIMIT_HOURLY", "3600")),
            rate_limit_spike=int(env.get("SANDBOX_RATE_LIMIT_SPIKE", "100")),
            secret_key=env.get("SANDBOX_SECRET_KEY", "sandbox-session-key"),
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(config, key, value)
        return config

    def runtime_view(self) -> dict:
        """The settings /_sandbox/config shows and accepts."""
        data = asdict(self)
        return {key: data[key] for key in RUNTIME_FIELDS}
