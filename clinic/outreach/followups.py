"""After the visit: no-shows marked, then each visit's after-visit messages, as utility templates.

- A booked or confirmed visit not marked completed (checked in) NO_SHOW_AFTER_HOURS after its end is
  marked `no_show` by the worker (staff can do it at once: `clinic appointments no-show ID`).
- A completed visit gets its specialty's follow-up FOLLOWUP_DELAY_HOURS after it was marked completed
  (`followup` in clinic.yml: prescription_pickup, followup_test or next_checkup, the last two with a
  Book button for `followup_book`) and the 1-5 satisfaction question after SURVEY_DELAY_HOURS; both
  need the `followups` consent.
- A no-show gets an offer to book again (`appointments` consent: it is about booking).

Like reminders, the schedule is computed from the appointments every pass and each decision (sent,
or skipped: no_consent, no_contact, late, not_configured) is one `after_visit_messages` row whose
unique (appointment, kind) key makes it go out at most once, written with its outbox row and audit
entry in one transaction. Quiet hours defer (never drop); past AFTER_VISIT_GRACE_HOURS of allowed
time a message is skipped as late.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_date
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from clinic import audit, consent, scheduling
from clinic.db import Database
from clinic.models import (
    AfterVisitKind,
    AfterVisitMessage,
    Appointment,
    AppointmentStatus,
    Contact,
    ReminderStatus,
    Specialty,
    utcnow,
)
from clinic.outreach import reminders
from clinic.outreach.quiet_hours import allowed_time, is_quiet, next_allowed
from clinic.outreach.reminders import ACTIVE, language_of, plain, recipient
from clinic.settings import settings
from clinic.whatsapp.client import WhatsAppClient
from clinic.whatsapp.outbound import template_message

logger = logging.getLogger(__name__)

SOURCE = "outreach:after_visit"
ACTOR = "system:outreach"
# The approved template of each specialty follow-up (clinic.yml's `followup` values).
FOLLOWUP_TEMPLATES = {
    "prescription_pickup": "followup_prescription_pickup",
    "followup_test": "followup_test",
    "next_checkup": "followup_next_checkup",
}
CONSENT = {AfterVisitKind.followup: "followups", AfterVisitKind.survey: "followups",
           AfterVisitKind.rebook: "appointments"}
SETTLED_STATUS = {AfterVisitKind.followup: AppointmentStatus.completed,
                  AfterVisitKind.survey: AppointmentStatus.completed,
                  AfterVisitKind.rebook: AppointmentStatus.no_show}


@dataclass(frozen=True)
class Rules:
    followup_delay: timedelta
    survey_delay: timedelta
    grace: timedelta
    no_show_after: timedelta
    quiet: tuple[time, time] | None
    zone: ZoneInfo

    @classmethod
    def from_settings(cls) -> Rules:
        s = settings()
        return cls(timedelta(hours=s.followup_delay_hours), timedelta(hours=s.survey_delay_hours),
                   timedelta(hours=s.after_visit_grace_hours), timedelta(hours=s.no_show_after_hours),
                   s.quiet_hours, s.zone)

    def delay(self, kind: AfterVisitKind) -> timedelta:
        return {AfterVisitKind.followup: self.followup_delay, AfterVisitKind.survey: self.survey_delay}.get(
            kind, timedelta(0))


@dataclass(frozen=True)
class Due:
    appointment_id: int
    kind: AfterVisitKind
    verdict: str  # send or late


@dataclass
class PassResult(reminders.PassResult):
    no_shows: int = 0


def mark_no_shows(db: Database, now: datetime, rules: Rules) -> int:
    """Visits still booked or confirmed NO_SHOW_AFTER_HOURS after their end become no_show."""
    with db.reading() as session:
        ids = list(session.scalars(select(Appointment.id).where(
            Appointment.status.in_(ACTIVE), Appointment.end_at <= now - rules.no_show_after)))
    marked = 0
    for appointment_id in ids:
        try:
            scheduling.mark_no_show(db, appointment_id=appointment_id, actor=ACTOR, now=now)
            marked += 1
        except scheduling.AppointmentNotActive:
            pass  # completed or changed by staff meanwhile
    return marked


def due_now(db: Database, now: datetime, rules: Rules) -> list[Due]:
    """The after-visit messages to settle at `now`: visits settled recently, minus decisions taken."""
    horizon = now - max(rules.followup_delay, rules.survey_delay) - rules.grace - timedelta(days=3)
    with db.reading() as session:
        rows = session.execute(select(Appointment.id, Appointment.status, Appointment.changed_at).where(
            Appointment.status.in_([AppointmentStatus.completed, AppointmentStatus.no_show]),
            Appointment.changed_at >= horizon)).all()
        settled = {(a, k) for a, k in session.execute(select(AfterVisitMessage.appointment_id, AfterVisitMessage.kind)
                                                      .where(AfterVisitMessage.decided_at >= horizon))}
    quiet_now = is_quiet(now, rules.quiet, rules.zone)
    result = []
    for appointment_id, status, changed_at in rows:
        kinds = [k for k, s in SETTLED_STATUS.items() if s is status]
        for kind in kinds:
            if (appointment_id, kind) in settled:
                continue
            moment = next_allowed(changed_at + rules.delay(kind), rules.quiet, rules.zone)
            if now < moment:
                continue
            if allowed_time(moment, now, rules.quiet, rules.zone) > rules.grace:
                result.append(Due(appointment_id, kind, "late"))
            elif not quiet_now:
                result.append(Due(appointment_id, kind, "send"))
    return result


def run_pass(db: Database, client: WhatsAppClient, now: datetime | None = None, rules: Rules | None = None
             ) -> PassResult:
    """One pass of the worker: mark no-shows, then settle every after-visit message due."""
    now = now or utcnow()
    rules = rules or Rules.from_settings()
    result = PassResult(no_shows=mark_no_shows(db, now, rules))
    for due in due_now(db, now, rules):
        try:
            outcome = settle(db, client, due, now)
        except Exception as error:  # noqa: BLE001 - one bad message must not hold up the others
            logger.error("after-visit %s of appointment %s failed: %s", due.kind.value, due.appointment_id,
                         type(error).__name__)
            outcome = None
        result.count(outcome)
    if result.sent:
        client.kick()
    return result


def _followup_of(appointment: Appointment) -> str | None:
    specialty = appointment.specialty
    return specialty.followup if specialty is not None and specialty.followup in FOLLOWUP_TEMPLATES else None


def settle(db: Database, client: WhatsAppClient, due: Due, now: datetime) -> ReminderStatus | None:
    """Send or skip one after-visit message; None if it was not this worker's to settle."""
    purpose = CONSENT[due.kind]
    with db.reading() as session:
        appointment = session.get(Appointment, due.appointment_id, options=[joinedload(Appointment.specialty)])
        contact = recipient(session, appointment.patient_id)
        contact_id = contact.id if contact else None
        configured = due.kind is not AfterVisitKind.followup or _followup_of(appointment) is not None
    if due.verdict != "send":
        reason = due.verdict
    elif not configured:
        reason = "not_configured"
    elif contact_id is None:
        reason = "no_contact"
    elif not consent.allows(db, contact_id, purpose):
        reason = "no_consent"
    else:
        reason = None
    with db.transaction() as session:
        query = select(Appointment.id).where(Appointment.id == due.appointment_id,
                                             Appointment.status == SETTLED_STATUS[due.kind])
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        if session.execute(query).scalar_one_or_none() is None:
            return None
        if contact_id is not None:
            consent.lock_contact(session, contact_id)  # before the row's foreign key (see reminders.settle)
            if reason is None and not consent.allows_in(session, contact_id, purpose):
                reason = "no_consent"
        row = AfterVisitMessage(appointment_id=due.appointment_id, kind=due.kind, contact_id=contact_id,
                                status=ReminderStatus.skipped if reason else ReminderStatus.sent, reason=reason,
                                decided_at=now)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            return None
        if row.status is ReminderStatus.sent:
            appointment = session.get(Appointment, due.appointment_id, populate_existing=True, options=[
                joinedload(Appointment.patient), joinedload(Appointment.practitioner),
                joinedload(Appointment.location), joinedload(Appointment.specialty)])
            body = message(session, due.kind, appointment, session.get(Contact, contact_id))
            (row.outbound_id,) = client.enqueue_in(session, contact_id, [body], source=SOURCE,
                                                   opaque=f"after_visit:{row.id}")
        audit.record(session, f"after_visit.{row.status.value}", actor=ACTOR,
                     subject=f"appointment:{due.appointment_id}",
                     data={"message_id": row.id, "appointment_id": due.appointment_id, "kind": due.kind.value,
                           "contact_id": contact_id, "outbound_id": row.outbound_id, "reason": reason}, now=now)
        status = row.status
    logger.info("after-visit %s of appointment %s: %s%s", due.kind.value, due.appointment_id, status.value,
                f" ({reason})" if reason else "")
    return status


def book_payload(specialty_key: str | None) -> str:
    return f'/book_appointment{{"specialty": "{specialty_key}"}}' if specialty_key else "/book_appointment"


def rating_payloads(appointment_id: int) -> list[str]:
    """The satisfaction template's quick replies, 1 to 5."""
    return [f'/rate_visit{{"appointment_id": "{appointment_id}", "rating": "{n}"}}' for n in range(1, 6)]


def message(session: Session, kind: AfterVisitKind, appointment: Appointment, contact: Contact | None) -> dict:
    """The Graph body of an after-visit template, in its recipient's language."""
    language = language_of(contact, appointment)
    specialty = appointment.specialty
    specialty_name = specialty.name(language) if specialty else appointment.practitioner.display_name
    local = appointment.start_at.astimezone(settings().zone)
    day = format_date(local.date(), "d MMMM", locale=language)
    first_name = appointment.patient.first_name
    if kind is AfterVisitKind.survey:
        return template_message(settings().survey_template, language,
                                [plain(first_name), plain(specialty_name), day],
                                quick_replies=rating_payloads(appointment.id))
    if kind is AfterVisitKind.rebook:
        return template_message(settings().rebook_template, language, [plain(first_name), plain(specialty_name), day],
                                quick_replies=[book_payload(specialty.key if specialty else None)])
    followup = _followup_of(appointment)
    if followup == "prescription_pickup":
        location = appointment.location
        where = f"{location.name}, {location.address}"
        return template_message(FOLLOWUP_TEMPLATES[followup], language,
                                [plain(first_name), plain(specialty_name), plain(where)])
    book = session.scalars(select(Specialty).where(Specialty.key == (specialty.followup_book or specialty.key))).one()
    return template_message(FOLLOWUP_TEMPLATES[followup], language,
                            [plain(first_name), plain(specialty_name), plain(book.name(language))],
                            quick_replies=[book_payload(book.key)])
