"""iCalendar (RFC 5545): private feeds of a practitioner's or a location's appointments, and a patient's
single-appointment `.ics`.

A feed URL (`FHIR_BASE_URL/calendar/<token>.ics`, served by `python -m clinic.fhir`) carries a random
token; the database keeps only its SHA-256, so the URL cannot be read back from it, and revoking a
feed (`clinic ical revoke ID`) stops it at once. Phone calendars poll such URLs and often sync them to
a cloud account, so a staff feed names patients by initials and appointment number only: enough to
see the day, nothing a calendar provider should hold. Times are UTC (every calendar shows them in
its own zone); cancelled appointments leave the feed (a subscribed calendar drops the event).

A patient's visit link (`FHIR_BASE_URL/calendar/visit/<token>.ics`, in the booking and reschedule
confirmations: WhatsApp cannot send a text/calendar document) is one random token per confirmation,
kept as its SHA-256 only. It always serves the visit as it is now: a reschedule moves the event (the
token follows the appointment to the one that replaced it, and the event keeps the first booking's UID
with a higher SEQUENCE, so a calendar updates it rather than adding a second one); a cancellation
serves `STATUS:CANCELLED`, which makes the phone's calendar drop it. The link stops working
VISIT_LINK_AFTER the visit. The file names the practitioner and the place, never the patient.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from clinic.db import Database
from clinic.models import (
    Appointment,
    AppointmentStatus,
    CalendarFeed,
    Location,
    Practitioner,
    VisitCalendarLink,
    utcnow,
)
from clinic.scheduling import AppointmentView
from clinic.settings import settings

PRODID = "-//clinic-assistant//appointments//EN"
UID_DOMAIN = "clinic-assistant"
PAST = timedelta(days=14)  # how far back a feed reaches (today's and last week's visits stay visible)
AHEAD = timedelta(days=180)
_STATUS = {AppointmentStatus.booked: "TENTATIVE", AppointmentStatus.confirmed: "CONFIRMED"}
VISIT_LINK_AFTER = timedelta(days=7)  # a visit's link works until a week after it
MAX_RESCHEDULES = 100  # how far a link follows an appointment (a chain is short; this bounds a loop)
# The patient's own event: booked is booked for them (TENTATIVE is the practitioner feed's "not yet
# confirmed"); only a cancellation changes it.
_VISIT_STATUS = {AppointmentStatus.cancelled: "CANCELLED"}
_VISIT_WORDS = {
    "it": ("Visita", "Per spostare o disdire la visita scrivi alla clinica su WhatsApp."),
    "en": ("Appointment", "To reschedule or cancel, write to the clinic on WhatsApp."),
}


class FeedError(ValueError):
    pass


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def feed_url(token: str) -> str:
    return f"{settings().fhir_base_url.rstrip('/')}/calendar/{token}.ics"


def create_feed(db: Database, *, practitioner: str | None = None, location: str | None = None) -> tuple[int, str]:
    """A new feed for one practitioner or one location (by key): (feed id, token to put in the URL)."""
    if (practitioner is None) == (location is None):
        raise FeedError("a feed is for one practitioner or one location")
    token = secrets.token_urlsafe(32)
    with db.transaction() as session:
        model, key = (Practitioner, practitioner) if practitioner else (Location, location)
        owner = session.scalar(select(model.id).where(model.key == key))
        if owner is None:
            raise FeedError(f"no {model.__tablename__[:-1]} {key!r}")
        row = CalendarFeed(token_hash=token_hash(token), practitioner_id=owner if practitioner else None,
                           location_id=owner if location else None)
        session.add(row)
        session.flush()
        return row.id, token


def revoke_feed(db: Database, feed_id: int) -> None:
    with db.transaction() as session:
        row = session.get(CalendarFeed, feed_id)
        if row is None:
            raise FeedError(f"no calendar feed {feed_id}")
        row.revoked_at = row.revoked_at or utcnow()


@dataclass(frozen=True)
class FeedView:
    id: int
    owner: str  # practitioner:KEY or location:KEY
    created_at: datetime
    revoked_at: datetime | None


def list_feeds(db: Database) -> list[FeedView]:
    with db.reading() as session:
        rows = session.execute(
            select(CalendarFeed, Practitioner.key, Location.key)
            .outerjoin(Practitioner, Practitioner.id == CalendarFeed.practitioner_id)
            .outerjoin(Location, Location.id == CalendarFeed.location_id)
            .order_by(CalendarFeed.id)
        ).all()
        return [FeedView(f.id, f"practitioner:{p}" if p else f"location:{loc}", f.created_at, f.revoked_at)
                for f, p, loc in rows]


def _initials(first: str, last: str) -> str:
    return "".join(f"{part[0].upper()}." for part in (first, last) if part)


def _event(appointment_id: int, start: datetime, end: datetime, summary: str, where: str, status: str,
           changed: datetime, sequence: int | None = None, description: str | None = None) -> Event:
    event = Event()
    event.add("uid", f"appointment-{appointment_id}@{UID_DOMAIN}")
    event.add("dtstamp", changed)
    event.add("last-modified", changed)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", summary)
    event.add("location", where)
    event.add("status", status)
    if sequence is not None:
        event.add("sequence", sequence)
    if description:
        event.add("description", description)
    return event


def _calendar(name: str) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    return calendar


def feed(db: Database, token: str, now: datetime | None = None) -> bytes | None:
    """The feed's calendar, or None for an unknown or revoked token."""
    now = now or utcnow()
    with db.reading() as session:
        row = session.scalars(select(CalendarFeed).where(CalendarFeed.token_hash == token_hash(token),
                                                         CalendarFeed.revoked_at.is_(None))).first()
        if row is None:
            return None
        owner = (Appointment.practitioner_id == row.practitioner_id if row.practitioner_id
                 else Appointment.location_id == row.location_id)
        appointments = session.scalars(
            select(Appointment)
            .options(joinedload(Appointment.patient), joinedload(Appointment.practitioner),
                     joinedload(Appointment.location), joinedload(Appointment.specialty))
            .where(owner, Appointment.status != AppointmentStatus.cancelled,
                   Appointment.start_at >= now - PAST, Appointment.start_at < now + AHEAD)
            .order_by(Appointment.start_at, Appointment.id)
        ).unique().all()
        if row.practitioner_id:
            name = session.get(Practitioner, row.practitioner_id).display_name
        else:
            name = session.get(Location, row.location_id).name
        calendar = _calendar(name)
        for a in appointments:
            what = a.specialty.name(settings().default_language) if a.specialty else "Visita"
            summary = f"{what} – {_initials(a.patient.first_name, a.patient.last_name)} (#{a.id})"
            if not row.practitioner_id:
                summary += f" – {a.practitioner.display_name}"
            calendar.add_component(_event(a.id, a.start_at, a.end_at, summary, a.location.name,
                                          _STATUS.get(a.status, "CONFIRMED"), a.changed_at))
    return calendar.to_ical()


def appointment_ics(view: AppointmentView, language: str = "it", now: datetime | None = None) -> bytes:
    """The patient's own `.ics` of one booking, as it is now (`visit_ics` serves it by link)."""
    what, how = _VISIT_WORDS.get(language, _VISIT_WORDS["en"])
    summary = f"{what} – {view.practitioner_name}"
    calendar = _calendar(summary)
    calendar.add_component(_event(view.id, view.start_at, view.end_at, summary,
                                  f"{view.location_name}, {view.location_address}",
                                  _VISIT_STATUS.get(view.status, "CONFIRMED"), now or utcnow(),
                                  description=how))
    return calendar.to_ical()


# --- a patient's link to one visit's .ics ---------------------------------------------------------


def issue_visit_link(db: Database, appointment_id: int, language: str = "it", now: datetime | None = None) -> str:
    """A new token for the appointment's `.ics` (each confirmation sends its own, its words in the
    confirmation's language); only its hash is kept.
    """
    token = secrets.token_urlsafe(32)
    with db.transaction() as session:
        session.add(VisitCalendarLink(token_hash=token_hash(token), appointment_id=appointment_id,
                                      language=language if language in _VISIT_WORDS else "it",
                                      created_at=now or utcnow()))
    return token


def visit_url(token: str) -> str:
    return f"{settings().fhir_base_url.rstrip('/')}/calendar/visit/{token}.ics"


def _first_and_latest(session, appointment: Appointment) -> tuple[int, Appointment, int]:
    """(the first booking's id, the appointment that holds the visit now, how many moves lie between)."""
    first, moves = appointment, 0
    while first.rescheduled_from_id is not None and moves < MAX_RESCHEDULES:
        first, moves = session.get(Appointment, first.rescheduled_from_id), moves + 1
    latest = appointment
    for _ in range(MAX_RESCHEDULES):
        following = session.scalars(select(Appointment).where(Appointment.rescheduled_from_id == latest.id)).first()
        if following is None:
            break
        latest, moves = following, moves + 1
    return first.id, latest, moves


def _sequence(moves: int, status: AppointmentStatus) -> int:
    """RFC 5545 SEQUENCE: grows with each change a patient's calendar must take over (booked 0,
    confirmed 1, cancelled 2; each reschedule 3 more), so an update replaces the older copy.
    """
    step = {AppointmentStatus.booked: 0, AppointmentStatus.cancelled: 2}.get(status, 1)
    return moves * 3 + step


def visit_ics(db: Database, token: str, now: datetime | None = None) -> bytes | None:
    """The visit's `.ics` as it is now, or None for an unknown token or a visit more than
    VISIT_LINK_AFTER past.
    """
    now = now or utcnow()
    with db.reading() as session:
        link = session.get(VisitCalendarLink, token_hash(token))
        if link is None:
            return None
        first_id, a, moves = _first_and_latest(session, session.get(Appointment, link.appointment_id))
        if a.end_at + VISIT_LINK_AFTER <= now:
            return None
        what, how = _VISIT_WORDS[link.language if link.language in _VISIT_WORDS else "it"]
        summary = f"{what} – {a.practitioner.display_name}"
        calendar = _calendar(summary)
        calendar.add_component(_event(first_id, a.start_at, a.end_at, summary,
                                      f"{a.location.name}, {a.location.address}",
                                      _VISIT_STATUS.get(a.status, "CONFIRMED"), a.changed_at,
                                      _sequence(moves, a.status), how))
    return calendar.to_ical()
