"""Rate limits, overload, injected faults and request statistics (filled in below)."""

from __future__ import annotations

from flask import Flask

from procore_sandbox.config import SandboxConfig
from procore_sandbox.store import Store


class Faults:
    """Per-app rate limiter, fault rules and stats."""

    def __init__(self, config: SandboxConfig, store: Store) -> None:
        self.config = config
        self.store = store

    def init_app(self, app: Flask) -> None:
        """Install the request hooks."""
