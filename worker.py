"""Run RQ workers for Crewclock's queues: `python worker.py [queue ...]`.

Every worker also runs RQ's scheduler, so retries with intervals and scheduled syncs fire.
"""

import sys

from rq import Worker

from webapp.redis_runtime import QUEUE_NAMES, get_redis


def run_worker(queues: list[str] | None = None, burst: bool = False) -> bool:
    """Work the given queues (all of Crewclock's by default) until stopped."""
    from webapp.jobs import job_app

    app = job_app()
    with app.app_context():
        connection = get_redis()
        worker = Worker(
            queues or list(QUEUE_NAMES),
            connection=connection,
            job_monitoring_interval=30,
            maintenance_interval=60,
        )
        return worker.work(with_scheduler=True, burst=burst)


if __name__ == "__main__":
    run_worker(sys.argv[1:] or None)
