"""Who a caller is: HS256 JWTs with a user id and a role: ``user`` (chat), ``editor``
(also changes unprotected personas) or ``admin`` (everything).

With no secret configured (the embedded default) every caller is the local admin."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Literal

import jwt

from memory import check_name
from personas import Actor
from runtime.errors import RuntimeLayerError

Role = Literal["user", "editor", "admin"]
ROLES: tuple[str, ...] = ("user", "editor", "admin")
ALGORITHM = "HS256"
LOCAL_USER = "local"
MAX_USER_ID = 128


class AuthError(RuntimeLayerError):
    """A token is missing, malformed, forged, expired or names an unknown role."""


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: Role
    expires_at: float | None = None
    """The token's ``exp`` (Unix seconds); None: it never expires (no secret set)."""

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_editor(self) -> bool:
        """May change personas (protected ones only as an admin)."""
        return self.role in ("editor", "admin")

    @property
    def actor(self) -> Actor:
        return Actor(self.user_id, is_admin=self.is_admin, can_edit=self.is_editor)


LOCAL_ADMIN = Principal(LOCAL_USER, "admin")


def speaker_name(user_id: str) -> str:
    """How a user who gave no name is called in transcripts and memories: their user id,
    or "You" for the local user (no secret set)."""
    return user_id if user_id != LOCAL_USER else "You"


def mint_token(secret: str, user_id: str, role: Role = "user", *, ttl_s: int = 86_400) -> str:
    """A signed token for ``user_id`` valid for ``ttl_s`` seconds."""
    if not _user_id_ok(user_id):
        raise AuthError("user id must be 1..128 characters of one line")
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}")
    now = dt.datetime.now(dt.UTC)
    claims = {"sub": user_id, "role": role, "iat": now, "exp": now + dt.timedelta(seconds=ttl_s)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str | None, token: str | None) -> Principal:
    """The principal a token names. With no secret every caller is the local admin."""
    if secret is None:
        return LOCAL_ADMIN
    if not token:
        raise AuthError("authentication required: pass a bearer token")
    try:
        # the algorithm list is fixed: 'none' and asymmetric algorithms are refused
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.PyJWTError:
        raise AuthError("invalid token") from None
    user_id, role = claims.get("sub"), claims.get("role", "user")
    if not isinstance(user_id, str) or not _user_id_ok(user_id):
        raise AuthError("invalid token")
    if role not in ROLES:
        raise AuthError("invalid token")
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise AuthError("invalid token")
    return Principal(user_id, role, float(expires))


def _user_id_ok(user_id: str) -> bool:
    """A user id names its user where they gave no name (:func:`speaker_name`), so it is
    a speaker's name too: 1..128 characters of one line."""
    try:
        return check_name(user_id, "user id", max_chars=MAX_USER_ID) == user_id
    except ValueError:
        return False
