"""Staff users of the nurse inbox: scrypt password hashes, lockout after repeated failures, sessions.

Only hashes are stored (passwords with a per-user salt, session tokens as SHA-256), so a copy of the
database signs no one in. Logs name staff by id, never by password or token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from clinic import audit
from clinic.db import Database
from clinic.models import StaffRole, StaffSession, StaffUser, utcnow
from clinic.settings import settings

logger = logging.getLogger(__name__)

# scrypt cost: about 16 MB and tens of milliseconds per check; stored in the hash so it can grow later.
_N, _R, _P = 2**14, 8, 1
MIN_PASSWORD = 10
DEMO_USERNAME = "demo-nurse"
DEMO_PASSWORD = "demo-nurse-password"
DEMO_ADMIN_USERNAME = "demo-admin"  # sees the KPI dashboard in the demo
DEMO_ADMIN_PASSWORD = "demo-admin-password"


class StaffError(Exception):
    """A staff account operation that cannot be done as asked."""


class LoginFailed(StaffError):
    """Wrong username or password (deliberately not saying which)."""


class LockedOut(StaffError):
    """Too many failed sign-ins: refused until `until`, even with the right password."""

    def __init__(self, until: datetime) -> None:
        super().__init__("account locked after too many failed sign-ins")
        self.until = until


@dataclass(frozen=True)
class StaffView:
    id: int
    username: str
    role: StaffRole
    active: bool
    locked_until: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is StaffRole.admin


@dataclass(frozen=True)
class SessionView:
    staff: StaffView
    csrf_token: str


def _view(user: StaffUser) -> StaffView:
    return StaffView(user.id, user.username, user.role, user.active, user.locked_until)


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_hex(8))
    return _DUMMY_HASH


def _check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"password too short: at least {MIN_PASSWORD} characters")


def add_user(db: Database, username: str, password: str, role: str = "nurse") -> StaffView:
    username = username.strip()
    if not username or len(username) > 100 or any(c.isspace() for c in username):
        raise StaffError("username: 1-100 characters, no spaces")
    try:
        role_value = StaffRole(role)
    except ValueError:
        raise StaffError(f"role must be nurse or admin, not {role!r}") from None
    _check_new_password(password)
    with db.transaction() as session:
        if session.execute(select(StaffUser.id).where(StaffUser.username == username)).first():
            raise StaffError(f"staff user {username!r} exists")
        user = StaffUser(username=username, password_hash=hash_password(password), role=role_value, active=True)
        session.add(user)
        session.flush()
        logger.info("staff %s added (%s)", user.id, role_value.value)
        return _view(user)


def list_users(db: Database) -> list[StaffView]:
    with db.reading() as session:
        return [_view(u) for u in session.scalars(select(StaffUser).order_by(StaffUser.username))]


def by_username(db: Database, username: str) -> StaffView | None:
    with db.reading() as session:
        user = session.execute(select(StaffUser).where(StaffUser.username == username)).scalar_one_or_none()
        return _view(user) if user else None


def set_active(db: Database, username: str, active: bool) -> StaffView:
    """Disable (or enable) an account; disabling also ends its sessions."""
    with db.transaction() as session:
        user = session.execute(select(StaffUser).where(StaffUser.username == username)).scalar_one_or_none()
        if user is None:
            raise StaffError(f"no staff user {username!r}")
        user.active = active
        if not active:
            session.execute(delete(StaffSession).where(StaffSession.staff_id == user.id))
        logger.info("staff %s %s", user.id, "enabled" if active else "disabled")
        return _view(user)


def set_password(db: Database, username: str, password: str) -> None:
    _check_new_password(password)
    with db.transaction() as session:
        user = session.execute(select(StaffUser).where(StaffUser.username == username)).scalar_one_or_none()
        if user is None:
            raise StaffError(f"no staff user {username!r}")
        user.password_hash = hash_password(password)
        user.failed_logins, user.first_failed_at, user.locked_until = 0, None, None
        session.execute(delete(StaffSession).where(StaffSession.staff_id == user.id))


def authenticate(db: Database, username: str, password: str, now: datetime | None = None) -> StaffView:
    """The user, if the password is right and the account is active and not locked.

    Failures within `STAFF_LOCKOUT_MINUTES` are counted; at `STAFF_LOCKOUT_ATTEMPTS` the account is
    locked for that long. An unknown username costs the same hash as a known one.
    """
    now = now or utcnow()
    s = settings()
    window = timedelta(minutes=s.staff_lockout_minutes)
    refusal: StaffError
    with db.transaction() as session:
        user = session.execute(select(StaffUser).where(StaffUser.username == username)).scalar_one_or_none()
        if user is None:
            check_password(password, _dummy_hash())
            audit.record(session, "staff.login_failed", actor="anonymous", data={"cause": "unknown_user"}, now=now)
            refusal = LoginFailed("wrong username or password")
        elif user.locked_until is not None and now < user.locked_until:
            audit.record(session, "staff.login_refused", actor=f"staff:{user.id}",
                         data={"cause": "locked", "until": user.locked_until}, now=now)
            refusal = LockedOut(user.locked_until)
        else:
            right = check_password(password, user.password_hash)
            if right and user.active:
                user.failed_logins, user.first_failed_at, user.locked_until = 0, None, None
                user.last_login_at = now
                audit.record(session, "staff.login", actor=f"staff:{user.id}", now=now)
                return _view(user)
            refusal = _count_failure(session, user, "inactive" if right else "password", window, now)
    # Raised after the commit, so the failure count and the audit entry are kept.
    raise refusal


def _count_failure(session: Session, user: StaffUser, cause: str, window: timedelta, now: datetime) -> StaffError:
    """A failed sign-in of a known user: counted, and at the limit the account is locked."""
    if user.first_failed_at is None or now - user.first_failed_at > window:
        user.failed_logins, user.first_failed_at = 0, now
    user.failed_logins += 1
    audit.record(session, "staff.login_failed", actor=f"staff:{user.id}",
                 data={"cause": cause, "failures": user.failed_logins}, now=now)
    if user.failed_logins < settings().staff_lockout_attempts:
        return LoginFailed("wrong username or password")
    user.locked_until = now + window
    user.failed_logins, user.first_failed_at = 0, None
    logger.warning("staff %s locked out after repeated failed sign-ins", user.id)
    audit.record(session, "staff.locked_out", actor="system", subject=f"staff:{user.id}",
                 data={"staff_id": user.id, "until": user.locked_until}, now=now)
    return LockedOut(user.locked_until)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db: Database, staff_id: int, now: datetime | None = None) -> tuple[str, str]:
    """A new session: (cookie token, CSRF token). Only the token's hash is stored."""
    now = now or utcnow()
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with db.transaction() as session:
        session.execute(delete(StaffSession).where(StaffSession.expires_at < now))
        session.add(StaffSession(
            token_hash=_token_hash(token), staff_id=staff_id, csrf_token=csrf, created_at=now,
            expires_at=now + timedelta(hours=settings().inbox_session_hours),
        ))
    return token, csrf


def session_for(db: Database, token: str | None, now: datetime | None = None) -> SessionView | None:
    """The signed-in staff user for a cookie token: None when unknown, expired or disabled."""
    if not token:
        return None
    now = now or utcnow()
    with db.reading() as session:
        row = session.execute(
            select(StaffSession, StaffUser)
            .join(StaffUser, StaffUser.id == StaffSession.staff_id)
            .where(StaffSession.token_hash == _token_hash(token))
        ).first()
        if row is None:
            return None
        found, user = row
        if found.expires_at <= now or not user.active:
            return None
        return SessionView(_view(user), found.csrf_token)


def end_session(db: Database, token: str | None, now: datetime | None = None) -> None:
    """Sign out: the session is deleted and the audit trail gets `staff.logout`."""
    if token:
        with db.transaction() as session:
            found = session.get(StaffSession, _token_hash(token))
            if found is not None:
                session.delete(found)
                audit.record(session, "staff.logout", actor=f"staff:{found.staff_id}", now=now)


def ensure_demo_nurse(db: Database) -> StaffView:
    """The demo account (`demo-nurse` / `demo-nurse-password`), only ever created in demo mode."""
    return _ensure_demo(db, DEMO_USERNAME, DEMO_PASSWORD, "nurse")


def ensure_demo_admin(db: Database) -> StaffView:
    """The demo admin (`demo-admin` / `demo-admin-password`, for the KPI dashboard), in demo mode only."""
    return _ensure_demo(db, DEMO_ADMIN_USERNAME, DEMO_ADMIN_PASSWORD, "admin")


def _ensure_demo(db: Database, username: str, password: str, role: str) -> StaffView:
    if not settings().demo_mode:
        raise StaffError(f"the demo account {username} exists only in demo mode (DEMO_MODE=true)")
    existing = by_username(db, username)
    if existing is not None:
        return existing
    try:
        return add_user(db, username, password, role)
    except StaffError:  # created meanwhile by another process
        found = by_username(db, username)
        assert found is not None
        return found
