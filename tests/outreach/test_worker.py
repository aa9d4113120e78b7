"""`clinic outreach run`: the worker as IT runs it (a real process on the real clock), once and as a loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from clinic.demo import seed
from tests.outreach.conftest import ROME, book, outbox, reminders

CLINIC = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "clinic"


@pytest.fixture
def visit(db):
    """A demo clinic on today's calendar and a visit, booked weeks ago, whose reminder is due now."""
    now = datetime.now(timezone.utc)
    seed(db, today=now.astimezone(ROME).date())
    weekday = next(day for day in ((now + timedelta(days=n)).astimezone(ROME).date() for n in range(3, 8))
                   if day.weekday() < 5)
    return book(db, day=weekday, specialty=None, now=now - timedelta(days=30))


def worker_env(db) -> dict[str, str]:
    # a 10-day offset with a wide grace makes the visit due whatever the hour CI runs at; never quiet
    return {**os.environ, "DATABASE_URL": db.url, "REMINDER_OFFSETS_HOURS": "240", "REMINDER_GRACE_HOURS": "1000",
            "OUTREACH_QUIET_HOURS": "", "OUTREACH_INTERVAL_SECONDS": "0.5",
            "WHATSAPP_API_BASE_URL": "http://127.0.0.1:9"}  # nothing listens: sends fail and stay queued


def test_once_settles_what_is_due_logs_the_counts_and_exits(db, visit):
    done = subprocess.run([str(CLINIC), "outreach", "run", "--once"], env=worker_env(db), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "reminder pass: sent 1, skipped 0" in done.stderr
    assert [r.appointment_id for r in reminders(db)] == [visit.id]
    assert len(outbox(db)) == 1  # queued for the sending client, which retries it later


def test_the_loop_stops_cleanly_on_sigterm(db, visit, tmp_path):
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen([str(CLINIC), "outreach", "run"], env=worker_env(db), stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "reminder pass: sent 1" not in log.read_text():
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log.read_text()
    finally:
        worker.kill()
    text = log.read_text()
    assert "outreach worker stopped" in text and "Traceback" not in text
    assert len(reminders(db)) == 1  # later passes found it settled


def started(worker: subprocess.Popen, line: str) -> str:
    """The worker's output up to and including the first line containing `line`."""
    seen = ""
    while line not in seen:
        out = worker.stdout.readline()
        assert out, seen
        seen += out
    return seen


def test_once_passes_sigterm_to_its_delivery_process_and_both_stop_cleanly(db, visit):
    worker = subprocess.Popen([str(CLINIC), "outreach", "run", "--once"], env=worker_env(db), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        text = started(worker, "outreach delivery process started")
        worker.send_signal(signal.SIGTERM)
        text += worker.communicate(timeout=60)[0]
        assert worker.returncode == 0, text
    finally:
        worker.kill()
    assert "outreach delivery process stopped" in text and "outreach worker stopped" in text
    assert "Traceback" not in text


def test_the_delivery_process_stops_when_the_pass_is_over_or_on_sigterm(db, visit):
    for end in ("pass over", "sigterm"):
        delivery = subprocess.Popen([sys.executable, "-m", "clinic.outreach", "--deliver"], env=worker_env(db),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            text = started(delivery, "outreach delivery process started")
            if end == "sigterm":
                delivery.send_signal(signal.SIGTERM)
            text += delivery.communicate(timeout=60)[0]  # closes stdin: the pass is over
            assert delivery.returncode == 0, text
        finally:
            delivery.kill()
        assert "outreach delivery process stopped" in text and "Traceback" not in text
