"""The staff CLI as staff run it: a real process on a real database file."""

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from clinic import scheduling
from clinic.db import Database

CLINIC = str(Path(sys.executable).with_name("clinic"))


def next_monday():
    today = datetime.now(ZoneInfo("Europe/Rome")).date()
    return today + timedelta(days=7 - today.weekday())


def run(*args, url):
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([CLINIC, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('cli') / 'cli.db'}"


@pytest.fixture(scope="module")
def seeded_url(url):
    run("db", "upgrade", url=url)
    run("seed", url=url)
    return url


def test_upgrade_seed_and_read_the_schedule(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monday = next_monday()
    assert run("db", "upgrade", url=url).returncode == 0
    seeded = run("seed", "--today", monday.isoformat(), url=url)
    assert seeded.returncode == 0, seeded.stderr
    assert "2 locations, 9 practitioners" in seeded.stdout

    # Dott.ssa Bianchi works Mondays 09:00-13:00 in 30-minute slots.
    slots = run("slots", "--practitioner", "bianchi", "--day", monday.isoformat(), url=url)
    lines = slots.stdout.splitlines()
    assert lines[0].split() == ["slot", "start", "end", "practitioner", "location"]
    assert len(lines) == 2 + 8 and "09:00" in lines[2] and "12:30" in lines[-1]
    assert "Dott.ssa Laura Bianchi" in lines[2]

    first_slot = int(lines[2].split()[0])
    scheduling.book(Database(url), patient_id=1, slot_id=first_slot, actor="staff:test")
    listing = run("appointments", "--day", monday.isoformat(), url=url)
    assert "Giovanni Verdi" in listing.stdout and "booked" in listing.stdout
    assert "Giovanni Verdi" in run("appointments", "--patient", "1", url=url).stdout
    after = run("slots", "--specialty", "cardiology", "--day", monday.isoformat(), url=url).stdout
    assert f"\n{first_slot:>6} " not in after


@pytest.mark.parametrize(
    "args, says",
    [
        (["slots"], "name a --specialty or a --practitioner"),
        (["slots", "--specialty", "astrology"], "no specialty 'astrology'; known: blood_tests, cardiology"),
        (["slots", "--practitioner", "house"], "no practitioner 'house'"),
        (["slots", "--specialty", "cardiology", "--day", "someday"], "not a day: 'someday'"),
        (["appointments"], "name a --day or a --patient"),
        (["fly"], "invalid choice: 'fly'"),
    ],
)
def test_mistakes_get_one_clear_line_and_a_failing_exit(seeded_url, args, says):
    result = run(*args, url=seeded_url)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert says in result.stderr


def test_an_unreachable_database_is_one_line_too():
    result = run("slots", "--specialty", "cardiology", url="postgresql://nobody@127.0.0.1:9/clinic")
    assert result.returncode == 1
    assert result.stderr.startswith("clinic: database error: OperationalError")
    assert len(result.stderr.strip().splitlines()) == 1


def test_staff_register_a_report_and_list_it(seeded_url, tmp_path):
    report = tmp_path / "emocromo.pdf"
    report.write_bytes(b"%PDF-1.4\n%%EOF\n")
    env_dir = str(tmp_path / "results")

    def results_cli(*args):
        env = {**os.environ, "DATABASE_URL": seeded_url, "RESULTS_DIR": env_dir}
        return subprocess.run([CLINIC, "results", *args], env=env, capture_output=True, text=True, timeout=120)

    added = results_cli("add", "--patient", "1", "--file", str(report), "--title", "Emocromo", "--delivery",
                        "document", "--external-id", "LAB-9")
    assert added.returncode == 0, added.stderr
    assert "registered for patient 1 (document)" in added.stdout
    assert "already registered" in results_cli("add", "--patient", "1", "--file", str(report), "--title", "Emocromo",
                                               "--external-id", "LAB-9").stdout
    assert len(list((tmp_path / "results").iterdir())) == 1
    listing = results_cli("list", "--patient", "1").stdout.splitlines()
    assert listing[0].split()[:6] == ["id", "patient", "title", "kind", "delivery", "status"]
    assert "Emocromo" in listing[2] and "ready" in listing[2]
    not_pdf = tmp_path / "photo.jpg"
    not_pdf.write_bytes(b"\xff\xd8\xff")
    refused = results_cli("add", "--patient", "1", "--file", str(not_pdf), "--title", "Emocromo")
    assert refused.returncode == 1 and refused.stderr.strip() == \
        "clinic: error: the file is not a PDF (it must start with %PDF-)"
    assert results_cli("add", "--patient", "999", "--file", str(report), "--title", "X").stderr.strip() == \
        "clinic: error: no patient 999"


def test_staff_check_visits_off_as_completed_or_no_show(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    last_monday = next_monday() - timedelta(days=14)
    assert run("db", "upgrade", url=url).returncode == 0
    assert run("seed", "--today", last_monday.isoformat(), url=url).returncode == 0
    db = Database(url)
    booked_at = datetime.combine(last_monday, datetime.min.time(), tzinfo=ZoneInfo("Europe/Rome")) - timedelta(days=1)
    came, missed = (scheduling.book(db, patient_id=1, slot_id=s.id, actor="staff:test", now=booked_at)
                    for s in scheduling.free_slots(db, scheduling.SlotQuery(
                        *scheduling.day_window(last_monday), specialty="cardiology"), now=booked_at, limit=2))
    future = scheduling.book(db, patient_id=1, slot_id=scheduling.free_slots(db, scheduling.SlotQuery(
        *scheduling.day_window(next_monday()), specialty="cardiology"), limit=1)[0].id, actor="staff:test")

    done = run("appointments", "complete", str(came.id), url=url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("is now completed")
    assert run("appointments", "no-show", str(missed.id), url=url).stdout.strip().endswith("is now no_show")
    assert [scheduling.appointment(db, a.id).status.value for a in (came, missed)] == ["completed", "no_show"]

    too_early = run("appointments", "complete", str(future.id), url=url)
    assert too_early.returncode == 1 and "has not started yet" in too_early.stderr
    again = run("appointments", "no-show", str(came.id), url=url)
    assert again.returncode == 1 and "is completed" in again.stderr
    db.dispose()
