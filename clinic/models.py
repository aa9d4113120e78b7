"""The clinic's data model. Times are stored as UTC; the clinic's zone applies only at the edges."""

from __future__ import annotations

import enum
import json
from datetime import datetime, timezone

from sqlalchemy import (
    DDL,
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Time,
    TypeDecorator,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import declarative_base, relationship

from clinic import crypto

# Stable constraint names, so Alembic migrations name the same things on SQLite and PostgreSQL.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
Base = declarative_base(metadata=metadata)


class UTCDateTime(TypeDecorator):
    """A point in time: stored as naive UTC on every database, returned timezone-aware.

    Naive input is refused, so local clinic time can never be stored by mistake.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (UTC or the clinic's zone)")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class EncryptedText(TypeDecorator):
    """Patient text (message bodies, notes) encrypted at rest with `clinic.crypto`; plain text in Python.

    The newest key of ENCRYPTION_KEYS encrypts, every listed key decrypts (`clinic crypto rotate`).
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        return None if value is None else crypto.encrypt_text(value)

    def process_result_value(self, value: str | None, dialect) -> str | None:
        return None if value is None else crypto.decrypt_text(value)


class EncryptedJSON(TypeDecorator):
    """A JSON document holding patient data (a webhook's message, an outbox body), stored as one
    encrypted JSON string: the column stays JSON, so no schema change and no query on its inside.
    """

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else crypto.encrypt_text(json.dumps(value))

    def process_result_value(self, value, dialect):
        return None if value is None else json.loads(crypto.decrypt_text(value))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class AppointmentStatus(str, enum.Enum):
    """booked → confirmed → completed | no_show; cancelled from booked or confirmed."""

    booked = "booked"
    confirmed = "confirmed"
    completed = "completed"
    no_show = "no_show"
    cancelled = "cancelled"


# Every status but `cancelled` holds its slot: the partial unique index below relies on this.
_HOLDS_SLOT_SQL = "status <> 'cancelled'"


class Location(Base):
    __tablename__ = "locations"

    id = Column(Integer, primary_key=True)
    key = Column(String(50), nullable=False, unique=True)
    name = Column(String(200), nullable=False)
    address = Column(String(300), nullable=False)
    phone = Column(String(30))
    # {"mon": [["08:00", "19:00"]], ..., "sun": []}: what patients are told, not what is bookable.
    opening_hours = Column(JSON, nullable=False, default=dict)


class Specialty(Base):
    __tablename__ = "specialties"

    id = Column(Integer, primary_key=True)
    key = Column(String(50), nullable=False, unique=True)  # stable: `cardiology`
    name_it = Column(String(100), nullable=False)
    name_en = Column(String(100), nullable=False)
    synonyms_it = Column(JSON, nullable=False, default=list)
    synonyms_en = Column(JSON, nullable=False, default=list)
    preparation_it = Column(Text)  # e.g. fasting before blood tests; used in reminders
    preparation_en = Column(Text)
    # After a completed visit (clinic.outreach.followups): prescription_pickup, followup_test,
    # next_checkup, or None; `followup_book` is the specialty key the patient is offered to book.
    followup = Column(String(30))
    followup_book = Column(String(50))

    def name(self, language: str) -> str:
        return self.name_it if language == "it" else self.name_en


practitioner_specialties = Table(
    "practitioner_specialties",
    metadata,
    Column("practitioner_id", ForeignKey("practitioners.id", ondelete="CASCADE"), primary_key=True),
    Column("specialty_id", ForeignKey("specialties.id", ondelete="CASCADE"), primary_key=True),
)


class Practitioner(Base):
    __tablename__ = "practitioners"

    id = Column(Integer, primary_key=True)
    key = Column(String(50), nullable=False, unique=True)
    title = Column(String(30), nullable=False, default="")  # "Dott.ssa", "Dr"
    first_name = Column(String(100), nullable=False)
    last_name = Column(String(100), nullable=False)
    location_id = Column(ForeignKey("locations.id"), nullable=False)
    languages = Column(JSON, nullable=False, default=list)  # ["it", "en"]
    active = Column(Boolean, nullable=False, default=True)

    location = relationship(Location)
    specialties = relationship(Specialty, secondary=practitioner_specialties, order_by=Specialty.key)

    @property
    def display_name(self) -> str:
        return " ".join(part for part in (self.title, self.first_name, self.last_name) if part)


class WorkingHours(Base):
    """One weekly working block of a practitioner at a location, cut into slots of equal length."""

    __tablename__ = "working_hours"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        CheckConstraint("start_time < end_time", name="order"),
        CheckConstraint("slot_minutes > 0", name="slot_minutes"),
    )

    id = Column(Integer, primary_key=True)
    practitioner_id = Column(ForeignKey("practitioners.id", ondelete="CASCADE"), nullable=False, index=True)
    location_id = Column(ForeignKey("locations.id"), nullable=False)
    weekday = Column(Integer, nullable=False)  # Monday = 0, as datetime.weekday()
    start_time = Column(Time, nullable=False)  # local wall-clock time
    end_time = Column(Time, nullable=False)
    slot_minutes = Column(Integer, nullable=False)
    valid_from = Column(Date)  # None: since ever
    valid_until = Column(Date)  # None: until further notice (inclusive otherwise)

    practitioner = relationship(Practitioner, backref="working_hours")
    breaks = relationship("WorkingBreak", cascade="all, delete-orphan", order_by="WorkingBreak.start_time")


class WorkingBreak(Base):
    """A pause inside a working block (lunch, a meeting): no slot overlaps it."""

    __tablename__ = "working_breaks"
    __table_args__ = (CheckConstraint("start_time < end_time", name="order"),)

    id = Column(Integer, primary_key=True)
    working_hours_id = Column(ForeignKey("working_hours.id", ondelete="CASCADE"), nullable=False, index=True)
    start_time = Column(Time, nullable=False)
    end_time = Column(Time, nullable=False)


class Closure(Base):
    """Days without slots: a holiday for the clinic (no location, no practitioner), a location closed,
    or a practitioner away. Dates are local and inclusive.
    """

    __tablename__ = "closures"
    __table_args__ = (CheckConstraint("first_day <= last_day", name="order"),)

    id = Column(Integer, primary_key=True)
    location_id = Column(ForeignKey("locations.id", ondelete="CASCADE"))
    practitioner_id = Column(ForeignKey("practitioners.id", ondelete="CASCADE"))
    first_day = Column(Date, nullable=False)
    last_day = Column(Date, nullable=False)
    reason = Column(String(200), nullable=False, default="")


class Slot(Base):
    """A bookable interval, generated from working hours minus breaks and closures."""

    __tablename__ = "slots"
    __table_args__ = (
        UniqueConstraint("practitioner_id", "start_at"),
        CheckConstraint("start_at < end_at", name="order"),
        Index("ix_slots_start_at", "start_at"),
    )

    id = Column(Integer, primary_key=True)
    practitioner_id = Column(ForeignKey("practitioners.id", ondelete="CASCADE"), nullable=False)
    location_id = Column(ForeignKey("locations.id"), nullable=False)
    start_at = Column(UTCDateTime, nullable=False)
    end_at = Column(UTCDateTime, nullable=False)
    # False when the working hours no longer give this slot but an appointment still refers to it.
    bookable = Column(Boolean, nullable=False, default=True)

    practitioner = relationship(Practitioner)
    location = relationship(Location)


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (CheckConstraint("language IN ('it', 'en')", name="language"),)

    id = Column(Integer, primary_key=True)
    first_name = Column(String(100), nullable=False)
    last_name = Column(String(100), nullable=False)
    date_of_birth = Column(Date, nullable=False)
    language = Column(String(2), nullable=False, default="it")
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Contact(Base):
    """A WhatsApp user. `wa_id` is the phone number in E.164 digits as WhatsApp sends it
    (no `+`); `user_id` is Meta's business-scoped user id, for users who hide their number.
    """

    __tablename__ = "contacts"
    __table_args__ = (CheckConstraint("wa_id IS NOT NULL OR user_id IS NOT NULL", name="reachable"),)

    id = Column(Integer, primary_key=True)
    wa_id = Column(String(20), unique=True)
    user_id = Column(String(100), unique=True)
    profile_name = Column(String(200))
    language = Column(String(2))
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    # When the contact last wrote: WhatsApp accepts free-form messages only within 24 h of it.
    last_inbound_at = Column(UTCDateTime)
    history_cleared_before = Column(UTCDateTime)  # Rasa history older than this was cleared (retention)

    links = relationship("ContactPatient", back_populates="contact", cascade="all, delete-orphan")


class Relationship(str, enum.Enum):
    """What the contact is to the patient it acts for."""

    self = "self"
    parent = "parent"
    guardian = "guardian"
    carer = "carer"
    child = "child"
    spouse = "spouse"
    other = "other"


class ContactPatient(Base):
    """A contact acting for a patient (many-to-many: a parent for two children, two parents for one)."""

    __tablename__ = "contact_patients"

    contact_id = Column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    patient_id = Column(ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True)
    relation = Column(
        "relationship",
        Enum(Relationship, native_enum=False, length=20, create_constraint=True, name="relationship"),
        nullable=False,
    )
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    contact = relationship(Contact, back_populates="links")
    patient = relationship(Patient)


class PrivacyNotice(Base):
    """A published version of the clinic's privacy notice, one row per language: the text each
    consent was given to, kept for as long as the consents are.
    """

    __tablename__ = "privacy_notices"
    __table_args__ = (
        UniqueConstraint("version", "language"),
        CheckConstraint("language IN ('it', 'en')", name="language"),
    )

    id = Column(Integer, primary_key=True)
    version = Column(String(40), nullable=False)
    language = Column(String(2), nullable=False)
    text = Column(Text, nullable=False)
    published_at = Column(UTCDateTime, nullable=False, default=utcnow)


class ConsentRecord(Base):
    """The consent ledger: one row per decision, never updated (the latest row per purpose counts)."""

    __tablename__ = "consent_records"
    __table_args__ = (
        CheckConstraint("purpose IN ('appointments', 'results', 'followups')", name="purpose"),
        Index("ix_consent_records_contact_purpose", "contact_id", "purpose", "id"),
    )

    id = Column(Integer, primary_key=True)
    contact_id = Column(ForeignKey("contacts.id"), nullable=False)
    purpose = Column(String(20), nullable=False)
    granted = Column(Boolean, nullable=False)
    notice_version = Column(String(40), nullable=False)
    at = Column(UTCDateTime, nullable=False, default=utcnow)
    how = Column(String(60), nullable=False)  # whatsapp:button, whatsapp:text, keyword:stop, staff:3, ...


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        # The rule that makes a double booking impossible rather than unlikely: at most one
        # slot-holding appointment per slot, enforced by the database itself.
        Index(
            "uq_appointments_active_slot",
            "slot_id",
            unique=True,
            sqlite_where=text(_HOLDS_SLOT_SQL),
            postgresql_where=text(_HOLDS_SLOT_SQL),
        ),
        Index("ix_appointments_patient_start", "patient_id", "start_at"),
        Index("ix_appointments_practitioner_start", "practitioner_id", "start_at"),
    )

    id = Column(Integer, primary_key=True)
    patient_id = Column(ForeignKey("patients.id"), nullable=False)
    practitioner_id = Column(ForeignKey("practitioners.id"), nullable=False)
    specialty_id = Column(ForeignKey("specialties.id"))
    location_id = Column(ForeignKey("locations.id"), nullable=False)
    slot_id = Column(ForeignKey("slots.id"), nullable=False)
    start_at = Column(UTCDateTime, nullable=False)
    end_at = Column(UTCDateTime, nullable=False)
    reason = Column(Text, nullable=False, default="")
    status = Column(
        Enum(AppointmentStatus, native_enum=False, length=20, create_constraint=True, name="status"),
        nullable=False,
        default=AppointmentStatus.booked,
    )
    cancellation_reason = Column(Text)
    rescheduled_from_id = Column(ForeignKey("appointments.id"), unique=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    created_by = Column(String(100), nullable=False)  # "contact:12", "staff:rossi", "system:outreach"
    changed_at = Column(UTCDateTime, nullable=False, default=utcnow)
    changed_by = Column(String(100), nullable=False)

    patient = relationship(Patient)
    practitioner = relationship(Practitioner)
    specialty = relationship(Specialty)
    location = relationship(Location)
    slot = relationship(Slot)
    rescheduled_from = relationship("Appointment", remote_side=[id])


class ReminderStatus(str, enum.Enum):
    sent = "sent"  # its template is in the outbox (`outbound_id`)
    skipped = "skipped"  # `reason`: no_consent, no_contact, late, superseded


class AppointmentReminder(Base):
    """What became of one reminder of one appointment (`offset_hours` before it): sent or skipped.

    The schedule itself is computed from the appointments (see `clinic.outreach.reminders`); a row is
    written in the same transaction as the outbox row and the audit entry, and the unique key is
    what makes each (appointment, offset) reminder go out at most once, whichever worker gets there.
    """

    __tablename__ = "appointment_reminders"
    __table_args__ = (UniqueConstraint("appointment_id", "offset_hours"),)

    id = Column(Integer, primary_key=True)
    appointment_id = Column(ForeignKey("appointments.id", ondelete="CASCADE"), nullable=False)
    offset_hours = Column(Integer, nullable=False)
    start_at = Column(UTCDateTime, nullable=False)  # the appointment's start it was about
    due_at = Column(UTCDateTime, nullable=False)  # start - offset (before quiet hours moved it)
    status = Column(
        Enum(ReminderStatus, name="reminder_status", native_enum=False, length=20, create_constraint=True),
        nullable=False,
    )
    reason = Column(String(30))
    contact_id = Column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    outbound_id = Column(ForeignKey("outbound_messages.id", ondelete="SET NULL"))
    decided_at = Column(UTCDateTime, nullable=False, default=utcnow)


class WaitlistEntry(Base):
    __tablename__ = "waitlist_entries"
    __table_args__ = (
        CheckConstraint("specialty_id IS NOT NULL OR practitioner_id IS NOT NULL", name="target"),
        CheckConstraint("wanted_from <= wanted_until", name="order"),
    )

    id = Column(Integer, primary_key=True)
    patient_id = Column(ForeignKey("patients.id", ondelete="CASCADE"), nullable=False)
    specialty_id = Column(ForeignKey("specialties.id"))
    practitioner_id = Column(ForeignKey("practitioners.id"))
    wanted_from = Column(Date, nullable=False)  # local dates, inclusive
    wanted_until = Column(Date, nullable=False)
    active = Column(Boolean, nullable=False, default=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)


class OfferStatus(str, enum.Enum):
    """offered → accepted | declined | expired | gone (someone else took the slot first)."""

    offered = "offered"
    accepted = "accepted"
    declined = "declined"
    expired = "expired"
    gone = "gone"


_OPEN_OFFER_SQL = "status = 'offered'"


class WaitlistOffer(Base):
    """A freed slot offered to one waitlist entry (see `clinic.outreach.backfill`).

    Written with its outbox row and audit entry in one transaction; the unique (entry, slot) key
    makes each offer go out at most once, and the partial unique index keeps one open offer per
    entry. The booking itself is arbitrated by the appointments' own unique slot index.
    """

    __tablename__ = "waitlist_offers"
    __table_args__ = (
        UniqueConstraint("entry_id", "slot_id"),
        Index("uq_waitlist_offers_open_entry", "entry_id", unique=True, sqlite_where=text(_OPEN_OFFER_SQL),
              postgresql_where=text(_OPEN_OFFER_SQL)),
        Index("ix_waitlist_offers_slot_status", "slot_id", "status"),
    )

    id = Column(Integer, primary_key=True)
    entry_id = Column(ForeignKey("waitlist_entries.id", ondelete="CASCADE"), nullable=False)
    slot_id = Column(ForeignKey("slots.id", ondelete="CASCADE"), nullable=False)
    contact_id = Column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    status = Column(
        Enum(OfferStatus, name="offer_status", native_enum=False, length=20, create_constraint=True),
        nullable=False,
        default=OfferStatus.offered,
    )
    outbound_id = Column(ForeignKey("outbound_messages.id", ondelete="SET NULL"))
    gone_outbound_id = Column(ForeignKey("outbound_messages.id", ondelete="SET NULL"))  # "it has gone"
    appointment_id = Column(ForeignKey("appointments.id", ondelete="SET NULL"))  # when accepted
    offered_at = Column(UTCDateTime, nullable=False)
    expires_at = Column(UTCDateTime, nullable=False)
    closed_at = Column(UTCDateTime)

    entry = relationship(WaitlistEntry)
    slot = relationship(Slot)


class AfterVisitKind(str, enum.Enum):
    followup = "followup"  # the specialty's follow-up (prescription pickup, follow-up test, next check-up)
    survey = "survey"  # the satisfaction question
    rebook = "rebook"  # after a no-show: an offer to book again


class AfterVisitMessage(Base):
    """What became of one after-visit message of one appointment: sent (with its outbox row) or
    skipped and why. The unique (appointment, kind) key makes each go out at most once.
    """

    __tablename__ = "after_visit_messages"
    __table_args__ = (UniqueConstraint("appointment_id", "kind"),)

    id = Column(Integer, primary_key=True)
    appointment_id = Column(ForeignKey("appointments.id", ondelete="CASCADE"), nullable=False)
    kind = Column(
        Enum(AfterVisitKind, name="after_visit_kind", native_enum=False, length=20, create_constraint=True),
        nullable=False,
    )
    status = Column(
        Enum(ReminderStatus, name="after_visit_status", native_enum=False, length=20, create_constraint=True),
        nullable=False,
    )
    reason = Column(String(30))  # no_consent, no_contact, late, not_configured
    contact_id = Column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    outbound_id = Column(ForeignKey("outbound_messages.id", ondelete="SET NULL"))
    decided_at = Column(UTCDateTime, nullable=False, default=utcnow)


class SatisfactionResponse(Base):
    """A patient's answer to the satisfaction question about one visit: the KPI's raw data.

    One row per appointment (a second tap changes the rating); `comment` is the patient's optional
    free text, encrypted at rest (`clinic.crypto`).
    """

    __tablename__ = "satisfaction_responses"
    __table_args__ = (CheckConstraint("rating BETWEEN 1 AND 5", name="rating"),)

    id = Column(Integer, primary_key=True)
    appointment_id = Column(ForeignKey("appointments.id", ondelete="CASCADE"), nullable=False, unique=True)
    contact_id = Column(ForeignKey("contacts.id", ondelete="SET NULL"))
    rating = Column(Integer, nullable=False)
    comment = Column(EncryptedText)  # encrypted at rest like message bodies, or None
    answered_at = Column(UTCDateTime, nullable=False)
    commented_at = Column(UTCDateTime)


class InboundStatus(str, enum.Enum):
    """pending (stored, acknowledged to Meta) → handled | failed (gave up after retries); limited:
    over the contact's flood limit, kept for staff but never given to the bot.
    """

    pending = "pending"
    handled = "handled"
    failed = "failed"
    limited = "limited"


class InboundMessage(Base):
    """A message a contact sent, stored (once per `wamid`) before the webhook answers 200.

    `payload` is Meta's message object as received; `rasa_text` is what the bot is given.
    Pending rows are handled in `id` order per contact, also after a restart.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (Index("ix_inbound_messages_pending", "status", "contact_id", "id"),)

    id = Column(Integer, primary_key=True)
    wamid = Column(String(200), nullable=False, unique=True)
    contact_id = Column(ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, index=True)
    phone_number_id = Column(String(50), nullable=False)  # the business number it was sent to
    type = Column(String(30), nullable=False)  # Meta's type: text, interactive, button, image, ...
    payload = Column(EncryptedJSON, nullable=False)
    rasa_text = Column(EncryptedText)  # None: nothing for the bot (reactions)
    context_wamid = Column(String(200))  # the message this one replies to
    media_id = Column(String(100))
    media_path = Column(String(500))  # downloaded file, relative to the media directory
    media_mime = Column(String(100))
    sent_at = Column(UTCDateTime, nullable=False)  # Meta's timestamp
    received_at = Column(UTCDateTime, nullable=False, default=utcnow)
    status = Column(
        Enum(InboundStatus, name="inbound_status", native_enum=False, length=20),
        nullable=False,
        default=InboundStatus.pending,
    )
    attempts = Column(Integer, nullable=False, default=0)
    handled_at = Column(UTCDateTime)
    erased_at = Column(UTCDateTime)  # content removed (erasure or retention): payload and text are gone
    # What the bot made of it (the channel reads Rasa's tracker once the turn is done; no text): the
    # intent it acted on and whether the turn ended in a fallback. None: not handled by the bot (a
    # nurse holds the conversation, a reaction) or handled before this was recorded.
    nlu_intent = Column(String(100))
    nlu_fallback = Column(Boolean)


class OutboundStatus(str, enum.Enum):
    """queued → sending → sent → delivered → read; failed at any point; held while the 24-hour
    window is closed (released when the contact writes again).
    """

    held = "held"
    queued = "queued"
    sending = "sending"
    sent = "sent"
    delivered = "delivered"
    read = "read"
    failed = "failed"


class OutboundMessage(Base):
    """The durable outbox: one row for every message the clinic sends, whoever sends it.

    `body` is the Graph API request body without the recipient; status callbacks find the row by
    `wamid` and only ever move it forward.
    """

    __tablename__ = "outbound_messages"
    __table_args__ = (Index("ix_outbound_messages_due", "status", "next_attempt_at"),)

    id = Column(Integer, primary_key=True)
    contact_id = Column(ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, index=True)
    kind = Column(String(30), nullable=False)  # text, interactive, document, image, template
    body = Column(EncryptedJSON, nullable=False)
    source = Column(String(50), nullable=False)  # "bot", "outreach:reminder", "inbox:rossi"
    biz_opaque_callback_data = Column(String(512))
    status = Column(
        Enum(OutboundStatus, name="outbound_status", native_enum=False, length=20),
        nullable=False,
        default=OutboundStatus.queued,
    )
    wamid = Column(String(200), unique=True)
    error_code = Column(Integer)
    error_title = Column(String(300))
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(UTCDateTime, nullable=False, default=utcnow)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    sent_at = Column(UTCDateTime)
    delivered_at = Column(UTCDateTime)
    read_at = Column(UTCDateTime)
    failed_at = Column(UTCDateTime)
    erased_at = Column(UTCDateTime)  # content removed (erasure or retention): the body is gone


class SendTurns(Base):
    """The phone number's throughput schedule, shared by every process that sends (the Rasa channel,
    the outreach worker, the inbox): its next free send turn, in seconds since the epoch (GCRA).
    """

    __tablename__ = "send_turns"

    phone_number_id = Column(String(64), primary_key=True)
    next_turn = Column(Float, nullable=False)


# --- nurse handoff and staff (issue 5) ----------------------------------------------------------


class StaffRole(str, enum.Enum):
    nurse = "nurse"
    admin = "admin"


class StaffUser(Base):
    """A clinic staff member who signs in to the nurse inbox. Passwords are stored as scrypt hashes only."""

    __tablename__ = "staff_users"

    id = Column(Integer, primary_key=True)
    username = Column(String(100), nullable=False, unique=True)
    password_hash = Column(String(300), nullable=False)
    role = Column(
        Enum(StaffRole, name="staff_role", native_enum=False, length=20, create_constraint=True),
        nullable=False,
        default=StaffRole.nurse,
    )
    active = Column(Boolean, nullable=False, default=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    # Lockout: failures counted since `first_failed_at`; sign-in refused until `locked_until`.
    failed_logins = Column(Integer, nullable=False, default=0)
    first_failed_at = Column(UTCDateTime)
    locked_until = Column(UTCDateTime)
    last_login_at = Column(UTCDateTime)


class StaffSession(Base):
    """A signed-in browser. Only the SHA-256 of the cookie token is stored: a leaked table signs no one in."""

    __tablename__ = "staff_sessions"

    token_hash = Column(String(64), primary_key=True)
    staff_id = Column(ForeignKey("staff_users.id", ondelete="CASCADE"), nullable=False, index=True)
    csrf_token = Column(String(64), nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    expires_at = Column(UTCDateTime, nullable=False)


class TicketStatus(str, enum.Enum):
    """waiting → claimed → resolved; a release puts a claimed ticket back to waiting."""

    waiting = "waiting"
    claimed = "claimed"
    resolved = "resolved"


_OPEN_TICKET_SQL = "status <> 'resolved'"


class HandoffTicket(Base):
    """A conversation handed from the bot to a nurse. At most one open ticket per contact (partial unique index)."""

    __tablename__ = "handoff_tickets"
    __table_args__ = (
        Index(
            "uq_handoff_tickets_open_contact",
            "contact_id",
            unique=True,
            sqlite_where=text(_OPEN_TICKET_SQL),
            postgresql_where=text(_OPEN_TICKET_SQL),
        ),
        Index("ix_handoff_tickets_status", "status", "created_at"),
        CheckConstraint("priority IN ('normal', 'urgent')", name="priority"),
    )

    id = Column(Integer, primary_key=True)
    contact_id = Column(ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False)
    reason = Column(String(30), nullable=False)  # request_human, medical_question, fallback, ...
    priority = Column(String(10), nullable=False, default="normal")
    language = Column(String(2))
    summary = Column(EncryptedJSON, nullable=False, default=dict)  # what the bot understood: intent, slots
    status = Column(
        Enum(TicketStatus, name="ticket_status", native_enum=False, length=20, create_constraint=True),
        nullable=False,
        default=TicketStatus.waiting,
    )
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow)
    claimed_by_id = Column(ForeignKey("staff_users.id"))
    claimed_at = Column(UTCDateTime)
    first_reply_at = Column(UTCDateTime)
    resolved_by_id = Column(ForeignKey("staff_users.id"))
    resolved_at = Column(UTCDateTime)

    contact = relationship(Contact)
    claimed_by = relationship(StaffUser, foreign_keys=[claimed_by_id])


class TicketNote(Base):
    """A private note on a ticket, for staff only: never sent to the patient."""

    __tablename__ = "ticket_notes"

    id = Column(Integer, primary_key=True)
    ticket_id = Column(ForeignKey("handoff_tickets.id", ondelete="CASCADE"), nullable=False, index=True)
    staff_id = Column(ForeignKey("staff_users.id"), nullable=False)
    text = Column(EncryptedText, nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    staff = relationship(StaffUser)


class CannedResponse(Base):
    """A ready answer a nurse can insert into a reply, per language; admins edit the list."""

    __tablename__ = "canned_responses"
    __table_args__ = (CheckConstraint("language IN ('it', 'en')", name="language"),)

    id = Column(Integer, primary_key=True)
    language = Column(String(2), nullable=False)
    title = Column(String(100), nullable=False)
    body = Column(Text, nullable=False)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow)


class StaffEvent(Base):
    """Who did what to which ticket (view, claim, reply, note, release, resolve): ids only, no message text."""

    __tablename__ = "staff_events"

    id = Column(Integer, primary_key=True)
    staff_id = Column(ForeignKey("staff_users.id"), nullable=False, index=True)
    action = Column(String(30), nullable=False)
    ticket_id = Column(ForeignKey("handoff_tickets.id", ondelete="SET NULL"), index=True)
    at = Column(UTCDateTime, nullable=False, default=utcnow)


# --- lab results and identity checks (issues 6.5 and 7.3) --------------------------------------


class ResultDelivery(str, enum.Enum):
    """How a released report reaches the patient: a WhatsApp document, or a single-use link."""

    document = "document"
    link = "link"


class ResultStatus(str, enum.Enum):
    """ready (registered, not yet released) → delivered (document handed over, or link redeemed)."""

    ready = "ready"
    delivered = "delivered"


class LabResult(Base):
    """A report registered by staff (CLI) or a lab system (HTTP): its PDF is a Fernet-encrypted file
    under RESULTS_DIR (`file_name`), never a database column, never plain on disk.

    `(source, external_id)` is unique, so a lab system that posts the same report twice gets the
    first row back. `notified_*` is the outreach job's decision about the results-ready template.
    """

    __tablename__ = "lab_results"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_lab_results_patient_status", "patient_id", "status"),
        Index("ix_lab_results_unnotified", "notified_at"),
    )

    id = Column(Integer, primary_key=True)
    patient_id = Column(ForeignKey("patients.id", ondelete="CASCADE"), nullable=False)
    title = Column(String(200), nullable=False)
    kind = Column(String(50), nullable=False, default="")  # e.g. blood_tests
    file_name = Column(String(100), nullable=False)  # relative to RESULTS_DIR
    size = Column(Integer, nullable=False)  # plaintext bytes
    sha256 = Column(String(64), nullable=False)  # of the plaintext PDF
    delivery = Column(
        Enum(ResultDelivery, name="result_delivery", native_enum=False, length=10, create_constraint=True),
        nullable=False,
    )
    status = Column(
        Enum(ResultStatus, name="result_status", native_enum=False, length=20, create_constraint=True),
        nullable=False,
        default=ResultStatus.ready,
    )
    source = Column(String(50), nullable=False)  # "cli", "lab:api"
    external_id = Column(String(100))  # the lab system's own id
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    notified_at = Column(UTCDateTime)  # the outreach job decided (sent or skipped)
    notify_reason = Column(String(30))  # None: sent; no_consent, no_contact
    notify_outbound_id = Column(ForeignKey("outbound_messages.id", ondelete="SET NULL"))
    delivered_at = Column(UTCDateTime)
    delivered_contact_id = Column(ForeignKey("contacts.id", ondelete="SET NULL"))

    patient = relationship(Patient)


class ResultLink(Base):
    """A single-use, expiring download link for one result, issued to one contact. Only the SHA-256
    of the token is stored: the database alone opens no report.
    """

    __tablename__ = "result_links"

    token_hash = Column(String(64), primary_key=True)
    result_id = Column(ForeignKey("lab_results.id", ondelete="CASCADE"), nullable=False, index=True)
    contact_id = Column(ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    expires_at = Column(UTCDateTime, nullable=False)
    used_at = Column(UTCDateTime)  # redeemed: the file was served
    revoked_at = Column(UTCDateTime)  # a newer link, or the identity check locked


class IdentityCheck(Base):
    """Date-of-birth checks of one contact (one conversation): failures counted since
    `first_failed_at`, refused until `locked_until`; a pass holds for one patient until `verified_until`.
    """

    __tablename__ = "identity_checks"

    contact_id = Column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    failures = Column(Integer, nullable=False, default=0)
    first_failed_at = Column(UTCDateTime)
    locked_until = Column(UTCDateTime)
    verified_patient_id = Column(ForeignKey("patients.id", ondelete="CASCADE"))
    verified_until = Column(UTCDateTime)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow)


# --- audit trail (issue 7) ------------------------------------------------------------------------


class AuditEntry(Base):
    """One link of the hash-chained audit trail (see `clinic.audit`): ids and metadata, never text.

    Append-only: triggers refuse UPDATE and DELETE (and, on PostgreSQL, TRUNCATE); `clinic audit
    verify` still finds tampering by someone who drops them.
    """

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_at", "at"), Index("ix_audit_entries_hash", "hash"))

    seq = Column(Integer, primary_key=True, autoincrement=False)
    at = Column(UTCDateTime, nullable=False)
    kind = Column(String(40), nullable=False)  # appointment.booked, staff.login, message.inbound, ...
    actor = Column(String(100), nullable=False)  # staff:3, contact:12, bot, system, cli
    subject = Column(String(100))  # appointment:12, ticket:3, outbound:55
    data = Column(JSON, nullable=False)
    prev_hash = Column(String(64), nullable=False)
    hash = Column(String(64), nullable=False)


class AuditHead(Base):
    """The chain's last seq and hash (one row): deleting the last entries cannot go unnoticed."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single"),)

    id = Column(Integer, primary_key=True, autoincrement=False)
    seq = Column(Integer, nullable=False)
    hash = Column(String(64), nullable=False)


# The same statements as migration 0004, so test databases made by `create_all` refuse edits too.
AUDIT_APPEND_ONLY_POSTGRESQL = (
    """CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_entries is append-only: % refused', TG_OP;
END $$""",
    """CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_entries
FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()""",
)
AUDIT_APPEND_ONLY_SQLITE = tuple(
    f"""CREATE TRIGGER audit_entries_no_{op.lower()} BEFORE {op} ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only: {op} refused'); END"""
    for op in ("UPDATE", "DELETE")
)
for _statement in AUDIT_APPEND_ONLY_POSTGRESQL:
    event.listen(AuditEntry.__table__, "after_create", DDL(_statement.replace("%", "%%")).execute_if(
        dialect="postgresql"))
for _statement in AUDIT_APPEND_ONLY_SQLITE:
    event.listen(AuditEntry.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))


# --- integration: FHIR API clients, outgoing webhooks, calendar feeds (issue 9) -------------------


class ApiClient(Base):
    """Another system of the clinic (an EHR, a lab) allowed on the FHIR API. Only the key's SHA-256 is
    kept: a leaked database gives no working key. Its `name` is the actor of what it changes (`fhir:NAME`).
    """

    __tablename__ = "api_clients"

    id = Column(Integer, primary_key=True)
    name = Column(String(60), nullable=False, unique=True)
    key_hash = Column(String(64), nullable=False, unique=True)
    active = Column(Boolean, nullable=False, default=True)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    last_used_at = Column(UTCDateTime)


class HookStatus(str, enum.Enum):
    """pending (due at `next_attempt_at`, also while an attempt is under way) → delivered | failed."""

    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class HookDelivery(Base):
    """One booking event for one receiver: the webhook outbox, written in the booking's transaction.

    `event_id` is the idempotency key the receiver sees (the same for every receiver and every retry).
    `payload` holds ids, statuses and times only.
    """

    __tablename__ = "hook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "url"),
        Index("ix_hook_deliveries_due", "status", "next_attempt_at"),
    )

    id = Column(Integer, primary_key=True)
    event_id = Column(String(36), nullable=False)
    event = Column(String(40), nullable=False)  # appointment.created, .rescheduled, ...
    url = Column(String(500), nullable=False)
    payload = Column(JSON, nullable=False)
    status = Column(
        Enum(HookStatus, name="hook_status", native_enum=False, length=20, create_constraint=True),
        nullable=False,
        default=HookStatus.pending,
    )
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(UTCDateTime, nullable=False, default=utcnow)
    last_attempt_at = Column(UTCDateTime)
    last_http_status = Column(Integer)
    last_error = Column(String(200))  # an error type or "HTTP 503", never the receiver's answer
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    delivered_at = Column(UTCDateTime)


class CalendarFeed(Base):
    """A private iCalendar feed of one practitioner's or one location's appointments. The URL carries a
    random token; only its SHA-256 is kept, and revoking sets `revoked_at` (the URL stops working).
    """

    __tablename__ = "calendar_feeds"
    __table_args__ = (
        CheckConstraint("(practitioner_id IS NULL) <> (location_id IS NULL)", name="one_owner"),
    )

    id = Column(Integer, primary_key=True)
    token_hash = Column(String(64), nullable=False, unique=True)
    practitioner_id = Column(ForeignKey("practitioners.id", ondelete="CASCADE"))
    location_id = Column(ForeignKey("locations.id", ondelete="CASCADE"))
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    revoked_at = Column(UTCDateTime)


class VisitCalendarLink(Base):
    """A patient's link to one visit's `.ics`, sent with the booking (or reschedule) confirmation. Only
    the token's SHA-256 is kept. The event follows the appointment through its reschedules and ends
    as cancelled with it; the link stops working some days after the visit (`clinic.ical`).
    """

    __tablename__ = "visit_calendar_links"

    token_hash = Column(String(64), primary_key=True)
    appointment_id = Column(ForeignKey("appointments.id", ondelete="CASCADE"), nullable=False, index=True)
    language = Column(String(2), nullable=False, default="it")  # of the confirmation, for the event's words
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)


class DataRequestKind(str, enum.Enum):
    export = "export"  # a copy of the contact's data (GDPR art. 15 and 20)
    erasure = "erasure"  # message content, media and conversation history removed (art. 17)


class DataRequestStatus(str, enum.Enum):
    """pending → done | rejected; an approved erasure whose Rasa history could not be reached yet is
    `approved` until the retention pass finishes it.
    """

    pending = "pending"
    approved = "approved"
    done = "done"
    rejected = "rejected"


_OPEN_REQUEST_SQL = "status IN ('pending', 'approved')"


class DataRequest(Base):
    """A patient's request about their data: a staff task until approved (and carried out) or rejected.
    At most one open request of each kind per contact: asking twice is the same request.
    """

    __tablename__ = "data_requests"
    __table_args__ = (
        Index("uq_data_requests_open", "contact_id", "kind", unique=True,
              sqlite_where=text(_OPEN_REQUEST_SQL), postgresql_where=text(_OPEN_REQUEST_SQL)),
    )

    id = Column(Integer, primary_key=True)
    contact_id = Column(ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, index=True)
    kind = Column(Enum(DataRequestKind, name="data_request_kind", native_enum=False, length=20,
                       create_constraint=True), nullable=False)
    status = Column(Enum(DataRequestStatus, name="data_request_status", native_enum=False, length=20,
                         create_constraint=True), nullable=False, default=DataRequestStatus.pending)
    requested_at = Column(UTCDateTime, nullable=False, default=utcnow)
    decided_by_id = Column(ForeignKey("staff_users.id"))
    decided_at = Column(UTCDateTime)
    done_at = Column(UTCDateTime)
    outbound_id = Column(ForeignKey("outbound_messages.id", ondelete="SET NULL"))  # the export document

    contact = relationship(Contact)
    decided_by = relationship(StaffUser)
