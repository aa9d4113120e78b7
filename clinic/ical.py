"""iCalendar (RFC 5545): private feeds of a practitioner's or a location's appointments, and a patient's
single-appointment `.ics`.

A feed URL (`FHIR_BASE_URL/calendar/<token>.ics`, served by `python -m clinic.fhir`) carries a random
token; the database keeps only its SHA-256, so the URL cannot be read back from it, and revoking a
feed (`clinic ical revoke ID`) stops it at once. Phone calendars poll such URLs and often sync them to
a cloud account, so a staff feed names patients by initials and appointment number only: enough to
see the day, nothing a calendar provider should hold. Times are UTC (every calendar shows them in
its own zone); cancelled appointments leave the feed (a subscribed calendar drops the event).
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
from clinic.models import Appointment, AppointmentStatus, CalendarFeed, Location, Practitioner, utcnow
from clinic.scheduling import AppointmentView
from clinic.settings import settings

PRODID = "-//clinic-assistant//appointments//EN"
UID_DOMAIN = "clinic-assistant"
PAST = timedelta(days=14)  # how far back a feed reaches (today's and last week's visits stay visible)
AHEAD = timedelta(days=180)
_STATUS = {AppointmentStatus.booked: "TENTATIVE", AppointmentStatus.confirmed: "CONFIRMED"}


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
           changed: datetime) -> Event:
    event = Event()
    event.add("uid", f"appointment-{appointment_id}@{UID_DOMAIN}")
    event.add("dtstamp", changed)
    event.add("last-modified", changed)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", summary)
    event.add("location", where)
    event.add("status", status)
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
    """The patient's own `.ics` of one booking (e.g. attached to the confirmation)."""
    what = "Visita" if language == "it" else "Appointment"
    summary = f"{what} – {view.practitioner_name}"
    calendar = _calendar(summary)
    calendar.add_component(_event(view.id, view.start_at, view.end_at, summary,
                                  f"{view.location_name}, {view.location_address}",
                                  _STATUS.get(view.status, "CONFIRMED"), now or utcnow()))
    return calendar.to_ical()
