"""Where people and Procore reach this server from outside (links, webhooks)."""

from urllib.parse import urlsplit

from flask import current_app


def public_base_url() -> str | None:
    """PUBLIC_BASE_URL, else the Procore redirect URI's origin; None when neither names one."""
    base = (current_app.config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    if base:
        return base
    parts = urlsplit(current_app.config.get("PROCORE_REDIRECT_URI") or "")
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"
