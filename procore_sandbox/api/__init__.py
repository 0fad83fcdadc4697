"""The Procore REST API under /rest: one module per resource family."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/rest")
