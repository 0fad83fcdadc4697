"""The default database (a SQLite file) keeps pages working while a worker writes."""

import sqlite3
import threading

import pytest

from tests.conftest import CSRFClient, make_company, make_test_app, make_user
from webapp.extensions import db
from webapp.models import Role
from webapp.sqlite_tuning import journal_mode

pytestmark = pytest.mark.slow


@pytest.fixture
def file_app(tmp_path, redis_url):
    path = tmp_path / "crewclock.db"
    application = make_test_app(f"sqlite:///{path}", redis_url, instance_path=tmp_path / "i")
    application.test_client_class = CSRFClient
    with application.app_context():
        db.create_all()
        yield application, path
        db.session.remove()
        db.engine.dispose()


def test_my_time_answers_while_a_worker_transaction_holds_the_write_lock(file_app):
    app, path = file_app
    company = make_company()
    worker = make_user(company, Role.WORKER, email="crew@example.com")
    db.session.commit()
    with db.engine.connect() as conn:
        assert journal_mode(conn) == "wal"
    client = app.test_client()
    client.login(worker)

    # Another process (an import in a worker) is half-way through a large write transaction.
    locked, release = threading.Event(), threading.Event()
    state = {}

    def import_transaction():
        other = sqlite3.connect(path, isolation_level=None, timeout=1)
        other.execute("BEGIN EXCLUSIVE")
        other.execute("UPDATE company SET name = 'Renamed by the import'")
        locked.set()
        release.wait(timeout=40)
        state["still_locked_when_page_answered"] = not release.is_set() or state.get("answered")
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=import_transaction)
    holder.start()
    assert locked.wait(timeout=10)
    try:
        response = client.get("/time/")
        state["answered"] = True
    finally:
        release.set()
        holder.join(timeout=60)

    assert response.status_code == 200
    assert b"My time" in response.data
    assert state["still_locked_when_page_answered"]


def test_a_second_writer_waits_for_the_first_instead_of_failing(file_app):
    app, path = file_app
    company = make_company()
    make_user(company, Role.ADMIN, email="boss@example.com")
    db.session.commit()

    locked = threading.Event()

    def short_import_batch():
        other = sqlite3.connect(path, isolation_level=None, timeout=1)
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE company SET name = 'Batch 1'")
        locked.set()
        threading.Event().wait(6)  # longer than pysqlite's default 5 s timeout
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=short_import_batch)
    holder.start()
    assert locked.wait(timeout=10)
    # The web app saves while the batch holds the lock: it queues behind it and succeeds.
    company_row = db.session.get(type(company), company.id)
    company_row.name = "Saved by an admin"
    db.session.commit()
    holder.join(timeout=30)

    db.session.expire_all()
    assert db.session.get(type(company), company.id).name == "Saved by an admin"
