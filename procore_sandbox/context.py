"""The per-app sandbox state (store, config, faults, stats) and how views reach it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

from procore_sandbox.config import SandboxConfig
from procore_sandbox.store import Store

if TYPE_CHECKING:
    from procore_sandbox.faults import Faults


@dataclass
class Sandbox:
    """Everything one sandbox app instance owns; at app.extensions["procore_sandbox"]."""

    store: Store
    config: SandboxConfig
    faults: Faults


def current() -> Sandbox:
    """The Sandbox of the app handling this request."""
    return current_app.extensions["procore_sandbox"]


def current_store() -> Store:
    """The Store of the app handling this request."""
    return current().store
