"""Appointment reminders: a WhatsApp utility template some hours before each visit (default 72 h
and 24 h), with Confirm / Reschedule / Cancel quick replies whose payloads name the appointment.

**The schedule is computed, not stored.** Every pass looks at the booked or confirmed appointments
still to come and works out which (appointment, offset) reminders are due. Rescheduling makes a new
appointment and cancels the old one, so booking, rescheduling and cancelling (by chat, by staff, by
the CLI, or by any later path) keep reminders right without knowing reminders exist, and a change
of offsets applies to every appointment at once. Rows written ahead by the scheduling functions
would have to be kept in step by each of those paths; here a cancelled or moved appointment simply
stops being a candidate. What is stored is the *decision*: one `appointment_reminders` row per
(appointment, offset), sent or skipped (and why).

**Exactly once.** Reminders are settled `BATCH` to a write transaction, each in its own savepoint
that (1) re-reads the appointment and locks it — still booked or confirmed, with the start the
reminder was computed for (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so a worker never waits on a row
another worker or a booking change holds; SQLite: the write lock every writer takes at BEGIN);
(2) inserts the decision row, whose unique (appointment, offset) key a second worker runs into (it
rolls back that savepoint and moves on to the next reminder); (3) queues the template in the
client's outbox. The batch's audit entries are appended at its end, together (`audit.record_many`:
one read of the chain head instead of two per reminder), and contacts are locked in id order, so
two workers' batches never deadlock. All or nothing: a worker killed before the commit leaves no
trace of the batch and the next pass sends its reminders; killed after it, the outbox rows are
there and the client delivers them (its own claims and leases). One transaction per batch instead
of per reminder: the commits and the two chain-head appends per reminder were ~40 % of the
pass's time (profile of 2,000 reminders).

**Timing.** Due at start − offset (whole days on the clinic's calendar, so across a switch to or
from summer time a 10:00 visit is still reminded at 10:00), but never for a moment before the
appointment was booked (the booking's own confirmation said it all). Quiet hours move the moment to
their end (deferred, not dropped). A reminder whose moment passed while no worker ran goes out only
within the grace after that moment (hours outside quiet hours count) and never once the visit has
begun; when two offsets are due together only the nearer one goes out. Nothing goes to a contact
without the `appointments` consent (STOP withdraws it).
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from clinic import audit, consent
from clinic.db import Database
from clinic.models import (
    Appointment,
    AppointmentReminder,
    AppointmentStatus,
    Contact,
    ContactPatient,
    Relationship,
    ReminderStatus,
    utcnow,
)
from clinic.outreach.quiet_hours import allowed_time, is_quiet, next_allowed
from clinic.settings import settings
from clinic.whatsapp.client import WhatsAppClient
from clinic.whatsapp.outbound import template_message

logger = logging.getLogger(__name__)

SOURCE = "outreach:reminder"  # the outbox rows' `source`
ACTOR = "system:outreach"  # the audit entries' actor
ACTIVE = (AppointmentStatus.booked, AppointmentStatus.confirmed)
CONSENT_PURPOSE = "appointments"
# A free-text message within this long of a reminder is taken to be about the reminded appointment.
REPLY_WINDOW = timedelta(hours=24)
_OPAQUE = re.compile(r"^reminder:(\d+)$")
# The template's last parameter when the specialty asks for no preparation (Meta refuses empty ones).
CHUNK = 100  # reminders settled between two looks at what other workers settled
BATCH = 12  # reminders settled in one write transaction (each in its own savepoint)
BACKLOG_SECONDS = 5  # with the delivery loop running, queue at most this many seconds of sending ahead
NO_PREPARATION = {"it": "Nessuna preparazione particolare.", "en": "No special preparation needed."}


@dataclass(frozen=True)
class Rules:
    """When reminders go out: offsets (hours, largest first), grace, quiet hours, clinic zone."""

    offsets: tuple[int, ...]
    grace: timedelta
    quiet: tuple[time, time] | None
    zone: ZoneInfo

    @classmethod
    def from_settings(cls) -> Rules:
        s = settings()
        return cls(s.reminder_offsets, timedelta(hours=s.reminder_grace_hours), s.quiet_hours, s.zone)


@dataclass(frozen=True)
class Upcoming:
    """What the plan needs of an appointment."""

    id: int
    start_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class Due:
    """A reminder to settle now: `send`, or skip as `late` or `superseded`."""

    appointment_id: int
    offset_hours: int
    start_at: datetime
    due_at: datetime
    verdict: str


def reminder_moment(start_at: datetime, offset_hours: int, zone: ZoneInfo) -> datetime:
    """When the `offset_hours` reminder of a visit falls due.

    Whole days count on the clinic's calendar, so a 10:00 visit is reminded at 10:00 one and three
    days before even across a switch to or from summer time (71 or 73 hours then); other offsets
    count elapsed hours.
    """
    if offset_hours % 24:  # in UTC: arithmetic on a zone-aware local time would count wall-clock hours
        return start_at.astimezone(timezone.utc) - timedelta(hours=offset_hours)
    wall = start_at.astimezone(zone).replace(tzinfo=None) - timedelta(days=offset_hours // 24)
    # a wall time that does not exist (spring gap) comes out an hour later, as a clock shows it
    return wall.replace(tzinfo=zone).astimezone(start_at.tzinfo)


def plan(appointments: Iterable[Upcoming], settled: set[tuple[int, int]], now: datetime, rules: Rules) -> list[Due]:
    """The reminders to settle at `now` (pure: the module docstring's timing rules, nothing else).

    Reminders not yet due, or deferred by quiet hours, are simply absent: a later pass finds them.
    """
    quiet_now = is_quiet(now, rules.quiet, rules.zone)
    result: list[Due] = []
    for appointment in appointments:
        if appointment.start_at <= now:
            continue
        sendable: list[Due] = []
        for offset in rules.offsets:
            due_at = reminder_moment(appointment.start_at, offset, rules.zone)
            if (appointment.id, offset) in settled or due_at < appointment.created_at:
                continue
            moment = next_allowed(due_at, rules.quiet, rules.zone)
            if now < moment:
                continue
            if allowed_time(moment, now, rules.quiet, rules.zone) > rules.grace:
                result.append(Due(appointment.id, offset, appointment.start_at, due_at, "late"))
            elif not quiet_now:
                sendable.append(Due(appointment.id, offset, appointment.start_at, due_at, "send"))
        if sendable:  # the nearest offset says it all; the earlier one would only repeat it
            nearest = min(sendable, key=lambda d: d.offset_hours)
            result += [d if d is nearest else Due(d.appointment_id, d.offset_hours, d.start_at, d.due_at,
                                                   "superseded") for d in sendable]
    return result


def due_now(db: Database, now: datetime, rules: Rules) -> list[Due]:
    """`plan` over the active appointments within the largest offset, minus reminders already settled."""
    horizon = now + timedelta(hours=max(rules.offsets) + 1)  # +1: a day-offset spans 73 h across autumn's switch
    with db.reading() as session:
        rows = session.execute(
            select(Appointment.id, Appointment.start_at, Appointment.created_at).where(
                Appointment.status.in_(ACTIVE), Appointment.start_at > now, Appointment.start_at <= horizon)
        ).all()
        settled = _settled(session, [row.id for row in rows])
    return plan((Upcoming(*row) for row in rows), settled, now, rules)


def _settled(session: Session, appointment_ids: list[int]) -> set[tuple[int, int]]:
    """The (appointment, offset) reminders of these appointments already decided, by any worker."""
    settled: set[tuple[int, int]] = set()
    for chunk in range(0, len(appointment_ids), 500):
        settled |= {(a, o) for a, o in session.execute(
            select(AppointmentReminder.appointment_id, AppointmentReminder.offset_hours)
            .where(AppointmentReminder.appointment_id.in_(appointment_ids[chunk:chunk + 500])))}
    return settled


@dataclass
class PassResult:
    sent: int = 0
    skipped: int = 0
    passed_by: int = 0  # changed, settled or locked by another worker, or failed: the next pass decides

    def count(self, outcome: ReminderStatus | None) -> None:
        """One message settled (`sent` or `skipped`) or passed by (None: the next pass decides)."""
        if outcome is ReminderStatus.sent:
            self.sent += 1
        elif outcome is ReminderStatus.skipped:
            self.skipped += 1
        else:
            self.passed_by += 1


def send_due(db: Database, client: WhatsAppClient, now: datetime | None = None, rules: Rules | None = None
             ) -> PassResult:
    """One pass of the worker: settle every reminder due now, `BATCH` to a write transaction.

    The pass wakes the client's delivery loop after each batch it queued, so a running loop sends
    while the pass goes on; the pass waits while more than `BACKLOG_SECONDS` of sending is queued.
    Several workers walk the same due list: each walks it in its own random order and, every
    `CHUNK` reminders, drops what another worker settled meanwhile, so two workers seldom spend the
    reads and the write on the same reminder (the lock and the unique key still decide if they do).
    """
    now = now or utcnow()
    rules = rules or Rules.from_settings()
    result = PassResult()
    due = due_now(db, now, rules)
    random.shuffle(due)
    for start in range(0, len(due), CHUNK):
        chunk = due[start:start + CHUNK]
        ids = sorted({d.appointment_id for d in chunk})
        with db.reading() as session:
            settled = _settled(session, ids) if start else set()  # the first chunk's: just read by `due_now`
            contacts = recipients(session, ids)
        todo = [(d, contacts.get(d.appointment_id)) for d in chunk if (d.appointment_id, d.offset_hours) not in settled]
        result.passed_by += len(chunk) - len(todo)
        for at in range(0, len(todo), BATCH):
            client.wait_for_room(BACKLOG_SECONDS * client.config.max_messages_per_second)
            for outcome in settle_many(db, client, todo[at:at + BATCH], now):
                result.count(outcome)
            client.kick()
    return result


def _link_order(relation: Relationship, created_at: datetime, contact_id: int) -> tuple:
    """Who hears first: the patient's own contact, else the longest-linked one."""
    return relation is not Relationship.self, created_at, contact_id


def recipient(session: Session, patient_id: int) -> Contact | None:
    """Who hears about a patient's visits: the patient's own contact, else the longest-linked one."""
    links = session.scalars(select(ContactPatient).where(ContactPatient.patient_id == patient_id)).all()
    links = sorted(links, key=lambda link: _link_order(link.relation, link.created_at, link.contact_id))
    return session.get(Contact, links[0].contact_id) if links else None


def recipients(session: Session, appointment_ids: list[int]) -> dict[int, int]:
    """`recipient` of many appointments' patients in one query: appointment id → contact id."""
    best: dict[int, tuple] = {}
    for chunk in range(0, len(appointment_ids), 500):
        rows = session.execute(
            select(Appointment.id, ContactPatient.relation, ContactPatient.created_at, ContactPatient.contact_id)
            .join(ContactPatient, ContactPatient.patient_id == Appointment.patient_id)
            .where(Appointment.id.in_(appointment_ids[chunk:chunk + 500])))
        for appointment_id, *link in rows:
            order = _link_order(*link)
            if appointment_id not in best or order < best[appointment_id]:
                best[appointment_id] = order
    return {appointment_id: order[-1] for appointment_id, order in best.items()}


_LOOK_UP = object()


def settle(db: Database, client: WhatsAppClient, due: Due, now: datetime, contact_id=_LOOK_UP
           ) -> ReminderStatus | None:
    """Send or skip one reminder (see the module docstring); None if it was not this worker's to settle.

    `contact_id`: its recipient when the caller read it already (`recipients`), None for nobody.
    """
    if contact_id is _LOOK_UP:
        with db.reading() as session:
            contact_id = recipients(session, [due.appointment_id]).get(due.appointment_id)
    return settle_many(db, client, [(due, contact_id)], now)[0]


def settle_many(db: Database, client: WhatsAppClient, batch: list[tuple[Due, int | None]], now: datetime
                ) -> list[ReminderStatus | None]:
    """Send or skip these reminders (each with its recipient's contact id, or None) in one write
    transaction, each in its own savepoint: one that is not this worker's to settle (changed, locked
    or settled by another worker) or that fails is left to a later pass, and the others go on. The
    audit entries of the batch are appended together at its end. The outcome of each, in order
    (None: left); all None if the transaction failed.
    """
    rows: list[AppointmentReminder | None] = [None] * len(batch)
    # contacts are locked in id order, so two workers' batches never wait on each other in a circle
    order = sorted(range(len(batch)), key=lambda i: (batch[i][1] is None, batch[i][1] or 0))
    try:
        with db.transaction() as session:
            entries: list[audit.Entry] = []
            notice = consent.current_version(session)
            for i in order:
                due, contact_id = batch[i]
                try:
                    with session.begin_nested():
                        own: list[audit.Entry] = []
                        row = _decide(session, client, due, contact_id, notice, now, own)
                except IntegrityError:  # the unique key: another worker settled it first
                    row = None
                except Exception as error:  # noqa: BLE001 - one bad reminder must not hold up the others
                    logger.error("reminder of appointment %s (%sh) failed: %s", due.appointment_id,
                                 due.offset_hours, type(error).__name__)
                    row = None
                if row is not None:
                    entries += own
                    rows[i] = row
            audit.record_many(session, entries)
    except Exception as error:  # noqa: BLE001 - the batch rolled back: a later pass settles it
        logger.error("reminder batch of %d failed: %s", len(batch), type(error).__name__)
        return [None] * len(batch)
    for (due, _), row in zip(batch, rows, strict=True):
        if row is not None:
            logger.info("reminder %s of appointment %s (%sh): %s%s", row.id, due.appointment_id, due.offset_hours,
                        row.status.value, f" ({row.reason})" if row.reason else "")
    return [row.status if row is not None else None for row in rows]


def _decide(session: Session, client: WhatsAppClient, due: Due, contact_id: int | None, notice: str | None,
            now: datetime, entries: list[audit.Entry]) -> AppointmentReminder | None:
    """One reminder's decision row (and outbox row), its audit entries added to `entries`; None if it
    is not this worker's to settle.
    """
    reason = None
    if due.verdict != "send":
        reason = due.verdict
    elif contact_id is None:
        reason = "no_contact"
    appointment = _lock_if_unchanged(session, due)
    if appointment is None:
        return None
    if contact_id is not None:
        # Before the decision row, whose foreign key share-locks the contact: the outbox takes the
        # contact's row lock next, and two workers each holding a share lock would deadlock.
        # The same lock serialises with a STOP being written: consent is read under it (a clinic
        # that never published a notice has no consent to read: nothing goes out).
        consent.lock_contact(session, contact_id)
        if reason is None and not consent.allows_in(session, contact_id, CONSENT_PURPOSE, notice):
            reason = "no_consent"
    row = AppointmentReminder(appointment_id=due.appointment_id, offset_hours=due.offset_hours, start_at=due.start_at,
                              due_at=due.due_at, status=ReminderStatus.skipped if reason else ReminderStatus.sent,
                              reason=reason, contact_id=contact_id, decided_at=now)
    session.add(row)
    session.flush()  # the unique (appointment, offset) key speaks here
    if row.status is ReminderStatus.sent:
        body = reminder_message(appointment, session.get(Contact, contact_id))
        (row.outbound_id,) = client.enqueue_in(session, contact_id, [body], source=SOURCE,
                                               opaque=f"reminder:{row.id}", audit_to=entries)
    entries.append(audit.Entry(
        f"reminder.{row.status.value}", actor=ACTOR, subject=f"appointment:{appointment.id}", now=now,
        data={"reminder_id": row.id, "appointment_id": appointment.id, "offset_hours": row.offset_hours,
              "contact_id": contact_id, "outbound_id": row.outbound_id, "reason": row.reason}))
    return row


def _lock_if_unchanged(session: Session, due: Due) -> Appointment | None:
    """The appointment, locked, if it is still active at the start the reminder was computed for."""
    query = (
        select(Appointment)
        .where(Appointment.id == due.appointment_id, Appointment.status.in_(ACTIVE),
               Appointment.start_at == due.start_at)
        .options(joinedload(Appointment.patient), joinedload(Appointment.practitioner),
                 joinedload(Appointment.location), joinedload(Appointment.specialty))
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Appointment)
    return session.execute(query).unique().scalar_one_or_none()


def language_of(contact: Contact | None, appointment: Appointment) -> str:
    language = (contact.language if contact else None) or appointment.patient.language or settings().default_language
    return language if language in consent.LANGUAGES else settings().default_language


def plain(text: str) -> str:
    """Meta refuses template parameters with newlines, tabs or runs of spaces."""
    return " ".join(text.split())


def reminder_parameters(appointment: Appointment, language: str) -> list[str]:
    """The template's body parameters: first name, date, time, practitioner, location, preparation."""
    local = appointment.start_at.astimezone(settings().zone)
    specialty = appointment.specialty
    preparation = None
    if specialty is not None:
        preparation = specialty.preparation_it if language == "it" else specialty.preparation_en
    location = appointment.location
    return [plain(value) for value in (
        appointment.patient.first_name,
        format_date(local.date(), "EEEE d MMMM", locale=language),
        format_time(local, "HH:mm", locale=language),
        appointment.practitioner.display_name,
        f"{location.name}, {location.address}",
        preparation or NO_PREPARATION[language],
    )]


def reply_payloads(appointment_id: int) -> list[str]:
    """The quick replies' payloads, in the template's button order: Confirm, Reschedule, Cancel."""
    entity = f'{{"appointment_id": "{appointment_id}"}}'
    return [f"/{intent}{entity}" for intent in ("confirm_appointment", "reschedule_appointment", "cancel_appointment")]


def reminder_message(appointment: Appointment, contact: Contact | None) -> dict:
    """The Graph body of the reminder template for `appointment`, in its recipient's language."""
    language = language_of(contact, appointment)
    return template_message(settings().reminder_template, language, reminder_parameters(appointment, language),
                            quick_replies=reply_payloads(appointment.id))


def reminded_appointment(db: Database, contact_id: int, context_opaque: str | None = None,
                         now: datetime | None = None) -> int | None:
    """The appointment a contact's reply is about: the reminder it taps or quotes (its
    `biz_opaque_callback_data`), else the contact's latest reminder of the last `REPLY_WINDOW`;
    only while that appointment is still active and to come.
    """
    now = now or utcnow()
    query = (
        select(AppointmentReminder.appointment_id)
        .join(Appointment, Appointment.id == AppointmentReminder.appointment_id)
        .where(AppointmentReminder.contact_id == contact_id, AppointmentReminder.status == ReminderStatus.sent,
               Appointment.status.in_(ACTIVE), Appointment.start_at > now)
    )
    quoted = _OPAQUE.match(context_opaque or "")
    if quoted:
        query = query.where(AppointmentReminder.id == int(quoted.group(1)))
    else:
        query = query.where(AppointmentReminder.decided_at >= now - REPLY_WINDOW).order_by(
            AppointmentReminder.decided_at.desc(), AppointmentReminder.id.desc())
    with db.reading() as session:
        return session.scalars(query.limit(1)).first()
