"""The /_sandbox control API for tests: faults, config, stats, reset, export."""

from flask import Blueprint

bp = Blueprint("sandbox_admin", __name__, url_prefix="/_sandbox")
