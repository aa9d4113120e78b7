"""A small clinic week with every KPI computed by hand (period: Mon 1 – Sun 7 March 2027, Europe/Rome).

Appointments (all through the core's own booking functions):

| id  | specialty, practitioner   | booked by, when        | reminded       | confirmed             | outcome    |
| A1  | cardiology, bianchi       | contact, 25 Feb        | 1 Mar 09:00    | 1 Mar 10:30 (+90 min) | completed  |
| A2  | cardiology, bianchi       | staff, 26 Feb          | 1 Mar 09:00    | –                     | no-show    |
| A3  | dermatology, esposito     | contact, 1 Mar         | –              | –                     | no-show    |
| A4  | dermatology, esposito     | contact, 1 Mar         | 2 Mar 09:00    | 2 Mar 09:30 (+30 min) | completed  |
| A5  | cardiology, russo         | staff, 1 Mar           | 3 Mar 09:00    | 1 Mar 12:00 (before)  | completed  |
| A6  | cardiology, russo         | contact, 20 Feb        | –              | –                     | cancelled → A7 |
| A7  | cardiology, russo (A6's)  | staff, 2 Mar           | –              | –                     | not recorded |
| A8  | ophthalmology, romano     | contact, 20 Feb        | –              | –                     | cancelled 3 Mar |
| A9  | paediatrics, ricci        | contact, 1 Mar, moved at once to A9' | – | –                 | not recorded |
| A10 | blood_tests, lab_centro   | cli, 1 Mar             | –              | –                     | not recorded |

Conversations (times UTC): contact C1 chats with the bot at 10:00 and 10:05 (no nurse), then from 12:00
to 12:59 with the bot, asks for a person: ticket at 13:00 (request_human), first nurse reply 13:20,
resolved 14:00, a message at 13:10 during the handoff. C2 writes at 09:00 on 2 Mar, ticket
(medical_question) 09:01, reply 09:05, resolved 09:31. C3 writes 20:00 and 20:30 on 3 Mar (no nurse).
C4 writes 08:00 on 4 Mar, ticket (fallback) 08:01, never answered.
Bot replies after 2, 3, 4, 1, 30 (C1), 10 (C2), 1, 5 (C3), 6 (C4) seconds; none to the 13:10 message.
What the bot understood (the channel's stored NLU outcome): C1 greet, book_appointment, inform,
nlu_fallback, request_human; C2 medical_question; C3 nlu_fallback, then greet; C4 a greeting the
policies fell back on (action_default_fallback); the 13:10 message none (the nurse held it):
3 fallbacks in 9 turns.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from sqlalchemy import select

from clinic import handoff, scheduling
from clinic.demo import seed
from clinic.kpi import Filters
from clinic.models import (
    AppointmentReminder,
    AppointmentStatus,
    Contact,
    InboundMessage,
    OutboundMessage,
    OutboundStatus,
    Patient,
    Practitioner,
    ReminderStatus,
    StaffUser,
)

WEEK = Filters(date(2027, 3, 1), date(2027, 3, 7))


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 3) -> datetime:
    return datetime(2027, month, day, hour, minute, second, tzinfo=timezone.utc)


def _patient(db) -> int:
    with db.reading() as s:
        return s.scalars(select(Patient.id).order_by(Patient.id)).first()


def _slot(db, practitioner: str, day: int, skip: int = 0) -> int:
    with db.reading() as s:
        practitioner_id = s.scalars(select(Practitioner.id).where(Practitioner.key == practitioner)).one()
    start, end = scheduling.day_window(date(2027, 3, day))
    slots = scheduling.free_slots(db, scheduling.SlotQuery(start, end, practitioner_id=practitioner_id),
                                  now=at(20, 8, month=2), limit=skip + 1)
    return slots[skip].id


def _book(db, practitioner: str, day: int, actor: str, booked_at: datetime, skip: int = 0) -> int:
    return scheduling.book(db, patient_id=_patient(db), slot_id=_slot(db, practitioner, day, skip), actor=actor,
                           now=booked_at).id


def _remind(db, appointment_id: int, sent_at: datetime) -> None:
    with db.transaction() as s:
        appointment = scheduling._load_appointment(s, appointment_id)
        s.add(AppointmentReminder(appointment_id=appointment_id, offset_hours=24, start_at=appointment.start_at,
                                  due_at=sent_at, status=ReminderStatus.sent, decided_at=sent_at))


def _attend(db, appointment_id: int, status: AppointmentStatus) -> None:
    scheduling.record_attendance(db, appointment_id=appointment_id, status=status, actor="staff:1",
                                 now=at(8, 12))


def _contact(db, wa_id: str) -> int:
    with db.transaction() as s:
        contact = Contact(wa_id=wa_id, profile_name=f"Contact {wa_id[-1]}", language="it")
        s.add(contact)
        s.flush()
        return contact.id


def _says(db, contact_id: int, moment: datetime, reply_after: float | None, source: str = "bot",
          nlu: tuple[str, bool] | None = None) -> None:
    """A patient's message and, unless None, the bot's reply `reply_after` seconds later; `nlu` is what
    the bot understood (intent, fell back), as the channel stores it."""
    intent, fallback = nlu or (None, None)
    with db.transaction() as s:
        s.add(InboundMessage(wamid=f"wamid.{contact_id}.{moment.isoformat()}", contact_id=contact_id,
                             phone_number_id="1", type="text", payload={"text": {"body": "..."}}, rasa_text="...",
                             sent_at=moment, received_at=moment, status="handled", nlu_intent=intent,
                             nlu_fallback=fallback))
        if reply_after is not None:
            s.add(_outbound(contact_id, moment + timedelta(seconds=reply_after), source))


def _outbound(contact_id: int, moment: datetime, source: str, **values) -> OutboundMessage:
    fields = {"kind": "text", "body": {"type": "text", "text": {"body": "..."}}, "status": OutboundStatus.read,
              **values}
    return OutboundMessage(contact_id=contact_id, source=source, created_at=moment, next_attempt_at=moment, **fields)


def build(db) -> dict[str, int]:
    """The week above, on a seeded demo clinic; the appointment ids by name."""
    seed(db, today=date(2027, 2, 20))
    ids = {
        "A1": _book(db, "bianchi", 3, "contact:393330000001", at(25, 9, month=2)),
        "A2": _book(db, "bianchi", 3, "staff:1", at(26, 9, month=2), skip=1),
        "A3": _book(db, "esposito", 3, "contact:393330000001", at(1, 8)),
        "A4": _book(db, "esposito", 3, "contact:393330000001", at(1, 8, 10), skip=1),
        "A5": _book(db, "russo", 4, "staff:1", at(1, 8, 20)),
        "A6": _book(db, "russo", 4, "contact:393330000001", at(20, 9, month=2), skip=1),
        "A8": _book(db, "romano", 5, "contact:393330000001", at(20, 9, month=2)),
        "A9": _book(db, "ricci", 5, "contact:393330000001", at(1, 9)),
        "A10": _book(db, "lab_centro", 5, "cli", at(1, 9, 30)),
    }
    scheduling.reschedule(db, appointment_id=ids["A9"], new_slot_id=_slot(db, "ricci", 5, skip=3),
                          actor="contact:393330000001", now=at(1, 9, 5))
    _remind(db, ids["A1"], at(1, 9))
    _remind(db, ids["A2"], at(1, 9))
    _remind(db, ids["A4"], at(2, 9))
    _remind(db, ids["A5"], at(3, 9))
    for name, moment in (("A1", at(1, 10, 30)), ("A4", at(2, 9, 30)), ("A5", at(1, 12))):
        scheduling.confirm(db, appointment_id=ids[name], actor="contact:393330000001", now=moment)
    scheduling.cancel(db, appointment_id=ids["A6"], reason="patient", actor="contact:393330000001",
                      allow_late=True, now=at(2, 10))
    a6 = scheduling.appointment(db, ids["A6"])
    ids["A7"] = scheduling.book(db, patient_id=_patient(db), slot_id=a6.slot_id, actor="staff:1", now=at(2, 11)).id
    scheduling.cancel(db, appointment_id=ids["A8"], reason="patient", actor="contact:393330000001",
                      allow_late=True, now=at(3, 10))
    for name, status in (("A1", AppointmentStatus.completed), ("A2", AppointmentStatus.no_show),
                         ("A3", AppointmentStatus.no_show), ("A4", AppointmentStatus.completed),
                         ("A5", AppointmentStatus.completed)):
        _attend(db, ids[name], status)

    with db.transaction() as s:
        nurse = StaffUser(username="rossi", password_hash="-")
        s.add(nurse)
        s.flush()
        nurse_id = nurse.id
    c1, c2, c3, c4 = (_contact(db, f"39333999000{n}") for n in range(1, 5))
    for moment, after, intent in ((at(1, 10), 2, "greet"), (at(1, 10, 5), 3, "book_appointment"),
                                  (at(1, 12), 4, "inform"), (at(1, 12, 30), 1, "nlu_fallback"),
                                  (at(1, 12, 59), 30, "request_human")):
        _says(db, c1, moment, after, nlu=(intent, intent == "nlu_fallback"))
    ticket = handoff.open_ticket(db, c1, "request_human", now=at(1, 13))
    _says(db, c1, at(1, 13, 10), None)
    handoff.claim(db, ticket.id, nurse_id, now=at(1, 13, 5))
    with db.transaction() as s:
        s.add(_outbound(c1, at(1, 13, 20), "inbox:rossi"))
    handoff.replied(db, ticket.id, nurse_id, now=at(1, 13, 20))
    handoff.resolve(db, ticket.id, nurse_id, now=at(1, 14))

    _says(db, c2, at(2, 9), 10, nlu=("medical_question", False))
    ticket = handoff.open_ticket(db, c2, "medical_question", now=at(2, 9, 1))
    handoff.claim(db, ticket.id, nurse_id, now=at(2, 9, 2))
    handoff.replied(db, ticket.id, nurse_id, now=at(2, 9, 5))
    handoff.resolve(db, ticket.id, nurse_id, now=at(2, 9, 31))

    _says(db, c3, at(3, 20), 1, nlu=("nlu_fallback", True))
    _says(db, c3, at(3, 20, 30), 5, nlu=("greet", False))

    _says(db, c4, at(4, 8), 6, nlu=("greet", True))
    handoff.open_ticket(db, c4, "fallback", now=at(4, 8, 1))
    return ids
