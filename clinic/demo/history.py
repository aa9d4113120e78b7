"""Synthetic history for the demo: several past weeks of bookings, reminders, confirmations,
cancellations, attendance, conversations with the bot, nurse handoffs and delivery problems, so the
KPI dashboard shows meaningful charts straight after `make run` (`clinic seed --history-weeks N`).

Booking changes and tickets go through the core's own functions (with `now=` in the past), so the
appointments, tickets, audit trail and webhooks are what real use would have left; only messages and
reminder decisions are written as rows. Deterministic (a fixed random seed) and done once: a database
that already has appointments before today gets no more history. The history patients and contacts are
fictional (`HISTORY_WA_PREFIX` numbers); the two history nurses are disabled accounts nobody can sign in to.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import event, func, select

from clinic import audit, handoff, scheduling
from clinic.db import Database
from clinic.models import (
    Appointment,
    AppointmentReminder,
    AppointmentStatus,
    Contact,
    ContactPatient,
    InboundMessage,
    InboundStatus,
    OutboundMessage,
    OutboundStatus,
    Patient,
    Relationship,
    ReminderStatus,
    Slot,
    StaffUser,
)
from clinic.settings import settings
from clinic.slots import sync_slots

HISTORY_WA_PREFIX = "39333900"  # fictional numbers of the history's contacts
NURSES = ("storico-anna", "storico-marco")
FIRST_NAMES = ("Luca", "Giulia", "Marco", "Sofia", "Andrea", "Chiara", "Paolo", "Elena", "Davide", "Sara",
               "Matteo", "Anna", "Simone", "Laura", "Federico", "Marta", "Stefano", "Irene", "Emily", "James")
LAST_NAMES = ("Rossi", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno")
REASONS = (("request_human", 5), ("medical_question", 3), ("fallback", 2), ("late_cancellation", 1),
           ("emergency", 1))
FAILURE_CODES = (131026, 131026, 131049, 131047, 130472)


@dataclass(frozen=True)
class HistoryResult:
    weeks: int
    appointments: int
    conversations: int
    tickets: int


def _has_history(db: Database, start: datetime) -> bool:
    with db.reading() as session:
        return bool(session.scalar(select(func.count()).select_from(Appointment).where(Appointment.start_at < start)))


def _people(db: Database, rng: random.Random, count: int = 40) -> list[tuple[int, int, str]]:
    """(patient id, contact id, WhatsApp number) of the history's fictional patients, each writing for themself."""
    people = []
    with db.transaction() as session:
        for n in range(count):
            language = "en" if n % 7 == 0 else "it"
            patient = Patient(first_name=FIRST_NAMES[n % len(FIRST_NAMES)], last_name=LAST_NAMES[n % len(LAST_NAMES)],
                              date_of_birth=date(1950 + rng.randrange(60), rng.randrange(1, 13), rng.randrange(1, 28)),
                              language=language)
            contact = Contact(wa_id=f"{HISTORY_WA_PREFIX}{n:04d}", profile_name=f"{patient.first_name} "
                              f"{patient.last_name[0]}.", language=language)
            session.add_all([patient, contact])
            session.flush()
            session.add(ContactPatient(contact_id=contact.id, patient_id=patient.id, relation=Relationship.self))
            people.append((patient.id, contact.id, contact.wa_id))
    return people


def _nurses(db: Database) -> list[int]:
    ids = []
    with db.transaction() as session:
        for username in NURSES:
            user = session.scalars(select(StaffUser).where(StaffUser.username == username)).first()
            if user is None:
                user = StaffUser(username=username, password_hash="!", active=False)  # "!" matches no password
                session.add(user)
                session.flush()
            ids.append(user.id)
    return ids


def _outbound(contact_id: int, at: datetime, source: str, kind: str = "text", **values) -> OutboundMessage:
    status = values.pop("status", OutboundStatus.read)
    body = ({"type": "template", "template": {"name": "history"}} if kind == "template"
            else {"type": "text", "text": {"body": "(demo history)"}})
    return OutboundMessage(contact_id=contact_id, kind=kind, body=body, source=source, status=status,
                           created_at=at, next_attempt_at=at, sent_at=at + timedelta(seconds=1), **values)


def _appointments(db: Database, rng: random.Random, people: list[tuple[int, int, str]], first: date, last: date,
                  end: datetime, per_day: int = 10) -> int:
    """Past visits booked through the core, reminded, confirmed, cancelled (some slots re-booked), attended."""
    zone = settings().zone
    start = datetime.combine(first, time(0), tzinfo=zone)
    with db.reading() as session:
        slots = session.execute(select(Slot.id, Slot.start_at).where(
            Slot.start_at >= start, Slot.start_at < end, Slot.bookable.is_(True)).order_by(Slot.start_at)).all()
    by_day: dict[date, list] = {}
    for slot_id, start_at in slots:
        by_day.setdefault(start_at.astimezone(zone).date(), []).append((slot_id, start_at))
    made = 0
    for day, day_slots in sorted(by_day.items()):
        week = (day - first).days // 7
        # Later weeks: more bookings on WhatsApp, fewer no-shows (the assistant catching on).
        whatsapp_share = 0.45 + 0.04 * week
        for slot_id, start_at in rng.sample(day_slots, min(per_day, len(day_slots))):
            patient_id, contact_id, wa_id = rng.choice(people)
            booked_at = start_at - timedelta(hours=rng.randrange(30, 24 * 14))
            actor = f"contact:{wa_id}" if rng.random() < whatsapp_share else "staff:history"
            try:
                visit = scheduling.book(db, patient_id=patient_id, slot_id=slot_id, actor=actor, now=booked_at)
            except scheduling.SchedulingError:
                continue
            made += 1
            reminded_at = start_at - timedelta(hours=24)
            reminded = rng.random() < 0.85
            if reminded:
                _remind(db, visit.id, contact_id, reminded_at)
            if rng.random() < 0.1:  # cancelled before the visit; half the freed slots are booked again
                cancelled_at = start_at - timedelta(hours=rng.randrange(2, 20))
                scheduling.cancel(db, appointment_id=visit.id, reason="demo", actor=actor, allow_late=True,
                                  now=cancelled_at)
                if rng.random() < 0.5:
                    try:
                        refill = scheduling.book(db, patient_id=rng.choice(people)[0], slot_id=slot_id,
                                                 actor="staff:history",
                                                 now=cancelled_at + timedelta(minutes=rng.randrange(5, 90)))
                    except scheduling.SchedulingError:  # too close to the visit to book
                        continue
                    _attend(db, rng, refill.id, start_at, 0.05)
                continue
            confirmed = reminded and rng.random() < 0.6
            if confirmed:
                scheduling.confirm(db, appointment_id=visit.id, actor=actor,
                                   now=reminded_at + timedelta(minutes=rng.randrange(2, 600)))
            no_show = 0.03 if confirmed else (0.12 if reminded else 0.22) - 0.01 * week
            _attend(db, rng, visit.id, start_at, max(no_show, 0.02))
    return made


def _attend(db: Database, rng: random.Random, appointment_id: int, start_at: datetime, no_show: float) -> None:
    status = AppointmentStatus.no_show if rng.random() < no_show else AppointmentStatus.completed
    scheduling.record_attendance(db, appointment_id=appointment_id, status=status, actor="staff:history",
                                 now=start_at + timedelta(hours=2))


def _remind(db: Database, appointment_id: int, contact_id: int, at: datetime) -> None:
    with db.transaction() as session:
        visit = session.get(Appointment, appointment_id)
        row = _outbound(contact_id, at, "outreach:reminder", kind="template")
        session.add(row)
        session.flush()
        reminder = AppointmentReminder(appointment_id=appointment_id, offset_hours=24, start_at=visit.start_at,
                                       due_at=at, status=ReminderStatus.sent, contact_id=contact_id,
                                       outbound_id=row.id, decided_at=at)
        session.add(reminder)
        session.flush()
        audit.record(session, "reminder.sent", actor="system:outreach", subject=f"appointment:{appointment_id}",
                     data={"reminder_id": reminder.id, "appointment_id": appointment_id, "contact_id": contact_id,
                           "outbound_id": row.id, "offset_hours": 24}, now=at)


DEMO_INTENTS = ("greet", "book_appointment", "inform", "affirm", "list_appointments", "faq", "thank",
                "reschedule_appointment", "cancel_appointment", "request_test_results")


def _conversations(db: Database, rng: random.Random, people: list[tuple[int, int, str]], first: date, last: date,
                   nurses: list[int], per_day: int = 10) -> tuple[int, int]:
    """Patients chatting with the bot in office hours; some hand over to a nurse, who answers and resolves."""
    zone = settings().zone
    conversations = tickets = 0
    serial = 0
    day = first
    while day <= last:
        week = (day - first).days // 7
        starts = sorted((datetime.combine(day, time(rng.randrange(8, 19), rng.randrange(60)), tzinfo=zone),
                         rng.choice(people)[1]) for _ in range(per_day if day.weekday() < 5 else per_day // 3))
        for moment, contact_id in starts:
            conversations += 1
            rows = []
            for _turn in range(rng.randrange(1, 5)):
                serial += 1
                fell_back = rng.random() < 0.12 - 0.008 * week  # designers' fixes show as a falling rate
                rows.append(InboundMessage(
                    wamid=f"wamid.history.{serial}", contact_id=contact_id, phone_number_id="history", type="text",
                    payload={"text": {"body": "(demo history)"}}, rasa_text="(demo history)", sent_at=moment,
                    received_at=moment, status=InboundStatus.handled, handled_at=moment, attempts=1,
                    nlu_intent="nlu_fallback" if fell_back else rng.choice(DEMO_INTENTS), nlu_fallback=fell_back))
                reply = moment + timedelta(seconds=round(rng.lognormvariate(0.6, 0.5), 1))
                rows.append(_outbound(contact_id, reply, "bot"))
                moment = reply + timedelta(seconds=rng.randrange(20, 240))
            if rng.random() < 0.03:
                rows.append(_outbound(contact_id, moment, "bot", status=OutboundStatus.failed,
                                      error_code=rng.choice(FAILURE_CODES), failed_at=moment))
            with db.transaction() as session:
                session.add_all(rows)
                if rng.random() < 0.04:
                    _window_closed(session, contact_id, moment - timedelta(hours=rng.randrange(1, 6)))
            if rng.random() < 0.22 - 0.01 * week:
                tickets += 1
                _handoff(db, rng, contact_id, moment, nurses)
        day += timedelta(days=1)
    return conversations, tickets


def _window_closed(session, contact_id: int, at: datetime) -> None:
    """A message that met the contact's closed 24-hour window: held (as the client records it), the window
    template sent instead, the message released when the patient answered.
    """
    held = _outbound(contact_id, at, "outreach:history")
    session.add(held)
    session.add(_outbound(contact_id, at, "whatsapp:window", kind="template"))
    session.flush()
    audit.record(session, "message.outbound.queued", actor="outreach:history", subject=f"outbound:{held.id}",
                 data={"outbound_id": held.id, "contact_id": contact_id, "kind": "text", "status": "held"}, now=at)


def _handoff(db: Database, rng: random.Random, contact_id: int, at: datetime, nurses: list[int]) -> None:
    reasons, weights = zip(*REASONS, strict=True)
    ticket = handoff.open_ticket(db, contact_id, rng.choices(reasons, weights)[0], now=at)
    nurse = rng.choice(nurses)
    claimed = at + timedelta(minutes=rng.randrange(1, 5 if ticket.priority == "urgent" else 40))
    handoff.claim(db, ticket.id, nurse, now=claimed)
    replied = claimed + timedelta(minutes=rng.randrange(1, 10))
    with db.transaction() as session:
        session.add(_outbound(contact_id, replied, f"inbox:{NURSES[nurses.index(nurse)]}"))
    handoff.replied(db, ticket.id, nurse, now=replied)
    handoff.resolve(db, ticket.id, nurse, now=replied + timedelta(minutes=rng.randrange(3, 90)))


def _no_fsync(dbapi_connection, _record) -> None:
    """Demo data on SQLite is disposable: thousands of small transactions need not each wait for the disk."""
    dbapi_connection.execute("PRAGMA synchronous=OFF")


def generate(db: Database, weeks: int, today: date | None = None, seed: int = 8) -> HistoryResult | None:
    """`weeks` weeks of history up to yesterday, on a seeded demo clinic; None when it has some already."""
    zone = settings().zone
    today = today or datetime.now(zone).date()
    first, last = today - timedelta(days=7 * weeks), today - timedelta(days=1)
    end = datetime.combine(today, time(0), tzinfo=zone)
    if weeks <= 0 or _has_history(db, end):
        return None
    if db.engine.dialect.name == "sqlite":
        event.listen(db.engine, "connect", _no_fsync)
    rng = random.Random(seed)
    sync_slots(db, first, last, zone)
    people = _people(db, rng)
    nurses = _nurses(db)
    appointments = _appointments(db, rng, people, first, last, end)
    conversations, tickets = _conversations(db, rng, people, first, last, nurses)
    return HistoryResult(weeks, appointments, conversations, tickets)
