"""Satisfaction answers: a 1-5 rating of one visit and an optional comment, from the patient the
question was sent to (`clinic.outreach.followups`). One row per visit in `satisfaction_responses`
(appointment, rating, comment, when): the data a satisfaction KPI reads. The comment is free text
from the patient, so it is encrypted at rest and never logged or audited (the audit entry says only
that there is one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from clinic import audit
from clinic.db import Database
from clinic.models import AfterVisitKind, AfterVisitMessage, ReminderStatus, SatisfactionResponse, utcnow

COMMENT_MAX = 2000
ASK_WINDOW = timedelta(days=7)


class NotAsked(ValueError):
    """The contact was not asked about that visit."""


@dataclass(frozen=True)
class Response:
    appointment_id: int
    rating: int
    comment: str | None
    answered_at: datetime


def _asked(session, appointment_id: int, contact_id: int) -> bool:
    found = session.scalars(select(AfterVisitMessage.id).where(
        AfterVisitMessage.appointment_id == appointment_id, AfterVisitMessage.kind == AfterVisitKind.survey,
        AfterVisitMessage.status == ReminderStatus.sent, AfterVisitMessage.contact_id == contact_id)).first()
    return found is not None


def latest_asked(db: Database, contact_id: int, now: datetime | None = None) -> int | None:
    """The visit a typed rating ("direi 4") is about: the contact's newest question of the last ASK_WINDOW."""
    now = now or utcnow()
    with db.reading() as session:
        return session.scalars(select(AfterVisitMessage.appointment_id).where(
            AfterVisitMessage.contact_id == contact_id, AfterVisitMessage.kind == AfterVisitKind.survey,
            AfterVisitMessage.status == ReminderStatus.sent, AfterVisitMessage.decided_at >= now - ASK_WINDOW)
            .order_by(AfterVisitMessage.decided_at.desc(), AfterVisitMessage.id.desc()).limit(1)).first()


def rate(db: Database, *, appointment_id: int, contact_id: int, rating: int, now: datetime | None = None) -> None:
    """Store (or change) the rating of a visit the contact was asked about."""
    if not 1 <= rating <= 5:
        raise ValueError("a rating is 1 to 5")
    now = now or utcnow()
    with db.transaction() as session:
        if not _asked(session, appointment_id, contact_id):
            raise NotAsked(f"contact {contact_id} was not asked about appointment {appointment_id}")
        row = session.scalars(select(SatisfactionResponse).where(
            SatisfactionResponse.appointment_id == appointment_id)).first()
        if row is None:
            row = SatisfactionResponse(appointment_id=appointment_id, contact_id=contact_id)
            session.add(row)
        row.rating, row.answered_at = rating, now
        session.flush()
        audit.record(session, "satisfaction.rated", actor=f"contact:{contact_id}",
                     subject=f"appointment:{appointment_id}",
                     data={"appointment_id": appointment_id, "contact_id": contact_id, "rating": rating}, now=now)


def comment(db: Database, *, appointment_id: int, contact_id: int, text: str, now: datetime | None = None) -> bool:
    """Add the optional comment to a rated visit; False if the visit was not rated by this contact."""
    text = " ".join(text.split())[:COMMENT_MAX]
    if not text:
        return False
    now = now or utcnow()
    with db.transaction() as session:
        row = session.scalars(select(SatisfactionResponse).where(
            SatisfactionResponse.appointment_id == appointment_id,
            SatisfactionResponse.contact_id == contact_id)).first()
        if row is None:
            return False
        row.comment, row.commented_at = text, now
        session.flush()
        audit.record(session, "satisfaction.commented", actor=f"contact:{contact_id}",
                     subject=f"appointment:{appointment_id}",
                     data={"appointment_id": appointment_id, "contact_id": contact_id}, now=now)
        return True


def responses(db: Database, start: datetime, end: datetime) -> list[Response]:
    """Answers given in [start, end), comments decrypted: what a satisfaction report reads."""
    with db.reading() as session:
        rows = session.scalars(select(SatisfactionResponse).where(
            SatisfactionResponse.answered_at >= start, SatisfactionResponse.answered_at < end)
            .order_by(SatisfactionResponse.answered_at, SatisfactionResponse.id)).all()
    return [Response(r.appointment_id, r.rating, r.comment,
                     r.answered_at) for r in rows]
