"""Waitlist backfill: a free slot that suits waitlisted patients is offered to them in joining order,
WAITLIST_BATCH_SIZE at a time; the first to accept gets it, the others are told it has gone.

**Computed, like reminders.** Nothing in the booking paths knows the waitlist exists: every pass
(1) closes open offers that are over — expired (told nothing: the offer said until when) or whose
slot is no longer free (taken by another offer's patient or by anyone else: told it has gone);
(2) walks the active waitlist entries in joining order and gives each one without an open offer the
earliest free slot of its target (specialty and/or practitioner) in its days that it was never
offered and that has fewer than WAITLIST_BATCH_SIZE open offers (skipping patients who already
hold a visit for that target in those days). A slot freed by a cancellation
(or a reschedule) is a candidate the moment it is free; when a batch lets its offers expire, the
next entries in line get the slot on the following pass.

**Exactly once.** An offer is one `waitlist_offers` row written with its outbox row (a utility
template, since the patient's 24-hour window is usually closed) and its audit entry in one
transaction. Unique (entry, slot) and "one open offer per entry" (a partial unique index) turn a
second worker's insert into a rolled-back savepoint; the slot's row lock (PostgreSQL) or SQLite's
write lock keeps the batch size exact.

**Accepting** (`accept`) books the slot and closes the offer in one transaction. Two patients
accepting at once both try to insert the appointment; the appointments' unique slot index lets
exactly one through. The other's offer is closed as gone and the bot tells them at once.

Offers go only with the `appointments` consent, re-read under the contact's lock, and never in
quiet hours (the pass offers nothing then and tells no one; it all happens after them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from clinic import audit, consent, scheduling
from clinic.db import Database
from clinic.models import (
    Appointment,
    AppointmentStatus,
    Contact,
    OfferStatus,
    Patient,
    Practitioner,
    Slot,
    Specialty,
    WaitlistEntry,
    WaitlistOffer,
    utcnow,
)
from clinic.outreach.quiet_hours import after_allowed, is_quiet
from clinic.outreach.reminders import ACTIVE, plain, recipient
from clinic.settings import settings
from clinic.whatsapp.client import WhatsAppClient
from clinic.whatsapp.outbound import template_message

logger = logging.getLogger(__name__)

SOURCE = "outreach:waitlist"
ACTOR = "system:outreach"
CONSENT_PURPOSE = "appointments"
CANDIDATES = 20  # free slots looked at per entry and pass


@dataclass(frozen=True)
class Rules:
    """How many patients are offered a slot at once, for how long, and when not to write."""

    batch_size: int
    offer_for: timedelta
    quiet: tuple[time, time] | None
    zone: ZoneInfo

    @classmethod
    def from_settings(cls) -> Rules:
        s = settings()
        return cls(s.waitlist_batch_size, timedelta(minutes=s.waitlist_offer_minutes), s.quiet_hours, s.zone)


@dataclass
class PassResult:
    offered: int = 0
    expired: int = 0
    gone: int = 0
    passed_by: int = 0  # no consent, no contact, or settled by another worker: the next pass looks again


def run_pass(db: Database, client: WhatsAppClient, now: datetime | None = None, rules: Rules | None = None
             ) -> PassResult:
    """One pass of the worker: close what is over, then offer freed slots. Nothing in quiet hours."""
    now = now or utcnow()
    rules = rules or Rules.from_settings()
    result = PassResult()
    if is_quiet(now, rules.quiet, rules.zone):
        return result
    for offer_id in _over_offers(db, now):
        outcome = _guarded(close, db, client, offer_id, now)
        if outcome is OfferStatus.expired:
            result.expired += 1
        elif outcome is OfferStatus.gone:
            result.gone += 1
    for entry_id in _waiting_entries(db, now.astimezone(rules.zone or settings().zone).date()):
        outcome = _guarded(offer_next, db, client, entry_id, now, rules)
        if outcome is True:
            result.offered += 1
        elif outcome is False:
            result.passed_by += 1
    if result.offered or result.gone:
        client.kick()
    return result


def _guarded(function, *args):
    try:
        return function(*args)
    except Exception as error:  # noqa: BLE001 - one bad offer must not hold up the others
        logger.error("waitlist %s failed: %s", function.__name__, type(error).__name__)
        return None


def _over_offers(db: Database, now: datetime) -> list[int]:
    """Open offers that look over (expired, or their slot held by an appointment): `close` decides."""
    taken = select(Appointment.id).where(Appointment.slot_id == WaitlistOffer.slot_id,
                                         Appointment.status != AppointmentStatus.cancelled).exists()
    with db.reading() as session:
        return list(session.scalars(select(WaitlistOffer.id).where(
            WaitlistOffer.status == OfferStatus.offered, or_(WaitlistOffer.expires_at <= now, taken))
            .order_by(WaitlistOffer.id)))


def _waiting_entries(db: Database, today: date) -> list[int]:
    """Active entries still wanting a day from `today` on, without an open offer, in joining order."""
    with db.reading() as session:
        open_offer = select(WaitlistOffer.id).where(WaitlistOffer.entry_id == WaitlistEntry.id,
                                                    WaitlistOffer.status == OfferStatus.offered).exists()
        return list(session.scalars(select(WaitlistEntry.id).where(WaitlistEntry.active.is_(True), ~open_offer,
                                                                   WaitlistEntry.wanted_until >= today)
                                    .order_by(WaitlistEntry.created_at, WaitlistEntry.id)))


def _lock(session: Session, query):
    """`query`'s row, locked on PostgreSQL without waiting for a row another worker holds."""
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.execute(query).scalar_one_or_none()


def _slot_taken(session: Session, slot_id: int) -> bool:
    return session.scalar(select(func.count()).select_from(Appointment).where(
        Appointment.slot_id == slot_id, Appointment.status != AppointmentStatus.cancelled)) > 0


# --- closing --------------------------------------------------------------------------------------


def close(db: Database, client: WhatsAppClient, offer_id: int, now: datetime) -> OfferStatus | None:
    """Close an open offer that is over: `gone` (told, with consent) or `expired`; None if still open."""
    with db.reading() as session:
        found = session.get(WaitlistOffer, offer_id)
        contact_id = found.contact_id if found else None
    allowed = contact_id is not None and consent.allows(db, contact_id, CONSENT_PURPOSE)
    with db.transaction() as session:
        if contact_id is not None:
            consent.lock_contact(session, contact_id)
        if _lock(session, select(WaitlistOffer.id).where(WaitlistOffer.id == offer_id,
                                                         WaitlistOffer.status == OfferStatus.offered)) is None:
            return None
        offer = session.get(WaitlistOffer, offer_id, populate_existing=True)
        if _slot_taken(session, offer.slot_id):
            offer.status = OfferStatus.gone
            if allowed and consent.allows_in(session, contact_id, CONSENT_PURPOSE):
                body = gone_message(offer.slot, offer.entry.patient_id, session.get(Contact, contact_id), session)
                (offer.gone_outbound_id,) = client.enqueue_in(session, contact_id, [body], source=SOURCE,
                                                              opaque=f"waitlist_offer:{offer.id}")
        elif offer.expires_at <= now:
            offer.status = OfferStatus.expired
        else:
            return None
        offer.closed_at = now
        _audit(session, offer, now)
        return offer.status


def _audit(session: Session, offer: WaitlistOffer, now: datetime, actor: str = ACTOR) -> None:
    audit.record(session, f"waitlist.{offer.status.value}", actor=actor, subject=f"waitlist_offer:{offer.id}",
                 data={"offer_id": offer.id, "entry_id": offer.entry_id, "slot_id": offer.slot_id,
                       "patient_id": offer.entry.patient_id, "contact_id": offer.contact_id,
                       "outbound_id": offer.gone_outbound_id or offer.outbound_id,
                       "appointment_id": offer.appointment_id}, now=now)


# --- offering -------------------------------------------------------------------------------------


def candidate_slots(db: Database, entry_id: int, now: datetime, rules: Rules) -> list[int]:
    """Free slots for the entry, earliest first: in its days and target, never offered to it, and
    with room in their batch of open offers. None while the patient already holds a visit for the
    target in those days (booked meanwhile by chat or at the desk).
    """
    with db.reading() as session:
        entry = session.get(WaitlistEntry, entry_id)
        if entry is None or not entry.active:
            return []
        specialty = session.get(Specialty, entry.specialty_id).key if entry.specialty_id else None
        offered = set(session.scalars(select(WaitlistOffer.slot_id).where(WaitlistOffer.entry_id == entry_id)))
        query = scheduling.SlotQuery(*scheduling.day_window(entry.wanted_from, entry.wanted_until),
                                     specialty=specialty, practitioner_id=entry.practitioner_id)
        held = select(Appointment.id).where(
            Appointment.patient_id == entry.patient_id, Appointment.status.in_(ACTIVE),
            Appointment.start_at >= max(query.start, now), Appointment.start_at < query.end)
        if entry.specialty_id is not None:
            held = held.where(Appointment.specialty_id == entry.specialty_id)
        if entry.practitioner_id is not None:
            held = held.where(Appointment.practitioner_id == entry.practitioner_id)
        if session.scalars(held.limit(1)).first() is not None:
            return []
    free = [s.id for s in scheduling.free_slots(db, query, now=now, limit=CANDIDATES) if s.id not in offered]
    if not free:
        return []
    with db.reading() as session:
        full = set(session.scalars(
            select(WaitlistOffer.slot_id).where(WaitlistOffer.slot_id.in_(free),
                                                WaitlistOffer.status == OfferStatus.offered)
            .group_by(WaitlistOffer.slot_id).having(func.count() >= rules.batch_size)))
    return [slot_id for slot_id in free if slot_id not in full]


def offer_next(db: Database, client: WhatsAppClient, entry_id: int, now: datetime, rules: Rules) -> bool | None:
    """Offer the entry its first candidate slot: True if offered, False if it could not be (no contact,
    no consent, taken meanwhile), None if there was nothing to offer.
    """
    slots = candidate_slots(db, entry_id, now, rules)
    if not slots:
        return None
    with db.reading() as session:
        patient_id = session.get(WaitlistEntry, entry_id).patient_id
        contact = recipient(session, patient_id)
        contact_id = contact.id if contact else None
    if contact_id is None or not consent.allows(db, contact_id, CONSENT_PURPOSE):
        return False
    try:
        with db.transaction() as session:
            # The slot first (no-key lock: bookings only share-lock it), then the contact, as reminders do.
            slot_query = select(Slot.id).where(Slot.id == slots[0])
            if session.get_bind().dialect.name == "postgresql":
                slot_query = slot_query.with_for_update(key_share=True)
            session.execute(slot_query)
            consent.lock_contact(session, contact_id)
            if not _still_offerable(session, entry_id, slots[0], now, rules) or not consent.allows_in(
                    session, contact_id, CONSENT_PURPOSE):
                return False
            slot = session.get(Slot, slots[0], options=[joinedload(Slot.practitioner), joinedload(Slot.location)])
            offer = WaitlistOffer(entry_id=entry_id, slot_id=slot.id, contact_id=contact_id,
                                  status=OfferStatus.offered, offered_at=now,
                                  expires_at=min(after_allowed(now, rules.offer_for, rules.quiet, rules.zone),
                                                 scheduling.latest_booking(slot.start_at)))
            with session.begin_nested():
                session.add(offer)
            body = offer_message(offer, slot, patient_id, session.get(Contact, contact_id), session)
            (offer.outbound_id,) = client.enqueue_in(session, contact_id, [body], source=SOURCE,
                                                     opaque=f"waitlist_offer:{offer.id}")
            _audit(session, offer, now)
    except IntegrityError:
        return False  # another worker offered it first
    logger.info("waitlist offer %s: slot %s to entry %s", offer.id, offer.slot_id, entry_id)
    return True


def _still_offerable(session: Session, entry_id: int, slot_id: int, now: datetime, rules: Rules) -> bool:
    entry = session.get(WaitlistEntry, entry_id, populate_existing=True)
    slot = session.get(Slot, slot_id)
    open_count = session.scalar(select(func.count()).select_from(WaitlistOffer).where(
        WaitlistOffer.slot_id == slot_id, WaitlistOffer.status == OfferStatus.offered))
    active = session.scalar(select(Practitioner.active).where(Practitioner.id == slot.practitioner_id))
    return (entry is not None and entry.active and slot.bookable and active and not _slot_taken(session, slot_id)
            and slot.start_at >= scheduling.earliest_bookable(now) and open_count < rules.batch_size)


def _when(slot: Slot, language: str) -> tuple[str, str]:
    local = slot.start_at.astimezone(settings().zone)
    return format_date(local.date(), "EEEE d MMMM", locale=language), format_time(local, "HH:mm", locale=language)


def _first_name_and_language(session: Session, patient_id: int, contact: Contact | None) -> tuple[str, str]:
    patient = session.get(Patient, patient_id)
    language = (contact.language if contact else None) or patient.language or settings().default_language
    return patient.first_name, language if language in consent.LANGUAGES else settings().default_language


def offer_payloads(offer_id: int) -> list[str]:
    """The offer template's quick replies, in button order: accept, decline."""
    entity = f'{{"offer_id": "{offer_id}"}}'
    return [f"/accept_waitlist_offer{entity}", f"/decline_waitlist_offer{entity}"]


def offer_message(offer: WaitlistOffer, slot: Slot, patient_id: int, contact: Contact | None,
                  session: Session) -> dict:
    """Template parameters: first name, date, time, practitioner, location, offer valid until (time)."""
    first_name, language = _first_name_and_language(session, patient_id, contact)
    day, at = _when(slot, language)
    until = format_time(offer.expires_at.astimezone(settings().zone), "HH:mm", locale=language)
    location = slot.location
    parameters = [first_name, day, at, slot.practitioner.display_name, f"{location.name}, {location.address}", until]
    return template_message(settings().waitlist_offer_template, language, [plain(p) for p in parameters],
                            quick_replies=offer_payloads(offer.id))


def gone_message(slot: Slot, patient_id: int, contact: Contact | None, session: Session) -> dict:
    """Template parameters: first name, date, time of the slot someone else took."""
    first_name, language = _first_name_and_language(session, patient_id, contact)
    day, at = _when(slot, language)
    return template_message(settings().waitlist_gone_template, language, [plain(first_name), day, at])


# --- answering ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What became of a patient's answer: `booked` (with the appointment), `declined`, `gone`,
    `expired`, or `unknown` (not this contact's offer).
    """

    outcome: str
    appointment: scheduling.AppointmentView | None = None


def _own_offer(session: Session, offer_id: int, contact_id: int) -> WaitlistOffer | None:
    query = select(WaitlistOffer.id).where(WaitlistOffer.id == offer_id, WaitlistOffer.contact_id == contact_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()  # a double tap waits for the first one's outcome
    if session.execute(query).scalar_one_or_none() is None:
        return None
    return session.get(WaitlistOffer, offer_id, populate_existing=True,
                       options=[joinedload(WaitlistOffer.entry)])


def _settled(session: Session, offer: WaitlistOffer) -> Answer:
    if offer.status is OfferStatus.accepted:
        return Answer("booked", scheduling.appointment_in(session, offer.appointment_id))
    return Answer(offer.status.value)


def accept(db: Database, *, offer_id: int, contact_id: int, actor: str, now: datetime | None = None) -> Answer:
    """Book the offered slot for the waitlisted patient, or say why not. Atomic: see the module docstring."""
    now = now or utcnow()
    with db.transaction() as session:
        offer = _own_offer(session, offer_id, contact_id)
        if offer is None:
            return Answer("unknown")
        if offer.status is not OfferStatus.offered:
            return _settled(session, offer)
        booked = None
        if offer.expires_at <= now:
            offer.status = OfferStatus.expired
        else:
            specialty = session.get(Specialty, offer.entry.specialty_id) if offer.entry.specialty_id else None
            try:
                with session.begin_nested():
                    booked = scheduling.book_in(session, patient_id=offer.entry.patient_id, slot_id=offer.slot_id,
                                                actor=actor, specialty=specialty.key if specialty else None,
                                                reason="waitlist", now=now, offer_id=offer.id)
            except (IntegrityError, scheduling.SlotTaken, scheduling.SlotNotBookable):
                offer.status = OfferStatus.gone
            else:
                offer.status, offer.appointment_id = OfferStatus.accepted, booked.id
                offer.entry.active = False  # served: no more offers
        offer.closed_at = now
        _audit(session, offer, now, actor=actor)
        return Answer("booked" if booked else offer.status.value, booked)


def decline(db: Database, *, offer_id: int, contact_id: int, actor: str, now: datetime | None = None) -> Answer:
    """Not this slot: the offer closes (its place in the batch goes to the next in line); the patient
    stays on the waitlist for other slots.
    """
    now = now or utcnow()
    with db.transaction() as session:
        offer = _own_offer(session, offer_id, contact_id)
        if offer is None:
            return Answer("unknown")
        if offer.status is not OfferStatus.offered:
            return _settled(session, offer)
        offer.status, offer.closed_at = OfferStatus.declined, now
        _audit(session, offer, now, actor=actor)
        return Answer("declined")


def offered_slot(db: Database, offer_id: int) -> scheduling.FreeSlot | None:
    """The slot an offer is about (for the bot's answer)."""
    with db.reading() as session:
        offer = session.get(WaitlistOffer, offer_id)
        slot_id = offer.slot_id if offer else None
    return scheduling.slot(db, slot_id) if slot_id else None



def latest_open_offer(db: Database, contact_id: int) -> int | None:
    """The offer a typed answer ("lo prendo") is about: the contact's newest open one."""
    with db.reading() as session:
        return session.scalars(select(WaitlistOffer.id).where(
            WaitlistOffer.contact_id == contact_id, WaitlistOffer.status == OfferStatus.offered)
            .order_by(WaitlistOffer.id.desc()).limit(1)).first()
