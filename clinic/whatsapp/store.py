"""Inbound WhatsApp messages into the database, and back out for the bot.

`save` stores one webhook batch in one transaction before the webhook answers 200: contacts are
found (or created) by phone number and/or business-scoped user id, their profile name kept, a
`user_changed_number` moves the contact to the new number, and each message is inserted once per
`wamid` (the unique constraint is the guard, so a redelivery racing the first delivery is a no-op,
not a crash). The channel's workers then take pending rows in `id` order per contact.

Flood limit: a contact who sends the bot more than INBOUND_LIMIT_MESSAGES within
INBOUND_LIMIT_SECONDS has the excess stored `limited` (the nurses see it in the transcript; the bot
never answers it), so one number cannot take the bot's time from everyone else; the first limited
message of a window asks for one notice to the contact (`Stored.notice`). Red-flag symptoms and STOP
are never limited.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from clinic import audit
from clinic.consent import is_opt_out
from clinic.db import Database
from clinic.models import Contact, ContactPatient, InboundStatus, OutboundMessage, utcnow
from clinic.models import InboundMessage as InboundRow
from clinic.settings import settings
from clinic.triage import red_flag
from clinic.whatsapp.types import InboundMessage, Sender, StatusUpdate, WebhookBatch

logger = logging.getLogger(__name__)

SAVE_ATTEMPTS = 3  # a unique-key race between two deliveries (PostgreSQL) is retried, then raised


@dataclass(frozen=True)
class Stored:
    """A message stored by this delivery (a redelivered one is not returned again)."""

    id: int
    wamid: str
    contact_id: int
    sent_at: datetime
    for_bot: bool  # pending: the bot has something to answer
    notice: str | None = None  # the contact just passed the flood limit: tell them, in this language


@dataclass(frozen=True)
class Pending:
    """The next message a contact's worker hands to the bot."""

    id: int
    wamid: str
    contact_id: int
    sender_id: str  # the Rasa conversation: the contact's phone number, else its user id
    type: str
    rasa_text: str
    context_wamid: str | None
    biz_opaque_callback_data: str | None  # of the clinic's message this one replies to
    media_id: str | None
    media_path: str | None
    media_mime: str | None
    attempts: int
    received_at: datetime | None = None  # when the webhook stored it: the reply latency starts here


def save(
    db: Database,
    batch: WebhookBatch,
    apply_status: Callable[[Session, StatusUpdate], object] | None = None,
    wrote: Callable[[Session, dict[int, datetime]], object] | None = None,
) -> list[Stored]:
    """Store a batch in one transaction; returns the messages new to the database.

    Optional steps in the same transaction (the ingest's, so one commit covers a whole webhook):
    `wrote(session, {contact_id: at})` (the client's `contacts_wrote_in`) with each contact's latest new
    message, so the 24-hour window is open by the time anyone can answer; `apply_status(session,
    status)` (the client's `apply_status_in`) for each status callback, each in a savepoint: one that
    fails is logged and skipped (a status records progress; Meta's redelivery would meet the same
    failure), the messages and the other statuses commit.
    """
    statuses = batch.statuses if apply_status is not None else []
    if not batch.messages and not statuses:
        return []
    for attempt in range(1, SAVE_ATTEMPTS + 1):
        try:
            with db.transaction() as session:
                known = _known_wamids(session, [m.wamid for m in batch.messages])
                stored = [s for s in (_save_message(session, m, known) for m in batch.messages) if s]
                _audit(session, batch, stored)
                if wrote is not None:
                    wrote(session, latest_writes(stored))
                for status in statuses:
                    _apply_status(session, apply_status, status)
            return stored
        except (IntegrityError, OperationalError) as error:  # two first messages of one new contact
            if attempt == SAVE_ATTEMPTS:
                raise
            logger.info("webhook batch retried after %s", type(error).__name__)
            time.sleep(0.05 * attempt)
    return []


def _apply_status(session: Session, apply_status: Callable[[Session, StatusUpdate], object],
                  status: StatusUpdate) -> None:
    try:
        with session.begin_nested():
            apply_status(session, status)
    except (IntegrityError, OperationalError):
        raise  # the whole batch is retried
    except Exception as error:  # noqa: BLE001
        logger.error("status %s of %s not applied (%s)", status.status, status.wamid, type(error).__name__)


def latest_writes(stored: Iterable[Stored]) -> dict[int, datetime]:
    """When each contact last wrote among `stored` (for their 24-hour window)."""
    latest: dict[int, datetime] = {}
    for message in stored:
        if message.contact_id not in latest or latest[message.contact_id] < message.sent_at:
            latest[message.contact_id] = message.sent_at
    return latest


def _audit(session: Session, batch: WebhookBatch, stored: list[Stored]) -> None:
    """`message.inbound` for each new message: ids and Meta's type, never the text (after the inserts:
    the audit trail's lock is taken last).
    """
    types = {m.wamid: m.type for m in batch.messages}
    audit.record_many(session, [
        audit.Entry("message.inbound", actor=f"contact:{s.contact_id}", subject=f"inbound:{s.id}",
                    data={"inbound_id": s.id, "wamid": s.wamid, "contact_id": s.contact_id,
                          "type": types.get(s.wamid, "")[:30]})
        for s in stored])


def _known_wamids(session: Session, wamids: list[str]) -> set[str]:
    """Which of these messages are stored already (one query per 500, not one per message)."""
    known: set[str] = set()
    for start in range(0, len(wamids), 500):
        known.update(session.scalars(select(InboundRow.wamid).where(InboundRow.wamid.in_(wamids[start:start + 500]))))
    return known


def _save_message(session: Session, message: InboundMessage, known: set[str]) -> Stored | None:
    """Store one message unless its wamid is in `known` (stored before, or earlier in this batch)."""
    if message.wamid in known:
        logger.info("message %s already stored (redelivery)", message.wamid)
        return None
    known.add(message.wamid)
    if message.type == "system":
        contact = _follow_identity_change(session, message)
    else:
        contact = upsert_contact(session, message.sender)
    for_bot = message.rasa_text is not None
    limited, notice = _flood_limited(session, contact, message.rasa_text) if for_bot else (False, None)
    for_bot = for_bot and not limited
    row = InboundRow(
        wamid=message.wamid,
        contact_id=contact.id,
        phone_number_id=message.phone_number_id or "",
        type=message.type[:30],
        payload=message.raw,
        rasa_text=message.rasa_text,
        context_wamid=message.context_wamid,
        media_id=message.media.id if message.media else None,
        media_mime=message.media.mime_type if message.media else None,
        sent_at=message.timestamp,
        status=InboundStatus.pending if for_bot else InboundStatus.limited if limited else InboundStatus.handled,
        handled_at=None if for_bot else utcnow(),
    )
    try:
        with session.begin_nested():  # a concurrent delivery of the same wamid ends here, harmlessly
            session.add(row)
    except IntegrityError:
        logger.info("message %s stored by a concurrent delivery", message.wamid)
        return None
    if notice:
        logger.warning("contact %s over %d messages in %g s: further messages kept for staff, not answered "
                       "(from message %s)", contact.id, settings().inbound_limit_messages,
                       settings().inbound_limit_seconds, message.wamid)
    return Stored(row.id, row.wamid, contact.id, message.timestamp, for_bot, notice)


def _flood_limited(session: Session, contact: Contact, text: str) -> tuple[bool, str | None]:
    """(limited, notice language): over the contact's flood limit; the language when this is the
    first limited message of the window (one notice per window, not one per message).
    """
    if red_flag(text) is not None or is_opt_out(text):
        return False, None
    since = utcnow() - timedelta(seconds=settings().inbound_limit_seconds)
    recent = dict(session.execute(
        select(InboundRow.status, func.count())
        .where(InboundRow.contact_id == contact.id, InboundRow.received_at >= since, InboundRow.rasa_text.is_not(None))
        .group_by(InboundRow.status)
    ).all())
    answered = sum(count for status, count in recent.items() if status != InboundStatus.limited)
    if answered < settings().inbound_limit_messages:
        return False, None
    already_told = recent.get(InboundStatus.limited, 0) > 0
    return True, None if already_told else (contact.language or settings().default_language)


def find_contact(session: Session, wa_id: str | None, user_id: str | None) -> Contact | None:
    """The contact with this phone number, else with this business-scoped user id."""
    contact = None
    if wa_id:
        contact = session.scalars(select(Contact).where(Contact.wa_id == wa_id)).first()
    if contact is None and user_id:
        contact = session.scalars(select(Contact).where(Contact.user_id == user_id)).first()
    return contact


def upsert_contact(session: Session, sender: Sender) -> Contact:
    """The contact who wrote, created on first sight; learns the number, user id and profile name.

    A user first seen without a number (only a user id) and later with one is one contact: the
    user-id-only record is folded into the numbered one.
    """
    by_wa = session.scalars(select(Contact).where(Contact.wa_id == sender.wa_id)).first() if sender.wa_id else None
    by_user = (
        session.scalars(select(Contact).where(Contact.user_id == sender.user_id)).first() if sender.user_id else None
    )
    if by_wa is not None and by_user is not None and by_wa.id != by_user.id:
        _merge(session, keep=by_wa, drop=by_user)
    contact = by_wa or by_user
    if contact is None:
        name = (sender.profile_name or "")[:200] or None
        contact = Contact(wa_id=sender.wa_id, user_id=sender.user_id, profile_name=name)
        session.add(contact)
        session.flush()
        return contact
    if sender.wa_id and contact.wa_id != sender.wa_id:
        contact.wa_id = sender.wa_id
    if sender.user_id and contact.user_id != sender.user_id:
        contact.user_id = sender.user_id  # a new BSUID (they are regenerated with a number change)
    if sender.profile_name and contact.profile_name != sender.profile_name:
        contact.profile_name = sender.profile_name[:200]
    session.flush()
    return contact


def _follow_identity_change(session: Session, message: InboundMessage) -> Contact:
    """`user_changed_number` (and `user_changed_user_id`): the contact's record follows the user."""
    system = message.raw.get("system") if isinstance(message.raw.get("system"), dict) else {}
    new_user_id = system.get("user_id") if isinstance(system.get("user_id"), str) else None
    new_user_id = new_user_id if new_user_id and len(new_user_id) <= 100 else None
    contact = find_contact(session, message.sender.wa_id, message.sender.user_id)
    if contact is None:
        return upsert_contact(session, Sender(message.new_wa_id or message.sender.wa_id, new_user_id))
    if message.new_wa_id and message.new_wa_id != contact.wa_id:
        target = session.scalars(select(Contact).where(Contact.wa_id == message.new_wa_id)).first()
        if target is not None:  # they already wrote from the new number: one contact from now on
            _merge(session, keep=target, drop=contact)
            contact = target
        else:
            contact.wa_id = message.new_wa_id
        logger.info("contact %s moved to a new number (message %s)", contact.id, message.wamid)
    if new_user_id and new_user_id != contact.user_id:
        holder = session.scalars(select(Contact).where(Contact.user_id == new_user_id)).first()
        if holder is not None and holder.id != contact.id:
            _merge(session, keep=contact, drop=holder)
        contact.user_id = new_user_id
    session.flush()
    return contact


def _merge(session: Session, *, keep: Contact, drop: Contact) -> None:
    """Fold one contact into another: patients, messages and what the clinic knew move over."""
    logger.info("contact %s merged into contact %s", drop.id, keep.id)
    kept_patients = {link.patient_id for link in keep.links}
    for link in list(drop.links):
        if link.patient_id not in kept_patients:
            session.add(ContactPatient(contact_id=keep.id, patient_id=link.patient_id, relation=link.relation))
    session.execute(update(InboundRow).where(InboundRow.contact_id == drop.id).values(contact_id=keep.id))
    session.execute(
        update(OutboundMessage).where(OutboundMessage.contact_id == drop.id).values(contact_id=keep.id)
    )
    keep.language = keep.language or drop.language
    keep.profile_name = keep.profile_name or drop.profile_name
    if drop.last_inbound_at and (keep.last_inbound_at is None or keep.last_inbound_at < drop.last_inbound_at):
        keep.last_inbound_at = drop.last_inbound_at
    user_id = drop.user_id
    session.delete(drop)
    session.flush()
    if user_id and not keep.user_id:
        keep.user_id = user_id
        session.flush()


# --- what the channel's workers read and write ---------------------------------------------------


def contacts_with_pending(db: Database) -> dict[int, datetime]:
    """Contacts with messages stored but not yet handled (e.g. left by a process that died), with
    the time of their latest such message.
    """
    with db.reading() as session:
        rows = session.execute(
            select(InboundRow.contact_id, func.max(InboundRow.sent_at))
            .where(InboundRow.status == InboundStatus.pending)
            .group_by(InboundRow.contact_id)
            .order_by(InboundRow.contact_id)
        )
        return {contact_id: _aware(at) for contact_id, at in rows}


def _aware(at: datetime) -> datetime:
    """max() over a UTCDateTime column comes back without the column type: naive UTC."""
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def next_pending(db: Database, contact_id: int) -> Pending | None:
    """The contact's oldest pending message."""
    with db.reading() as session:
        row = session.scalars(
            select(InboundRow)
            .where(InboundRow.contact_id == contact_id, InboundRow.status == InboundStatus.pending)
            .order_by(InboundRow.id)
            .limit(1)
        ).first()
        if row is None:
            return None
        contact = session.get(Contact, contact_id)
        opaque = None
        if row.context_wamid:
            opaque = session.scalars(
                select(OutboundMessage.biz_opaque_callback_data).where(OutboundMessage.wamid == row.context_wamid)
            ).first()
        return Pending(
            id=row.id,
            wamid=row.wamid,
            contact_id=contact_id,
            sender_id=Sender(contact.wa_id, contact.user_id).rasa_sender_id,
            type=row.type,
            rasa_text=row.rasa_text or "",
            context_wamid=row.context_wamid,
            biz_opaque_callback_data=opaque,
            media_id=row.media_id,
            media_path=row.media_path,
            media_mime=row.media_mime,
            attempts=row.attempts,
            received_at=row.received_at,
        )


def attach_media(db: Database, inbound_id: int, path: str, mime: str | None) -> None:
    with db.transaction() as session:
        row = session.get(InboundRow, inbound_id)
        row.media_path = path
        row.media_mime = mime or row.media_mime


def mark_handled(db: Database, inbound_id: int, outcome: tuple[str | None, bool] | None = None) -> None:
    """Handled; `outcome` is what the bot made of it (intent, fell back), when the channel knows."""
    with db.transaction() as session:
        row = session.get(InboundRow, inbound_id)
        row.status = InboundStatus.handled
        row.attempts += 1
        row.handled_at = utcnow()
        if outcome is not None:
            row.nlu_intent, row.nlu_fallback = outcome


def record_failure(db: Database, inbound_id: int, max_attempts: int) -> bool:
    """Count a failed attempt; True when it was the last one (the message is then `failed`)."""
    with db.transaction() as session:
        row = session.get(InboundRow, inbound_id)
        row.attempts += 1
        if row.attempts >= max_attempts:
            row.status = InboundStatus.failed
            row.handled_at = utcnow()
            return True
        return False


def contact_for_sender_id(db: Database, sender_id: str) -> int | None:
    """The contact behind a Rasa conversation id (a phone number or a user id)."""
    with db.reading() as session:
        contact = find_contact(session, sender_id if sender_id.isdigit() else None, sender_id)
        return contact.id if contact else None


def statuses_of(db: Database, wamids: Iterable[str]) -> dict[str, InboundStatus]:
    with db.reading() as session:
        rows = session.execute(select(InboundRow.wamid, InboundRow.status).where(InboundRow.wamid.in_(list(wamids))))
        return {wamid: status for wamid, status in rows}
