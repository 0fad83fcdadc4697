"""Run RQ workers for Crewclock's queues: `python worker.py [queue ...]`.

Every worker also runs RQ's scheduler, so retries with intervals and scheduled syncs fire.
"""

import sys
import time

import redis
from rq import Worker

from webapp.redis_runtime import QUEUE_NAMES, get_redis

REDIS_WAIT_SECONDS = 60


class CrewclockWorker(Worker):
    """RQ's forking worker that also records a work horse's death on the job's run row.

    A horse killed by the OOM killer (or any os._exit) never reaches the job's own
    except-record-reraise, so without this the run would show "running" forever.
    """

    def handle_work_horse_killed(self, job, retpid, ret_val, rusage):
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        if not job.id.startswith("run-"):
            return
        try:
            from webapp.services.imports import record_failure

            record_failure(
                int(job.id.removeprefix("run-")),
                f"The worker process running it died (exit status {ret_val}).",
            )
        except Exception:  # never let bookkeeping stop the worker's own failure handling
            self.log.exception("could not record the dead work horse on %s", job.id)


def wait_for_redis(connection: redis.Redis, seconds: float = REDIS_WAIT_SECONDS) -> redis.Redis:
    """Wait until Redis answers: under `make run` it starts alongside the worker."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            connection.ping()
            return connection
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def run_worker(queues: list[str] | None = None, burst: bool = False) -> bool:
    """Work the given queues (all of Crewclock's by default) until stopped."""
    from webapp.jobs import job_app

    app = job_app()
    with app.app_context():
        connection = wait_for_redis(get_redis())
        worker = CrewclockWorker(
            queues or list(QUEUE_NAMES),
            connection=connection,
            job_monitoring_interval=30,
            maintenance_interval=60,
        )
        return worker.work(with_scheduler=True, burst=burst)


if __name__ == "__main__":
    run_worker(sys.argv[1:] or None)
