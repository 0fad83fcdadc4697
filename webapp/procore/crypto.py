"""Encryption at rest for Procore tokens: a Fernet keyring with rotation.

TOKEN_ENCRYPTION_KEYS holds comma-separated Fernet keys, newest first: new ciphertexts use
the first key, any key in the list decrypts. Rotation = put a new key first, run
`flask rotate-token-keys`, then drop the old key. Without the setting (development, tests)
a key is generated once into the instance folder (mode 0600); production refuses to start
without real keys (config.ProductionConfig.check).
"""

import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, current_app

DEV_KEY_FILE = "token-encryption.key"
_EXTENSION = "crewclock.token_cipher"

__all__ = ["InvalidToken", "TokenCipher", "key_fingerprint", "load_keys", "token_cipher"]


def key_fingerprint(key: bytes) -> str:
    """A short, non-secret id for a key (which key encrypted a row)."""
    return hashlib.sha256(key).hexdigest()[:12]


def _dev_key(instance_path: str) -> bytes:
    """The instance folder's generated key, created with 0600 on first use (race-safe)."""
    path = Path(instance_path) / DEV_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(Fernet.generate_key())
    return path.read_bytes().strip()


def load_keys(app: Flask) -> list[bytes]:
    """The keyring for `app`, newest key first."""
    raw = app.config.get("TOKEN_ENCRYPTION_KEYS") or ""
    keys = [part.strip().encode("ascii") for part in raw.split(",") if part.strip()]
    if keys:
        return keys
    if app.config.get("ENV_NAME") == "production":
        raise RuntimeError("TOKEN_ENCRYPTION_KEYS must be set in production")
    return [_dev_key(app.instance_path)]


class TokenCipher:
    """Encrypts with the newest key, decrypts with any key of the ring."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except ValueError as exc:  # never echo the key material itself
            raise ValueError("TOKEN_ENCRYPTION_KEYS has a value that is not a Fernet key") from exc
        self.key_id = key_fingerprint(keys[0])

    def encrypt(self, plaintext: str) -> str:
        """Ciphertext (ASCII) of `plaintext` under the newest key."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        """Plaintext of a ciphertext made with any key of the ring (InvalidToken otherwise)."""
        return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")

    def rotate(self, ciphertext: str) -> str:
        """The same plaintext re-encrypted under the newest key."""
        return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")


def token_cipher(app: Flask | None = None) -> TokenCipher:
    """The app's cipher, built once per app."""
    app = app or current_app._get_current_object()
    cipher = app.extensions.get(_EXTENSION)
    if cipher is None:
        cipher = TokenCipher(load_keys(app))
        app.extensions[_EXTENSION] = cipher
    return cipher


def rotate_all_tokens(app: Flask) -> int:
    """Re-encrypt every stored token with the newest key; returns the rows changed."""
    import sqlalchemy as sa

    from webapp.extensions import db
    from webapp.models.procore import ProcoreConnection

    cipher = token_cipher(app)
    changed = 0
    rows = db.session.scalars(
        sa.select(ProcoreConnection)
        .where(ProcoreConnection.access_token_enc.is_not(None))
        .with_for_update()
    )
    for row in rows:
        row.access_token_enc = cipher.rotate(row.access_token_enc)
        if row.refresh_token_enc:
            row.refresh_token_enc = cipher.rotate(row.refresh_token_enc)
        row.key_id = cipher.key_id
        changed += 1
    db.session.commit()
    return changed
