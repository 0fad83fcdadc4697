"""Tokens at rest (reliability A9): Fernet keyring, dev key file, rotation to a new key, and no
plaintext token in the database file, Redis or the logs after connecting and refreshing."""

import stat
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import responses
from cryptography.fernet import Fernet, InvalidToken

from config import ProductionConfig
from tests.conftest import CSRFClient, make_company, make_test_app, make_user
from webapp.extensions import db
from webapp.models import ProcoreConnection, Role
from webapp.models.base import utcnow
from webapp.procore.crypto import DEV_KEY_FILE, TokenCipher, load_keys, token_cipher
from webapp.procore.tokens import ConnectionTokens

ACCESS = "plain-access-token-5f1d9c"
REFRESH = "plain-refresh-token-8e2a7b"
NEW_ACCESS = "plain-access-token-after-refresh-31c4"
NEW_REFRESH = "plain-refresh-token-after-refresh-77d0"


def test_keyring_encrypts_with_the_newest_key_and_decrypts_with_any(app):
    old, new = Fernet.generate_key(), Fernet.generate_key()
    old_ciphertext = TokenCipher([old]).encrypt("secret")
    ring = TokenCipher([new, old])
    assert ring.decrypt(old_ciphertext) == "secret"
    assert TokenCipher([new]).decrypt(ring.encrypt("secret")) == "secret"
    with pytest.raises(InvalidToken):
        TokenCipher([Fernet.generate_key()]).decrypt(old_ciphertext)


def test_dev_key_is_generated_once_in_the_instance_folder_readable_only_by_owner(app):
    keys = load_keys(app)
    path = app.instance_path + "/" + DEV_KEY_FILE
    assert stat.S_IMODE(__import__("os").stat(path).st_mode) == 0o600
    assert load_keys(app) == keys  # the same key on every start


def test_keys_from_the_environment_win_over_the_dev_key(app):
    key = Fernet.generate_key()
    app.config["TOKEN_ENCRYPTION_KEYS"] = f" {key.decode()} , {Fernet.generate_key().decode()}"
    assert load_keys(app)[0] == key


def test_a_malformed_key_is_refused_without_echoing_it(app):
    with pytest.raises(ValueError) as info:
        TokenCipher([b"not-a-fernet-key"])
    assert "not-a-fernet-key" not in str(info.value)


def test_production_refuses_to_start_without_keys(monkeypatch):
    monkeypatch.setattr(ProductionConfig, "TOKEN_ENCRYPTION_KEYS", "")
    with pytest.raises(RuntimeError, match="TOKEN_ENCRYPTION_KEYS"):
        ProductionConfig.check()


def test_rotate_token_keys_leaves_every_row_readable_with_only_the_new_key(app):
    old, new = Fernet.generate_key(), Fernet.generate_key()
    app.config["TOKEN_ENCRYPTION_KEYS"] = old.decode()
    app.extensions.pop("crewclock.token_cipher", None)
    for n in range(3):
        company = make_company(f"Co {n}")
        cipher = token_cipher(app)
        db.session.add(
            ProcoreConnection(
                company_id=company.id,
                access_token_enc=cipher.encrypt(f"access-{n}"),
                refresh_token_enc=cipher.encrypt(f"refresh-{n}"),
                expires_at=utcnow() + timedelta(hours=1),
                key_id=cipher.key_id,
            )
        )
    db.session.commit()

    app.config["TOKEN_ENCRYPTION_KEYS"] = f"{new.decode()},{old.decode()}"
    app.extensions.pop("crewclock.token_cipher", None)
    result = app.test_cli_runner().invoke(args=["rotate-token-keys"])
    assert result.exit_code == 0, result.output
    assert "3 connection(s)" in result.output

    only_new = TokenCipher([new])
    db.session.expire_all()
    rows = db.session.scalars(db.select(ProcoreConnection).order_by(ProcoreConnection.company_id))
    for n, row in enumerate(rows):
        assert only_new.decrypt(row.access_token_enc) == f"access-{n}"
        assert only_new.decrypt(row.refresh_token_enc) == f"refresh-{n}"
        assert row.key_id == only_new.key_id


@pytest.fixture
def file_app(request, db_backend, redis_url, tmp_path):
    """An app on a SQLite file, so the test can read the raw bytes the database stored."""
    if db_backend == "postgresql":
        yield request.getfixturevalue("app"), None
        return
    db_file = tmp_path / "at-rest.db"
    application = make_test_app(
        f"sqlite:///{db_file}", redis_url, instance_path=tmp_path / "instance"
    )
    application.test_client_class = CSRFClient
    redis.Redis.from_url(redis_url).flushdb()
    with application.app_context():
        db.create_all()
        yield application, db_file
        db.session.remove()
        db.engine.dispose()


def test_no_plaintext_token_in_database_redis_logs_or_session(file_app, redis_url, caplog):
    app, db_file = file_app
    caplog.set_level("DEBUG")
    company = make_company("At Rest Co")
    admin = make_user(company, Role.ADMIN)
    client = app.test_client()
    client.login(admin)
    login, api = app.config["PROCORE_LOGIN_URL"], app.config["PROCORE_API_URL"]

    location = client.post("/settings/integrations/procore/connect").headers["Location"]
    state = parse_qs(urlsplit(location).query)["state"][0]
    with responses.RequestsMock() as rsps:
        rsps.post(
            f"{login}/oauth/token",
            json={"access_token": ACCESS, "refresh_token": REFRESH, "expires_in": 5400},
        )
        rsps.get(f"{api}/rest/v1.0/companies", json=[{"id": 9, "name": "Nine"}])
        rsps.get(f"{api}/rest/v1.0/me", json={"id": 1, "login": "a@example.test", "name": "A"})
        response = client.get(
            "/settings/integrations/procore/callback", query_string={"code": "c", "state": state}
        )
        assert response.status_code == 303
    # A refresh (and the pages) must not leak the new pair either.
    with responses.RequestsMock() as rsps:
        rsps.post(
            f"{login}/oauth/token",
            json={"access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH, "expires_in": 5400},
        )
        tokens = ConnectionTokens(app, company.id)
        assert tokens.refresh_after_unauthorized(ACCESS) == NEW_ACCESS
    page = client.get("/settings/integrations/").get_data(as_text=True)

    secrets = (ACCESS, REFRESH, NEW_ACCESS, NEW_REFRESH)
    r = redis.Redis.from_url(redis_url)
    redis_dump = b"".join(k + (r.dump(k) or b"") for k in r.keys("*"))
    cookies = " ".join(c.value for c in client._cookies.values())
    for secret in secrets:
        assert secret not in page
        assert secret not in caplog.text
        assert secret.encode() not in redis_dump
        assert secret not in cookies
    if db_file is not None:
        db.session.remove()
        db.engine.dispose()
        raw = db_file.read_bytes()
        for secret in secrets:
            assert secret.encode() not in raw
    db.session.expire_all()
    row = db.session.get(ProcoreConnection, company.id)
    assert token_cipher(app).decrypt(row.access_token_enc) == NEW_ACCESS
