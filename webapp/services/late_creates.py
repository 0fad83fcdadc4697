"""Creates Procore applied late: picking the entry to keep when several carry one origin id.

A POST whose answer never came (a read timeout, a 5xx) may still be applied by Procore at
any later time, and Procore's timecard entries have no upsert by origin_id. After the push
sent such an entry again, two Procore entries can carry one of our origin ids. The push
(when it looks an entry up, and on later drains for entries it sent again) and the hours
check keep one of them, the one the outbox row links (else the oldest), and delete the
others, saying so in the run history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from webapp.procore import mapping_timecards as mapping

REMOVED = "removed a duplicate Procore created late"


def group_by_origin(entries: Iterable[dict]) -> dict[str, list[dict]]:
    """{origin key: every listed entry carrying it}, skipping entries Procore deleted."""
    found: dict[str, list[dict]] = defaultdict(list)
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("deleted_at"):
            continue
        key = mapping.origin_key(entry.get("origin_id"))
        if key is not None and isinstance(entry.get("id"), int):
            found[key].append(entry)
    return found


def _age_key(entry: dict) -> tuple:
    created = entry.get("created_at")
    try:
        when = datetime.fromisoformat(str(created).replace("Z", "+00:00")).timestamp()
    except ValueError:
        when = float("inf")  # no creation time: after every dated entry, then by id
    return (when, entry["id"])


def split(matches: list[dict], linked_id: int | None) -> tuple[dict, list[dict]]:
    """The entry to keep (the linked one, else the oldest) and the duplicates to remove."""
    ordered = sorted(matches, key=_age_key)
    keep = next((e for e in ordered if e["id"] == linked_id), ordered[0])
    return keep, [e for e in ordered if e is not keep]


def removed_reason(kept_id: int) -> str:
    return f"{REMOVED}; kept Procore entry {kept_id}, the one Crewclock sent"


def refused_reason(duplicate_id: int, said: str) -> str:
    return (
        f"Procore created a duplicate of this entry late (Procore entry {duplicate_id}) and "
        f"refused to remove it: {said}. Remove the duplicate in Procore, then 'Retry'."
    )
