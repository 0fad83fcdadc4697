"""POST /webhooks/procore: Procore's event deliveries (no session, no CSRF token).

Procore sends a static Authorization header we chose when registering the hook; no
signature exists. We check it in constant time, store the event once, queue the work and
answer at once (Procore gives up on a delivery after 5 s).
"""

import logging

import redis
from flask import Blueprint, current_app, jsonify, request

from webapp.extensions import csrf
from webapp.services import sync_runs

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)
MAX_BODY = 16 * 1024  # a v2.0 event is well under 1 KB


@bp.post("/webhooks/procore")
@csrf.exempt
def receive():
    """Store one Procore event (deduplicated) and queue a sync of what it names."""
    if not sync_runs.check_secret(request.headers.get("Authorization")):
        return jsonify(error="unauthorized"), 401
    if (request.content_length or 0) > MAX_BODY:
        return jsonify(error="too large"), 413
    raw = request.get_data(cache=False)  # bounded by the check above or by the stream
    if len(raw) > MAX_BODY:
        return jsonify(error="too large"), 413
    try:
        body = current_app.json.loads(raw) if raw else None
        event, new = sync_runs.receive_event(body)
    except sync_runs.IgnoredEvent as reason:
        # 2xx: a refusal would make Procore pause every delivery and retry this for 12 hours.
        return jsonify(status="ignored", reason=str(reason)[:200]), 200
    except RecursionError:  # thousands of nested brackets: no event looks like that
        return jsonify(error="bad event: nested too deeply"), 400
    except (ValueError, sync_runs.BadEvent) as exc:
        return jsonify(error=f"bad event: {exc}"[:200]), 400
    if not new:
        return jsonify(status="duplicate"), 200
    if event.company_id is not None:
        try:
            sync_runs.enqueue_webhook_run(event.company_id)
        except redis.exceptions.RedisError:
            # Stored: the next run (or the periodic poll) still picks it up.
            log.warning("webhook stored but not queued company=%s", event.company_id)
    return jsonify(status="accepted"), 202
