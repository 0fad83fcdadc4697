"""The migrations create exactly the schema the models describe, on SQLite and PostgreSQL."""

import os
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade

from config import TestConfig
from webapp import create_app
from webapp.extensions import db


def _schema_diff_after_upgrade(uri: str, tmp_path) -> list:
    app = create_app(TestConfig, instance_path=tmp_path / "instance", SQLALCHEMY_DATABASE_URI=uri)
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        db.engine.dispose()
    return diff


def test_upgrade_on_empty_sqlite_creates_the_whole_schema(tmp_path):
    diff = _schema_diff_after_upgrade(f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path)
    assert diff == []


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL not set")
def test_upgrade_on_empty_postgresql_creates_the_whole_schema(tmp_path):
    base = os.environ["TEST_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"crewclock_mig_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        uri = base.rsplit("/", 1)[0] + f"/{name}"
        assert _schema_diff_after_upgrade(uri, tmp_path) == []
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
