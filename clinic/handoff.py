"""Nurse handoff tickets: the bot opens one, a nurse claims it, answers, and hands the patient back.

One open ticket per contact (a second request updates it; urgent wins). Claiming is one conditional
UPDATE (`waiting → claimed`), so of two nurses clicking at once exactly one wins and the other gets
`AlreadyClaimed` naming the winner. Plain Python + SQLAlchemy: the inbox, the actions and the CLI call it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clinic import audit, results, scheduling
from clinic.db import Database
from clinic.models import (
    CannedResponse,
    Contact,
    ContactPatient,
    HandoffTicket,
    InboundMessage,
    OutboundMessage,
    StaffEvent,
    StaffUser,
    TicketNote,
    TicketStatus,
    utcnow,
)
from clinic.settings import settings

logger = logging.getLogger(__name__)

REASONS = ("request_human", "medical_question", "fallback", "attachment", "late_cancellation", "emergency",
           "results_question", "identity_failed")
PRIORITIES = ("normal", "urgent")
WINDOW = timedelta(hours=24)
OPEN = (TicketStatus.waiting, TicketStatus.claimed)


class HandoffError(Exception):
    """A ticket operation that cannot be done as asked."""


class TicketNotFound(HandoffError):
    pass


class AlreadyClaimed(HandoffError):
    """Someone else holds the ticket; `by` is their username."""

    def __init__(self, ticket_id: int, by: str | None) -> None:
        super().__init__(f"ticket {ticket_id} is already claimed by {by or 'someone else'}")
        self.ticket_id = ticket_id
        self.by = by


class TicketClosed(HandoffError):
    """The ticket was resolved: nothing more to do on it."""


class NotHolder(HandoffError):
    """Only the nurse who claimed the ticket may do this."""


@dataclass(frozen=True)
class TicketView:
    id: int
    contact_id: int
    reason: str
    priority: str
    language: str | None
    status: TicketStatus
    summary: dict
    created_at: datetime
    claimed_by_id: int | None
    claimed_by: str | None
    claimed_at: datetime | None
    first_reply_at: datetime | None
    resolved_at: datetime | None


@dataclass(frozen=True)
class QueueItem:
    ticket: TicketView
    contact_name: str
    waiting_seconds: float
    window_seconds_left: float  # 0 when the 24-hour window is closed
    sla_breached: bool


@dataclass(frozen=True)
class TranscriptEntry:
    """One message either way: `direction` is "in" (the patient) or "out" (bot, nurse, outreach)."""

    key: str  # "in:12" / "out:7": stable across polls
    direction: str
    at: datetime
    kind: str
    text: str
    media: dict | None = None
    source: str | None = None
    status: str | None = None
    error_code: int | None = None
    error_title: str | None = None


@dataclass(frozen=True)
class PatientSummary:
    id: int
    name: str
    age: int | None
    relationship: str
    language: str


@dataclass(frozen=True)
class Summary:
    """What a nurse reads in five seconds before answering."""

    ticket: TicketView
    contact_name: str
    patients: list[PatientSummary]
    intent: str | None
    slots: dict
    upcoming: list[scheduling.AppointmentView] = field(default_factory=list)
    result: results.ResultView | None = None  # the report a question after its release is about


def _now(now: datetime | None) -> datetime:
    return now or utcnow()


def _view(ticket: HandoffTicket, holder: str | None = None) -> TicketView:
    return TicketView(
        id=ticket.id,
        contact_id=ticket.contact_id,
        reason=ticket.reason,
        priority=ticket.priority,
        language=ticket.language,
        status=ticket.status,
        summary=dict(ticket.summary or {}),
        created_at=ticket.created_at,
        claimed_by_id=ticket.claimed_by_id,
        claimed_by=holder if holder is not None else (ticket.claimed_by.username if ticket.claimed_by else None),
        claimed_at=ticket.claimed_at,
        first_reply_at=ticket.first_reply_at,
        resolved_at=ticket.resolved_at,
    )


def _load(session: Session, ticket_id: int, *, lock: bool = False) -> HandoffTicket:
    query = select(HandoffTicket).where(HandoffTicket.id == ticket_id)
    if lock and session.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    ticket = session.execute(query).scalar_one_or_none()
    if ticket is None:
        raise TicketNotFound(f"no ticket {ticket_id}")
    return ticket


def record(
    session: Session, staff_id: int, action: str, ticket_id: int | None, now: datetime | None = None, **data: Any
) -> None:
    """Who did what to which ticket (ids only): a `staff_events` row and the audit entry `staff.<action>`.

    Call it last in the transaction (the audit trail's lock is taken here).
    """
    now = _now(now)
    session.add(StaffEvent(staff_id=staff_id, action=action, ticket_id=ticket_id, at=now))
    audit.record(session, f"staff.{action}", actor=f"staff:{staff_id}",
                 subject=f"ticket:{ticket_id}" if ticket_id is not None else None,
                 data={"ticket_id": ticket_id, **data}, now=now)


def log_event(db: Database, staff_id: int, action: str, ticket_id: int | None, now: datetime | None = None) -> None:
    with db.transaction() as session:
        record(session, staff_id, action, ticket_id, now)


# --- opening and the state machine --------------------------------------------------------------


def open_ticket(
    db: Database,
    contact_id: int,
    reason: str,
    priority: str = "normal",
    language: str | None = None,
    summary: dict | None = None,
    now: datetime | None = None,
    actor: str = "bot",
) -> TicketView:
    """Open a ticket for the contact, or update its open one (latest reason and summary; urgent wins).

    `summary` is what the bot understood, e.g. `{"intent": "ask_medical_question", "slots": {...}}`.
    An emergency is always urgent. The audit trail gets `ticket.opened` or `ticket.updated` (codes
    and ids, never the summary).
    """
    if reason not in REASONS:
        raise ValueError(f"unknown handoff reason {reason!r}")
    if priority not in PRIORITIES:
        raise ValueError(f"unknown priority {priority!r}")
    if reason == "emergency":
        priority = "urgent"
    now = _now(now)
    for attempt in range(2):
        try:
            with db.transaction() as session:
                contact_query = select(Contact).where(Contact.id == contact_id)
                if session.bind.dialect.name == "postgresql":
                    contact_query = contact_query.with_for_update()  # serialises opens for one contact
                if session.execute(contact_query).scalar_one_or_none() is None:
                    raise LookupError(f"contact {contact_id} does not exist")
                ticket = session.execute(
                    select(HandoffTicket).where(HandoffTicket.contact_id == contact_id, HandoffTicket.status.in_(OPEN))
                ).scalar_one_or_none()
                if ticket is None:
                    ticket = HandoffTicket(
                        contact_id=contact_id, reason=reason, priority=priority, language=language,
                        summary=summary or {}, status=TicketStatus.waiting, created_at=now, updated_at=now,
                    )
                    session.add(ticket)
                    session.flush()
                    logger.info("ticket %s opened for contact %s (%s, %s)", ticket.id, contact_id, reason, priority)
                    kind = "ticket.opened"
                else:
                    if priority == "urgent" or ticket.priority != "urgent":
                        ticket.reason = reason
                    if priority == "urgent":
                        ticket.priority = "urgent"
                    ticket.summary = {**(ticket.summary or {}), **(summary or {})}
                    ticket.language = language or ticket.language
                    ticket.updated_at = now
                    logger.info("ticket %s updated for contact %s (%s)", ticket.id, contact_id, ticket.priority)
                    kind = "ticket.updated"
                audit.record(session, kind, actor=actor, subject=f"ticket:{ticket.id}", now=now,
                             data={"ticket_id": ticket.id, "contact_id": contact_id, "reason": ticket.reason,
                                   "priority": ticket.priority})
                return _view(ticket)
        except IntegrityError:
            if attempt:  # another open won the race twice: give up loudly
                raise
    raise AssertionError("unreachable")


def claim(db: Database, ticket_id: int, staff_id: int, now: datetime | None = None) -> TicketView:
    """Take a waiting ticket. Exactly one of several nurses claiming at once wins; the others get
    `AlreadyClaimed` naming the winner. Claiming a ticket one already holds is a no-op.
    """
    now = _now(now)
    with db.transaction() as session:
        won = session.execute(
            update(HandoffTicket)
            .where(HandoffTicket.id == ticket_id, HandoffTicket.status == TicketStatus.waiting)
            .values(status=TicketStatus.claimed, claimed_by_id=staff_id, claimed_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        ticket = _load(session, ticket_id)
        session.refresh(ticket)
        if not won:
            if ticket.status is TicketStatus.resolved:
                raise TicketClosed(f"ticket {ticket_id} is resolved")
            if ticket.claimed_by_id != staff_id:
                raise AlreadyClaimed(ticket_id, ticket.claimed_by.username if ticket.claimed_by else None)
        else:
            record(session, staff_id, "claim", ticket_id, now)
            logger.info("ticket %s claimed by staff %s", ticket_id, staff_id)
        return _view(ticket)


def _held_by(session: Session, ticket_id: int, staff_id: int) -> HandoffTicket:
    ticket = _load(session, ticket_id, lock=True)
    if ticket.status is TicketStatus.resolved:
        raise TicketClosed(f"ticket {ticket_id} is resolved")
    if ticket.claimed_by_id != staff_id:
        raise NotHolder(f"ticket {ticket_id} is not claimed by you")
    return ticket


def release(db: Database, ticket_id: int, staff_id: int, now: datetime | None = None) -> TicketView:
    """Put a claimed ticket back in the queue (its waiting time still counts from when it was opened)."""
    now = _now(now)
    with db.transaction() as session:
        ticket = _held_by(session, ticket_id, staff_id)
        ticket.status, ticket.claimed_by_id, ticket.claimed_at, ticket.updated_at = (
            TicketStatus.waiting, None, None, now)
        record(session, staff_id, "release", ticket_id, now)
        session.flush()
        return _view(ticket, holder="")


def reassign(
    db: Database, ticket_id: int, to_staff_id: int, by_staff_id: int, now: datetime | None = None
) -> TicketView:
    """Hand an open ticket to another nurse (by its holder, or anyone when it is waiting)."""
    now = _now(now)
    with db.transaction() as session:
        ticket = _load(session, ticket_id, lock=True)
        if ticket.status is TicketStatus.resolved:
            raise TicketClosed(f"ticket {ticket_id} is resolved")
        if ticket.status is TicketStatus.claimed and ticket.claimed_by_id != by_staff_id:
            raise NotHolder(f"ticket {ticket_id} is not claimed by you")
        target = session.get(StaffUser, to_staff_id)
        if target is None or not target.active:
            raise HandoffError(f"no active staff user {to_staff_id}")
        ticket.status, ticket.claimed_by_id, ticket.claimed_at, ticket.updated_at = (
            TicketStatus.claimed, to_staff_id, now, now)
        record(session, by_staff_id, "reassign", ticket_id, now, to_staff_id=to_staff_id)
        session.flush()
        return _view(ticket, holder=target.username)


def resolve(db: Database, ticket_id: int, staff_id: int, now: datetime | None = None) -> TicketView:
    """Close the ticket: the conversation goes back to the bot (the caller tells Rasa)."""
    now = _now(now)
    with db.transaction() as session:
        ticket = _held_by(session, ticket_id, staff_id)
        ticket.status, ticket.resolved_by_id, ticket.resolved_at, ticket.updated_at = (
            TicketStatus.resolved, staff_id, now, now)
        record(session, staff_id, "resolve", ticket_id, now)
        session.flush()
        logger.info("ticket %s resolved by staff %s", ticket_id, staff_id)
        return _view(ticket)


def replied(db: Database, ticket_id: int, staff_id: int, now: datetime | None = None) -> None:
    """A nurse's reply went into the outbox: the first one stamps `first_reply_at`."""
    now = _now(now)
    with db.transaction() as session:
        ticket = _held_by(session, ticket_id, staff_id)
        if ticket.first_reply_at is None:
            ticket.first_reply_at = now
        ticket.updated_at = now
        record(session, staff_id, "reply", ticket_id, now)


def add_note(db: Database, ticket_id: int, staff_id: int, text: str, now: datetime | None = None) -> int:
    """A private note for colleagues: stored with the ticket, never sent."""
    text = text.strip()
    if not text:
        raise HandoffError("a note needs some text")
    now = _now(now)
    with db.transaction() as session:
        _load(session, ticket_id)
        note = TicketNote(ticket_id=ticket_id, staff_id=staff_id, text=text, created_at=now)
        session.add(note)
        record(session, staff_id, "note", ticket_id, now)
        session.flush()
        return note.id


def notes(db: Database, ticket_id: int) -> list[dict[str, Any]]:
    with db.reading() as session:
        rows = session.execute(
            select(TicketNote, StaffUser.username)
            .join(StaffUser, StaffUser.id == TicketNote.staff_id)
            .where(TicketNote.ticket_id == ticket_id)
            .order_by(TicketNote.id)
        ).all()
        return [{"id": n.id, "by": who, "at": n.created_at, "text": n.text} for n, who in rows]


def get(db: Database, ticket_id: int) -> TicketView:
    with db.reading() as session:
        return _view(_load(session, ticket_id))


def open_ticket_for(db: Database, contact_id: int) -> TicketView | None:
    with db.reading() as session:
        ticket = session.execute(
            select(HandoffTicket).where(HandoffTicket.contact_id == contact_id, HandoffTicket.status.in_(OPEN))
        ).scalar_one_or_none()
        return _view(ticket) if ticket else None


# --- what the nurse sees --------------------------------------------------------------------------


def window_left(contact: Contact, now: datetime) -> float:
    """Seconds left in the contact's 24-hour window (0 when closed or never opened)."""
    if contact.last_inbound_at is None:
        return 0.0
    return max(0.0, (contact.last_inbound_at + WINDOW - now).total_seconds())


def contact_label(contact: Contact) -> str:
    return contact.profile_name or f"contact {contact.id}"


def queue(db: Database, now: datetime | None = None, sla_minutes: int | None = None) -> list[QueueItem]:
    """Open tickets: urgent first, then longest waiting; each with its 24-hour window and SLA state."""
    now = _now(now)
    sla = timedelta(minutes=sla_minutes if sla_minutes is not None else settings().handoff_sla_minutes)
    with db.reading() as session:
        rows = session.execute(
            select(HandoffTicket, Contact)
            .join(Contact, Contact.id == HandoffTicket.contact_id)
            .where(HandoffTicket.status.in_(OPEN))
        ).all()
        holders = dict(session.execute(select(StaffUser.id, StaffUser.username)).all())
        items = [
            QueueItem(
                ticket=_view(ticket, holder=holders.get(ticket.claimed_by_id)),
                contact_name=contact_label(contact),
                waiting_seconds=(now - ticket.created_at).total_seconds(),
                window_seconds_left=window_left(contact, now),
                sla_breached=ticket.status is TicketStatus.waiting and now - ticket.created_at > sla,
            )
            for ticket, contact in rows
        ]
    items.sort(key=lambda item: (item.ticket.priority != "urgent", item.ticket.created_at, item.ticket.id))
    return items


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def summary(db: Database, ticket_id: int, now: datetime | None = None) -> Summary:
    """The ticket with who writes for whom, ages, what the bot understood and upcoming appointments."""
    now = _now(now)
    today = now.astimezone(settings().zone).date()
    with db.reading() as session:
        ticket = _load(session, ticket_id)
        view = _view(ticket)
        contact = session.get(Contact, ticket.contact_id)
        links = session.execute(
            select(ContactPatient).where(ContactPatient.contact_id == ticket.contact_id)
        ).scalars().all()
        patients = [
            PatientSummary(
                id=link.patient.id,
                name=link.patient.full_name,
                age=_age(link.patient.date_of_birth, today),
                relationship=link.relation.value,
                language=link.patient.language,
            )
            for link in links
        ]
        name = contact_label(contact)
    upcoming = scheduling.upcoming_appointments(db, [p.id for p in patients], now=now) if patients else []
    result_id = view.summary.get("result_id")
    result = results.for_contact(db, int(result_id), view.contact_id) if result_id else None
    return Summary(
        ticket=view,
        contact_name=name,
        patients=patients,
        intent=view.summary.get("intent"),
        slots=dict(view.summary.get("slots") or {}),
        upcoming=upcoming,
        result=result,
    )


def _inbound_text(message: InboundMessage) -> tuple[str, dict | None]:
    payload = message.payload or {}
    item = payload.get(message.type) if isinstance(payload.get(message.type), dict) else {}
    media = None
    if message.media_id or message.type in ("image", "document", "audio", "video", "sticker"):
        media = {"mime": message.media_mime or item.get("mime_type"), "path": message.media_path,
                 "filename": item.get("filename")}
    if message.type == "text":
        text = (payload.get("text") or {}).get("body") or ""
    elif message.type == "interactive":
        reply = item.get("button_reply") or item.get("list_reply") or {}
        text = reply.get("title") or ""
    elif message.type == "button":
        text = item.get("text") or ""
    else:
        text = item.get("caption") or ""
    return text or message.rasa_text or "", media


def _outbound_text(message: OutboundMessage) -> tuple[str, dict | None]:
    body = message.body or {}
    kind = message.kind
    item = body.get(kind) if isinstance(body.get(kind), dict) else {}
    if kind == "text":
        return item.get("body", ""), None
    if kind == "interactive":
        return (item.get("body") or {}).get("text", ""), None
    if kind == "template":
        return f"[template {item.get('name', '')}]", None
    media = {"mime": None, "path": None, "filename": item.get("filename")}
    return item.get("caption", ""), media


def transcript(db: Database, contact_id: int, limit: int = 200) -> list[TranscriptEntry]:
    """The contact's messages both ways in time order (the latest `limit`), with delivery status and errors."""
    with db.reading() as session:
        inbound = session.execute(
            select(InboundMessage).where(InboundMessage.contact_id == contact_id)
            .order_by(InboundMessage.id.desc()).limit(limit)
        ).scalars().all()
        outbound = session.execute(
            select(OutboundMessage).where(OutboundMessage.contact_id == contact_id)
            .order_by(OutboundMessage.id.desc()).limit(limit)
        ).scalars().all()
        entries = []
        for m in inbound:
            text, media = _inbound_text(m)
            entries.append(TranscriptEntry(f"in:{m.id}", "in", m.received_at, m.type, text, media))
        for m in outbound:
            text, media = _outbound_text(m)
            entries.append(TranscriptEntry(
                f"out:{m.id}", "out", m.created_at, m.kind, text, media, source=m.source, status=m.status.value,
                error_code=m.error_code, error_title=m.error_title,
            ))
    entries.sort(key=lambda e: (e.at, e.direction == "out", e.key))
    return entries[-limit:]


# --- staffed hours --------------------------------------------------------------------------------

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(r"^\s*(\w{3})(?:-(\w{3}))?\s+(\d{1,2}:\d{2})-(\d{1,2}:\d{2})\s*$")


def staffed(now: datetime | None = None, spec: str | None = None) -> bool:
    """True when nurses answer now (`HANDOFF_STAFFED_HOURS`, clinic time): the bot says when they will."""
    spec = spec if spec is not None else settings().handoff_staffed_hours
    local = _now(now).astimezone(settings().zone)
    for part in filter(None, (p.strip() for p in spec.split(","))):
        match = _SPEC.match(part.lower())
        if not match:
            raise ValueError(f"staffed hours: cannot read {part!r} (e.g. 'mon-fri 08:00-19:00')")
        first, last, start, end = match.groups()
        days = range(_DAYS.index(first), _DAYS.index(last or first) + 1)
        if local.weekday() in days and time.fromisoformat(start.zfill(5)) <= local.time() < time.fromisoformat(
            end.zfill(5)
        ):
            return True
    return False


# --- canned responses (admins edit, nurses insert) --------------------------------------------------

DEFAULT_CANNED = (
    ("it", "Presa in carico", "Buongiorno, sono un'infermiera della clinica: ho letto il suo messaggio e la aiuto io."),
    ("en", "Taking over", "Hello, I am a nurse at the clinic: I have read your message and I will help you."),
)


def canned_responses(db: Database, language: str | None = None) -> list[CannedResponse]:
    with db.reading() as session:
        query = select(CannedResponse).order_by(CannedResponse.language, CannedResponse.title)
        if language:
            query = query.where(CannedResponse.language == language)
        return list(session.scalars(query))


def save_canned(db: Database, language: str, title: str, body: str, canned_id: int | None = None) -> int:
    """Create (no id) or change a canned response."""
    title, body = title.strip(), body.strip()
    if language not in ("it", "en") or not title or not body:
        raise HandoffError("a canned response needs a language (it or en), a title and a text")
    with db.transaction() as session:
        row = CannedResponse() if canned_id is None else session.get(CannedResponse, canned_id)
        if row is None:
            raise HandoffError(f"no canned response {canned_id}")
        row.language, row.title, row.body, row.updated_at = language, title[:100], body, utcnow()
        session.add(row)
        session.flush()
        return row.id


def delete_canned(db: Database, canned_id: int) -> None:
    with db.transaction() as session:
        session.execute(delete(CannedResponse).where(CannedResponse.id == canned_id))


def seed_canned(db: Database) -> None:
    """The demo's two canned responses, when there are none yet."""
    if not canned_responses(db):
        for language, title, body in DEFAULT_CANNED:
            save_canned(db, language, title, body)
