"""Fixtures: the app on SQLite (and PostgreSQL when TEST_DATABASE_URL is set), a real
redis-server, a CSRF-aware test client, and factories for companies and users."""

import hashlib
import os
import socket
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from flask import g, request_started
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from werkzeug.security import generate_password_hash

from config import TestConfig
from webapp import create_app
from webapp.extensions import db
from webapp.models import Company, Role, User
from webapp.redis_runtime import embedded_redis_binary

FAST_HASH = "pbkdf2:sha256:1000"  # tests only: real logins use the strong default
PASSWORD = "pass-word-1"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server: TEST_REDIS_URL when set, else one started on a free port."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        redis.Redis.from_url(url).flushdb()
        yield url
        return
    # The embedded binary a newcomer's laptop uses; CI also runs against system Redis.
    binary = embedded_redis_binary()
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(200):
        try:
            if redis.Redis.from_url(url).ping():
                break
        except redis.exceptions.ConnectionError:
            time.sleep(0.025)
    yield url
    proc.terminate()
    proc.wait(5)


def sqlalchemy_url(url: str) -> str:
    """The URL with the psycopg 3 driver named, as SQLAlchemy wants it."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@contextmanager
def stack_database(backend: str, tmp: Path):
    """A fresh database for one stack of real processes: a SQLite file or a new PostgreSQL one."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'crewclock.db'}"
        return
    base = os.environ["TEST_DATABASE_URL"]
    name = f"crewclock_e2e_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(sqlalchemy_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _backends():
    backends = ["sqlite"]
    if os.environ.get("TEST_DATABASE_URL"):
        backends.append("postgresql")
    return backends


def postgres_url() -> str:
    return sqlalchemy_url(os.environ["TEST_DATABASE_URL"])


@pytest.fixture(scope="session", params=_backends())
def db_backend(request):
    """Each app test runs once per configured database backend."""
    return request.param


@pytest.fixture(scope="session")
def pg_schema_ready(db_backend):
    """Create the schema on PostgreSQL once per session (tables are truncated per test)."""
    if db_backend != "postgresql":
        return None
    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=postgres_url())
    with app.app_context():
        db.drop_all()
        db.create_all()
        db.engine.dispose()
    return True


def forget_login_user(sender, **extra) -> None:
    """Each request loads its own signed-in user, as in production.

    The fixtures keep one app context open for the whole test, so every request (of every
    test client) shares one `g`, where Flask-Login caches the user: without this a request
    of one client could run as the user another client logged in.
    """
    g.pop("_login_user", None)


def make_test_app(db_uri: str, redis_url: str, instance_path=None, **overrides):
    """A test app bound to db_uri and redis_url."""
    options = {}
    if db_uri.startswith("sqlite://") and db_uri in ("sqlite://", "sqlite:///:memory:"):
        options = {"poolclass": sa.pool.StaticPool, "connect_args": {"check_same_thread": False}}
    application = create_app(
        TestConfig,
        instance_path=instance_path,
        SQLALCHEMY_DATABASE_URI=db_uri,
        SQLALCHEMY_ENGINE_OPTIONS=options,
        REDIS_URL=redis_url,
        **overrides,
    )
    request_started.connect(forget_login_user, application)
    return application


@pytest.fixture
def app(db_backend, pg_schema_ready, redis_url, tmp_path):
    """The app with an empty schema and an empty Redis database."""
    uri = postgres_url() if db_backend == "postgresql" else "sqlite://"
    application = make_test_app(uri, redis_url, instance_path=tmp_path / "instance")
    application.test_client_class = CSRFClient
    redis.Redis.from_url(redis_url).flushdb()
    with application.app_context():
        if db_backend == "postgresql":
            tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            db.session.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()
        else:
            db.create_all()
        yield application
        db.session.remove()
        if db_backend == "sqlite":
            db.drop_all()
        db.engine.dispose()


@pytest.fixture
def threaded_app(request, db_backend, redis_url, tmp_path):
    """An app whose database many threads can use at once (a file on SQLite)."""
    if db_backend == "postgresql":
        yield request.getfixturevalue("app")
        return
    application = make_test_app(
        f"sqlite:///{tmp_path / 'threads.db'}", redis_url, instance_path=tmp_path / "instance"
    )
    redis.Redis.from_url(redis_url).flushdb()
    with application.app_context():
        db.create_all()
        yield application
        db.session.remove()
        db.engine.dispose()


class CSRFClient(FlaskClient):
    """A test client that sends a valid X-CSRFToken on unsafe methods unless csrf=False."""

    def open(self, *args, **kwargs):
        send_csrf = kwargs.pop("csrf", True)
        method = (kwargs.get("method") or "GET").upper()
        if send_csrf and method in UNSAFE_METHODS:
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("X-CSRFToken", self.csrf_token())
            kwargs["headers"] = headers
        return super().open(*args, **kwargs)

    def csrf_token(self) -> str:
        """A token signed like Flask-WTF's generate_csrf(), bound to this client's session."""
        with self.session_transaction() as sess:
            if "csrf_token" not in sess:
                sess["csrf_token"] = hashlib.sha1(os.urandom(64)).hexdigest()
            raw = sess["csrf_token"]
        serializer = URLSafeTimedSerializer(
            self.application.config["SECRET_KEY"], salt="wtf-csrf-token"
        )
        return serializer.dumps(raw)

    def login(self, user: User, password: str = PASSWORD):
        """Log in through the real login form."""
        response = self.post("/login", data={"identifier": user.username, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return response


@pytest.fixture
def client(app):
    return app.test_client()


def make_company(name: str = "Acme Builders") -> Company:
    company = Company(name=name)
    db.session.add(company)
    db.session.commit()
    return company


_counter = {"n": 0}


def make_user(company: Company, role: Role = Role.WORKER, **fields) -> User:
    """A user of `company` whose password is PASSWORD."""
    _counter["n"] += 1
    n = _counter["n"]
    user = User(
        company_id=company.id,
        first_name=fields.pop("first_name", "Test"),
        last_name=fields.pop("last_name", f"Person{n}"),
        username=fields.pop("username", f"user{n}"),
        email=fields.pop("email", f"user{n}@example.test"),
        role=role,
        password_hash=generate_password_hash(PASSWORD, method=FAST_HASH),
        **fields,
    )
    db.session.add(user)
    db.session.commit()
    return user


@pytest.fixture
def company(app):
    return make_company("Acme Builders")


@pytest.fixture
def other_company(app):
    return make_company("Other Co")


@pytest.fixture
def admin(company):
    return make_user(company, Role.ADMIN, first_name="Ada", last_name="Admin")


@pytest.fixture
def worker_user(company):
    return make_user(company, Role.WORKER, first_name="Will", last_name="Worker")


@pytest.fixture
def admin_client(client, admin):
    client.login(admin)
    return client


ROOT = Path(__file__).resolve().parent.parent
