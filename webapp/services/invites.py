"""Invite links: a signed, expiring link with which a user sets their own password.

Nothing is stored. The token signs the user id, the company id and a fingerprint of the
user's current password hash, so setting a password (through the link or by an admin)
changes the fingerprint and every earlier link stops working: single use without a table.
"""

import hashlib
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.security import generate_password_hash

from webapp.extensions import db
from webapp.models import Company, User

INVITE_MAX_AGE = timedelta(days=7)
INVITE_SALT = "crewclock-invite-link"
NO_PASSWORD = "none"  # the fingerprint of a user who has never had a password


class InviteInvalid(ValueError):
    """The link is expired, already used, forged, or names a user who may not use it."""


class InviteRefused(ValueError):
    """No link can be made for this user (`message` says why)."""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=INVITE_SALT)


def password_fingerprint(user: User) -> str:
    """A short digest of the current password hash (never the hash itself: tokens are readable)."""
    if not user.password_hash:
        return NO_PASSWORD
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:20]


def make_invite_token(user: User) -> str:
    """A signed token with which `user` can set a password within INVITE_MAX_AGE."""
    if not user.active:
        raise InviteRefused(f"{user.name} is deactivated; reactivate them first.")
    payload = {"u": user.id, "c": user.company_id, "p": password_fingerprint(user)}
    return _serializer().dumps(payload)


def user_for_invite(token: str) -> User:
    """The user a still-valid token names; InviteInvalid for anything else."""
    try:
        payload = _serializer().loads(token, max_age=int(INVITE_MAX_AGE.total_seconds()))
    except (SignatureExpired, BadSignature) as refused:
        raise InviteInvalid("expired or forged") from refused
    if not isinstance(payload, dict):
        raise InviteInvalid("malformed")
    user_id, company_id = payload.get("u"), payload.get("c")
    if not isinstance(user_id, int) or not isinstance(company_id, int):
        raise InviteInvalid("malformed")
    user = db.session.get(User, user_id)
    if (
        user is None
        or user.company_id != company_id
        or db.session.get(Company, company_id) is None
        or not user.active
        or payload.get("p") != password_fingerprint(user)
    ):
        raise InviteInvalid("used, changed or no longer allowed")
    return user


def set_password_from_invite(token: str, password: str) -> User:
    """Check the token again and set the user's password, which spends the token.

    The UPDATE only matches while the hash is still the one the token was made for, so of
    two requests racing with the same link only one sets a password.
    """
    user = user_for_invite(token)
    old_hash = user.password_hash
    unchanged = User.password_hash.is_(None) if old_hash is None else User.password_hash == old_hash
    result = db.session.execute(
        sa.update(User)
        .where(User.id == user.id, unchanged)
        .values(
            password_hash=generate_password_hash(password),
            # The new password ends every session opened before it (e.g. a stolen cookie).
            session_version=sa.func.coalesce(User.session_version, 1) + 1,
        )
    )
    if result.rowcount != 1:
        db.session.rollback()
        raise InviteInvalid("used meanwhile")
    db.session.commit()
    return user
