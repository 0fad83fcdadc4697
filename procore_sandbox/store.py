"""The sandbox's in-memory data: one dict of records per table, one lock, change callbacks.

Records are plain JSON-able dicts keyed by id. Ids are 15-digit integers (Procore ids can
exceed 32 bits, so clients that squeeze them into 32-bit ints break here as they would in
production). Timestamps are ISO-8601 UTC strings ("YYYY-MM-DDTHH:MM:SSZ"), which sort and
compare correctly as strings.

Every create/update/delete made through `insert`/`update`/`delete` on a table listed in
`RESOURCE_NAMES` is reported to the callbacks registered with `on_change`, after the lock is
released, as (company_id, project_id, resource_name, event_type, resource_id,
source_application_id). The API passes the client id of the token that made the change; the
web UI passes None.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

# Data tables (records keyed by int id) and OAuth tables (records keyed by a string).
TABLES = (
    "companies",
    "users",  # company directory users; a login is a user email + the sandbox password
    "people",  # company people (the `party_id` of timecard entries)
    "projects",
    "cost_code_lists",  # standard cost code lists
    "standard_cost_codes",
    "cost_codes",  # project cost codes
    "line_item_types",
    "time_types",  # timecard time types
    "timecard_entries",
    "timesheets",
    "hooks",  # webhooks (owned by procore_sandbox/webhooks.py)
    "hook_triggers",
    "hook_deliveries",
)
OAUTH_TABLES = ("oauth_apps", "oauth_codes", "access_tokens", "refresh_tokens")

# Webhook resource names of the tables whose changes are announced.
RESOURCE_NAMES = {
    "users": "Company Users",
    "projects": "Projects",
    "cost_codes": "Cost Codes",
    "standard_cost_codes": "Standard Cost Codes",
    "timecard_entries": "Timecard Entries",
}

# Store setting: webhook events carry metadata.source_application_id = null (see seed.py).
NULL_SOURCE_APPLICATION = "webhook_null_source_application"

FIRST_ID = 598_134_325_900_000  # 15 digits, like real ids in newer Procore regions

ChangeCallback = Callable[[int | None, int | None, str, str, Any, str | None], None]


def iso(ts: float) -> str:
    """Unix seconds -> 'YYYY-MM-DDTHH:MM:SSZ'."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """All sandbox state behind one re-entrant lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tables: dict[str, dict[Any, dict]] = {name: {} for name in TABLES + OAUTH_TABLES}
        self.next_id_value = FIRST_ID
        # Seconds added to the wall clock: tests move time forward (token expiry, windows).
        self.clock_offset = 0.0
        # Behaviour switches that belong to the data set (a seed picks them; /_sandbox/config
        # changes them), e.g. "webhook_null_source_application".
        self.settings: dict[str, Any] = {}
        self._callbacks: list[ChangeCallback] = []
        # Writes per table, and {(table, field, fold): (writes seen, {value: records})} built from
        # them, so a list endpoint finds one company's rows without scanning every row.
        self._writes: dict[str, int] = {}
        self._groups: dict[tuple[str, str, bool], tuple[int, dict[Any, list[dict]]]] = {}
        self._dirty = False
        self._save_path: str | None = None
        self._saver: threading.Thread | None = None
        self._stop_saver = threading.Event()

    # -- time and ids -------------------------------------------------------------------
    def time(self) -> float:
        """Unix seconds on the sandbox clock (wall clock + clock_offset)."""
        return time.time() + self.clock_offset

    def now_iso(self) -> str:
        """The sandbox clock as an ISO-8601 UTC string."""
        return iso(self.time())

    def next_id(self) -> int:
        """A fresh 64-bit-ish id, unique across all tables."""
        with self.lock:
            self.next_id_value += 1
            return self.next_id_value

    # -- change notification ------------------------------------------------------------
    def on_change(self, callback: ChangeCallback) -> None:
        """Call `callback(company_id, project_id, resource_name, event_type, resource_id,
        source_application_id)` after every create/update/delete of an announced table."""
        self._callbacks.append(callback)

    def _emit(self, table: str, event_type: str, record: dict, source_app: str | None) -> None:
        resource_name = RESOURCE_NAMES.get(table)
        if resource_name is None:
            return
        project_id = record["id"] if table == "projects" else record.get("project_id")
        for callback in list(self._callbacks):
            try:
                callback(
                    record.get("company_id"),
                    project_id,
                    resource_name,
                    event_type,
                    record["id"],
                    source_app,
                )
            except Exception:  # a broken listener must never break the write
                log.exception("change callback failed")

    # -- reads --------------------------------------------------------------------------
    def table(self, name: str) -> dict[Any, dict]:
        """The live dict of one table (hold `lock` while iterating if others may write)."""
        return self.tables[name]

    def get(self, table: str, key: Any) -> dict | None:
        """One record or None."""
        return self.tables[table].get(key)

    def select(self, table: str, **equals: Any) -> list[dict]:
        """Records whose fields equal the given values, in id (creation) order."""
        with self.lock:
            rows = self.tables[table].values()
            if not equals:
                return list(rows)
            items = list(equals.items())
            return [r for r in rows if all(r.get(k) == v for k, v in items)]

    def select_by(self, table: str, field: str, value: Any, fold_case: bool = False) -> list[dict]:
        """Records whose `field` equals `value` (case-insensitively with fold_case), in id
        (creation) order, from an index rebuilt after any write to the table. Only for
        fields changed through `update`, never in place."""
        with self.lock:
            writes = self._writes.get(table, 0)
            cached = self._groups.get((table, field, fold_case))
            if cached is None or cached[0] != writes:
                groups: dict[Any, list[dict]] = {}
                for record in self.tables[table].values():
                    key = record.get(field)
                    if fold_case and isinstance(key, str):
                        key = key.lower()
                    groups.setdefault(key, []).append(record)
                cached = (writes, groups)
                self._groups[(table, field, fold_case)] = cached
            if fold_case and isinstance(value, str):
                value = value.lower()
            return list(cached[1].get(value, ()))

    def _wrote(self, table: str) -> None:
        self._writes[table] = self._writes.get(table, 0) + 1

    # -- writes -------------------------------------------------------------------------
    def insert(
        self,
        table: str,
        record: dict,
        *,
        source_application_id: str | None = None,
        key: Any = None,
        notify: bool = True,
    ) -> dict:
        """Add a record (assigning id and timestamps when missing) and announce it."""
        with self.lock:
            if key is None:
                if "id" not in record or record["id"] is None:
                    record["id"] = self.next_id()
                key = record["id"]
            now = self.now_iso()
            record.setdefault("created_at", now)
            record.setdefault("updated_at", now)
            self.tables[table][key] = record
            self._wrote(table)
            self._dirty = True
        if notify:
            self._emit(table, "create", record, source_application_id)
        return record

    def update(
        self,
        table: str,
        key: Any,
        changes: dict,
        *,
        source_application_id: str | None = None,
        notify: bool = True,
        touch: bool = True,
    ) -> dict:
        """Apply changes to a record, bump updated_at, and announce it. KeyError if absent."""
        with self.lock:
            record = self.tables[table][key]
            record.update(changes)
            if touch:
                record["updated_at"] = self.now_iso()
            self._wrote(table)
            self._dirty = True
        if notify:
            self._emit(table, "update", record, source_application_id)
        return record

    def delete(
        self,
        table: str,
        key: Any,
        *,
        source_application_id: str | None = None,
        notify: bool = True,
    ) -> dict | None:
        """Remove a record and announce it; None if it did not exist."""
        with self.lock:
            record = self.tables[table].pop(key, None)
            if record is not None:
                self._wrote(table)
                self._dirty = True
                if table == "projects":
                    self._drop_project_entries(key)
        if record is not None and notify:
            self._emit(table, "delete", record, source_application_id)
        return record

    def _drop_project_entries(self, project_id: Any) -> None:
        # A deleted project takes its timesheets with it in Procore: its timecard entries are
        # no longer listed or reachable anywhere, so they must not linger here either.
        entries = self.tables["timecard_entries"]
        gone = [k for k, e in entries.items() if e.get("project_id") == project_id]
        for entry_key in gone:
            del entries[entry_key]
        if gone:
            self._wrote("timecard_entries")

    def bulk_load(self, table: str, records: Iterable[dict]) -> None:
        """Insert many records without timestamps bookkeeping or events (seeding)."""
        with self.lock:
            target = self.tables[table]
            for record in records:
                target[record["id"]] = record
            self._wrote(table)
            self._dirty = True

    def clear(self) -> None:
        """Drop every record (registered apps included) and restart ids."""
        with self.lock:
            for name in self.tables:
                self.tables[name] = {}
                self._wrote(name)
            self.next_id_value = FIRST_ID
            self.settings = {}
            self._dirty = True

    # -- persistence --------------------------------------------------------------------
    def to_json(self) -> dict:
        """The whole store as a JSON-able dict."""
        with self.lock:
            return {
                "next_id": self.next_id_value,
                "settings": dict(self.settings),
                "tables": {
                    name: [[key, record] for key, record in rows.items()]
                    for name, rows in self.tables.items()
                },
            }

    def load_json(self, data: dict) -> None:
        """Replace the store's content with a dict made by `to_json`."""
        with self.lock:
            self.clear()
            self.next_id_value = data.get("next_id", FIRST_ID)
            self.settings = dict(data.get("settings") or {})
            for name, pairs in data.get("tables", {}).items():
                self.tables.setdefault(name, {})
                self.tables[name] = {key: record for key, record in pairs}
                self._wrote(name)
            self._dirty = False

    def save(self, path: str) -> None:
        """Write the store to `path` atomically."""
        data = self.to_json()
        self._dirty = False
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sandbox-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)

    def load(self, path: str) -> bool:
        """Load the store from `path`; False when the file does not exist."""
        if not os.path.exists(path):
            return False
        with open(path) as fh:
            self.load_json(json.load(fh))
        return True

    def autosave(self, path: str, interval: float = 1.0) -> None:
        """Save to `path` at most every `interval` seconds while changes happen, and at exit."""
        self._save_path = path
        if self._saver is not None:
            return

        def loop() -> None:
            while not self._stop_saver.wait(interval):
                if self._dirty:
                    try:
                        self.save(path)
                    except OSError:
                        log.exception("could not save sandbox data to %s", path)

        self._saver = threading.Thread(target=loop, name="sandbox-autosave", daemon=True)
        self._saver.start()
        atexit.register(self.flush)

    def flush(self) -> None:
        """Save now if autosave is on and something changed."""
        if self._save_path and self._dirty:
            self.save(self._save_path)
