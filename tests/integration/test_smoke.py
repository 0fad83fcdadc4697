from tests.conftest import make_user
from webapp.models import Role


def test_login_page_renders_with_csrf_header(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert b"hx-headers" in response.data and b"X-CSRFToken" in response.data


def test_admin_logs_in_and_sees_integrations(admin_client):
    response = admin_client.get("/settings/integrations/")
    assert response.status_code == 200
    assert b"Procore" in response.data and b"Connect" in response.data


def test_worker_cannot_open_settings(client, company):
    worker = make_user(company, Role.WORKER)
    client.login(worker)
    assert client.get("/settings/").status_code == 403


def test_post_without_csrf_token_is_refused(client, admin):
    response = client.post(
        "/login", data={"identifier": admin.username, "password": "x"}, csrf=False
    )
    assert response.status_code == 400
