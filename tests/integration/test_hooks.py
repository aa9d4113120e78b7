"""Outgoing webhooks against a real local receiver: signed, retried with backoff, at least once with one
idempotency key, and visible to admins when they fail.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from clinic import cli, hooks, scheduling
from clinic.db import database
from clinic.models import HookDelivery, HookStatus, Patient
from clinic.settings import settings
from tests.conftest import DEMO_NOW, DEMO_TODAY

ROOT = Path(__file__).resolve().parents[2]


def _patient(db) -> int:
    with db.reading() as s:
        return s.scalar(select(Patient.id).where(Patient.first_name == "Giovanni"))


def _slots(db, n: int = 3) -> list[int]:
    query = scheduling.SlotQuery(*scheduling.day_window(DEMO_TODAY), specialty="cardiology")
    return [s.id for s in scheduling.free_slots(db, query, now=DEMO_NOW, limit=n)]


def _book(db, slot_id: int | None = None):
    return scheduling.book(db, patient_id=_patient(db), slot_id=slot_id or _slots(db)[0], actor="contact:1",
                           now=DEMO_NOW)


def _rows(db) -> list[HookDelivery]:
    with db.reading() as s:
        return list(s.scalars(select(HookDelivery).order_by(HookDelivery.id)))


def test_a_booking_is_posted_signed_with_its_idempotency_key_and_ids_only(demo_db, hooked):
    booked = _book(demo_db)

    assert hooks.deliver_due(demo_db, now=DEMO_NOW) == 1

    (headers, body), = hooked.received
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-clinic-signature-256"], expected)
    event = hooked.events()[0]
    assert headers["idempotency-key"] == event["id"]
    assert (event["type"], headers["x-clinic-event"]) == ("appointment.created", "appointment.created")
    assert event["data"]["new"]["appointment_id"] == booked.id
    assert event["data"]["new"]["slot_id"] == booked.slot_id
    assert b"Giovanni" not in body and b"Verdi" not in body
    assert [(r.status, r.attempts, r.last_http_status) for r in _rows(demo_db)] == [(HookStatus.delivered, 1, 200)]
    assert hooks.deliver_due(demo_db, now=DEMO_NOW + timedelta(hours=1)) == 0  # delivered once, not again


def test_every_booking_change_is_an_event(demo_db, hooked):
    first, second = _slots(demo_db, 2)
    booked = _book(demo_db, first)
    scheduling.confirm(demo_db, appointment_id=booked.id, actor="contact:1", now=DEMO_NOW)
    moved = scheduling.reschedule(demo_db, appointment_id=booked.id, new_slot_id=second, actor="contact:1",
                                  now=DEMO_NOW)
    scheduling.cancel(demo_db, appointment_id=moved.id, reason="ill", actor="staff:1", allow_late=True, now=DEMO_NOW)
    later = DEMO_NOW + timedelta(days=2)
    past = _book(demo_db, first)
    scheduling.record_attendance(demo_db, appointment_id=past.id, status=scheduling.AppointmentStatus.no_show,
                                 actor="staff:1", now=later)

    hooks.deliver_due(demo_db, now=later)

    assert [e["type"] for e in hooked.events()] == [
        "appointment.created", "appointment.confirmed", "appointment.rescheduled", "appointment.cancelled",
        "appointment.created", "appointment.no_show"]
    rescheduled = hooked.events()[2]["data"]
    assert (rescheduled["old"]["appointment_id"], rescheduled["new"]["appointment_id"]) == (booked.id, moved.id)


def test_a_refused_booking_sends_nothing(demo_db, hooked):
    slot_id = _slots(demo_db)[0]
    _book(demo_db, slot_id)
    try:
        _book(demo_db, slot_id)
    except scheduling.SlotTaken:
        pass
    assert len(_rows(demo_db)) == 1


def test_a_failing_receiver_is_retried_with_growing_waits_and_the_same_key(demo_db, hooked):
    hooked.answers = [503, 503]
    _book(demo_db)

    hooks.deliver_due(demo_db, now=DEMO_NOW)
    first_wait = _rows(demo_db)[0].next_attempt_at - DEMO_NOW
    assert hooks.deliver_due(demo_db, now=DEMO_NOW + timedelta(seconds=1)) == 0  # not due yet
    second_try = DEMO_NOW + first_wait
    hooks.deliver_due(demo_db, now=second_try)
    second_wait = _rows(demo_db)[0].next_attempt_at - second_try
    hooks.deliver_due(demo_db, now=second_try + second_wait)

    assert timedelta(seconds=10) <= first_wait < second_wait
    assert len(hooked.received) == 3
    assert len({headers["idempotency-key"] for headers, _ in hooked.received}) == 1
    assert len({body for _, body in hooked.received}) == 1
    (row,) = _rows(demo_db)
    assert (row.status, row.attempts, row.last_http_status, row.last_error) == (HookStatus.delivered, 3, 200, None)


def test_every_receiver_gets_the_event_with_one_id(demo_db, monkeypatch, hooked):
    from tests.integration.conftest import Receiver

    other = Receiver()
    try:
        monkeypatch.setenv("WEBHOOK_URLS", f"{hooked.url},{other.url}")
        settings.cache_clear()
        _book(demo_db)
        hooks.deliver_due(demo_db, now=DEMO_NOW)
        assert hooked.events()[0]["id"] == other.events()[0]["id"]
    finally:
        other.close()


def test_given_up_deliveries_are_shown_to_admins_and_can_be_sent_again(demo_db, hooked, monkeypatch, capsys):
    monkeypatch.setenv("WEBHOOK_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("DATABASE_URL", demo_db.url)
    settings.cache_clear()
    database.cache_clear()
    hooked.answers = [500, 500]
    _book(demo_db)
    hooks.deliver_due(demo_db, now=DEMO_NOW)
    hooks.deliver_due(demo_db, now=DEMO_NOW + timedelta(hours=1))
    (row,) = _rows(demo_db)
    assert (row.status, row.attempts) == (HookStatus.failed, 2)

    assert cli.main(["hooks", "failures"]) == 0
    shown = capsys.readouterr().out
    assert "appointment.created" in shown and "HTTP 500" in shown and "failed" in shown
    assert cli.main(["hooks", "retry", str(row.id)]) == 0
    assert hooks.deliver_due(demo_db) == 1
    assert _rows(demo_db)[0].status is HookStatus.delivered
    assert cli.main(["hooks", "failures"]) == 0
    assert "no failed webhook deliveries" in capsys.readouterr().out
    assert cli.main(["hooks", "retry", str(row.id)]) == 1
    database().dispose()
    database.cache_clear()


def test_an_unreachable_receiver_is_recorded_and_retried(demo_db, monkeypatch):
    monkeypatch.setenv("WEBHOOK_URLS", "http://127.0.0.1:9/hooks")
    settings.cache_clear()
    _book(demo_db)
    hooks.deliver_due(demo_db, now=DEMO_NOW)
    (row,) = _rows(demo_db)
    assert (row.status, row.last_error) == (HookStatus.pending, "ConnectionError")
    assert row.next_attempt_at > DEMO_NOW


def test_the_worker_process_delivers(demo_db, hooked):
    scheduling.book(demo_db, patient_id=_patient(demo_db), slot_id=_slots(demo_db)[0], actor="contact:1")
    env = {**os.environ, "DATABASE_URL": demo_db.url, "WEBHOOK_URLS": hooked.url, "WEBHOOK_SECRET": "s3cret"}
    done = subprocess.run([sys.executable, "-m", "clinic.hooks", "--once"], cwd=ROOT, env=env, timeout=60,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [e["type"] for e in hooked.events()] == ["appointment.created"]


def test_two_workers_at_once_send_each_event_once(any_demo_db, hooked):
    """Claims are leased in the claiming transaction (row locks skipped on PostgreSQL, the write lock on
    SQLite): concurrent workers split the due events instead of sending them twice.
    """
    import threading

    from clinic.db import Database

    slots = _slots(any_demo_db, 8)
    for slot_id in slots:
        _book(any_demo_db, slot_id)
    barrier = threading.Barrier(2)

    def worker() -> int:
        own = Database(any_demo_db.url)
        try:
            barrier.wait()
            return hooks.deliver_due(own, now=DEMO_NOW, limit=3) + hooks.deliver_due(own, now=DEMO_NOW, limit=3) \
                + hooks.deliver_due(own, now=DEMO_NOW, limit=3)
        finally:
            own.dispose()

    with ThreadPoolExecutor(2) as pool:
        tried = sum(pool.map(lambda _: worker(), range(2)))

    ids = [e["id"] for e in hooked.events()]
    assert tried == len(ids) == len(set(ids)) == len(slots)
    assert {r.status for r in _rows(any_demo_db)} == {HookStatus.delivered}
