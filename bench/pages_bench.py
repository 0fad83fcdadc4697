"""Server time of the admin pages for a company with 10,000 users, projects and cost codes.

Builds the company by bulk insert in a temporary SQLite file, logs in as its admin through
the real login form, then renders each page through the Flask test client: p50/p95 over
30 requests, SQL statements per request, and peak RSS. Target: p95 under 150 ms.

    .venv/bin/python -m bench.pages_bench [--rows 10000] [--requests 30]
"""

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from bench.common import figure, peak_rss_mb, summary_ms
from config import TestConfig
from webapp import create_app
from webapp.extensions import db
from webapp.models import CostCode, Project, Role, User, project_cost_code
from webapp.models.project import project_supervisor

TARGET_MS = 150
PASSWORD = "bench-password"
CODES_PER_PROJECT = 10


def unused_redis_url() -> str:
    """A Redis URL nothing listens on: the pages under test never need Redis."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}/0"


def build_company(rows: int) -> tuple[int, str]:
    """Bulk-insert a company with `rows` users, projects and cost codes; returns ids."""
    from webapp.models import Company

    company = Company(name="Bench Construction")
    db.session.add(company)
    db.session.flush()
    cid = company.id
    # A big contractor's mix: 1 in 20 supervises (supervisors, managers, a few admins).
    roles = [Role.WORKER] * 95 + [Role.SUPERVISOR] * 3 + [Role.MANAGER] + [Role.ADMIN]
    db.session.execute(
        sa.insert(User),
        [
            {
                "company_id": cid,
                "first_name": f"First{i:05d}",
                "last_name": f"Last{(i * 7919) % rows:05d}",
                "username": f"bench{i:05d}",
                "email": f"bench{i:05d}@example.test",
                "employee_id": f"E{i:05d}",
                "role": roles[i % len(roles)],
                "active": i % 50 != 0,
                "time_zone": "America/Chicago",
            }
            for i in range(rows)
        ],
    )
    admin = User(
        company_id=cid,
        first_name="Bench",
        last_name="Admin",
        username="bench-admin",
        email="bench-admin@example.test",
        role=Role.ADMIN,
        password_hash=generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"),
    )
    db.session.add(admin)
    divisions = max(1, rows // 100)
    db.session.execute(
        sa.insert(CostCode),
        [
            {"company_id": cid, "code": f"{d:02d}", "name": f"Division {d}"}
            for d in range(divisions)
        ],
    )
    division_ids = list(
        db.session.scalars(sa.select(CostCode.id).where(CostCode.company_id == cid))
    )
    db.session.execute(
        sa.insert(CostCode),
        [
            {
                "company_id": cid,
                "code": f"{i % divisions:02d}-{i:05d}",
                "name": f"Cost item {i}",
                "phase": f"Phase {i % 7}",
                "parent_id": division_ids[i % divisions],
                "active": i % 25 != 0,
            }
            for i in range(rows - divisions)
        ],
    )
    db.session.execute(
        sa.insert(Project),
        [
            {
                "company_id": cid,
                "name": f"Project {i:05d}",
                "number": f"P-{i:05d}",
                "street": f"{i} Main St",
                "city": f"City {i % 300}",
                "state": "TX",
                "zip": f"{75000 + i % 999}",
                "country": "US",
                "active": i % 10 != 0,
            }
            for i in range(rows)
        ],
    )
    project_ids = list(db.session.scalars(sa.select(Project.id).where(Project.company_id == cid)))
    code_ids = list(db.session.scalars(sa.select(CostCode.id).where(CostCode.company_id == cid)))
    supervisor_ids = list(
        db.session.scalars(
            sa.select(User.id).where(User.company_id == cid, User.role == Role.SUPERVISOR)
        )
    )
    db.session.execute(
        sa.insert(project_cost_code),
        [
            {"project_id": pid, "cost_code_id": code_ids[(n * 13 + k) % len(code_ids)]}
            for n, pid in enumerate(project_ids)
            for k in range(CODES_PER_PROJECT)
        ],
    )
    db.session.execute(
        sa.insert(project_supervisor),
        [
            {"project_id": pid, "user_id": supervisor_ids[n % len(supervisor_ids)]}
            for n, pid in enumerate(project_ids)
        ],
    )
    db.session.commit()
    return cid, admin.username


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crewclock-pages-bench-") as tmp:
        app = create_app(
            TestConfig,
            instance_path=Path(tmp) / "instance",
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{Path(tmp) / 'bench.db'}",
            SQLALCHEMY_ENGINE_OPTIONS={},
            REDIS_URL=unused_redis_url(),
            WTF_CSRF_ENABLED=False,
        )
        app.logger.disabled = True
        with app.app_context():
            db.create_all()
            started = time.perf_counter()
            company_id, admin_username = build_company(args.rows)
            figure("build company (bulk insert)", f"{time.perf_counter() - started:.1f} s")
            project_id = db.session.scalar(
                sa.select(sa.func.min(Project.id)).where(Project.company_id == company_id)
            )
            code_id = db.session.scalar(
                sa.select(sa.func.max(CostCode.id)).where(CostCode.company_id == company_id)
            )
            user_id = db.session.scalar(
                sa.select(sa.func.max(User.id)).where(User.company_id == company_id)
            )
            db.session.remove()
            engine = db.engine

        pages = page_list(app, args.rows, user_id, project_id, code_id)
        # Requests run outside the build's app context: each gets its own session, as live.
        return measure_pages(app, engine, pages, args.requests, admin_username)


def page_list(app, rows: int, user_id: int, project_id: int, code_id: int) -> list:
    """(name, path, query) of every page measured; 'hx' asks for the htmx fragment."""
    last_page = -(-(rows + 1) // app.config["PAGE_SIZE"])
    return [
        ("users, first page", "/users/", {}),
        ("users, search 'last0042'", "/users/", {"q": "last0042"}),
        ("users, search (htmx fragment)", "/users/", {"q": "bench0", "hx": True}),
        (f"users, page {last_page - 1}", "/users/", {"page": last_page - 1}),
        ("projects, first page", "/projects/", {}),
        ("projects, search 'city 12'", "/projects/", {"q": "city 12"}),
        ("projects, page 150", "/projects/", {"page": 150}),
        ("cost codes, first page", "/cost-codes/", {}),
        ("cost codes, search 'phase 3'", "/cost-codes/", {"q": "phase 3"}),
        ("cost codes, page 150", "/cost-codes/", {"page": 150}),
        ("user edit", f"/users/{user_id}/edit", {}),
        ("project edit", f"/projects/{project_id}/edit", {}),
        ("project edit, codes filtered", f"/projects/{project_id}/edit", {"code_q": "05-"}),
        ("cost code edit", f"/cost-codes/{code_id}/edit", {}),
    ]


def measure_pages(app, engine, pages, requests: int, admin_username: str) -> int:
    """Time each page over `requests` GETs as the logged-in admin; 0 when the target is met."""
    statements = {"n": 0}

    @sa.event.listens_for(engine, "before_cursor_execute")
    def count_statement(*_args):
        statements["n"] += 1

    client = app.test_client()
    login = client.post("/login", data={"identifier": admin_username, "password": PASSWORD})
    if login.status_code != 302:
        print("login failed:", login.status_code, file=sys.stderr)
        return 1

    worst = 0.0
    for name, path, params in pages:
        params = dict(params)
        headers = {"HX-Request": "true"} if params.pop("hx", False) else {}
        samples, counts = [], []
        for _ in range(requests):
            statements["n"] = 0
            t0 = time.perf_counter()
            response = client.get(path, query_string=params, headers=headers)
            samples.append(time.perf_counter() - t0)
            counts.append(statements["n"])
            if response.status_code != 200:
                print(f"{name}: HTTP {response.status_code}", file=sys.stderr)
                return 1
        samples.sort()
        worst = max(worst, samples[round(0.95 * len(samples)) - 1])
        figure(name, f"{summary_ms(samples)}, {max(counts)} SQL statements")
    figure("peak RSS", f"{peak_rss_mb():.0f} MB")
    verdict = "met" if worst * 1000 < TARGET_MS else "MISSED"
    figure("target p95 < 150 ms", f"{verdict} (worst p95 {worst * 1000:.1f} ms)")
    engine.dispose()
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    raise SystemExit(main())
