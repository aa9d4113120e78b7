"""Exactly once: workers racing, and a worker killed mid-batch (real processes, real databases)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

from clinic import audit
from clinic.db import Database
from clinic.outreach.reminders import Rules, send_due
from clinic.whatsapp.client import WhatsAppClient
from tests.outreach.conftest import OFFLINE, RULES, audit_kinds, book, outbox, reminders

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4
# A whole day's visits due at once: the grace covers them all.
GENEROUS = Rules(RULES.offsets, timedelta(days=1), RULES.quiet, RULES.zone)


def a_day_of_visits(db, count: int = 12) -> list:
    """`count` visits on Friday 5 March, in whatever slots are free first."""
    return [book(db, day=date(2027, 3, 5), specialty=None) for _ in range(count)]


def assert_each_reminded_once(db, visits) -> None:
    rows = reminders(db)
    assert sorted(r.appointment_id for r in rows) == sorted(v.id for v in visits)
    messages = outbox(db)
    assert Counter(m.biz_opaque_callback_data for m in messages) == Counter(f"reminder:{r.id}" for r in rows)
    assert {r.outbound_id for r in rows} == {m.id for m in messages}
    assert audit_kinds(db) == ["reminder.sent"] * len(visits)
    assert audit.verify(db).ok


def test_workers_racing_send_each_reminder_once(any_demo_db):
    visits = a_day_of_visits(any_demo_db)
    now = max(v.start_at for v in visits) - timedelta(hours=72)
    barrier = threading.Barrier(WORKERS)

    def worker(_) -> int:
        own = Database(any_demo_db.url)  # its own engine and connections, like another process
        try:
            barrier.wait()
            return send_due(own, WhatsAppClient(own, OFFLINE), now, GENEROUS).sent
        finally:
            own.dispose()

    with ThreadPoolExecutor(WORKERS) as pool:
        sent = list(pool.map(worker, range(WORKERS)))
    assert sum(sent) == len(visits)
    assert_each_reminded_once(any_demo_db, visits)


# A worker that dies (SIGKILL: no cleanup, no rollback of its own) inside the transaction of its
# second batch (two reminders a batch), after claiming its first reminder and queueing its outbox
# row, before the commit.
KILLED_WORKER = """
import os, signal, sys
from datetime import datetime
from clinic.db import Database
from clinic.outreach import reminders
from clinic.whatsapp.client import WhatsAppClient
from tests.outreach.conftest import OFFLINE
from tests.outreach.test_exactly_once import GENEROUS

calls = 0
queue = WhatsAppClient.enqueue_in

def enqueue_then_die(self, *args, **kwargs):
    global calls
    calls += 1
    ids = queue(self, *args, **kwargs)
    if calls == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return ids

WhatsAppClient.enqueue_in = enqueue_then_die
reminders.BATCH = 2
db = Database(sys.argv[1])
reminders.send_due(db, WhatsAppClient(db, OFFLINE), datetime.fromisoformat(sys.argv[2]), GENEROUS)
"""


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(any_demo_db):
    visits = a_day_of_visits(any_demo_db, 6)
    now = max(v.start_at for v in visits) - timedelta(hours=72)
    killed = subprocess.run([sys.executable, "-c", KILLED_WORKER, any_demo_db.url, now.isoformat()], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert len(reminders(any_demo_db)) == len(outbox(any_demo_db)) == 2  # the second batch died with its transaction

    restarted = Database(any_demo_db.url)
    try:
        assert send_due(restarted, WhatsAppClient(restarted, OFFLINE), now, GENEROUS).sent == len(visits) - 2
    finally:
        restarted.dispose()
    assert_each_reminded_once(any_demo_db, visits)
