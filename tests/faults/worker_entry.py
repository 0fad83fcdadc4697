"""`python -m tests.faults.worker_entry [queue ...]`: worker.py's worker with test knobs.

The knobs come from the environment so the fault suite can shape a real worker process:
FAULTS_IMPORT_PER_PAGE (smaller pages, so the demo seed has several), FAULTS_EXIT_ON_PAGE
(the work horse dies with os._exit, as an OOM kill would, when it is about to fetch that
page of users) and FAULTS_PUSH_SETTLE_SECONDS (how long a push waits before asking Procore
about a create whose reply never came).
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

    from worker import run_worker

    run_worker(sys.argv[1:] or None)


if __name__ == "__main__":
    main()
