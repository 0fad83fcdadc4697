"""The sandbox Flask app: OAuth and REST on one origin, plus the /_sandbox control API."""

from __future__ import annotations

import importlib
import importlib.util

from flask import Flask

from procore_sandbox.config import SandboxConfig
from procore_sandbox.context import Sandbox
from procore_sandbox.faults import Faults
from procore_sandbox.seed import ensure_oauth_app, seed_store
from procore_sandbox.store import Store


def _optional_module(name: str):
    """Import procore_sandbox.<name> if the file exists (errors inside it still raise)."""
    if importlib.util.find_spec(f"procore_sandbox.{name}") is None:
        return None
    return importlib.import_module(f"procore_sandbox.{name}")


def create_app(config: SandboxConfig | None = None, store: Store | None = None) -> Flask:
    """Build a sandbox app; a fresh store seeded per config.seed unless one is passed."""
    config = config or SandboxConfig.from_env()
    app = Flask(__name__)
    app.config["SECRET_KEY"] = config.secret_key
    app.config["JSON_SORT_KEYS"] = False
    app.json.sort_keys = False
    app.json.compact = True

    if store is None:
        store = Store()
        if not (config.data_file and store.load(config.data_file)):
            seed_store(store, config.seed)
        if config.data_file:
            store.autosave(config.data_file)
    ensure_oauth_app(store, config)

    faults = Faults(config, store)
    app.extensions["procore_sandbox"] = Sandbox(store=store, config=config, faults=faults)

    from procore_sandbox import admin, oauth
    from procore_sandbox.api import bp as api_bp

    app.register_blueprint(oauth.bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(admin.bp)
    faults.init_app(app)

    for name in ("webhooks", "ui"):
        module = _optional_module(name)
        if module is not None:
            module.init_app(app)
    return app
