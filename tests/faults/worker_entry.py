"""`python -m tests.faults.worker_entry [queue ...]`: worker.py's worker with test knobs.

The knobs come from the environment so the fault suite can shape a real worker process:
FAULTS_IMPORT_PER_PAGE (smaller pages, so the demo seed has several), FAULTS_EXIT_ON_PAGE
(the work horse dies with os._exit, as an OOM kill would, when it is about to fetch that
page of users), FAULTS_PUSH_SETTLE_SECONDS (how long a push waits before asking Procore
about a create whose reply never came) and FAULTS_HEARTBEAT_TTL / FAULTS_MAINTENANCE_INTERVAL
(seconds: how long a work horse's heartbeat lasts and how often the worker sweeps RQ's
registries; RQ's own floor is 60 s + the monitoring interval, too slow for a test per kind).
"""

import os
import sys


def main() -> None:
    from webapp import jobs
    from webapp.services import imports

    if per_page := os.environ.get("FAULTS_IMPORT_PER_PAGE"):
        imports.PER_PAGE = int(per_page)
    if exit_page := os.environ.get("FAULTS_EXIT_ON_PAGE"):
        real = imports.client_page_fetcher

        def dying_fetcher(company_id):
            fetch = real(company_id)

            def fetch_or_die(path, params, page, per_page):
                if path.endswith("/users") and page == int(exit_page):
                    os._exit(137)
                return fetch(path, params, page, per_page)

            return fetch_or_die

        imports.client_page_fetcher = dying_fetcher
    app = jobs.job_app()
    if settle := os.environ.get("FAULTS_PUSH_SETTLE_SECONDS"):
        app.config["PUSH_UNKNOWN_SETTLE_SECONDS"] = float(settle)

    import worker

    options = {}
    if heartbeat := os.environ.get("FAULTS_HEARTBEAT_TTL"):
        worker.CrewclockWorker.get_heartbeat_ttl = lambda self, job: int(heartbeat)
        options.update(job_monitoring_interval=1, worker_ttl=20)  # heartbeats, short dequeues
    if maintenance := os.environ.get("FAULTS_MAINTENANCE_INTERVAL"):
        options["maintenance_interval"] = int(maintenance)
    worker.run_worker(sys.argv[1:] or None, **options)


if __name__ == "__main__":
    main()
