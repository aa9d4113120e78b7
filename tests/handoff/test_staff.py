"""Staff accounts: hashed passwords, lockout after repeated failures, sessions, the CLI."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import select

from clinic import cli, staff
from clinic.models import StaffUser
from tests.handoff.conftest import NOW


def test_passwords_are_salted_scrypt_hashes():
    one, two = staff.hash_password("correct horse"), staff.hash_password("correct horse")
    assert one != two and one.startswith("scrypt$") and "correct" not in one
    assert staff.check_password("correct horse", one)
    assert not staff.check_password("wrong horse", one)
    assert not staff.check_password("x", "garbage")


def test_sign_in_and_sessions(db):
    user = staff.add_user(db, "rossi", "long-enough-1", "admin")
    assert staff.authenticate(db, "rossi", "long-enough-1").id == user.id
    token, csrf = staff.start_session(db, user.id)
    found = staff.session_for(db, token)
    assert (found.staff.username, found.csrf_token, found.staff.is_admin) == ("rossi", csrf, True)
    assert staff.session_for(db, token + "x") is None
    staff.end_session(db, token)
    assert staff.session_for(db, token) is None


def test_expired_and_disabled_sessions_sign_no_one_in(db):
    user = staff.add_user(db, "rossi", "long-enough-1")
    token, _ = staff.start_session(db, user.id, now=NOW)
    assert staff.session_for(db, token, now=NOW + timedelta(hours=13)) is None
    token, _ = staff.start_session(db, user.id)
    staff.set_active(db, "rossi", False)
    assert staff.session_for(db, token) is None
    with pytest.raises(staff.LoginFailed):
        staff.authenticate(db, "rossi", "long-enough-1")


def test_lockout_after_five_failures_in_fifteen_minutes(db, monkeypatch):
    staff.add_user(db, "rossi", "long-enough-1")
    for minute in range(4):
        with pytest.raises(staff.LoginFailed):
            staff.authenticate(db, "rossi", "nope", now=NOW + timedelta(minutes=minute))
    with pytest.raises(staff.LockedOut) as locked:
        staff.authenticate(db, "rossi", "nope", now=NOW + timedelta(minutes=4))
    assert locked.value.until == NOW + timedelta(minutes=19)
    with pytest.raises(staff.LockedOut):  # even the right password
        staff.authenticate(db, "rossi", "long-enough-1", now=NOW + timedelta(minutes=10))
    assert staff.authenticate(db, "rossi", "long-enough-1", now=NOW + timedelta(minutes=20)).username == "rossi"


def test_failures_spread_beyond_the_window_do_not_lock(db):
    staff.add_user(db, "rossi", "long-enough-1")
    for step in range(8):
        with pytest.raises(staff.LoginFailed):
            staff.authenticate(db, "rossi", "nope", now=NOW + timedelta(minutes=16 * step))


def test_lockout_is_configurable(db, monkeypatch):
    monkeypatch.setenv("STAFF_LOCKOUT_ATTEMPTS", "2")
    staff.settings.cache_clear()
    staff.add_user(db, "rossi", "long-enough-1")
    with pytest.raises(staff.LoginFailed):
        staff.authenticate(db, "rossi", "nope")
    with pytest.raises(staff.LockedOut):
        staff.authenticate(db, "rossi", "nope")


def test_unknown_user_and_weak_password(db):
    with pytest.raises(staff.LoginFailed):
        staff.authenticate(db, "ghost", "whatever-123")
    with pytest.raises(staff.StaffError, match="too short"):
        staff.add_user(db, "rossi", "short")
    with pytest.raises(staff.StaffError, match="role"):
        staff.add_user(db, "rossi", "long-enough-1", "doctor")


def test_demo_nurse_only_in_demo_mode(db, monkeypatch):
    with pytest.raises(staff.StaffError):
        staff.ensure_demo_nurse(db)
    monkeypatch.setenv("DEMO_MODE", "true")
    staff.settings.cache_clear()
    assert staff.ensure_demo_nurse(db).username == staff.DEMO_USERNAME == staff.ensure_demo_nurse(db).username


def test_cli_staff_add_list_disable(db, monkeypatch, capsys):
    monkeypatch.setattr(cli, "database", lambda: db)
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    assert cli.main(["staff", "add", "--username", "bianchi", "--role", "admin", "--password-stdin"]) == 0
    assert cli.main(["staff", "list"]) == 0
    assert "bianchi" in capsys.readouterr().out
    assert cli.main(["staff", "disable", "--username", "bianchi"]) == 0
    assert cli.main(["staff", "disable", "--username", "ghost"]) == 1
    assert capsys.readouterr().err.strip() == "clinic: error: no staff user 'ghost'"
    with db.reading() as s:
        user = s.execute(select(StaffUser)).scalar_one()
    assert (user.active, user.role.value) == (False, "admin")
    assert "a-long-password" not in user.password_hash
