"""Benchmark the slot search + book path of the scheduling core.

    .venv/bin/python bench/booking.py [--postgres postgresql://postgres@127.0.0.1/test] [--seconds 10]

Builds a clinic of 20 practitioners with 8 weeks of slots (Mon-Fri 08:00-18:00, 20-minute slots,
24,000 slots) in a throw-away database, then measures:
- slot-search latency (p50/p95) for a specialty over one day and over one week;
- bookings per second with 1 and 16 concurrent clients, each repeating "search a random day, book
  a random offered slot" (a SlotTaken counts as a conflict and the client searches again).
Prints a Markdown table; results are recorded by hand in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from clinic import scheduling  # noqa: E402
from clinic.db import Database  # noqa: E402
from clinic.models import Location, Patient, Practitioner, Specialty, WorkingHours, metadata  # noqa: E402
from clinic.settings import settings  # noqa: E402
from clinic.slots import sync_slots  # noqa: E402

SPECIALTIES = ["cardiology", "dermatology", "ophthalmology", "orthopaedics", "general_practice"]
PRACTITIONERS, WEEKS, PATIENTS = 20, 8, 2000
FIRST_DAY = date(2027, 3, 1)  # a Monday; "now" is the Sunday before
NOW = datetime(2027, 2, 28, 12, tzinfo=timezone.utc)


def build(db: Database) -> int:
    metadata.drop_all(db.engine)
    metadata.create_all(db.engine)
    with db.transaction() as s:
        location = Location(key="bench", name="Bench", address="Via Bench 1")
        specialties = [Specialty(key=k, name_it=k, name_en=k) for k in SPECIALTIES]
        s.add(location)
        s.add_all(specialties)
        for n in range(PRACTITIONERS):
            doctor = Practitioner(key=f"doc{n}", first_name="Doc", last_name=str(n), location=location,
                                  specialties=[specialties[n % len(specialties)]])
            s.add(doctor)
            s.flush()
            s.add_all(WorkingHours(practitioner=doctor, location_id=location.id, weekday=d, start_time=dtime(8),
                                   end_time=dtime(18), slot_minutes=20) for d in range(5))
        s.add_all(Patient(first_name="P", last_name=str(n), date_of_birth=date(1980, 1, 1)) for n in range(PATIENTS))
    return sync_slots(db, FIRST_DAY, FIRST_DAY + timedelta(weeks=WEEKS) - timedelta(days=1), settings().zone).added


def random_day(rng: random.Random) -> date:
    return FIRST_DAY + timedelta(days=rng.randrange(WEEKS * 7))


def search_latency(db: Database, days: int, runs: int = 300) -> tuple[float, float]:
    rng = random.Random(1)
    samples = []
    for _ in range(runs):
        first = random_day(rng)
        query = scheduling.SlotQuery(*scheduling.day_window(first, first + timedelta(days=days - 1)),
                                     specialty=rng.choice(SPECIALTIES))
        started = time.perf_counter()
        scheduling.free_slots(db, query, now=NOW, limit=10)
        samples.append((time.perf_counter() - started) * 1000)
    quantiles = statistics.quantiles(samples, n=100)
    return quantiles[49], quantiles[94]


def booking_rate(url: str, clients: int, seconds: float) -> tuple[float, int]:
    booked, conflicts, lock = [0], [0], threading.Lock()
    deadline = time.monotonic() + seconds

    def client(seed: int) -> None:
        db, rng = Database(url), random.Random(seed)
        while time.monotonic() < deadline:
            first = random_day(rng)
            query = scheduling.SlotQuery(*scheduling.day_window(first), specialty=rng.choice(SPECIALTIES))
            offered = scheduling.free_slots(db, query, now=NOW, limit=10)
            if not offered:
                continue
            try:
                scheduling.book(db, patient_id=rng.randrange(1, PATIENTS + 1), slot_id=rng.choice(offered).id,
                                actor="bench", now=NOW)
                with lock:
                    booked[0] += 1
            except scheduling.SlotTaken:
                with lock:
                    conflicts[0] += 1
        db.dispose()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return booked[0] / (time.monotonic() - started), conflicts[0]


def run(name: str, url: str, seconds: float) -> list[str]:
    db = Database(url)
    slots = build(db)
    day = search_latency(db, days=1)
    week = search_latency(db, days=7)
    rows = [f"| {name} | slot search, one day (p50 / p95) | {day[0]:.1f} / {day[1]:.1f} ms | {slots} slots |",
            f"| {name} | slot search, one week (p50 / p95) | {week[0]:.1f} / {week[1]:.1f} ms | |"]
    for clients in (1, 16):
        rate, conflicts = booking_rate(url, clients, seconds)
        rows.append(f"| {name} | search + book, {clients} client(s) | {rate:.0f} bookings/s | "
                    f"{conflicts} SlotTaken retries |")
    db.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="server URL; a throw-away database is created on it")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each booking run")
    args = parser.parse_args()

    rows = ["| database | measure | result | note |", "| --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as folder:
        rows += run("SQLite", f"sqlite:///{folder}/bench.db", args.seconds)
    if args.postgres:
        name = f"clinic_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT", future=True)
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            rows += run("PostgreSQL", make_url(args.postgres).set(database=name).render_as_string(False), args.seconds)
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
