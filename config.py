"""Configuration from the environment; `.env.example` lists every variable."""

import os
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("CREWCLOCK_INSTANCE_DIR", BASE_DIR / "instance"))

# Defaults point at the local Procore sandbox so `make run` works with nothing configured.
SANDBOX_URL = "http://127.0.0.1:5001"
DEV_SECRET_KEY = "dev-only-secret-key-change-me"


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        return f"sqlite:///{INSTANCE_DIR / 'crewclock.db'}"
    # Heroku-style URLs name the dialect "postgres"; SQLAlchemy wants the psycopg 3 driver.
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://") :]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class Config:
    """Settings shared by every environment, read from environment variables."""

    ENV_NAME = "development"
    SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)
    SQLALCHEMY_DATABASE_URI = _database_url()
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # Empty means: start an embedded redis-server (see webapp/redis_runtime.py).
    REDIS_URL = os.environ.get("REDIS_URL", "")

    PROCORE_CLIENT_ID = os.environ.get("PROCORE_CLIENT_ID", "crewclock-dev")
    PROCORE_CLIENT_SECRET = os.environ.get("PROCORE_CLIENT_SECRET", "crewclock-dev-secret")
    PROCORE_LOGIN_URL = os.environ.get("PROCORE_LOGIN_URL", SANDBOX_URL).rstrip("/")
    PROCORE_API_URL = os.environ.get("PROCORE_API_URL", SANDBOX_URL).rstrip("/")
    # Procore's web app, for "View in Procore" links; empty: derived from PROCORE_API_URL.
    PROCORE_WEB_URL = os.environ.get("PROCORE_WEB_URL", "").rstrip("/")
    PROCORE_REDIRECT_URI = os.environ.get(
        "PROCORE_REDIRECT_URI",
        "http://127.0.0.1:5000/settings/integrations/procore/callback",
    )
    # Comma-separated Fernet keys, newest first. Empty: a dev key in the instance folder.
    TOKEN_ENCRYPTION_KEYS = os.environ.get("TOKEN_ENCRYPTION_KEYS", "")
    WEBHOOK_SECRET = os.environ.get("WEBHOOK_SECRET", "")
    # Public base URL Procore posts webhooks to (empty: derived from the redirect URI).
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "")

    WTF_CSRF_TIME_LIMIT = None
    WTF_CSRF_HEADERS = ["X-CSRFToken", "X-CSRF-Token"]
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    SESSION_COOKIE_NAME = os.environ.get("SESSION_COOKIE_NAME", "crewclock_session")
    PERMANENT_SESSION_LIFETIME = timedelta(hours=12)
    REMEMBER_COOKIE_HTTPONLY = True
    MAX_CONTENT_LENGTH = 2 * 1024 * 1024
    # How many reverse proxies in front of Crewclock append to X-Forwarded-For (and set
    # X-Forwarded-Proto). 0: the headers are ignored and the peer address is the client's,
    # so nobody can choose the address the login throttle counts against.
    TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", "0"))

    # Periodic work started by `flask sync-scheduler` (any number may run; each fires once).
    SYNC_INTERVAL_SECONDS = int(os.environ.get("SYNC_INTERVAL_SECONDS", "900"))
    SYNC_FULL_INTERVAL_SECONDS = int(os.environ.get("SYNC_FULL_INTERVAL_SECONDS", "86400"))
    # Time card push: send jobs right after commit; how long an in-doubt create settles
    # before it is reconciled by origin_id.
    PUSH_AUTO_ENQUEUE = _bool("PUSH_AUTO_ENQUEUE", True)
    PUSH_UNKNOWN_SETTLE_SECONDS = float(os.environ.get("PUSH_UNKNOWN_SETTLE_SECONDS", "30"))
    # Procore may apply a create whose reply never came (a timeout) minutes later: such a
    # create is looked up this many times over this window before it is sent again, and a
    # re-sent one is watched this long for a late duplicate (removed, kept in run history).
    PUSH_UNKNOWN_WINDOW_SECONDS = float(os.environ.get("PUSH_UNKNOWN_WINDOW_SECONDS", "600"))
    PUSH_UNKNOWN_LOOKUPS = int(os.environ.get("PUSH_UNKNOWN_LOOKUPS", "4"))
    PUSH_LATE_CREATE_WATCH_SECONDS = float(
        os.environ.get("PUSH_LATE_CREATE_WATCH_SECONDS", "86400")
    )
    # How long a Procore call waits for an answer (seconds) before its outcome is unknown.
    PROCORE_READ_TIMEOUT_SECONDS = float(os.environ.get("PROCORE_READ_TIMEOUT_SECONDS", "60"))

    PAGE_SIZE = 50
    DEMO_ADMIN_PASSWORD = os.environ.get("DEMO_ADMIN_PASSWORD", "demo-password")
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")


class DevelopmentConfig(Config):
    """Local development: sandbox defaults, embedded Redis."""

    # So webhooks from the local sandbox work out of the box; production requires a real one.
    WEBHOOK_SECRET = os.environ.get("WEBHOOK_SECRET", "dev-webhook-secret")


class TestConfig(Config):
    """Used by the test suite; the fixtures fill in the database and Redis URLs."""

    ENV_NAME = "test"
    TESTING = True
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    WTF_CSRF_ENABLED = True
    SECRET_KEY = "test-secret-key"
    PROCORE_CLIENT_ID = "crewclock-dev"
    PROCORE_CLIENT_SECRET = "crewclock-dev-secret"
    WEBHOOK_SECRET = "test-webhook-secret"
    SERVER_NAME = None


class ProductionConfig(Config):
    """Production: secure cookies, and refuses to start on development secrets."""

    ENV_NAME = "production"
    SESSION_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-session"
    REMEMBER_COOKIE_SECURE = True

    @classmethod
    def check(cls) -> None:
        """Raise if a secret still has its development default."""
        missing = []
        if cls.SECRET_KEY == DEV_SECRET_KEY:
            missing.append("SECRET_KEY")
        if not cls.TOKEN_ENCRYPTION_KEYS:
            missing.append("TOKEN_ENCRYPTION_KEYS")
        if not cls.WEBHOOK_SECRET:
            missing.append("WEBHOOK_SECRET")
        if cls.PROCORE_CLIENT_SECRET == "crewclock-dev-secret":
            missing.append("PROCORE_CLIENT_SECRET")
        if not os.environ.get("DATABASE_URL"):
            missing.append("DATABASE_URL")
        if missing:
            raise RuntimeError("Production needs real values for: " + ", ".join(missing))


CONFIGS = {
    "development": DevelopmentConfig,
    "test": TestConfig,
    "production": ProductionConfig,
}


def config_from_env():
    """The config class named by CREWCLOCK_ENV (development by default)."""
    return CONFIGS[os.environ.get("CREWCLOCK_ENV", "development")]
