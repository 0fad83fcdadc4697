"""The set-up import decides and writes a batch at a time: same outcomes as row by row,
never a duplicate (in one batch, after a clash only the database saw, or after a kill),
and a number of statements that does not grow with every row."""

import pytest
import sqlalchemy as sa

from tests.conftest import make_user
from webapp.extensions import db
from webapp.models import ProcoreLink, ProcoreStagedRecord, RunStatus, SyncRunItem, User
from webapp.services import imports, links

PROCORE_COMPANY = 598_134_325_900_001


class FakeProcore:
    """A FetchPage over fixed lists of Procore JSON (users, projects), paged like Procore."""

    def __init__(self, users=(), projects=()):
        self.lists = {"users": list(users), "projects": list(projects)}

    def __call__(self, path, params, page, per_page):
        if path.endswith("/inactive"):
            items = []
        elif path.endswith("/projects"):
            items = self.lists["projects"]
        else:
            items = self.lists["users"]
        return items[(page - 1) * per_page : page * per_page], len(items)


def procore_user(n: int, **overrides) -> dict:
    user = {
        "id": 7_000_000_000 + n,
        "first_name": "Worker",
        "last_name": f"Number{n:04d}",
        "email_address": f"worker{n}@crew.example.com",
        "employee_id": f"E{n:04d}",
        "is_active": True,
    }
    user.update(overrides)
    return user


def _import(company, fetcher):
    settings = imports.settings_for(company.id)
    settings.procore_company_id = PROCORE_COMPANY
    settings.auto_import_users = True
    run, _ = imports.create_run(company.id, imports.IMPORT_KIND, None)
    db.session.commit()
    return imports.run_import(run.id, fetcher)


def _items(run, outcome):
    rows = db.session.execute(
        sa.select(SyncRunItem.label, SyncRunItem.reason)
        .where(SyncRunItem.run_id == run.id, SyncRunItem.outcome == outcome)
        .order_by(SyncRunItem.id)
    )
    return rows.all()


def _imported_emails(company_id: int):
    return db.session.scalars(
        sa.select(User.email).where(User.company_id == company_id, User.email.like("worker%"))
    ).all()


def test_importing_450_users_takes_a_few_statements_per_batch_not_per_user(company, admin):
    fetcher = FakeProcore(users=[procore_user(n) for n in range(450)])
    statements = []

    def count(*args):
        statements.append(args[2])

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        run = _import(company, fetcher)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)

    assert run.status == RunStatus.SUCCEEDED and run.created == 450
    emails = _imported_emails(company.id)
    assert len(emails) == len(set(emails)) == 450
    assert len(_items(run, "created")) == 450
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ProcoreLink)) == 450
    # Row by row this was about eight statements per user (3,600+).
    assert len(statements) < 150, len(statements)


def test_two_profiles_with_one_employee_id_in_a_batch_import_only_the_first(company, admin):
    users = [procore_user(1), procore_user(2, employee_id="E0001"), procore_user(3)]

    run = _import(company, FakeProcore(users=users))

    assert sorted(_imported_emails(company.id)) == [
        "worker1@crew.example.com",
        "worker3@crew.example.com",
    ]
    assert _items(run, "skipped") == [
        ("Worker Number0002", "Employee ID E0001 already belongs to another user.")
    ]
    assert run.created == 2 and run.skipped == 1


def test_two_profiles_matching_one_local_user_link_it_only_once(company, admin):
    local = make_user(company, email="shared@crew.example.com", username="shared-user")
    users = [
        procore_user(1, email_address="shared@crew.example.com"),
        procore_user(2, email_address="shared@crew.example.com"),
    ]

    run = _import(company, FakeProcore(users=users))

    links = db.session.execute(sa.select(ProcoreLink.local_id, ProcoreLink.procore_id)).all()
    assert links == [(local.id, users[0]["id"])]
    assert [label for label, _ in _items(run, "linked")] == ["Worker Number0001"]
    assert _items(run, "skipped") == [
        ("Worker Number0002", f"Cannot link: already linked to Procore #{users[0]['id']}.")
    ]


def test_a_clash_only_the_database_catches_replays_the_batch_row_by_row(
    company, other_company, admin, monkeypatch
):
    # Another worker takes a username after the batch's lookup (a race): the unique
    # constraint rejects the bulk insert, and the batch is replayed one row at a time.
    make_user(other_company, username="worker2@crew.example.com", email="else@other.example")
    real = imports._taken_keys

    def stale_for_batches(company_id, entity_type, field_list):
        taken = real(company_id, entity_type, field_list)
        if len(field_list) > 1:
            taken["username"] = set()
        return taken

    monkeypatch.setattr(imports, "_taken_keys", stale_for_batches)

    run = _import(company, FakeProcore(users=[procore_user(n) for n in range(1, 6)]))

    assert run.status == RunStatus.SUCCEEDED and run.created == 4
    assert len(_imported_emails(company.id)) == 4
    assert _items(run, "skipped") == [("Worker Number0002", "Username already taken.")]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ProcoreLink)) == 4


def test_an_import_killed_mid_batch_reruns_without_duplicates(company, admin, monkeypatch):
    monkeypatch.setattr(imports, "APPLY_BATCH", 10)
    company_id = company.id
    fetcher = FakeProcore(users=[procore_user(n) for n in range(35)])
    real, batches = imports._apply_batch, []

    def killed_in_second_batch(run, entity_type, rows, auto):
        real(run, entity_type, rows, auto)
        batches.append(run.id)
        if len(batches) == 2:
            raise SystemExit("worker killed")  # after the inserts, before the commit

    monkeypatch.setattr(imports, "_apply_batch", killed_in_second_batch)
    with pytest.raises(SystemExit):
        _import(company, fetcher)
    run_id = batches[0]
    db.session.rollback()  # the killed process's open transaction is lost
    db.session.remove()
    assert len(_imported_emails(company_id)) == 10  # only the first batch was committed

    monkeypatch.setattr(imports, "_apply_batch", real)
    run = imports.run_import(run_id, fetcher)

    emails = _imported_emails(company_id)
    assert run.status == RunStatus.SUCCEEDED
    assert len(emails) == len(set(emails)) == 35
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ProcoreLink)) == 35
    assert len(_items(run, "created")) == 35


def test_step_summary_counts_each_row_once_in_the_state_the_table_shows(company, admin):
    settings = imports.settings_for(company.id)
    settings.procore_company_id = PROCORE_COMPANY
    matching = make_user(company, email="worker4@crew.example.com", username="w4-local")
    linked = make_user(company, email="linked@elsewhere.example", username="w5-local")
    users = [procore_user(n) for n in range(1, 6)]
    users[2]["last_name"] = None  # blocked: no last name
    links.create_link(company.id, "user", linked.id, users[4]["id"])
    run, _ = imports.create_run(company.id, "stage_user", None)
    db.session.commit()
    imports.stage_records(run.id, FakeProcore(users=users))
    unticked = db.session.scalar(
        sa.select(ProcoreStagedRecord).where(ProcoreStagedRecord.procore_id == users[1]["id"])
    )
    imports.set_selected(unticked, False)
    db.session.commit()

    summary = imports.staged_summary(company.id, "user")

    assert summary == {
        "total": 5,
        "linked": 1,
        "to_link": 1,
        "blocked": 1,
        "importable": 2,
        "selected": 1,
    }
    assert matching.id == db.session.scalar(
        sa.select(ProcoreStagedRecord.link_to_local_id).where(
            ProcoreStagedRecord.procore_id == users[3]["id"]
        )
    )
