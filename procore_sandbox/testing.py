"""Test helpers: route `requests` to the sandbox in-process, or run it on a free port.

In-process (no sockets)::

    app = create_app(SandboxConfig(seed="demo"))
    with mount_sandbox(app, "http://procore.test"):
        requests.get("http://procore.test/rest/v1.0/me", headers=...)  # served by `app`

Every `requests` call (module functions and any Session) whose URL starts with the base URL
goes to the app; other URLs are untouched. A "drop" fault raises requests.ConnectionError
after the write committed; a request whose handling outlasts the caller's `timeout` raises
requests.ReadTimeout (the app still finishes it, like a real server would).

Live server on a free port (for browsers, workers, other processes)::

    with live_sandbox(seed="demo", rate_limit_spike=25) as sandbox:
        sandbox.url, sandbox.store   # also unpacks: url, store = sandbox
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from unittest import mock

import requests
from flask import Flask
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from werkzeug.serving import BaseWSGIServer
from werkzeug.serving import make_server as _werkzeug_make_server
from werkzeug.test import EnvironBuilder, run_wsgi_app

from procore_sandbox.config import SandboxConfig
from procore_sandbox.faults import DroppedResponse
from procore_sandbox.store import Store


def make_server(host: str, port: int, app: Flask) -> BaseWSGIServer:
    """A threaded werkzeug server for the app (port 0 picks a free port)."""
    return _werkzeug_make_server(host, port, app, threaded=True)


class SandboxAdapter(BaseAdapter):
    """A requests transport adapter that calls the sandbox WSGI app directly."""

    def __init__(self, app: Flask, base_url: str) -> None:
        super().__init__()
        self.app = app
        self.base_url = base_url.rstrip("/")

    def _call(self, prepared: requests.PreparedRequest) -> tuple[int, str, list, bytes]:
        url = prepared.url or ""
        rest = url[len(self.base_url) :]
        path, _, query = rest.partition("?")
        body = prepared.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif body is not None and not isinstance(body, bytes):
            body = b"".join(body)  # generators (e.g. multipart streams)
        builder = EnvironBuilder(
            path=path or "/",
            base_url=self.base_url,
            query_string=query,
            method=prepared.method,
            headers=list(prepared.headers.items()),
            data=body or b"",
        )
        environ = builder.get_environ()
        try:
            app_iter, status, headers = run_wsgi_app(self.app, environ, buffered=True)
            data = b"".join(app_iter)
        finally:
            builder.close()
        code, _, reason = status.partition(" ")
        return int(code), reason, list(headers.items()), data

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        """Serve the request with the app; map dropped replies and timeouts to requests'."""
        read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
        outcome: dict = {}

        def run() -> None:
            try:
                outcome["result"] = self._call(request)
            except BaseException as exc:  # handed to the caller's thread
                outcome["error"] = exc

        if read_timeout is None:
            run()
        else:
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            worker.join(read_timeout)
            if worker.is_alive():
                raise requests.exceptions.ReadTimeout(
                    f"sandbox did not answer within {read_timeout} s", request=request
                )
        if "error" in outcome:
            error = outcome["error"]
            if isinstance(error, DroppedResponse):
                raise requests.exceptions.ConnectionError(
                    "Connection aborted: sandbox dropped the response", request=request
                ) from error
            raise error
        status, reason, headers, data = outcome["result"]
        response = requests.Response()
        response.status_code = status
        response.reason = reason
        response.headers = CaseInsensitiveDict(headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = io.BytesIO(data)
        response._content = data
        response._content_consumed = True
        response.url = request.url
        response.request = request
        response.connection = self
        cookie_headers = [v for k, v in headers if k.lower() == "set-cookie"]
        for raw_cookie in cookie_headers:
            name, _, rest = raw_cookie.partition("=")
            response.cookies.set(name, rest.split(";", 1)[0])
        return response

    def close(self) -> None:
        """Nothing to release."""


@contextlib.contextmanager
def mount_sandbox(app: Flask, base_url: str = "http://procore.test") -> Iterator[SandboxAdapter]:
    """Route every `requests` call under base_url to the app while the block runs."""
    adapter = SandboxAdapter(app, base_url)
    original = requests.Session.get_adapter
    prefix = adapter.base_url

    def get_adapter(session, url):
        if url == prefix or url.startswith(prefix + "/") or url.startswith(prefix + "?"):
            return adapter
        return original(session, url)

    with mock.patch.object(requests.Session, "get_adapter", get_adapter):
        yield adapter


@dataclass
class LiveSandbox:
    """A sandbox served on a real port: its base URL, store, app and config."""

    url: str
    store: Store
    app: Flask
    config: SandboxConfig

    def __iter__(self):
        return iter((self.url, self.store))

    @property
    def faults(self):
        """The app's Faults (rate limiter, fault rules, stats)."""
        return self.app.extensions["procore_sandbox"].faults


@contextlib.contextmanager
def live_sandbox(
    port: int = 0, seed: str = "demo", host: str = "127.0.0.1", **config
) -> Iterator[LiveSandbox]:
    """Run a sandbox app in a background thread (threaded server) on a free port."""
    from procore_sandbox.app import create_app

    sandbox_config = SandboxConfig.from_env(seed=seed, **config)
    app = create_app(sandbox_config)
    server = make_server(host, port, app)
    thread = threading.Thread(target=server.serve_forever, name="procore-sandbox", daemon=True)
    thread.start()
    try:
        yield LiveSandbox(
            url=f"http://{host}:{server.server_port}",
            store=app.extensions["procore_sandbox"].store,
            app=app,
            config=sandbox_config,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
