"""SQLite settings that let the web app and a busy worker share the default database.

In its default rollback-journal mode a reader waiting on the worker's write transaction gets
"database is locked" after five seconds; with write-ahead logging readers never wait for the
writer, and writers queue behind each other for up to BUSY_TIMEOUT_MS instead of failing.
"""

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine

BUSY_TIMEOUT_MS = 30_000


@event.listens_for(Engine, "connect")
def _tune_sqlite(dbapi_connection, _connection_record) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # An in-memory database answers "memory" and stays as it is.
        cursor.execute("PRAGMA journal_mode = WAL")
        # Safe with WAL (a power loss can only lose the last commits, never corrupt the file).
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()
    # pysqlite opens a transaction just before the first write; make it BEGIN IMMEDIATE so
    # the write lock is taken (waiting up to the busy timeout) when the transaction starts,
    # never by upgrading a read lock later, which fails at once when another writer is busy.
    dbapi_connection.isolation_level = "IMMEDIATE"


def journal_mode(connection) -> str:
    """The journal mode of a SQLAlchemy connection's SQLite database (for checks and tests)."""
    return connection.exec_driver_sql("PRAGMA journal_mode").scalar()
