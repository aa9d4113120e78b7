"""Results ready: the RESULTS_TEMPLATE utility template ("your results are ready") once per new
result, with a quick reply whose payload (`/request_test_results{"result_id": "12"}`) starts the
identity check for that result.

The template says nothing about the result itself; the report goes out only after the date-of-birth
check (`clinic.results`, `clinic.identity`). Each result is decided once, in one transaction that
claims it (a conditional UPDATE of `notified_at`: a second worker updates nothing and moves on),
checks the `results` consent under the contact's lock, queues the template in the outbox and writes
the audit entry (`result.notified`, or `result.notify_skipped` with the reason: no_contact,
no_consent). Nothing is sent during quiet hours: the results wait for their end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from clinic import audit, consent
from clinic.db import Database
from clinic.models import Contact, LabResult, ResultStatus, utcnow
from clinic.outreach.quiet_hours import is_quiet
from clinic.outreach.reminders import ACTOR, language_of, recipient
from clinic.settings import settings
from clinic.whatsapp.client import WhatsAppClient
from clinic.whatsapp.outbound import template_message

logger = logging.getLogger(__name__)

SOURCE = "outreach:results"
CONSENT_PURPOSE = "results"


@dataclass
class PassResult:
    sent: int = 0
    skipped: int = 0


def button_payload(result_id: int) -> str:
    """The template's quick reply: straight into the identity check for this result."""
    return f'/request_test_results{{"result_id": "{result_id}"}}'


def send_due(db: Database, client: WhatsAppClient, now: datetime | None = None) -> PassResult:
    """One pass: decide every ready result not yet decided (none during quiet hours)."""
    now = now or utcnow()
    result = PassResult()
    if is_quiet(now, settings().quiet_hours, settings().zone):
        return result
    with db.reading() as session:
        ids = session.scalars(select(LabResult.id).where(LabResult.notified_at.is_(None),
                                                         LabResult.status == ResultStatus.ready)
                              .order_by(LabResult.id)).all()
    for result_id in ids:
        try:
            sent = notify(db, client, result_id, now)
        except Exception as error:  # noqa: BLE001 - one bad result must not hold up the others
            logger.error("results-ready of result %s failed: %s", result_id, type(error).__name__)
            continue
        if sent is True:
            result.sent += 1
        elif sent is False:
            result.skipped += 1
    if result.sent:
        client.kick()
    return result


def notify(db: Database, client: WhatsAppClient, result_id: int, now: datetime) -> bool | None:
    """Send (True) or skip (False) the template for one result; None if another worker decided it."""
    with db.reading() as session:
        row = session.get(LabResult, result_id)
        contact = recipient(session, row.patient_id) if row else None
        contact_id = contact.id if contact else None
    if contact_id is not None:
        consent.state(db, contact_id)  # the ledger may publish its first notice on first use: not inside ours
    with db.transaction() as session:
        if contact_id is not None:
            consent.lock_contact(session, contact_id)
        claimed = session.execute(update(LabResult).where(LabResult.id == result_id, LabResult.notified_at.is_(None))
                                  .values(notified_at=now).execution_options(synchronize_session=False)).rowcount
        if not claimed:
            return None
        row = session.get(LabResult, result_id, populate_existing=True)
        if contact_id is None:
            row.notify_reason = "no_contact"
        elif not consent.allows_in(session, contact_id, CONSENT_PURPOSE):
            row.notify_reason = "no_consent"
        else:
            language = language_of(session.get(Contact, contact_id), row)
            body = template_message(settings().results_template, language, [" ".join(row.patient.first_name.split())],
                                    quick_replies=[button_payload(row.id)])
            (row.notify_outbound_id,) = client.enqueue_in(session, contact_id, [body], source=SOURCE,
                                                          opaque=f"result:{row.id}")
        sent = row.notify_reason is None
        audit.record(session, "result.notified" if sent else "result.notify_skipped", actor=ACTOR,
                     subject=f"result:{row.id}", now=now,
                     data={"result_id": row.id, "patient_id": row.patient_id, "contact_id": contact_id,
                           "outbound_id": row.notify_outbound_id, "reason": row.notify_reason})
    logger.info("results-ready of result %s: %s", result_id, "sent" if sent else f"skipped ({row.notify_reason})")
    return sent
