"""Patients' rights over their data (GDPR art. 15, 17, 20) and the retention of message content.

A request (a copy, or erasure) is a staff task: a person approves it, because both are final.
- **Export**: one JSON document with what the clinic holds about the contact and the patients it
  is linked to (records, appointments, consents, messages, handoffs), stored encrypted and sent
  to the contact as a WhatsApp document by the one sending client.
- **Erasure** removes what the contact wrote and was written (message content, media files,
  ticket summaries and notes, the name WhatsApp gave) and their Rasa conversation history. It
  keeps what the law requires the clinic to keep: patient records and appointments (clinical
  records), the consent ledger and the audit trail (which hold ids and metadata, no text).
  Every consent is withdrawn, so nothing but the confirmation is sent afterwards.
- **Retention** (`clinic retention run`, and the outreach worker daily) removes the content of
  messages older than MESSAGE_RETENTION_DAYS the same way, the Rasa history included.

The Rasa history is reached through Rasa's HTTP API (`clinic.history`); when Rasa cannot be
reached an approved erasure stays `approved` and the next retention pass finishes it.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from clinic import audit, consent, crypto, history, wording
from clinic.db import Database
from clinic.models import (
    Appointment,
    ConsentRecord,
    Contact,
    ContactPatient,
    DataRequest,
    DataRequestKind,
    DataRequestStatus,
    HandoffTicket,
    InboundMessage,
    LabResult,
    OutboundMessage,
    OutboundStatus,
    Patient,
    SatisfactionResponse,
    TicketNote,
    WaitlistEntry,
    utcnow,
)
from clinic.settings import settings
from clinic.whatsapp.client import WhatsAppClient
from clinic.whatsapp.outbound import LOCAL_PATH, media_message

logger = logging.getLogger(__name__)

ERASED = {"erased": True}  # what a message's content becomes
UNSENT = (OutboundStatus.held, OutboundStatus.queued)


class RightsError(Exception):
    """A request that cannot be decided (unknown, or already decided)."""


@dataclass(frozen=True)
class RequestView:
    id: int
    contact_id: int
    phone: str
    kind: str
    status: str
    requested_at: datetime
    decided_at: datetime | None


def _view(row: DataRequest) -> RequestView:
    return RequestView(row.id, row.contact_id, row.contact.wa_id or row.contact.user_id or "", row.kind.value,
                       row.status.value, row.requested_at, row.decided_at)


def ask(db: Database, contact_id: int, kind: str, now: datetime | None = None) -> tuple[RequestView, bool]:
    """Record a patient's request (True) or find the same one still open (False): asking twice is one task."""
    kind = DataRequestKind(kind)
    at = now or utcnow()
    with db.transaction() as session:
        contact = session.get(Contact, contact_id, with_for_update=True)  # two messages at once: one request
        found = session.scalars(select(DataRequest).where(
            DataRequest.contact_id == contact.id, DataRequest.kind == kind,
            DataRequest.status.in_((DataRequestStatus.pending, DataRequestStatus.approved)))).first()
        if found is not None:
            return _view(found), False
        row = DataRequest(contact_id=contact.id, kind=kind, requested_at=at)
        session.add(row)
        session.flush()
        audit.record(session, "rights.requested", actor=f"contact:{contact.id}", subject=f"data_request:{row.id}",
                     data={"kind": kind.value}, now=at)
        return _view(row), True


def open_requests(db: Database) -> list[RequestView]:
    """Requests waiting for staff, oldest first (and approved erasures still finishing)."""
    with db.reading() as session:
        rows = session.scalars(select(DataRequest).where(
            DataRequest.status.in_((DataRequestStatus.pending, DataRequestStatus.approved)))
            .order_by(DataRequest.requested_at, DataRequest.id)).all()
        return [_view(row) for row in rows]


def _pending(session: Session, request_id: int) -> DataRequest:
    row = session.get(DataRequest, request_id, with_for_update=True)
    if row is None:
        raise RightsError(f"no data request {request_id}")
    if row.status != DataRequestStatus.pending:
        raise RightsError(f"data request {request_id} is already {row.status.value}")
    return row


def reject(db: Database, request_id: int, staff_id: int, now: datetime | None = None) -> RequestView:
    """Staff decline (e.g. the requester could not be identified); nothing changes but the request."""
    at = now or utcnow()
    with db.transaction() as session:
        row = _pending(session, request_id)
        row.status, row.decided_by_id, row.decided_at = DataRequestStatus.rejected, staff_id, at
        audit.record(session, "rights.rejected", actor=f"staff:{staff_id}", subject=f"data_request:{row.id}",
                     data={"kind": row.kind.value}, now=at)
        return _view(row)


def approve(db: Database, client: WhatsAppClient, request_id: int, staff_id: int, now: datetime | None = None
            ) -> RequestView:
    """Carry the request out: the export is queued as a document; erasure removes content now and the
    Rasa history right after (or at the next retention pass when Rasa is unreachable).
    """
    at = now or utcnow()
    with db.transaction() as session:
        row = _pending(session, request_id)
        row.decided_by_id, row.decided_at = staff_id, at
        contact = row.contact
        language = contact.language or settings().default_language
        if row.kind == DataRequestKind.export:
            row.outbound_id = _queue_export(session, client, contact, language, at)
            row.status, row.done_at = DataRequestStatus.done, at
        else:
            counts = erase_content(session, [contact.id], before=None)
            consent.withdraw_all_in(session, contact.id, how=f"staff:{staff_id}:erasure", at=at)
            contact.profile_name = None
            row.status = DataRequestStatus.approved
            body = {"type": "text", "text": {"body": wording.say("utter_data_erased", language)}}
            client.enqueue_in(session, contact.id, [body], source="rights:erasure")
        audit.record(session, f"rights.{row.kind.value}_approved", actor=f"staff:{staff_id}",
                     subject=f"data_request:{row.id}",
                     data={} if row.kind == DataRequestKind.export else counts, now=at)
    if row.kind == DataRequestKind.erasure:
        finish_erasures(db, now=at)
    with db.reading() as session:
        return _view(session.get(DataRequest, request_id))


def _queue_export(session: Session, client: WhatsAppClient, contact: Contact, language: str, at: datetime) -> int:
    document = json.dumps(export_data(session, contact.id), ensure_ascii=False, indent=2, default=str)
    path = settings().media_dir / "outbound" / str(contact.id) / f"{secrets.token_hex(8)}.json"
    crypto.write_file(path, document.encode())
    body = media_message("document", path=str(path), filename=f"data-{at.date().isoformat()}.json",
                         mime="text/plain", caption=wording.say("utter_data_export_ready", language), encrypted=True)
    return client.enqueue_in(session, contact.id, [body], source="rights:export")[0]


def export_data(session: Session, contact_id: int) -> dict:
    """Everything the clinic holds about a contact and its linked patients, readable by a person and a program."""
    contact = session.get(Contact, contact_id)
    links = session.scalars(select(ContactPatient).where(ContactPatient.contact_id == contact_id)).all()
    patient_ids = [link.patient_id for link in links]
    patients = session.scalars(select(Patient).where(Patient.id.in_(patient_ids))).all()
    appointments = session.scalars(select(Appointment).where(Appointment.patient_id.in_(patient_ids))
                                   .order_by(Appointment.start_at)).all()
    inbound = session.scalars(select(InboundMessage).where(InboundMessage.contact_id == contact_id)
                              .order_by(InboundMessage.id)).all()
    outbound = session.scalars(select(OutboundMessage).where(OutboundMessage.contact_id == contact_id)
                               .order_by(OutboundMessage.id)).all()
    tickets = session.scalars(select(HandoffTicket).where(HandoffTicket.contact_id == contact_id)).all()
    relation = {link.patient_id: link.relation.value for link in links}
    return {
        "exported_at": utcnow().isoformat(),
        "contact": {"phone": contact.wa_id, "whatsapp_name": contact.profile_name, "language": contact.language,
                    "first_message_at": contact.created_at},
        "patients": [{"first_name": p.first_name, "last_name": p.last_name, "date_of_birth": p.date_of_birth,
                      "language": p.language, "relation": relation[p.id]} for p in patients],
        "appointments": [{"start": a.start_at, "end": a.end_at, "status": a.status.value,
                          "practitioner": a.practitioner.display_name, "location": a.location.name,
                          "specialty": a.specialty.key if a.specialty else None, "reason": a.reason}
                         for a in appointments],
        "waitlist": [{"from": w.wanted_from, "until": w.wanted_until} for w in session.scalars(
            select(WaitlistEntry).where(WaitlistEntry.patient_id.in_(patient_ids)))],
        "consents": [{"purpose": c.purpose, "granted": c.granted, "notice_version": c.notice_version, "at": c.at,
                      "how": c.how} for c in session.scalars(
            select(ConsentRecord).where(ConsentRecord.contact_id == contact_id).order_by(ConsentRecord.id))],
        "messages_received": [{"at": m.sent_at, "type": m.type, "text": m.rasa_text} for m in inbound],
        "messages_sent": [{"at": m.created_at, "kind": m.kind, "by": m.source.split(":")[0],
                           "content": _readable(m.body)} for m in outbound],
        "handoffs": [{"at": t.created_at, "reason": t.reason, "status": t.status.value} for t in tickets],
        # the reports themselves are released by the identity-checked results flow, not in this copy
        "lab_results": [{"title": r.title, "registered_at": r.created_at, "status": r.status.value,
                         "delivered_at": r.delivered_at} for r in session.scalars(
            select(LabResult).where(LabResult.patient_id.in_(patient_ids)).order_by(LabResult.id))],
        "visit_ratings": [{"appointment_start": a.start_at, "rating": s.rating,
                           "comment": s.comment}
                          for s, a in session.execute(
            select(SatisfactionResponse, Appointment).join(Appointment)
            .where(SatisfactionResponse.contact_id == contact_id))],
    }


def _readable(body: dict) -> object:
    """The words of a sent message (text, caption, template parameters), without Graph API plumbing."""
    if body.get("type") == "text":
        return body["text"].get("body")
    kind = body.get("type")
    part = body.get(kind) if isinstance(body.get(kind), dict) else {}
    return part.get("caption") or part.get("body", {}).get("text") if kind == "interactive" else (
        part.get("caption") or part.get("filename") or part.get("name") or body)


def erase_content(session: Session, contact_ids: list[int], before: datetime | None) -> dict:
    """Remove message content (all of it, or older than `before`) of these contacts; counts, for the trail.

    Messages still waiting to be sent are not sent: an erased message stays erased.
    """
    if not contact_ids:
        return {"inbound": 0, "outbound": 0, "media": 0}
    old_in = [InboundMessage.contact_id.in_(contact_ids), InboundMessage.erased_at.is_(None)]
    old_out = [OutboundMessage.contact_id.in_(contact_ids), OutboundMessage.erased_at.is_(None)]
    if before is not None:
        old_in.append(InboundMessage.received_at < before)
        old_out += [OutboundMessage.created_at < before, OutboundMessage.status.not_in(UNSENT)]
    media = 0
    files = select(InboundMessage.media_path).where(*old_in, InboundMessage.media_path.isnot(None))
    for path in session.scalars(files):
        media += _remove(settings().media_dir / path)
    for body in session.scalars(select(OutboundMessage.body).where(*old_out)):
        part = body.get(body.get("type"))
        if isinstance(part, dict) and part.get(LOCAL_PATH):
            media += _remove(Path(part[LOCAL_PATH]))
    now = utcnow()
    if before is None:  # an erased message stays erased: what was still waiting is never sent
        session.execute(update(OutboundMessage).where(*old_out, OutboundMessage.status.in_(UNSENT)).values(
            status=OutboundStatus.failed, error_title="erased", failed_at=now).execution_options(
            synchronize_session=False))
    inbound = session.execute(update(InboundMessage).where(*old_in).values(
        payload=ERASED, rasa_text=None, media_path=None, erased_at=now).execution_options(synchronize_session=False))
    outbound = session.execute(update(OutboundMessage).where(*old_out).values(body=ERASED, erased_at=now)
                               .execution_options(synchronize_session=False))
    if before is None:
        session.execute(update(SatisfactionResponse).where(SatisfactionResponse.contact_id.in_(contact_ids))
                        .values(comment=None).execution_options(synchronize_session=False))
        tickets = select(HandoffTicket.id).where(HandoffTicket.contact_id.in_(contact_ids))
        session.execute(update(HandoffTicket).where(HandoffTicket.id.in_(tickets)).values(summary={})
                        .execution_options(synchronize_session=False))
        session.execute(update(TicketNote).where(TicketNote.ticket_id.in_(tickets)).values(text="")
                        .execution_options(synchronize_session=False))
    return {"inbound": inbound.rowcount, "outbound": outbound.rowcount, "media": media}


def _remove(path: Path) -> int:
    try:
        path.unlink()
        return 1
    except FileNotFoundError:
        return 0


def finish_erasures(db: Database, now: datetime | None = None) -> int:
    """Remove the Rasa history of approved erasures; the number finished (the rest wait for Rasa)."""
    at = now or utcnow()
    with db.reading() as session:
        waiting = [(row.id, row.contact.wa_id or row.contact.user_id) for row in session.scalars(
            select(DataRequest).where(DataRequest.kind == DataRequestKind.erasure,
                                      DataRequest.status == DataRequestStatus.approved))]
    finished = 0
    for request_id, sender_id in waiting:
        if not history.forget(sender_id):
            continue
        with db.transaction() as session:
            row = session.get(DataRequest, request_id, with_for_update=True)
            if row.status != DataRequestStatus.approved:
                continue
            row.status, row.done_at = DataRequestStatus.done, at
            audit.record(session, "rights.erasure_done", actor="system", subject=f"data_request:{row.id}", now=at)
            finished += 1
    return finished


@dataclass
class RetentionResult:
    inbound: int = 0
    outbound: int = 0
    media: int = 0
    histories: int = 0
    erasures_finished: int = 0


def retention_pass(db: Database, now: datetime | None = None) -> RetentionResult:
    """Remove message content older than MESSAGE_RETENTION_DAYS (0: keep), Rasa histories included,
    and finish erasures that waited for Rasa.
    """
    at = now or utcnow()
    result = RetentionResult(erasures_finished=finish_erasures(db, at))
    days = settings().message_retention_days
    if not days:
        return result
    before = at - timedelta(days=days)
    with db.transaction() as session:
        stale = session.scalars(select(Contact.id).where(or_(
            Contact.id.in_(select(InboundMessage.contact_id).where(InboundMessage.erased_at.is_(None),
                                                                   InboundMessage.received_at < before)),
            Contact.id.in_(select(OutboundMessage.contact_id).where(OutboundMessage.erased_at.is_(None),
                                                                    OutboundMessage.created_at < before))))).all()
        counts = erase_content(session, list(stale), before)
        result.inbound, result.outbound, result.media = counts["inbound"], counts["outbound"], counts["media"]
        if any(counts.values()):
            audit.record(session, "rights.retention", actor="system", data={**counts, "days": days}, now=at)
    with db.reading() as session:
        due = session.execute(select(Contact.id, Contact.wa_id, Contact.user_id).where(
            Contact.created_at < before, Contact.last_inbound_at.isnot(None),
            or_(Contact.history_cleared_before.is_(None),
                Contact.history_cleared_before < before - timedelta(days=1)))).all()
    for contact_id, wa_id, user_id in due:
        if history.forget_before(wa_id or user_id, before):
            with db.transaction() as session:
                session.execute(update(Contact).where(Contact.id == contact_id)
                                .values(history_cleared_before=before))
            result.histories += 1
    return result
