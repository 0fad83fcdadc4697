"""Test helpers: route `requests` to the sandbox in-process, or run it on a free port."""

from __future__ import annotations

from flask import Flask
from werkzeug.serving import BaseWSGIServer
from werkzeug.serving import make_server as _werkzeug_make_server


def make_server(host: str, port: int, app: Flask) -> BaseWSGIServer:
    """A threaded werkzeug server for the app (port 0 picks a free port)."""
    return _werkzeug_make_server(host, port, app, threaded=True)
