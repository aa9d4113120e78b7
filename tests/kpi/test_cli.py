"""`clinic kpi` as a manager runs it: a real process on the hand-computed week."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kpi.fixture import build

CLINIC = str(Path(sys.executable).with_name("clinic"))


def run(*args: str, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url, "CLINIC_TIMEZONE": "Europe/Rome"}
    return subprocess.run([CLINIC, "kpi", *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def week_url(db):
    build(db)
    return db.url


def test_the_table_prints_the_report(week_url):
    done = run("--from", "2027-03-01", "--to", "2027-03-07", url=week_url)
    assert done.returncode == 0, done.stderr
    lines = {line.rsplit("  ", 1)[0].strip(): line.rsplit("  ", 1)[1].strip()
             for line in done.stdout.splitlines()[2:]}
    assert lines["No-show rate"] == "40.0% (2/5)"
    assert lines["No-show rate, reminder reminded"] == "25.0% (1/4)"
    assert lines["Reminders confirmed"] == "66.7% (2/3)"
    assert lines["Nurse first response, 95th percentile"] == "20.0 min"
    assert lines["Bookings by whatsapp"] == "3"
    assert lines["Satisfaction, average (1-5)"] == "n/a"


def test_filters_and_csv(week_url):
    done = run("--from", "2027-03-01", "--to", "2027-03-07", "--location", "navigli", "--csv", url=week_url)
    assert done.returncode == 0, done.stderr
    rows = {row["key"]: row for row in csv.DictReader(io.StringIO(done.stdout))}
    assert (rows["no_show_rate"]["part"], rows["no_show_rate"]["whole"]) == ("1", "2")
    assert float(rows["no_show_rate"]["value"]) == 0.5
    assert rows["satisfaction_average"]["shown"] == "n/a"


def test_unknown_location_and_backwards_period_are_one_line_errors(week_url):
    done = run("--from", "2027-03-01", "--to", "2027-03-07", "--location", "nowhere", url=week_url)
    assert done.returncode == 1
    assert done.stderr == "clinic: error: no location 'nowhere'; known: centro, navigli\n"
    done = run("--from", "2027-03-07", "--to", "2027-03-01", url=week_url)
    assert (done.returncode, done.stderr) == (1, "clinic: error: --to is before --from\n")
