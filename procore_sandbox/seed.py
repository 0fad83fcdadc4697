"""Deterministic seeds: `demo` (two companies, people to import), `large`, `empty`."""

from __future__ import annotations

import random

from procore_sandbox.config import SandboxConfig
from procore_sandbox.store import NULL_SOURCE_APPLICATION, Store

SEEDS = ("demo", "large", "empty")
SEED_TIME = "2026-01-05T08:00:00Z"  # fixed so a seed is byte-for-byte repeatable
PASSWORD = "sandbox"  # every seeded user's sandbox password

DIVISIONS = [
    ("01", "General Requirements", ["Supervision", "Temporary Facilities", "Cleanup", "Safety"]),
    ("02", "Existing Conditions", ["Demolition", "Site Survey", "Hazardous Abatement"]),
    ("03", "Concrete", ["Formwork", "Reinforcing", "Cast-in-Place", "Finishing", "Precast"]),
    ("04", "Masonry", ["Unit Masonry", "Stone", "Mortar and Grout"]),
    ("05", "Metals", ["Structural Steel", "Metal Decking", "Misc Metals"]),
    ("06", "Wood and Plastics", ["Rough Carpentry", "Finish Carpentry", "Millwork"]),
    ("07", "Thermal and Moisture", ["Waterproofing", "Insulation", "Roofing", "Sealants"]),
    ("08", "Openings", ["Doors and Frames", "Windows", "Hardware"]),
    ("09", "Finishes", ["Drywall", "Tile", "Painting", "Flooring"]),
    ("26", "Electrical", ["Rough-In", "Trim-Out", "Lighting"]),
]

FIRST_NAMES = [
    "Maria", "James", "Sofia", "Liam", "Aisha", "Noah", "Chen", "Olivia", "Diego", "Emma",
    "Kwame", "Ava", "Mateo", "Priya", "Lucas", "Hana", "Ethan", "Zara", "Omar", "Grace",
]  # fmt: skip
LAST_NAMES = [
    "Garcia", "Smith", "Nguyen", "Johnson", "Okafor", "Brown", "Li", "Miller", "Lopez", "Davis",
    "Mensah", "Wilson", "Hernandez", "Patel", "Moore", "Sato", "Taylor", "Khan", "Ali", "Clark",
]  # fmt: skip
TIME_TYPES = [("REG", "Regular Time"), ("OT", "Overtime"), ("DT", "Double Time")]


def ensure_oauth_app(store: Store, config: SandboxConfig) -> None:
    """Register (or update) the configured OAuth client in the store."""
    with store.lock:
        store.table("oauth_apps")[config.client_id] = {
            "client_id": config.client_id,
            "client_secret": config.client_secret,
            "redirect_uris": list(config.redirect_uris),
            "name": "Crewclock (development)",
        }


def seed_store(store: Store, name: str) -> None:
    """Empty the store and load the named seed."""
    if name not in SEEDS:
        raise ValueError(f"unknown seed {name!r}; choose one of {', '.join(SEEDS)}")
    store.clear()
    if name == "demo":
        _seed_demo(store)
    elif name == "large":
        _seed_large(store)


class _Builder:
    """Creates seed records with sequential ids and the fixed seed timestamp."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.rows: dict[str, list[dict]] = {}

    def add(self, table: str, **fields) -> dict:
        record = {"id": self.store.next_id(), **fields}
        record.setdefault("created_at", SEED_TIME)
        record.setdefault("updated_at", SEED_TIME)
        self.rows.setdefault(table, []).append(record)
        return record

    def company(self, name: str, my_company: bool = False) -> dict:
        return self.add(
            "companies",
            name=name,
            is_active=True,
            logo_url=None,
            pcn_business_experience=False,
            my_company=my_company,
        )

    def user(self, company: dict, first: str | None, last: str | None, email: str | None, **kw):
        user = self.add(
            "users",
            company_id=company["id"],
            first_name=first,
            last_name=last,
            email_address=email,
            job_title=kw.pop("job_title", "Field Worker"),
            employee_id=kw.pop("employee_id", None),
            is_employee=kw.pop("is_employee", True),
            is_active=kw.pop("is_active", True),
            business_phone=None,
            mobile_phone=kw.pop("mobile_phone", None),
            address=None,
            city=None,
            state_code=None,
            zip=None,
            country_code="US",
            origin_id=None,
            origin_data=None,
            vendor=None,
            work_classification_id=None,
            last_login_at=None,
            is_admin=kw.pop("is_admin", False),
            **kw,
        )
        self.person(company, user)
        return user

    def person(self, company: dict, user: dict | None, first=None, last=None, employee_id=None):
        source = user or {}
        return self.add(
            "people",
            company_id=company["id"],
            user_id=user["id"] if user else None,
            first_name=source.get("first_name", first),
            last_name=source.get("last_name", last),
            employee_id=source.get("employee_id", employee_id),
            is_employee=source.get("is_employee", True),
            is_active=source.get("is_active", True),
            email=source.get("email_address"),
            origin_id=None,
            work_classification_id=None,
        )

    def project(self, company: dict, number: str, name: str, address: dict | None, **kw):
        address = address or {}
        return self.add(
            "projects",
            company_id=company["id"],
            name=name,
            display_name=f"{number} - {name}",
            project_number=number,
            address=address.get("address"),
            city=address.get("city"),
            state_code=address.get("state_code"),
            zip=address.get("zip"),
            country_code=address.get("country_code", "US" if address else None),
            county=None,
            time_zone=kw.pop("time_zone", "US/Pacific"),
            active=kw.pop("active", True),
            description=None,
            start_date=kw.pop("start_date", "2026-01-12"),
            completion_date=None,
            origin_id=None,
            origin_data=None,
            origin_code=None,
            standard_cost_code_list_id=kw.pop("standard_cost_code_list_id", None),
            **kw,
        )

    def cost_code_list(self, company: dict, name: str) -> dict:
        return self.add(
            "cost_code_lists",
            company_id=company["id"],
            name=name,
            is_erp_list=False,
            available_to_use_on_new_projects=True,
        )

    def standard_code(self, ccl: dict, parent: dict | None, code: str, name: str) -> dict:
        return self.add(
            "standard_cost_codes",
            company_id=ccl["company_id"],
            standard_cost_code_list_id=ccl["id"],
            parent_id=parent["id"] if parent else None,
            code=code,
            full_code=f"{parent['full_code']}-{code}" if parent else code,
            name=name,
            origin_id=None,
            origin_data=None,
        )

    def copy_codes(self, project: dict, standard_codes: list[dict]) -> None:
        """Project cost codes copied from a standard list (parents before children)."""
        mapping: dict[int, int] = {}
        for position, std in enumerate(standard_codes):
            code = self.add(
                "cost_codes",
                company_id=project["company_id"],
                project_id=project["id"],
                parent_id=mapping.get(std["parent_id"]) if std["parent_id"] else None,
                code=std["code"],
                full_code=std["full_code"],
                name=std["name"],
                standard_cost_code_id=std["id"],
                standard_cost_code_list_id=std["standard_cost_code_list_id"],
                position=position,
                budgeted=False,
                origin_id=None,
                origin_data=None,
                deleted_at=None,
            )
            mapping[std["id"]] = code["id"]

    def company_basics(self, company: dict) -> None:
        for abbr, label in TIME_TYPES:
            self.add(
                "time_types",
                company_id=company["id"],
                time_type=label,
                abbreviated_time_type=abbr,
                **{"global": False},
                pay_rate=abbr != "REG",
            )
        self.add(
            "line_item_types",
            company_id=company["id"],
            name="Labor",
            code="L",
            # Procore's OpenAPI enum has no "labor": a labour cost type is known by its name.
            base_type="other",
            origin_id=None,
            origin_data=None,
        )
        self.add(
            "line_item_types",
            company_id=company["id"],
            name="Materials",
            code="M",
            base_type="materials",
            origin_id=None,
            origin_data=None,
        )

    def commit(self) -> None:
        for table, rows in self.rows.items():
            self.store.bulk_load(table, rows)
        self.rows = {}


def _standard_list(b: _Builder, company: dict, divisions) -> tuple[dict, list[dict]]:
    ccl = b.cost_code_list(company, "Standard Cost Codes")
    codes = []
    for div_code, div_name, children in divisions:
        division = b.standard_code(ccl, None, div_code, div_name)
        codes.append(division)
        for index, child in enumerate(children, start=1):
            codes.append(b.standard_code(ccl, division, f"{index * 100:03d}", child))
    return ccl, codes


ADDRESSES = [
    ("1200 Harbor Blvd", "Oakland", "CA", "94607"),
    ("45 Mission St", "San Francisco", "CA", "94105"),
    ("880 Alder Ave", "Sacramento", "CA", "95814"),
    ("3100 Pine St", "Seattle", "WA", "98101"),
    ("77 Lakeview Dr", "Reno", "NV", "89501"),
    ("510 Grand Ave", "Portland", "OR", "97214"),
    ("9 Canyon Rd", "Fresno", "CA", "93701"),
]


def _seed_demo(store: Store) -> None:
    # Procore documents metadata.source_application_id only as "ID of the application used to
    # make the change", with null in its examples: the demo sends null, so Crewclock must
    # recognise its own changes without it.
    store.settings[NULL_SOURCE_APPLICATION] = True
    b = _Builder(store)
    main = b.company("Summit Builders Inc.", my_company=True)
    other = b.company("Ridgeline Concrete LLC")

    # Main company: 25 users. The first is the admin who connects Crewclock.
    b.user(main, "Dana", "Whitfield", "dana.admin@summit.example.com", job_title="Operations "
           "Manager", employee_id="E1000", is_admin=True)  # fmt: skip
    for index in range(20):
        first, last = FIRST_NAMES[index], LAST_NAMES[index]
        b.user(
            main,
            first,
            last,
            f"{first.lower()}.{last.lower()}@summit.example.com",
            employee_id=f"E{1001 + index}",
            job_title="Foreman" if index % 5 == 0 else "Field Worker",
            mobile_phone=f"+1 510 555 {1001 + index:04d}",
        )
    # Guideline breakers for Auto Import:
    b.user(main, "Ivan", "Petrov", None, employee_id="E1101")  # no email
    b.user(main, "Ines", "Petrova", "maria.garcia@summit.example.com", employee_id="E1102")  # dup
    b.user(main, "Walt", "Kowalski", "walt.kowalski@summit.example.com", is_active=False)
    b.user(main, "Cher", None, "cher@summit.example.com", employee_id="E1104")  # no last name
    # A person with no login (reference user): a party for timecards, not a directory user.
    b.person(main, None, first="Pat", last="Reference", employee_id="E1200")

    ccl, codes = _standard_list(b, main, DIVISIONS)
    for index, (street, city, state, zip_code) in enumerate(ADDRESSES):
        project = b.project(
            main,
            f"{2601 + index}",
            [
                "Harbor Warehouse",
                "Mission Tower",
                "Capitol Annex",
                "Pine Street Lofts",
                "Lakeview School",
                "Grand Ave Retail",
                "Canyon Bridge",
            ][index],  # fmt: skip
            {"address": street, "city": city, "state_code": state, "zip": zip_code},
            standard_cost_code_list_id=ccl["id"],
        )
        b.copy_codes(project, codes)
    no_address = b.project(
        main, "2608", "Yard Shop Expansion", None, standard_cost_code_list_id=ccl["id"]
    )
    b.copy_codes(no_address, codes)
    b.company_basics(main)

    # Second company: the same admin login sees both, so the company picker matters.
    b.user(other, "Dana", "Whitfield", "dana.admin@summit.example.com", is_admin=True)
    for index in range(4):
        first, last = FIRST_NAMES[-1 - index], LAST_NAMES[index]
        b.user(other, first, last, f"{first.lower()}.{last.lower()}@ridgeline.example.com")
    other_list, other_codes = _standard_list(b, other, DIVISIONS[2:4])
    for index in range(2):
        street, city, state, zip_code = ADDRESSES[index]
        project = b.project(
            other,
            f"R-{index + 1}",
            ["Ridgeline Pour 1", "Ridgeline Pour 2"][index],
            {"address": street, "city": city, "state_code": state, "zip": zip_code},
            standard_cost_code_list_id=other_list["id"],
        )
        b.copy_codes(project, other_codes)
    b.company_basics(other)
    # Timecard settings (procore_sandbox/api/company_settings.py): Summit's timesheets take
    # total hours, as Crewclock's demo and tests send by default; Ridgeline's take start and
    # stop times, rounded to the nearest 15 minutes, so both forms and rounding can be tried.
    main["projects_timecard_in_out_enabled"] = False
    other["projects_timecard_in_out_enabled"] = True
    other["rounding_configuration"] = {
        "enabled": True,
        "interval_minutes": 15,
        "time_in_rounding": "nearest",
        "time_out_rounding": "nearest",
    }
    b.commit()


def _seed_large(store: Store) -> None:
    rng = random.Random(20260105)  # noqa: S311 - deterministic fixture data
    b = _Builder(store)
    company = b.company("Large Builders Corp.", my_company=True)
    b.user(company, "Dana", "Whitfield", "dana.admin@large.example.com", is_admin=True)
    for index in range(1, 10_000):
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(LAST_NAMES)
        b.user(company, first, last, f"user{index:05d}@large.example.com", employee_id=f"L{index}")
    ccl = b.cost_code_list(company, "Standard Cost Codes")
    standard: list[dict] = []
    for div in range(100):
        division = b.standard_code(ccl, None, f"{div:02d}", f"Division {div:02d}")
        standard.append(division)
        for sub in range(1, 50):
            standard.append(b.standard_code(ccl, division, f"{sub * 10:03d}", f"Work {div}.{sub}"))
    for index in range(1_000):
        street, city, state, zip_code = ADDRESSES[index % len(ADDRESSES)]
        project = b.project(
            company,
            f"{10_000 + index}",
            f"Project {index:04d}",
            {"address": street, "city": city, "state_code": state, "zip": zip_code},
            standard_cost_code_list_id=ccl["id"],
        )
        # 20 codes per project: one division and 19 of its codes, rotating across divisions.
        div = index % 100
        b.copy_codes(project, standard[div * 50 : div * 50 + 20])
    b.company_basics(company)
    b.commit()
