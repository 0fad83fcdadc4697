"""Run RQ workers for Crewclock's queues: `python worker.py [queue ...]`.

Every worker also runs RQ's scheduler, so retries with intervals and scheduled syncs fire.
"""

import sys
import time

import redis
from rq import Worker

from webapp.jobs import close_dead_run, job_app
from webapp.redis_runtime import QUEUE_NAMES, get_redis
from webapp.runs.queueing import run_id_of

REDIS_WAIT_SECONDS = 60


class CrewclockWorker(Worker):
    """RQ's forking worker that also closes the run of a job whose work horse died.

    A horse killed by the OOM killer (or any os._exit) never reaches the runner's own
    except-record-reraise, so without this the run would show "running" forever. Every
    kind's job id is run-<id>, so this holds for imports, pushes, syncs and checks alike.
    (A whole worker killed is found by RQ's registry cleanup: see jobs.run_job_failed.)
    """

    def handle_work_horse_killed(self, job, retpid, ret_val, rusage):
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        run_id = run_id_of(job.id)
        if run_id is None:
            return
        try:
            # handle_job_failure (next) retries the job while it has tries left.
            close_dead_run(run_id, bool(job.retries_left), f"exit status {ret_val}")
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


def run_worker(
    queues: list[str] | None = None,
    burst: bool = False,
    job_monitoring_interval: int = 30,
    maintenance_interval: int = 60,
    **options,
) -> bool:
    """Work the given queues (all of Crewclock's by default) until stopped."""
    app = job_app()
    with app.app_context():
        connection = wait_for_redis(get_redis())
        worker = CrewclockWorker(
            queues or list(QUEUE_NAMES),
            connection=connection,
            job_monitoring_interval=job_monitoring_interval,
            maintenance_interval=maintenance_interval,
            **options,
        )
        return worker.work(with_scheduler=True, burst=burst)


if __name__ == "__main__":
    run_worker(sys.argv[1:] or None)
