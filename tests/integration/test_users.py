"""Users admin pages: CRUD, validation, deactivation rules, search, pagination, tenancy, roles."""

import pytest
import sqlalchemy as sa

from tests.conftest import make_user
from webapp.extensions import db
from webapp.models import Role, User

HX = {"HX-Request": "true"}


def user_form(**overrides) -> dict:
    form = {
        "first_name": "Maria",
        "last_name": "Lopez",
        "username": "mlopez",
        "email": "maria@example.test",
        "phone": "+1 (555) 010-2000",
        "employee_id": "E-100",
        "role": "worker",
        "time_zone": "America/Chicago",
        "password": "",
    }
    form.update(overrides)
    return form


def user_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(User))


def test_admin_creates_user_who_then_appears_in_the_list(admin_client, company):
    response = admin_client.post(
        "/users/new", data=user_form(username="MLopez", email="Maria@Example.TEST")
    )
    assert response.status_code == 303
    user = db.session.scalar(sa.select(User).where(User.username == "mlopez"))
    assert user.company_id == company.id
    assert user.email == "maria@example.test"  # stored lower-case
    assert user.role == Role.WORKER and user.time_zone == "America/Chicago"
    assert user.password_hash is None
    page = admin_client.get("/users/").get_data(as_text=True)
    assert "Lopez, Maria" in page and "E-100" in page


def test_created_user_with_initial_password_can_log_in(app, admin_client):
    admin_client.post("/users/new", data=user_form(password="long-enough-1"))
    other = app.test_client()
    response = other.post("/login", data={"identifier": "mlopez", "password": "long-enough-1"})
    assert response.status_code == 302


def test_htmx_create_answers_with_redirect_header(admin_client):
    response = admin_client.post("/users/new", data=user_form(), headers=HX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/users/")


def test_admin_edits_user_and_changes_are_saved(admin_client, worker_user):
    response = admin_client.post(
        f"/users/{worker_user.id}/edit",
        data=user_form(first_name="Wilhelmina", username="wil", role="supervisor"),
    )
    assert response.status_code == 303
    db.session.refresh(worker_user)
    assert worker_user.first_name == "Wilhelmina"
    assert worker_user.username == "wil" and worker_user.role == Role.SUPERVISOR


def test_edit_page_shows_current_values(admin_client, worker_user):
    page = admin_client.get(f"/users/{worker_user.id}/edit").get_data(as_text=True)
    assert f'value="{worker_user.username}"' in page
    assert 'value="worker" selected' in page


def test_company_id_cannot_be_set_from_the_form(admin_client, company, other_company):
    admin_client.post("/users/new", data=user_form(company_id=str(other_company.id)))
    user = db.session.scalar(sa.select(User).where(User.username == "mlopez"))
    assert user.company_id == company.id


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"first_name": " "}, "first_name", "First name is required."),
        ({"last_name": ""}, "last_name", "Last name is required."),
        ({"username": ""}, "username", "Username is required."),
        ({"username": "a b"}, "username", "lower-case letters"),
        ({"username": "ab"}, "username", "lower-case letters"),
        ({"email": "not-an-email"}, "email", "Enter a valid email address"),
        ({"phone": "call me"}, "phone", "Use digits"),
        ({"role": "owner"}, "role", "Choose a role."),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "Choose a time zone"),
        ({"password": "short"}, "password", "at least 8 characters"),
    ],
)
def test_invalid_user_form_is_refused_with_message_beside_field(
    admin_client, overrides, field, message
):
    before = user_count()
    response = admin_client.post("/users/new", data=user_form(**overrides), headers=HX)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="{field}-error"' in html and message in html
    assert "<html" not in html  # a fragment for htmx to swap
    assert user_count() == before


def test_invalid_form_without_htmx_renders_the_full_page_with_errors(admin_client):
    response = admin_client.post("/users/new", data=user_form(first_name=""))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<html" in html and "First name is required." in html
    assert 'value="mlopez"' in html  # what was typed is kept


def test_username_taken_in_another_company_is_refused_without_saying_by_whom(
    admin_client, other_company
):
    make_user(other_company, username="mlopez")
    before = user_count()
    response = admin_client.post("/users/new", data=user_form(username="MLOPEZ"), headers=HX)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    # Nothing about another company's users: a neutral refusal, not "already taken".
    assert "This username cannot be used" in html
    assert "already taken" not in html
    assert user_count() == before


def test_email_taken_in_another_company_is_refused_without_saying_by_whom(
    admin_client, other_company
):
    make_user(other_company, email="maria@example.test")
    before = user_count()
    response = admin_client.post(
        "/users/new", data=user_form(email="MARIA@example.test"), headers=HX
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "This email address cannot be used" in html
    assert "already has this email" not in html
    assert user_count() == before


def test_username_and_email_taken_in_your_own_company_say_so(admin_client, company):
    make_user(company, username="mlopez", email="maria@example.test")
    before = user_count()
    response = admin_client.post("/users/new", data=user_form(), headers=HX)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "That username is already taken" in html
    assert "Another user already has this email address" in html
    assert user_count() == before


def test_employee_id_must_be_unique_within_the_company_only(admin_client, company, other_company):
    make_user(other_company, employee_id="E-100")
    assert admin_client.post("/users/new", data=user_form()).status_code == 303
    response = admin_client.post(
        "/users/new",
        data=user_form(username="other", email="other@example.test"),
        headers=HX,
    )
    assert response.status_code == 422
    assert "Another user in your company has this employee id." in response.get_data(as_text=True)


def test_edit_with_duplicate_email_saves_nothing(admin_client, worker_user, company):
    make_user(company, email="taken@example.test")
    response = admin_client.post(
        f"/users/{worker_user.id}/edit",
        data=user_form(first_name="Changed", email="taken@example.test"),
        headers=HX,
    )
    assert response.status_code == 422
    db.session.expire_all()
    assert db.session.get(User, worker_user.id).first_name == "Will"


def test_user_keeps_own_username_and_email_when_saving(admin_client, worker_user):
    form = user_form(username=worker_user.username, email=worker_user.email, employee_id="")
    response = admin_client.post(f"/users/{worker_user.id}/edit", data=form)
    assert response.status_code == 303


def test_admin_deactivates_and_reactivates_a_user(app, admin_client, worker_user):
    response = admin_client.post(f"/users/{worker_user.id}/deactivate", headers=HX)
    assert response.status_code == 200
    assert "Reactivate" in response.get_data(as_text=True)
    db.session.refresh(worker_user)
    assert worker_user.active is False
    login = app.test_client().post(
        "/login", data={"identifier": worker_user.username, "password": "pass-word-1"}
    )
    assert login.status_code == 401
    admin_client.post(f"/users/{worker_user.id}/reactivate")
    db.session.refresh(worker_user)
    assert worker_user.active is True


def test_admin_cannot_deactivate_themselves(admin_client, admin):
    response = admin_client.post(f"/users/{admin.id}/deactivate", headers=HX)
    assert response.status_code == 422
    assert "You cannot deactivate your own account." in response.get_data(as_text=True)
    db.session.refresh(admin)
    assert admin.active is True


def test_last_active_admin_cannot_be_demoted(admin_client, admin):
    response = admin_client.post(
        f"/users/{admin.id}/edit",
        data=user_form(username=admin.username, email=admin.email, role="manager"),
        headers=HX,
    )
    assert response.status_code == 422
    assert "last active admin" in response.get_data(as_text=True)
    db.session.refresh(admin)
    assert admin.role == Role.ADMIN


def test_admin_can_be_demoted_when_another_admin_remains(admin_client, admin, company):
    make_user(company, Role.ADMIN)
    response = admin_client.post(
        f"/users/{admin.id}/edit",
        data=user_form(username=admin.username, email=admin.email, role="manager"),
    )
    assert response.status_code == 303
    db.session.refresh(admin)
    assert admin.role == Role.MANAGER


def test_deactivated_admin_does_not_count_as_remaining_admin(admin_client, admin, company):
    make_user(company, Role.ADMIN, active=False)
    response = admin_client.post(
        f"/users/{admin.id}/edit",
        data=user_form(username=admin.username, email=admin.email, role="worker"),
        headers=HX,
    )
    assert response.status_code == 422


def test_search_matches_name_username_email_and_employee_id(admin_client, company):
    make_user(company, first_name="Zed", last_name="Quartz", username="zq", email="zq@x.test")
    make_user(company, first_name="Amy", last_name="Pond", employee_id="EMP-777")
    for q in ("zed quartz", "ZQ", "zq@x", "quartz"):
        html = admin_client.get("/users/", query_string={"q": q}).get_data(as_text=True)
        assert "Quartz, Zed" in html and "Pond, Amy" not in html, q
    html = admin_client.get("/users/", query_string={"q": "emp-777"}).get_data(as_text=True)
    assert "Pond, Amy" in html and "Quartz, Zed" not in html


def test_search_with_no_match_says_what_to_do(admin_client):
    html = admin_client.get("/users/", query_string={"q": "nobody-here"}).get_data(as_text=True)
    assert "No user matches" in html and "add the user" in html


def test_search_treats_percent_literally(admin_client, company):
    make_user(company, first_name="Plain", last_name="Name")
    html = admin_client.get("/users/", query_string={"q": "%"}).get_data(as_text=True)
    assert "Name, Plain" not in html


def test_users_never_include_another_companys_people(admin_client, other_company):
    make_user(other_company, first_name="Outsider", last_name="Elsewhere")
    html = admin_client.get("/users/", query_string={"q": "outsider"}).get_data(as_text=True)
    assert "Elsewhere" not in html
    assert "Elsewhere" not in admin_client.get("/users/").get_data(as_text=True)


def test_users_table_paginates_fifty_per_page_in_name_order(admin_client, company):
    db.session.add_all(
        User(
            company_id=company.id,
            first_name="Bulk",
            last_name=f"P{i:03d}",
            username=f"bulk{i:03d}",
            email=f"bulk{i:03d}@example.test",
        )
        for i in range(120)
    )
    db.session.commit()
    first = admin_client.get("/users/", query_string={"q": "bulk"}).get_data(as_text=True)
    assert first.count("P0") == 50 and "P000" in first and "P049" in first and "P050" not in first
    assert "120 total · page 1 of 3" in first
    third = admin_client.get("/users/", query_string={"q": "bulk", "page": 3}, headers=HX).get_data(
        as_text=True
    )
    assert "P100" in third and "P119" in third and "P099" not in third
    assert "<html" not in third and "Previous" in third and "Next" not in third


def test_users_page_via_htmx_is_a_fragment_and_varies_on_hx_request(admin_client):
    response = admin_client.get("/users/", headers=HX)
    assert "<html" not in response.get_data(as_text=True)
    assert "HX-Request" in response.headers["Vary"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users/{id}/edit"),
        ("POST", "/users/{id}/edit"),
        ("POST", "/users/{id}/deactivate"),
        ("POST", "/users/{id}/reactivate"),
    ],
)
def test_another_companys_user_is_not_found(admin_client, other_company, method, path):
    outsider = make_user(other_company, first_name="Out")
    response = admin_client.open(path.format(id=outsider.id), method=method, data=user_form())
    assert response.status_code == 404
    db.session.refresh(outsider)
    assert outsider.first_name == "Out" and outsider.active is True


@pytest.mark.parametrize("role", [Role.MANAGER, Role.SUPERVISOR, Role.WORKER])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users/"),
        ("GET", "/users/new"),
        ("POST", "/users/new"),
        ("GET", "/users/{id}/edit"),
        ("POST", "/users/{id}/edit"),
        ("POST", "/users/{id}/deactivate"),
        ("POST", "/users/{id}/reactivate"),
    ],
)
def test_non_admins_are_forbidden(client, company, admin, role, method, path):
    user = make_user(company, role)
    client.login(user)
    before = user_count()
    response = client.open(path.format(id=admin.id), method=method, data=user_form())
    assert response.status_code == 403
    assert user_count() == before
    db.session.refresh(admin)
    assert admin.active is True


def test_anonymous_visitor_is_sent_to_login(client, admin):
    response = client.get("/users/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
