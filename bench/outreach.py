"""Benchmark the outreach worker: N due appointment reminders through the WhatsApp sandbox.

    .venv/bin/python bench/outreach.py [--reminders 10000] [--workers 1] [--db sqlite|postgres]
        [--rate 80] [--loop] [--py-spy PATH] [--out /tmp/outreach-bench.json]

Builds a throw-away clinic (SQLite file, or a fresh database on postgresql://postgres@127.0.0.1:5432/test):
the demo clinic seeded on today's calendar, plus enough bench practitioners (every day 07:00-21:00,
10-minute slots, one specialty each, slots made by `clinic.slots.sync_slots` as the product does)
to give N real slots in the next ten days. Then, in bulk through the ORM (rows of the shape the
product writes, without going through its one-transaction-per-call functions, which would take
minutes): N patients, each with its own WhatsApp contact (`self` link, 20 % English) and the three
consent purposes granted under the current privacy notice (`consent_records` rows as
`clinic.consent.decide` writes them, without its audit entries), and N booked appointments, one
per patient, in free slots, booked 30 days ago by `staff:bench`. The bookings' own audit entries and
booking events are not written: the worker never reads them.

Reminders are made due on the real clock as tests/outreach/test_worker.py does:
REMINDER_OFFSETS_HOURS=240 (every visit in the next ten days is due now), REMINDER_GRACE_HOURS=1000,
OUTREACH_QUIET_HOURS="". The sandbox (`python -m clinic.sandbox`, Meta's limits: 80 msg/s, pair
rate) is the Graph API; its status callbacks are switched off (they go to the ingest, not to the
worker). K real worker processes (`clinic outreach run --once`) start together, each paced at
`--rate / K` messages a second (the client's docstring: give each sending process a share).
`--loop` runs the looping worker instead (`clinic outreach run`: its delivery loop sends while the
pass is still settling reminders) and stops it with SIGTERM once every reminder was accepted.

Measured: worker wall time, split into planning (start → last reminder queued in the outbox; the
client's delivery loop sends while the pass goes on, with `--once` as with the loop) and sending
(first → last acceptance by the sandbox); the send rate = messages / (last − first acceptance), its
ratio to `--rate`, and the per-second counts; the send rate in the whole seconds that began with at
least `--rate` messages queued and not yet accepted (where the sending, not the planning, set the
pace); duplicates (the same reminder, appointment or recipient
reaching the sandbox twice; outbox rows sent twice or attempted more than once); each worker's CPU
(user + sys, `os.wait4`, which includes the delivery process each `--once` worker starts and waits
for; the split at the end of planning comes from the worker's own `/proc` samples, so the pass
process only) and peak RSS. `--py-spy PATH` attaches py-spy to worker 1 and its delivery process
and writes a collapsed-stack profile beside the JSON. Prints a Markdown table; results are recorded by hand in
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import math
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from clinic import consent  # noqa: E402
from clinic.db import Database  # noqa: E402
from clinic.demo import seed  # noqa: E402
from clinic.models import (  # noqa: E402
    Appointment,
    AppointmentReminder,
    AppointmentStatus,
    ConsentRecord,
    Contact,
    ContactPatient,
    Location,
    OutboundMessage,
    Patient,
    Practitioner,
    Relationship,
    Slot,
    Specialty,
    WorkingHours,
    metadata,
)
from clinic.outreach.reminders import SOURCE  # noqa: E402
from clinic.settings import settings  # noqa: E402
from clinic.slots import sync_slots  # noqa: E402

POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
SECRET, TOKEN, PHONE_ID = "bench-secret", "bench-token", "100000000000001"
DAYS = 10  # the 240-hour offset: every visit within ten days is due now
SLOTS_PER_PRACTITIONER = 84 * (DAYS - 1)  # 07:00-21:00 in 10-minute slots, days that fit the window whole
FIRST_NAMES = ["Giovanni", "Chiara", "Marco", "Giulia", "Luca", "Sara", "Paolo", "Elena", "Andrea", "Francesca",
               "Emily", "James", "Sofia", "Matteo", "Anna", "Davide", "Laura", "Simone", "Marta", "Alessandro"]
LAST_NAMES = ["Rossi", "Bianchi", "Esposito", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno", "Gallo",
              "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti", "Carter", "Smith"]
_REMINDER = re.compile(r"^reminder:(\d+)$")
_APPOINTMENT = re.compile(r'"appointment_id": "(\d+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- the clinic --------------------------------------------------------------------------------------


def build_clinic(db: Database, reminders: int, now: datetime) -> dict:
    """Demo clinic on today's calendar, bench practitioners, N patients with consent, N bookings."""
    zone = settings().zone
    today = now.astimezone(zone).date()
    t0 = time.perf_counter()
    seed(db, today=today)
    practitioners = math.ceil(reminders / SLOTS_PER_PRACTITIONER) + 1
    with db.transaction() as session:
        locations = session.scalars(select(Location).order_by(Location.id)).all()
        specialties = session.scalars(select(Specialty).order_by(Specialty.id)).all()
        for n in range(practitioners):
            practitioner = Practitioner(
                key=f"bench_{n:03d}", title="Dott.", first_name=random.choice(FIRST_NAMES),
                last_name=random.choice(LAST_NAMES), location_id=locations[n % len(locations)].id,
                languages=["it", "en"], specialties=[specialties[n % len(specialties)]])
            session.add(practitioner)
            session.flush()
            session.add_all(WorkingHours(practitioner_id=practitioner.id, location_id=practitioner.location_id,
                                         weekday=weekday, start_time=dtime(7), end_time=dtime(21), slot_minutes=10)
                            for weekday in range(7))
    sync_slots(db, today, today + timedelta(days=DAYS + 1), zone)
    booked_at = now - timedelta(days=30)
    # A slot in (now + 3 h, now + 240 h − 5 min): due now, still ahead when the worker runs.
    window = (now + timedelta(hours=3), now + timedelta(hours=DAYS * 24) - timedelta(minutes=5))
    with db.reading() as session:
        slots = session.execute(
            select(Slot.id, Slot.practitioner_id, Slot.location_id, Slot.start_at, Slot.end_at)
            .where(Slot.bookable.is_(True), Slot.start_at > window[0], Slot.start_at < window[1])
        ).all()
        specialty_of = dict(session.execute(
            text("SELECT practitioner_id, MIN(specialty_id) FROM practitioner_specialties GROUP BY practitioner_id")
        ).all())
    if len(slots) < reminders:
        raise SystemExit(f"only {len(slots)} free slots in the next {DAYS} days for {reminders} reminders")
    chosen = random.sample(slots, reminders)
    consent._ensure_notice(db)
    with db.reading() as session:
        version = consent._current_version(session)
    with db.transaction() as session:
        patients = [Patient(first_name=random.choice(FIRST_NAMES), last_name=random.choice(LAST_NAMES),
                            date_of_birth=date(1940, 1, 1) + timedelta(days=random.randrange(25000)),
                            language="en" if n % 5 == 0 else "it", created_at=booked_at)
                    for n in range(reminders)]
        contacts = [Contact(wa_id=f"39391{n:07d}", language=p.language, created_at=booked_at)
                    for n, p in enumerate(patients)]
        session.add_all(patients + contacts)
        session.flush()
        session.add_all(ContactPatient(contact_id=c.id, patient_id=p.id, relation=Relationship.self,
                                       created_at=booked_at) for p, c in zip(patients, contacts, strict=True))
        session.add_all(ConsentRecord(contact_id=c.id, purpose=purpose, granted=True, notice_version=version,
                                      at=booked_at, how="bench:seed")
                        for c in contacts for purpose in consent.PURPOSES)
        session.add_all(Appointment(
            patient_id=p.id, practitioner_id=s.practitioner_id, specialty_id=specialty_of.get(s.practitioner_id),
            location_id=s.location_id, slot_id=s.id, start_at=s.start_at, end_at=s.end_at, reason="",
            status=AppointmentStatus.booked, created_at=booked_at, created_by="staff:bench", changed_at=booked_at,
            changed_by="staff:bench") for p, s in zip(patients, chosen, strict=True))
    with db.reading() as session:
        counts = {name: session.scalar(select(func.count()).select_from(model)) for name, model in
                  (("practitioners", Practitioner), ("slots", Slot), ("patients", Patient),
                   ("appointments", Appointment), ("consent_records", ConsentRecord))}
    return {**counts, "setup_seconds": round(time.perf_counter() - t0, 1)}


# --- processes ---------------------------------------------------------------------------------------


def wait_up(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: process exited with {process.returncode}")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not up after {seconds}s")


def stack_env(database_url: str, sandbox_port: int, rate: float) -> dict:
    return {
        **os.environ, "DATABASE_URL": database_url, "CLINIC_ENV": "development",
        "REMINDER_OFFSETS_HOURS": "240", "REMINDER_GRACE_HOURS": "1000", "OUTREACH_QUIET_HOURS": "",
        "WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{sandbox_port}", "WHATSAPP_API_VERSION": "v23.0",
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_ID, "WHATSAPP_ACCESS_TOKEN": TOKEN, "WHATSAPP_APP_SECRET": SECRET,
        "WHATSAPP_VERIFY_TOKEN": "bench-verify", "WHATSAPP_MAX_MESSAGES_PER_SECOND": str(rate),
        "WHATSAPP_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/webhook",  # unused: statuses are off
    }


def all_sent(db: Database, expected: int) -> bool:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(OutboundMessage).where(
            OutboundMessage.source == SOURCE, OutboundMessage.sent_at.is_not(None))) >= expected


def queue_everything(db: Database, env: dict) -> None:
    """The reminder pass in this process, with a client that only queues (no delivery loop runs)."""
    from clinic.outreach import reminders
    from clinic.whatsapp.client import WhatsAppClient
    from clinic.whatsapp.types import GraphConfig

    saved = dict(os.environ)
    os.environ.update(env)
    settings.cache_clear()
    try:
        t0 = time.perf_counter()
        result = reminders.send_due(db, WhatsAppClient(db, GraphConfig.from_settings(settings())))
        print(f"queued first: {result} in {time.perf_counter() - t0:.1f} s", flush=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        settings.cache_clear()


def run_workers(env: dict, workers: int, folder: Path, py_spy: str | None, loop_until: Callable[[], bool] | None = None
                ) -> list[dict]:
    """Start K `clinic outreach run --once` together (or the looping worker, stopped by SIGTERM once
    `loop_until()`); wall time, CPU and peak RSS of each.
    """
    clinic = Path(sys.executable).parent / "clinic"
    command = [str(clinic), "outreach", "run"] + ([] if loop_until else ["--once"])
    started, procs = time.time(), []
    for n in range(workers):
        log = (folder / f"worker{n + 1}.log").open("w")
        procs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    spy = None
    if py_spy:
        spy = subprocess.Popen([py_spy, "record", "--pid", str(procs[0].pid), "--subprocesses", "--format", "raw",
                                "--rate", "50", "--output", str(folder / "worker1.py-spy.txt")],
                               stdout=subprocess.DEVNULL, stderr=(folder / "py-spy.log").open("w"))
    results: dict[int, dict] = {}
    samples: dict[int, list[tuple[float, float]]] = {n: [] for n in range(workers)}
    tick = os.sysconf("SC_CLK_TCK")
    checked = 0.0
    while len(results) < workers:
        if loop_until and time.monotonic() - checked > 1:
            checked = time.monotonic()
            if loop_until():
                for proc in procs:
                    proc.send_signal(signal.SIGTERM)
                loop_until = None
        for n, proc in enumerate(procs):
            if n in results:
                continue
            try:  # (wall, user + sys CPU so far, RSS MB): splits CPU and memory between planning and sending
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
                samples[n].append((time.time(), (int(fields[11]) + int(fields[12])) / tick, rss))
            except (OSError, IndexError, ValueError):
                pass
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                results[n] = {"worker": n + 1, "exit": proc.returncode, "started": started, "ended": time.time(),
                              "cpu_user": usage.ru_utime, "cpu_sys": usage.ru_stime,
                              "peak_rss_mb": usage.ru_maxrss / 1024, "cpu_samples": samples[n]}
        time.sleep(0.05)
    if spy is not None:
        spy.wait(timeout=120)
    return [results[n] for n in range(workers)]


# --- what happened -----------------------------------------------------------------------------------


def sandbox_view(sandbox: str) -> tuple[list[dict], list[dict]]:
    messages = requests.get(f"{sandbox}/_sandbox/messages", timeout=120).json()
    rejected = requests.get(f"{sandbox}/_sandbox/rejected", timeout=120).json()
    return messages, rejected


def analyse(db: Database, messages: list[dict], rejected: list[dict], workers: list[dict], rate: float) -> dict:
    with db.reading() as session:
        rows = session.execute(
            select(OutboundMessage.id, OutboundMessage.status, OutboundMessage.attempts, OutboundMessage.wamid,
                   OutboundMessage.created_at, OutboundMessage.sent_at)
            .where(OutboundMessage.source == SOURCE)).all()
        decisions = session.execute(select(AppointmentReminder.status, func.count())
                                    .group_by(AppointmentReminder.status)).all()
        pairs = session.scalar(select(func.count()).select_from(
            select(AppointmentReminder.appointment_id, AppointmentReminder.offset_hours).distinct().subquery()))
        reminder_of = dict(session.execute(select(AppointmentReminder.id, AppointmentReminder.appointment_id)).all())
    accepted = sorted(m["accepted_at"] for m in messages)
    first, last = (accepted[0], accepted[-1]) if accepted else (0.0, 0.0)
    span = last - first
    per_second = collections.Counter(int(t - first) for t in accepted)
    whole = [per_second.get(s, 0) for s in range(1, int(span))]  # the first and last, partial, seconds left out
    # Seconds that began with at least a second's worth of messages queued and not yet accepted: there
    # the sending alone set the pace (elsewhere it waited for the planning to queue more).
    queued_at = sorted(r.created_at.timestamp() for r in rows)
    backlogged = [per_second.get(s, 0) for s in range(1, int(span))
                  if bisect.bisect_right(queued_at, first + s) - bisect.bisect_right(accepted, first + s) >= rate]
    opaque = collections.Counter(m.get("biz_opaque_callback_data") for m in messages)
    appointments: collections.Counter = collections.Counter()
    for m in messages:
        match = _REMINDER.match(m.get("biz_opaque_callback_data") or "")
        if match:
            appointments[reminder_of.get(int(match.group(1)))] += 1
    recipients = collections.Counter(m.get("to") for m in messages)
    payload_ids = collections.Counter(
        _APPOINTMENT.search(json.dumps(m["request"])).group(1) for m in messages
        if _APPOINTMENT.search(json.dumps(m["request"])))
    wamids = {m["id"] for m in messages}
    created = sorted(r.created_at.timestamp() for r in rows)
    planned_at = created[-1] if created else None
    for w in workers:  # CPU of each worker until the last reminder was queued (planning), and after
        before = [(cpu, rss) for at, cpu, rss in w["cpu_samples"] if planned_at is not None and at <= planned_at]
        w["cpu_planning"] = before[-1][0] if before else 0.0
        w["rss_mb_after_planning"] = round(before[-1][1], 1) if before else None
    started = min(w["started"] for w in workers)
    ended = max(w["ended"] for w in workers)
    planning_cpu = sum(w["cpu_planning"] for w in workers)
    total_cpu = sum(w["cpu_user"] + w["cpu_sys"] for w in workers)
    return {
        "messages": len(messages),
        "cpu_ms_per_reminder_total": round(1000 * total_cpu / len(rows), 1) if rows else None,
        "cpu_ms_per_reminder_planning": round(1000 * planning_cpu / len(rows), 1) if rows else None,
        "cpu_ms_per_message_sending": round(1000 * (total_cpu - planning_cpu) / len(messages), 1) if messages else None,
        "outbox_rows": len(rows),
        "outbox_status": dict(collections.Counter(r.status.value for r in rows)),
        "decisions": {status.value: count for status, count in decisions},
        "rejected_by_sandbox": len(rejected),
        "rejected_codes": dict(collections.Counter(str(r.get("code") or r.get("error", {}).get("code"))
                                                   for r in rejected)),
        "wall_seconds": round(ended - started, 1),
        "planning_seconds": round(created[-1] - started, 1) if created else None,
        "first_queued_after": round(created[0] - started, 1) if created else None,
        "sending_seconds": round(span, 1),
        "first_send_after": round(first - started, 1) if accepted else None,
        "send_rate": round(len(accepted) / span, 2) if span else None,
        "ceiling": rate,
        "ratio": round(len(accepted) / span / rate, 3) if span else None,
        "accepted_at": [round(t - started, 3) for t in accepted],  # seconds after the workers started
        "with_backlog": {"seconds": len(backlogged), "messages": sum(backlogged),
                         "rate": round(statistics.fmean(backlogged), 2) if backlogged else None,
                         "ratio": round(statistics.fmean(backlogged) / rate, 3) if backlogged else None,
                         "p5": percentile(backlogged, 5), "p50": percentile(backlogged, 50)},
        "per_second": {"seconds": len(whole), "min": min(whole, default=None),
                       "p5": percentile(whole, 5), "p50": percentile(whole, 50), "p95": percentile(whole, 95),
                       "max": max(whole, default=None),
                       "mean": round(statistics.fmean(whole), 2) if whole else None},
        "duplicates": {
            "same_reminder_row": sum(n - 1 for n in opaque.values() if n > 1),
            "same_appointment": sum(n - 1 for n in appointments.values() if n > 1),
            "same_appointment_in_payloads": sum(n - 1 for n in payload_ids.values() if n > 1),
            "same_recipient": sum(n - 1 for n in recipients.values() if n > 1),
            "decision_rows_per_appointment_offset": sum(c for _, c in decisions) - pairs,
            "outbox_rows_attempted_more_than_once": sum(1 for r in rows if r.attempts > 1),
            "sandbox_messages_without_outbox_wamid": len(wamids - {r.wamid for r in rows}),
        },
        "workers": [{**{k: v for k, v in w.items() if k not in ("started", "ended", "cpu_samples")},
                     "wall_seconds": round(w["ended"] - w["started"], 1),
                     "cpu_seconds": round(w["cpu_user"] + w["cpu_sys"], 1),
                     "cpu_user": round(w["cpu_user"], 1), "cpu_sys": round(w["cpu_sys"], 1),
                     "peak_rss_mb": round(w["peak_rss_mb"], 1)} for w in workers],
    }


def table(meta: dict, r: dict) -> str:
    d, ps = r["duplicates"], r["per_second"]
    cpu = " + ".join(f"{w['cpu_seconds']} s ({w['cpu_user']} user, {w['cpu_sys']} sys)" for w in r["workers"])
    rss = " / ".join(f"{w['peak_rss_mb']} MB (after planning: {w['rss_mb_after_planning']} MB)" for w in r["workers"])
    lines = [
        f"| measure | {meta['db']}, {meta['workers']} worker(s){' (loop)' if meta['loop'] else ''}"
        f"{' (queued first: delivery only)' if meta.get('queued_first') else ''}, "
        f"{meta['reminders']} reminders |",
        "| --- | --- |",
        f"| load average before → after | {meta['load_before']} → {meta['load_after']} |",
        f"| reminders decided (sent / skipped) | {r['decisions'].get('sent', 0)} / "
        f"{r['decisions'].get('skipped', 0)} |",
        f"| messages accepted by the sandbox | {r['messages']} (outbox: {r['outbox_status']}) |",
        f"| worker wall time | {r['wall_seconds']} s |",
        f"| planning (start → last reminder queued) | {r['planning_seconds']} s "
        f"({round(meta['reminders'] / r['planning_seconds'], 1) if r['planning_seconds'] else '–'} reminders/s) |",
        f"| sending (first → last acceptance) | {r['sending_seconds']} s (first send {r['first_send_after']} s "
        "after start) |",
        f"| send rate / ceiling | {r['send_rate']} / {r['ceiling']} msg/s = {round(100 * (r['ratio'] or 0), 1)} % |",
        f"| msgs per whole second min / p5 / p50 / p95 / max | {ps['min']} / {ps['p5']} / {ps['p50']} / {ps['p95']} / "
        f"{ps['max']} ({ps['seconds']} s) |",
        f"| send rate in the seconds that began with ≥ {r['ceiling']:g} queued (sending-bound) | "
        f"{r['with_backlog']['rate']} msg/s = {round(100 * (r['with_backlog']['ratio'] or 0), 1)} % over "
        f"{r['with_backlog']['seconds']} s (p5 {r['with_backlog']['p5']}, p50 {r['with_backlog']['p50']}) |",
        f"| rejected by the sandbox (130429 etc.) | {r['rejected_by_sandbox']} {r['rejected_codes'] or ''} |",
        f"| duplicates: same reminder / appointment / recipient at the sandbox | {d['same_reminder_row']} / "
        f"{d['same_appointment']} / {d['same_recipient']} |",
        f"| duplicates: outbox rows attempted twice / decision rows per (appointment, offset) | "
        f"{d['outbox_rows_attempted_more_than_once']} / {d['decision_rows_per_appointment_offset']} |",
        f"| worker CPU (user + sys) | {cpu} |",
        f"| worker CPU per reminder: all / until the last was queued / after | {r['cpu_ms_per_reminder_total']} ms / "
        f"{r['cpu_ms_per_reminder_planning']} ms / {r['cpu_ms_per_message_sending']} ms |",
        f"| worker peak RSS | {rss} |",
    ]
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------------


def database_url(kind: str, folder: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'clinic.db'}", None
    name = f"clinic_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES_SERVER).set(database=name).render_as_string(hide_password=False), name


def drop_database(name: str) -> None:
    admin = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reminders", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rate", type=float, default=80.0, help="the phone number's ceiling, shared by the workers")
    parser.add_argument("--loop", action="store_true",
                        help="the looping worker (`clinic outreach run`, delivery alongside the pass), SIGTERM when "
                             "all is sent")
    parser.add_argument("--queued-first", action="store_true",
                        help="settle every reminder in the bench process first (queued, not sent), so the workers "
                             "only deliver: the sending alone")
    parser.add_argument("--py-spy", help="path of a py-spy binary: profile worker 1 (collapsed stacks)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, database)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "outreach-bench.json")
    args = parser.parse_args()
    random.seed(1)
    folder = Path(tempfile.mkdtemp(prefix="outreach-bench-"))
    url, pg_name = database_url(args.db, folder)
    sandbox_proc = None
    try:
        db = Database(url)
        metadata.create_all(db.engine)  # as tests/conftest.py: the models as the worker runs them
        now = datetime.now(timezone.utc)
        clinic = build_clinic(db, args.reminders, now)
        print(f"clinic: {clinic}", flush=True)
        sandbox_port = free_port()
        env = stack_env(url, sandbox_port, args.rate / args.workers)
        sandbox_proc = subprocess.Popen([sys.executable, "-m", "clinic.sandbox"], cwd=ROOT, env=env,
                                        stdout=(folder / "sandbox.log").open("w"), stderr=subprocess.STDOUT)
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        wait_up(f"{sandbox}/_sandbox/health", sandbox_proc)
        requests.put(f"{sandbox}/_sandbox/config", json={"statuses": []}, timeout=10).raise_for_status()
        if args.queued_first:
            queue_everything(db, env)
        meta = {"db": args.db, "workers": args.workers, "loop": args.loop, "reminders": args.reminders,
                "queued_first": args.queued_first,
                "load_before": load_average(),
                "clinic": clinic, "per_worker_rate": args.rate / args.workers, "folder": str(folder)}
        print(f"load before: {meta['load_before']}; starting {args.workers} worker(s)", flush=True)
        loop_until = (lambda: all_sent(db, args.reminders)) if args.loop else None
        workers = run_workers(env, args.workers, folder, args.py_spy, loop_until)
        meta["load_after"] = load_average()
        messages, rejected = sandbox_view(sandbox)
        result = analyse(db, messages, rejected, workers, args.rate)
        db.dispose()
    finally:
        if sandbox_proc is not None:
            sandbox_proc.terminate()
            sandbox_proc.wait(timeout=30)
        if pg_name:
            drop_database(pg_name)
    args.out.write_text(json.dumps({"meta": meta, "result": result}, indent=2, default=str))
    print(json.dumps({k: v for k, v in result.items() if k != "accepted_at"}, indent=2, default=str))
    print(table(meta, result))
    if any(w["exit"] for w in result["workers"]):
        print(f"a worker failed: see {folder}", file=sys.stderr)
    if not args.keep and not args.py_spy:
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()
    else:
        print(f"scratch kept: {folder}")


if __name__ == "__main__":
    main()
