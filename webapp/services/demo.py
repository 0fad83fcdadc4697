"""The demo company: enough people, projects, codes and time to click around."""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from webapp.extensions import db
from webapp.models import (
    Company,
    CostCode,
    Project,
    Role,
    TimeCard,
    TimeCardEvent,
    TimeCardStatus,
    TimeEntry,
    TimeEntryMode,
    User,
    WorkType,
)

DEMO_COMPANY = "Demo Construction"


def monday_of(day: date) -> date:
    """The Monday that starts `day`'s week."""
    return day - timedelta(days=day.weekday())


def seed_demo(admin_password: str, today: date | None = None) -> Company:
    """Create the demo company and commit; returns it."""
    today = today or date.today()
    company = Company(name=DEMO_COMPANY)
    db.session.add(company)
    db.session.flush()

    def person(first, last, username, role, email=None, employee_id=None, password="demo-password"):
        user = User(
            company_id=company.id,
            first_name=first,
            last_name=last,
            username=username,
            email=email,
            employee_id=employee_id,
            role=role,
        )
        user.set_password(password)
        db.session.add(user)
        return user

    person("Alex", "Admin", "admin", Role.ADMIN, "admin@example.com", "E-001", admin_password)
    supervisor = person(
        "Sam", "Supervisor", "sam", Role.SUPERVISOR, "supervisor@example.com", "E-002"
    )
    person("Morgan", "Manager", "morgan", Role.MANAGER, "manager@example.com", "E-003")
    workers = [
        person("Wes", "Worker", "wes", Role.WORKER, "worker@example.com", "E-101"),
        person("Rosa", "Diaz", "rosa", Role.WORKER, "rosa.diaz@example.com", "E-102"),
        person("Tom", "Nguyen", "tom", Role.WORKER, "tom.nguyen@example.com", "E-103"),
        person("Priya", "Patel", "priya", Role.WORKER, None, "E-104"),
    ]

    codes = [
        CostCode(company_id=company.id, code=code, name=name, phase=phase)
        for code, name, phase in [
            ("01-100", "General Conditions", "Division 01"),
            ("03-300", "Cast-in-Place Concrete", "Division 03"),
            ("05-100", "Structural Steel", "Division 05"),
            ("06-100", "Rough Carpentry", "Division 06"),
            ("09-250", "Drywall", "Division 09"),
            ("26-050", "Electrical Basics", "Division 26"),
        ]
    ]
    db.session.add_all(codes)
    projects = [
        Project(
            company_id=company.id,
            name="Riverside Medical Office",
            number="2026-014",
            street="400 River Rd",
            city="Austin",
            state="TX",
            zip="78701",
            country="US",
            time_entry_mode=TimeEntryMode.START_STOP,
        ),
        Project(
            company_id=company.id,
            name="Elm Street Townhomes",
            number="2026-021",
            street="12 Elm St",
            city="Round Rock",
            state="TX",
            zip="78664",
            country="US",
        ),
        Project(
            company_id=company.id,
            name="Warehouse 7 Retrofit",
            number="2026-030",
            street="7 Industrial Pkwy",
            city="Pflugerville",
            state="TX",
            zip="78660",
            country="US",
        ),
    ]
    db.session.add_all(projects)
    db.session.flush()
    for project in projects:
        project.cost_codes = list(codes)
        project.supervisors = [supervisor]

    this_week = monday_of(today)
    last_week = this_week - timedelta(days=7)
    two_weeks = this_week - timedelta(days=14)
    plan = [
        (workers[0], two_weeks, TimeCardStatus.APPROVED),
        (workers[0], last_week, TimeCardStatus.SUBMITTED),
        (workers[0], this_week, TimeCardStatus.DRAFT),
        (workers[1], last_week, TimeCardStatus.APPROVED),
        (workers[1], this_week, TimeCardStatus.SUBMITTED),
        (workers[2], last_week, TimeCardStatus.REJECTED),
        (workers[2], this_week, TimeCardStatus.DRAFT),
    ]
    now = datetime.now(UTC)
    for index, (worker, week, status) in enumerate(plan):
        card = TimeCard(company_id=company.id, user_id=worker.id, week_start=week, status=status)
        db.session.add(card)
        db.session.flush()
        days = 3 if week == this_week else 5
        for offset in range(days):
            project = projects[(index + offset) % len(projects)]
            code = codes[(index + offset) % len(codes)]
            entry = TimeEntry(
                company_id=company.id,
                time_card_id=card.id,
                work_date=week + timedelta(days=offset),
                project_id=project.id,
                cost_code_id=code.id,
                work_type=WorkType.REGULAR,
                break_minutes=0,
            )
            if project.time_entry_mode == TimeEntryMode.START_STOP:
                entry.start_time, entry.end_time, entry.break_minutes = time(7), time(15, 30), 30
                entry.hours = Decimal("8.00")
            else:
                entry.hours = Decimal("8.00")
            db.session.add(entry)
        db.session.add(
            TimeCardEvent(
                company_id=company.id, time_card_id=card.id, actor_id=worker.id, action="created"
            )
        )
        if status != TimeCardStatus.DRAFT:
            card.submitted_at = now
            db.session.add(
                TimeCardEvent(
                    company_id=company.id,
                    time_card_id=card.id,
                    actor_id=worker.id,
                    action="submitted",
                )
            )
        if status == TimeCardStatus.APPROVED:
            card.approved_at, card.approved_by_id = now, supervisor.id
            db.session.add(
                TimeCardEvent(
                    company_id=company.id,
                    time_card_id=card.id,
                    actor_id=supervisor.id,
                    action="approved",
                )
            )
        if status == TimeCardStatus.REJECTED:
            card.rejection_note = "Wednesday is missing the cost code for the pour; please fix."
            db.session.add(
                TimeCardEvent(
                    company_id=company.id,
                    time_card_id=card.id,
                    actor_id=supervisor.id,
                    action="rejected",
                    detail=card.rejection_note,
                )
            )
    db.session.commit()
    return company
