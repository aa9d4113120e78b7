"""The one WhatsApp sending client: a durable outbox in the clinic database, delivered to the Graph API.

Everyone who sends (the Rasa channel, the outreach jobs, the nurse inbox) calls `enqueue()`; a
delivery loop (`start()`, or `deliver_due()` once) sends what is due. Rules it keeps:

- **Durable and exactly-one-sender.** A row is claimed atomically (queued & due → sending, with a
  lease); two processes never send the same row, and a row left in `sending` by a crashed process
  is sent again once its lease runs out (at-least-once).
- **Per-recipient order.** A contact's next message is claimed only after the previous one was
  accepted (or given up on).
- **Retries** with exponential backoff and jitter for what `clinic.whatsapp.errors` calls
  transient; none for permanent errors; account-level problems are retried and logged at ERROR.
- **Pacing.** The phone number's throughput (`max_messages_per_second`, all processes together) and
  Meta's pair rate (about one message every 6 s to one person, short bursts allowed): before a
  message is claimed, the contact's recent sends (from the database, so every process sees them)
  must leave room in a token bucket of `pair_burst` messages refilled every `pair_interval` s. A
  turn of text + list + document goes out at once; a flood to one person is spaced.
- **The 24-hour window.** A free-form message to a contact who has not written for 24 h (or never)
  is stored `held`, and the window template ("the clinic has written to you") is queued instead,
  once per closed window. `contact_wrote()` releases held messages in order. A `131047` from Meta
  (the clocks disagreed) turns into the same fallback.
- **Status callbacks** move a row forward only (sent < delivered < read); `failed` records Meta's code.

Logs carry outbox ids, wamids and error codes, never text, names or phone numbers.

Use from a long-running process (the Rasa channel): `await client.start()` once, `enqueue()` from
anywhere (it wakes the loop), `await client.close()` at shutdown. From a one-shot job:
`client.enqueue(...)`, then `await client.deliver_due()` and `await client.close()` (or `start()`
first, so sending begins while the job still queues, and `finish()` at its end); what pacing or
backoff defers stays queued for the next run or for a process whose loop is running (every process
claims from the same outbox). Delivery is a pipeline: up to `concurrency` claimed rows in flight,
more claimed as slots free up, the answers committed together. Throughput pacing is shared: every
process takes its send turns from one schedule in the database (`_Throughput`), so the channel, the
outreach worker and the inbox together stay under the phone number's `max_messages_per_second`.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from clinic import audit, crypto
from clinic.db import Database
from clinic.models import Contact, OutboundMessage, OutboundStatus, SendTurns, utcnow
from clinic.whatsapp.errors import PAIR_RATE_LIMIT, RE_ENGAGEMENT, Action, GraphError, classify
from clinic.whatsapp.outbound import LOCAL_ENCRYPTED, LOCAL_PATH, MEDIA_KINDS, template_message
from clinic.whatsapp.types import WINDOW_REPLY_PAYLOAD, GraphConfig, StatusUpdate

logger = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)
WINDOW_SOURCE = "whatsapp:window"  # `source` of the window templates this client queues itself
OPAQUE_MAX = 512
_OUTBOX_OPAQUE = re.compile(r"^outbox:(\d+)$")
_MIN_WAIT = 0.02  # seconds: the shortest sleep of the delivery loop
_MAX_AHEAD = 10.0  # seconds: the furthest ahead the shared throughput schedule may legitimately be
# seconds a job queueing for another process's delivery loop leaves SQLite's write lock to it
_HANDOFF = 0.03

_ACTIVE = (OutboundStatus.queued, OutboundStatus.sending)
# Status changes the audit trail records; queued/held come with `message.outbound.queued`, and
# sending, pacing, retries and the window's hold and release are delivery mechanics.
_AUDITED = (OutboundStatus.sent, OutboundStatus.delivered, OutboundStatus.read, OutboundStatus.failed)
_RANK = {
    OutboundStatus.held: 0,
    OutboundStatus.queued: 0,
    OutboundStatus.sending: 0,
    OutboundStatus.sent: 1,
    OutboundStatus.delivered: 2,
    OutboundStatus.read: 3,
}


def _queued_entry(row: OutboundMessage) -> audit.Entry:
    return audit.Entry("message.outbound.queued", actor=row.source, subject=f"outbound:{row.id}",
                       data={"outbound_id": row.id, "contact_id": row.contact_id, "kind": row.kind,
                             "status": row.status})


def _audit_queued(session: Session, row: OutboundMessage) -> None:
    audit.record_many(session, [_queued_entry(row)])


def _status_entries(row: OutboundMessage, old: OutboundStatus, actor: str) -> list[audit.Entry]:
    """`message.outbound.status` when the row moved to sent, delivered, read or failed."""
    if row.status is old or row.status not in _AUDITED:
        return []
    return [audit.Entry("message.outbound.status", actor=actor, subject=f"outbound:{row.id}",
                        data={"outbound_id": row.id, "contact_id": row.contact_id, "wamid": row.wamid, "old": old,
                              "new": row.status, "error_code": row.error_code})]


def _audit_status(session: Session, row: OutboundMessage, old: OutboundStatus, actor: str) -> None:
    audit.record_many(session, _status_entries(row, old, actor))


def default_window_parameters(contact: Contact) -> list[str]:
    """Body parameters of the window template: the sandbox's (and the suggested Meta) template greets
    the contact by name (`{{1}}`); without a WhatsApp profile name a wave stands in, in any language.
    """
    name = " ".join((contact.profile_name or "").split())[:60]
    return [name or "👋"]


@dataclass
class _Job:
    """One claimed row, with what is needed to send it outside the claiming transaction."""

    id: int
    contact_id: int
    kind: str
    body: dict
    to: str | None
    recipient: str | None
    opaque: str
    attempts: int
    extra: dict = field(default_factory=dict)
    send_at: float = 0.0  # its throughput turn (seconds since the epoch), reserved with the claim


class _Throughput:
    """The phone number's send turns at `rate` a second, shared by every process through one row of
    `send_turns` (GCRA: the schedule's next free turn).

    A claim reserves its rows' turns in the claiming transaction (`reserve`, its last statement: the
    row stays locked until the commit), and each row is sent at its turn. A turn nobody used (no
    process had anything to send) is not lost for good: up to `burst` sends may go back to back to
    make it up, never more, so no stretch of time holds more than `burst + rate × its length` sends,
    however many processes send. Wall-clock time, so every process on the machine (or NTP-synced
    machines on one PostgreSQL) reads the same schedule.
    """

    def __init__(self, key: str, rate: float, burst: float = 1.0, postgres: bool = False) -> None:
        self.key = key
        self.insert = (postgresql if postgres else sqlite).insert  # the dialect's insert … on conflict
        self.interval = 1.0 / rate
        self.tolerance = (max(1.0, burst) - 1) * self.interval

    def reserve(self, session: Session, count: int) -> list[float]:
        """When each of `count` sends may go (seconds since the epoch), their turns taken."""
        if count == 0:
            return []
        query = select(SendTurns.next_turn).where(SendTurns.phone_number_id == self.key).with_for_update()
        scheduled = session.execute(query).scalar_one_or_none()
        if scheduled is None:  # the number's first send: its row, created by whoever comes first
            first_row = self.insert(SendTurns).values(phone_number_id=self.key, next_turn=0.0)
            session.execute(first_row.on_conflict_do_nothing())
            scheduled = session.execute(query).scalar_one()
        now = time.time()
        # claims reserve at most a second or so ahead: a schedule further on means the clock went back
        first = scheduled if now <= scheduled <= now + _MAX_AHEAD else now
        session.execute(update(SendTurns).where(SendTurns.phone_number_id == self.key)
                        .values(next_turn=first + count * self.interval))
        return [max(now, first + n * self.interval - self.tolerance) for n in range(count)]


class _GroupCommit:
    """Calls `commit(items)` in a worker thread for the items added while its previous call ran; each
    `add` returns once its item was committed (or raises what the commit raised).
    """

    def __init__(self, commit: Callable[[list], None]) -> None:
        self.commit = commit
        self.pending: list[tuple[Any, asyncio.Future]] = []
        self.running: asyncio.Task | None = None

    async def add(self, item: Any) -> None:
        done = asyncio.get_running_loop().create_future()
        self.pending.append((item, done))
        if self.running is None or self.running.done():
            self.running = asyncio.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                try:
                    await asyncio.to_thread(self.commit, [item for item, _ in batch])
                except Exception as error:  # noqa: BLE001 - handed to each waiter
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(error)
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self.running = None


def _blocked():
    """True for a row whose contact has an earlier message still queued or being sent (order per recipient)."""
    earlier = aliased(OutboundMessage)
    return exists().where(
        earlier.contact_id == OutboundMessage.contact_id,
        earlier.id < OutboundMessage.id,
        earlier.status.in_(_ACTIVE),
    )


def pair_delay(recent: Iterable[datetime], now: datetime, burst: int, interval: float) -> float:
    """Seconds to wait before one more message to a person who was sent `recent` (any order).

    Meta's pair rate as a token bucket (`burst` messages, one more every `interval` s): a send at t is
    allowed when every window [s, t] starting at an earlier send s holds at most
    `burst + (t - s) / interval` messages, this one included.
    """
    times = sorted(recent, reverse=True)
    earliest = now
    for count, start in enumerate(times, start=1):
        allowed_at = start + timedelta(seconds=(count + 1 - burst) * interval)
        earliest = max(earliest, allowed_at)
    return (earliest - now).total_seconds()


class WhatsAppClient:
    """Sends through the Graph API from the durable outbox; see the module docstring for the rules."""

    def __init__(
        self,
        db: Database,
        config: GraphConfig,
        *,
        retry_base_delay: float = 2.0,
        retry_max_delay: float = 900.0,
        max_attempts: int = 10,  # with the default delays: about half an hour of retrying
        pair_burst: int = 10,
        pair_interval: float = 6.0,
        sending_lease: float = 60.0,
        poll_interval: float = 2.0,
        concurrency: int = 16,
        request_timeout: float = 20.0,
        default_language: str | None = None,
        window_parameters: Callable[[Contact], list[str]] = default_window_parameters,
        window_quick_replies: tuple[str | None, ...] = (WINDOW_REPLY_PAYLOAD,),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.config = config
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.max_attempts = max_attempts
        self.pair_burst = pair_burst
        self.pair_interval = pair_interval
        # A claimed row is sent again by anyone once its lease runs out: the lease must outlast an
        # upload plus a send, each bounded by the request timeout, or a slow send would be doubled.
        self.sending_lease = max(sending_lease, 2 * request_timeout + 5)
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        self.request_timeout = request_timeout
        if default_language is None:
            from clinic.settings import settings

            default_language = settings().default_language
        self.default_language = default_language
        self.window_parameters = window_parameters
        self.window_quick_replies = window_quick_replies
        self.clock = clock
        self._postgres = db.engine.dialect.name == "postgresql"
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing = False
        # up to a quarter second of turns may be made up at once (Meta and the sandbox allow a second's)
        self._throughput = _Throughput(config.phone_number_id, config.max_messages_per_second,
                                       burst=config.max_messages_per_second / 4, postgres=self._postgres)
        # rows this process retries: id → when due; claimed first once due, so a retry keeps its place
        # ahead of rows queued after it instead of going behind a backlog (lost with the process: the
        # rows themselves stay queued for anyone)
        self._retries: dict[int, datetime] = {}
        self._retries_lock = threading.Lock()
        # the answers of sends in flight are committed together: one transaction for all that came
        # back while the previous one was committing
        self._acceptances = _GroupCommit(self._accepted_all)
        self._kick_lock = threading.Lock()
        # True in a process whose delivery loop runs in another process (`clinic outreach run --once`):
        # `wait_for_room` waits for that loop too
        self.delivery_elsewhere = False

    # --- enqueue and the 24-hour window (sync: one short transaction each) ---------------------

    def enqueue(self, contact_id: int, bodies: list[dict], *, source: str, opaque: str | None = None) -> list[int]:
        """Store `bodies` (Graph bodies without recipient) for `contact_id`, in order; the new row ids.

        Free-form messages to a contact outside the 24-hour window are held and the window template
        is queued instead (once per closed window). Wakes the delivery loop.
        """
        with self.db.transaction() as session:
            ids = self.enqueue_in(session, contact_id, bodies, source=source, opaque=opaque)
        self.kick()
        return ids

    async def reply(self, contact_id: int, bodies: list[dict], *, source: str) -> list[int]:
        """`enqueue` the bot's answer to a patient who is waiting for it, and send its first message
        from here when it may go now (claimed in the same transaction that queued it).

        The delivery loop shares its event loop with Rasa, whose predictions delayed the loop's
        wake-up and claim by 20-60 ms per reply (bench/RESULTS.md). Nothing changes in the rules:
        a held, paced or blocked (an earlier message still on its way) first message, and every
        message after it, go through the loop as usual. Raises only when nothing was queued, so a
        caller may retry; a failed send is the loop's to retry, as any claimed row.
        """
        ids, job = await asyncio.to_thread(self._enqueue_claiming_first, contact_id, bodies, source)
        if job is not None:
            try:
                await self._deliver(job)
            except Exception as error:  # noqa: BLE001 - the row keeps its lease; the loop sends it after
                logger.error("outbox %s: %s while sending the reply", job.id, type(error).__name__)
        self.kick()  # the messages after the first (the loop's claims skip them while it is in flight)
        return ids

    def _enqueue_claiming_first(self, contact_id: int, bodies: list[dict],
                                source: str) -> tuple[list[int], _Job | None]:
        now = self.clock()
        with self.db.transaction() as session:
            ids = self.enqueue_in(session, contact_id, bodies, source=source)
            row = session.get(OutboundMessage, ids[0])
            if row.status is not OutboundStatus.queued or session.execute(
                select(OutboundMessage.id).where(OutboundMessage.id == row.id, _blocked())
            ).first() is not None:
                return ids, None
            contact = session.get(Contact, contact_id)
            if pair_delay(self._recent_sends(session, contact_id, now), now, self.pair_burst, self.pair_interval) > 0:
                return ids, None
            job = self._start_sending(row, contact, now)
            [job.send_at] = self._throughput.reserve(session, 1)
            return ids, job

    def enqueue_in(self, session: Session, contact_id: int, bodies: list[dict], *, source: str,
                   opaque: str | None = None, audit_to: list[audit.Entry] | None = None) -> list[int]:
        """`enqueue` inside the caller's transaction, so the outbox rows commit (or vanish) together
        with the caller's own change (e.g. a reminder marked sent). Call `kick()` after the commit.
        `audit_to`: a list the audit entries are added to, for the caller to record at the end of its
        transaction (`audit.record_many`), instead of recording them now.
        """
        if opaque is not None and len(opaque) > OPAQUE_MAX:
            raise ValueError(f"biz_opaque_callback_data is limited to {OPAQUE_MAX} characters")
        for body in bodies:
            if not isinstance(body, dict) or not body.get("type"):
                raise ValueError("each body must be a Graph API message body with a `type`")
        now = self.clock()
        ids: list[int] = []
        rows: list[OutboundMessage] = []
        contact = self._lock_contact(session, contact_id)
        hold = any(body["type"] != "template" for body in bodies) and (
            not self._window_open(contact, now) or self._has_held(session, contact_id))
        held_any = False
        for body in bodies:
            kind = str(body["type"])
            status = OutboundStatus.held if hold and kind != "template" else OutboundStatus.queued
            held_any |= status is OutboundStatus.held
            row = OutboundMessage(
                contact_id=contact_id,
                kind=kind,
                body=body,
                source=source,
                biz_opaque_callback_data=opaque,
                status=status,
                next_attempt_at=now,
                created_at=now,
            )
            session.add(row)
            session.flush()
            if opaque is None:
                row.biz_opaque_callback_data = f"outbox:{row.id}"
            ids.append(row.id)
            rows.append(row)
        entries = [_queued_entry(row) for row in rows]
        if audit_to is None:
            audit.record_many(session, entries)
        else:
            audit_to += entries
        if held_any:
            self._ensure_window_template(session, contact, now)
        logger.info("outbox %s enqueued for contact %s (%s)", ids, contact_id, "held" if held_any else "queued")
        return ids

    def contact_wrote(self, contact_id: int, at: datetime) -> None:
        """The contact wrote at `at`: the window is open again, held messages go out in order."""
        with self.db.transaction() as session:
            self.contact_wrote_in(session, contact_id, at)
        self.kick()

    def contact_wrote_in(self, session: Session, contact_id: int, at: datetime) -> None:
        """`contact_wrote` inside the caller's transaction. Call `kick()` after the commit."""
        self.contacts_wrote_in(session, {contact_id: at})

    def contacts_wrote_in(self, session: Session, writes: dict[int, datetime]) -> None:
        """`contact_wrote` for several contacts (id → when they wrote) inside the caller's transaction:
        the webhook's store, so the windows are open before the bot is told there is something to
        answer. A few statements for all the contacts, not a few each: a burst of webhooks (Meta's
        redelivery after an outage) is stored, and acknowledged, in one short transaction. Call
        `kick()` after the commit.
        """
        if not writes:
            return
        now = self.clock()
        query = select(Contact).where(Contact.id.in_(writes)).order_by(Contact.id)  # row locks in one order
        if self._postgres:
            query = query.with_for_update()
        contacts = session.execute(query).scalars().all()
        if len(contacts) != len(writes):
            raise LookupError(f"contacts {sorted(set(writes) - {c.id for c in contacts})} do not exist")
        for contact in contacts:
            if contact.last_inbound_at is None or writes[contact.id] > contact.last_inbound_at:
                contact.last_inbound_at = writes[contact.id]
        here = [contact.id for contact in contacts if self._window_open(contact, now)]
        if not here:
            return
        released = session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.contact_id.in_(here), OutboundMessage.status == OutboundStatus.held)
            .values(status=OutboundStatus.queued, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        # A window template still waiting to go out would now only confuse: the patient is here.
        waiting = select(OutboundMessage).where(
            OutboundMessage.contact_id.in_(here),
            OutboundMessage.source == WINDOW_SOURCE,
            OutboundMessage.status == OutboundStatus.queued,
        )
        if self._postgres:
            waiting = waiting.with_for_update()
        templates = session.execute(waiting).scalars().all()
        for row in templates:
            row.status, row.failed_at, row.error_title = (
                OutboundStatus.failed, now, "window reopened before it was sent")
            _audit_status(session, row, OutboundStatus.queued, "system")
        if released or templates:
            logger.info("%d contacts wrote: %d held released, %d window templates dropped", len(here), released,
                        len(templates))

    def _lock_contact(self, session: Session, contact_id: int) -> Contact:
        query = select(Contact).where(Contact.id == contact_id)
        if self._postgres:
            query = query.with_for_update()
        contact = session.execute(query).scalar_one_or_none()
        if contact is None:
            raise LookupError(f"contact {contact_id} does not exist")
        return contact

    @staticmethod
    def _window_open(contact: Contact, now: datetime) -> bool:
        return contact.last_inbound_at is not None and now - contact.last_inbound_at < WINDOW

    @staticmethod
    def _has_held(session: Session, contact_id: int) -> bool:
        query = select(OutboundMessage.id).where(
            OutboundMessage.contact_id == contact_id, OutboundMessage.status == OutboundStatus.held
        )
        return session.execute(query.limit(1)).first() is not None

    def _ensure_window_template(self, session: Session, contact: Contact, now: datetime) -> int | None:
        """Queue the window template unless one was already queued since the contact last wrote."""
        since = contact.last_inbound_at or datetime(1970, 1, 1, tzinfo=timezone.utc)
        already = session.execute(
            select(OutboundMessage.id)
            .where(
                OutboundMessage.contact_id == contact.id,
                OutboundMessage.source == WINDOW_SOURCE,
                OutboundMessage.created_at >= since,
            )
            .limit(1)
        ).first()
        if already is not None:
            return None
        body = template_message(
            self.config.window_template,
            contact.language or self.default_language,
            body_parameters=self.window_parameters(contact),
            quick_replies=self.window_quick_replies,
        )
        row = OutboundMessage(
            contact_id=contact.id,
            kind="template",
            body=body,
            source=WINDOW_SOURCE,
            status=OutboundStatus.queued,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(row)
        session.flush()
        row.biz_opaque_callback_data = f"outbox:{row.id}"
        _audit_queued(session, row)
        logger.info("outbox %s: window template queued for contact %s", row.id, contact.id)
        return row.id

    def _window_fallback(self, session: Session, row: OutboundMessage, now: datetime, attempted_at: datetime) -> None:
        """Meta said 131047 for `row`: hold it (and the contact's other queued free-form messages) and
        queue the window template; or send it again at once if the contact wrote after the attempt.
        """
        contact = self._lock_contact(session, row.contact_id)
        row.wamid = None  # a new one comes with the next send; `sent_at` stays: Meta counted that send
        row.error_code = RE_ENGAGEMENT
        if contact.last_inbound_at is not None and contact.last_inbound_at > attempted_at and self._window_open(
            contact, now
        ):
            row.status = OutboundStatus.queued
            row.next_attempt_at = now
            logger.info("outbox %s: 131047 but contact %s wrote since; sent again", row.id, row.contact_id)
            return
        row.status = OutboundStatus.held
        session.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.contact_id == row.contact_id,
                OutboundMessage.status == OutboundStatus.queued,
                OutboundMessage.kind != "template",
            )
            .values(status=OutboundStatus.held)
            .execution_options(synchronize_session=False)
        )
        logger.info("outbox %s: 131047, held until contact %s writes", row.id, row.contact_id)
        self._ensure_window_template(session, contact, now)

    # --- status callbacks -----------------------------------------------------------------------

    def apply_status(self, status: StatusUpdate) -> None:
        """Record a status callback: forward moves only; `failed` keeps Meta's code; 131047 → window fallback."""
        with self.db.transaction() as session:
            self.apply_status_in(session, status)

    def apply_status_in(self, session: Session, status: StatusUpdate) -> None:
        """`apply_status` inside the caller's transaction (the ingest's store of the whole webhook)."""
        now = self.clock()
        row = self._row_for_status(session, status)
        if row is None:
            logger.info("status %s for unknown wamid %s ignored", status.status, status.wamid)
            return
        old = row.status
        when = status.timestamp
        if status.status == "failed":
            self._apply_failed(session, row, status, now)
            _audit_status(session, row, old, "whatsapp")
            return
        new = {"sent": OutboundStatus.sent, "delivered": OutboundStatus.delivered, "read": OutboundStatus.read}.get(
            status.status
        )
        if new is None:
            logger.info("outbox %s: status %r ignored", row.id, status.status)
            return
        if row.sent_at is None:
            row.sent_at = when
        if new in (OutboundStatus.delivered, OutboundStatus.read) and (
            row.delivered_at is None or when < row.delivered_at
        ):
            row.delivered_at = when  # read implies delivered, when `delivered` was skipped or is late
        if new is OutboundStatus.read and (row.read_at is None or when < row.read_at):
            row.read_at = when
        if row.status is not OutboundStatus.failed and _RANK[new] > _RANK.get(row.status, 0):
            row.status = new
        _audit_status(session, row, old, "whatsapp")

    def _row_for_status(self, session: Session, status: StatusUpdate) -> OutboundMessage | None:
        row = session.execute(
            select(OutboundMessage).where(OutboundMessage.wamid == status.wamid)
        ).scalar_one_or_none()
        by_opaque = False
        if row is None:
            # The callback may overtake the HTTP answer that tells us the wamid: our own opaque
            # `outbox:<id>` finds the row, but only while it is still being sent.
            match = _OUTBOX_OPAQUE.match(status.biz_opaque_callback_data or "")
            if match:
                row, by_opaque = session.get(OutboundMessage, int(match.group(1))), True
        if row is None:
            return None
        if self._postgres:
            # contact first, then the row: the order every writer here takes its locks in
            self._lock_contact(session, row.contact_id)
            session.refresh(row, with_for_update=True)
        if by_opaque:
            if row.status is not OutboundStatus.sending or row.wamid is not None:
                return None
            row.wamid = status.wamid
        return row

    def _apply_failed(self, session: Session, row: OutboundMessage, status: StatusUpdate, now: datetime) -> None:
        if row.status in (OutboundStatus.delivered, OutboundStatus.read, OutboundStatus.failed):
            logger.info("outbox %s: late failed (code %s) after %s ignored", row.id, status.error_code,
                        row.status.value)
            return
        if status.error_code == RE_ENGAGEMENT and row.kind != "template":
            self._window_fallback(session, row, now, attempted_at=row.sent_at or status.timestamp)
            return
        row.status = OutboundStatus.failed
        row.error_code = status.error_code
        row.error_title = (status.error_title or "")[:300] or None
        row.failed_at = status.timestamp
        verdict = classify(status.error_code, None)
        level = logging.ERROR if verdict.action is Action.alert else logging.WARNING
        logger.log(level, "outbox %s wamid %s failed: code %s (%s)", row.id, row.wamid, status.error_code,
                   verdict.action.value)

    # --- the delivery loop ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background delivery loop on the running event loop."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._closing = self._finishing = False
        await self._ensure_session()
        self._task = asyncio.create_task(self._run(), name="whatsapp-delivery")

    async def close(self) -> None:
        """Stop the loop (after the pass in progress) and close the HTTP session."""
        self._closing = True
        if self._task is not None:
            self._wake_now()
            try:
                await asyncio.wait_for(self._task, timeout=self.request_timeout + 5)
            except asyncio.TimeoutError:
                self._task.cancel()
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def finish(self) -> int:
        """Let the delivery loop send what is due now, then stop it: the end of a one-shot job that
        started the loop to send while it was still queueing. What pacing or backoff defers stays
        queued. Without a loop: one `deliver_due()`. The messages the loop accepted.
        """
        if self._task is None:
            return await self.deliver_due()
        self._finishing = True
        self._wake_now()
        accepted = await self._task  # still `_task` meanwhile: a `close()` stops it
        self._task = None
        return accepted

    def wait_for_room(self, backlog: int, poll: float = 0.25) -> None:
        """Block the calling thread (a job queueing many messages, never the event loop) while this
        client's delivery loop runs (or `delivery_elsewhere`) and more than `backlog` messages are
        queued and due: queueing far ahead of the sending gains nothing, and the job's transactions
        and CPU would slow the sending. With the delivery in another process on SQLite, it also pauses
        `_HANDOFF` s each time: a job committing back to back would keep that process's writes out (a
        waiting process is not always scheduled in time to take the lock between two transactions).
        """
        while (self._task is not None or self.delivery_elsewhere) and not self._closing \
                and self._queued_due() > backlog:
            time.sleep(poll)
        if self.delivery_elsewhere and not self._postgres:
            time.sleep(_HANDOFF)

    def _queued_due(self) -> int:
        with self.db.reading() as session:
            return session.scalar(select(func.count()).select_from(OutboundMessage).where(
                OutboundMessage.status == OutboundStatus.queued, OutboundMessage.next_attempt_at <= self.clock()))

    def kick(self) -> None:
        """Wake the delivery loop now (from any thread); a no-op when no loop runs."""
        with self._kick_lock:
            self._wake_now()

    def _wake_now(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    async def _run(self) -> int:
        assert self._wake is not None
        accepted = 0
        while not self._closing:
            self._wake.clear()
            finishing = self._finishing  # read before the pass: it covers all queued before `finish()`
            try:
                accepted += await self.deliver_due()
                delay = 0.0 if finishing else await asyncio.to_thread(self._next_due_in)
            except Exception as error:  # noqa: BLE001 - the loop must survive; no message text in logs
                logger.error("delivery pass failed: %s", type(error).__name__)
                delay = self.poll_interval
            if self._closing or finishing:
                break
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, delay))
            except asyncio.TimeoutError:
                pass
        return accepted

    def _next_due_in(self) -> float:
        """Seconds until the next row that could be claimed (a contact's next message) falls due."""
        with self.db.reading() as session:
            due = session.execute(
                select(OutboundMessage.next_attempt_at)
                .where(OutboundMessage.status.in_(_ACTIVE), ~_blocked())
                .order_by(OutboundMessage.next_attempt_at)
                .limit(1)
            ).scalar_one_or_none()
        if due is None:
            return self.poll_interval
        # never 0: a due row another process holds locked must not make this loop spin
        return min(self.poll_interval, max(_MIN_WAIT, (due - self.clock()).total_seconds()))

    async def deliver_due(self) -> int:
        """One pass: send everything that is due and may go now; the number of messages accepted.

        A pipeline: up to `concurrency` claimed rows are in flight (waiting for their turn at the
        throughput pacing, sending, committing the answer), and more rows are claimed while they
        are, as soon as a quarter of the slots is free, so sends never wait for a whole batch.
        """
        await self._ensure_session()
        accepted = 0
        sending: set[asyncio.Task] = set()
        claiming: asyncio.Task | None = None
        more = True  # rows may be due: claim again
        threshold = max(1, self.concurrency // 4)
        try:
            while True:
                stopping = self._closing and self._task is not None
                free = self.concurrency - len(sending)
                if claiming is None and more and not stopping and free > 0 and (free >= threshold or not sending):
                    claiming = asyncio.create_task(asyncio.to_thread(self._claim_batch, free))
                waiting = sending | ({claiming} if claiming else set())
                if not waiting:
                    return accepted
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is claiming:
                        claiming = None
                        jobs, examined = task.result()
                        more = examined > 0
                        sending |= {asyncio.create_task(self._deliver(job)) for job in jobs}
                    else:
                        sending.discard(task)
                        accepted += task.result()
                        # when the last claim found nothing: look again once all in flight are
                        # settled (their contacts' next messages may be claimable then)
                        more = more or not sending
        finally:
            # an error (the database, say) ends the pass, but not before what is in flight settled
            rest = sending | ({claiming} if claiming else set())
            if rest:
                await asyncio.gather(*rest, return_exceptions=True)

    # claiming

    def _claim(self, limit: int) -> list[_Job]:
        """Atomically move up to `limit` due rows (each the next of its contact) to `sending`."""
        return self._claim_batch(limit)[0]

    def _claim_batch(self, limit: int) -> tuple[list[_Job], int]:
        """The claimed jobs, and how many due rows were looked at (held or paced ones included).

        This process's own retries come first once due, then the due rows in `next_attempt_at` order.
        """
        now = self.clock()
        jobs: list[_Job] = []
        need_template: set[int] = set()
        expired: list[OutboundMessage] = []
        with self._retries_lock:
            retried = [row_id for row_id, at in self._retries.items() if at <= now][:limit]
            for row_id in retried:
                del self._retries[row_id]
        claimable = (OutboundMessage.status.in_(_ACTIVE), OutboundMessage.next_attempt_at <= now, ~_blocked())
        queries = [select(OutboundMessage).where(*claimable).order_by(OutboundMessage.next_attempt_at,
                                                                      OutboundMessage.id).limit(limit)]
        if retried:
            queries.insert(0, select(OutboundMessage).where(OutboundMessage.id.in_(retried), *claimable)
                           .order_by(OutboundMessage.id))
        if self._postgres:
            queries = [query.with_for_update(skip_locked=True, of=OutboundMessage) for query in queries]
        with self.db.transaction() as session:
            due: list[OutboundMessage] = []
            for query in queries:
                due += [row for row in session.execute(query).scalars() if row not in due]
            due = due[:limit]
            for row in due:
                contact = session.get(Contact, row.contact_id)
                if row.kind != "template" and (
                    not self._window_open(contact, now) or self._has_held_before(session, row)
                ):
                    row.status = OutboundStatus.held
                    need_template.add(row.contact_id)
                    logger.info("outbox %s held: contact %s's 24-hour window is closed", row.id, row.contact_id)
                    continue
                if row.status is OutboundStatus.sending and row.attempts >= self.max_attempts:
                    row.status = OutboundStatus.failed
                    row.failed_at = now
                    row.error_title = "lease expired on the last attempt"
                    logger.error("outbox %s failed: lease expired after %d attempts", row.id, row.attempts)
                    expired.append(row)
                    continue
                wait = pair_delay(self._recent_sends(session, row.contact_id, now), now, self.pair_burst,
                                  self.pair_interval)
                if wait > 0:
                    row.status = OutboundStatus.queued
                    row.next_attempt_at = now + timedelta(seconds=wait)
                    logger.debug("outbox %s paced %.1f s for contact %s", row.id, wait, row.contact_id)
                    continue
                jobs.append(self._start_sending(row, contact, now))
            for row in expired:
                _audit_status(session, row, OutboundStatus.sending, "system")
            for job, send_at in zip(jobs, self._throughput.reserve(session, len(jobs)), strict=True):
                job.send_at = send_at
        for contact_id in need_template:
            with self.db.transaction() as session:
                contact = self._lock_contact(session, contact_id)
                self._ensure_window_template(session, contact, now)
        return jobs, len(due)

    def _start_sending(self, row: OutboundMessage, contact: Contact, now: datetime) -> _Job:
        """Claim `row`: `sending` under a lease (past it, anyone may send it again)."""
        row.status = OutboundStatus.sending
        row.attempts += 1
        row.next_attempt_at = now + timedelta(seconds=self.sending_lease)
        return _Job(
            id=row.id,
            contact_id=row.contact_id,
            kind=row.kind,
            body=dict(row.body),
            to=contact.wa_id,
            recipient=None if contact.wa_id else contact.user_id,
            opaque=row.biz_opaque_callback_data or f"outbox:{row.id}",
            attempts=row.attempts,
        )

    @staticmethod
    def _has_held_before(session: Session, row: OutboundMessage) -> bool:
        query = select(OutboundMessage.id).where(
            OutboundMessage.contact_id == row.contact_id,
            OutboundMessage.status == OutboundStatus.held,
            OutboundMessage.id < row.id,
        )
        return session.execute(query.limit(1)).first() is not None

    def _recent_sends(self, session: Session, contact_id: int, now: datetime) -> list[datetime]:
        horizon = now - timedelta(seconds=max(3600.0, 4 * self.pair_burst * self.pair_interval))
        return list(
            session.execute(
                select(OutboundMessage.sent_at)
                .where(OutboundMessage.contact_id == contact_id, OutboundMessage.sent_at >= horizon)
                .order_by(OutboundMessage.sent_at.desc())
                .limit(200)
            ).scalars()
        )

    # sending

    async def _deliver(self, job: _Job) -> int:
        """Send one claimed row; 1 when Meta accepted it."""
        try:
            await self._upload_local_media(job)
            payload = self._addressed(job)
            await asyncio.sleep(max(0.0, job.send_at - time.time()))
            answer = await self._post_json(self.config.messages_url, payload)
            wamid = (answer.get("messages") or [{}])[0].get("id")
            if not wamid:
                raise GraphError(200, None, "answer without a message id")
        except GraphError as error:
            return await self._fail(job, error)
        except OSError as error:  # the local media file: missing or unreadable
            return await self._fail(job, GraphError(400, None, f"media file unreadable ({type(error).__name__})"))
        except Exception as error:  # noqa: BLE001 - a bug must not leave the row to its lease; no text in logs
            logger.error("outbox %s: %s while sending", job.id, type(error).__name__)
            return await self._fail(job, GraphError(400, None, f"client error ({type(error).__name__})"))
        await self._acceptances.add((job, wamid))
        return 1

    async def _fail(self, job: _Job, error: GraphError) -> int:
        """Record a failed attempt (see `_failed`); a retry is remembered so it keeps its place."""
        retry_at = await asyncio.to_thread(self._failed, job, error)
        if retry_at is not None:
            with self._retries_lock:
                self._retries[job.id] = retry_at
        return 0

    def _addressed(self, job: _Job) -> dict:
        payload: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
        payload.update({k: v for k, v in job.body.items() if k not in ("to", "recipient")})
        if job.to:
            payload["to"] = job.to
        else:
            payload["recipient"] = job.recipient
        payload["biz_opaque_callback_data"] = job.opaque
        return payload

    async def _upload_local_media(self, job: _Job) -> None:
        """Replace a local file by an uploaded media id (stored, so a retry does not upload again)."""
        kind = job.kind
        media = job.body.get(kind) if kind in MEDIA_KINDS else None
        if not isinstance(media, dict) or LOCAL_PATH not in media:
            return
        path = Path(media[LOCAL_PATH])
        data = await asyncio.to_thread(crypto.read_file if media.get(LOCAL_ENCRYPTED) else Path.read_bytes, path)
        mime = media.get("mime_type") or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        filename = media.get("filename") or path.name
        media_id = await self.upload_media(data, mime, filename)
        uploaded = {k: v for k, v in media.items() if k not in (LOCAL_PATH, LOCAL_ENCRYPTED, "mime_type")}
        uploaded["id"] = media_id
        job.body = {**job.body, kind: uploaded}
        await asyncio.to_thread(self._store_body, job.id, job.body)

    def _store_body(self, row_id: int, body: dict) -> None:
        with self.db.transaction() as session:
            session.execute(update(OutboundMessage).where(OutboundMessage.id == row_id).values(body=body))

    def _accepted(self, job: _Job, wamid: str) -> None:
        self._accepted_all([(job, wamid)])

    def _accepted_all(self, answers: list[tuple[_Job, str]]) -> None:
        """Record Meta's acceptance of these sends (wamid, sent) in one transaction."""
        now = self.clock()
        with self.db.transaction() as session:
            entries: list[audit.Entry] = []
            found = session.scalars(select(OutboundMessage).where(OutboundMessage.id.in_([j.id for j, _ in answers])))
            rows = {row.id: row for row in found}
            for job, wamid in answers:
                row = rows.get(job.id)
                if row is None:
                    continue
                old = row.status
                if row.wamid is None:
                    row.wamid = wamid
                row.sent_at = now
                row.error_code = None
                row.error_title = None
                if row.status in _ACTIVE:
                    row.status = OutboundStatus.sent
                entries += _status_entries(row, old, "whatsapp")
            audit.record_many(session, entries)
        for job, wamid in answers:
            logger.info("outbox %s accepted: wamid %s (attempt %d)", job.id, wamid, job.attempts)

    def _failed(self, job: _Job, error: GraphError) -> datetime | None:
        """Record a failed attempt: retried later (when, returned), failed, or the window fallback."""
        now = self.clock()
        verdict = error.verdict
        with self.db.transaction() as session:
            if verdict.action is Action.window and job.kind != "template":
                self._lock_contact(session, job.contact_id)
            row = session.get(OutboundMessage, job.id)
            if row is None or row.status is not OutboundStatus.sending:
                return None
            if verdict.action is Action.window and job.kind != "template":
                self._window_fallback(session, row, now, attempted_at=now)
                return None
            row.error_code = error.code
            row.error_title = (error.title or verdict.why)[:300]
            retry = verdict.retried and row.attempts < self.max_attempts
            if retry:
                row.status = OutboundStatus.queued
                row.next_attempt_at = now + timedelta(seconds=self._backoff(row.attempts, error))
            else:
                row.status = OutboundStatus.failed
                row.failed_at = now
                _audit_status(session, row, OutboundStatus.sending, "whatsapp")
        code = error.code if error.code is not None else f"HTTP {error.http_status}"
        if retry:
            level = logging.ERROR if verdict.action is Action.alert else logging.INFO
            logger.log(level, "outbox %s attempt %d: %s (%s), retried", job.id, job.attempts, code,
                       verdict.action.value)
        elif verdict.retried:
            logger.error("outbox %s failed after %d attempts: %s (%s)", job.id, job.attempts, code,
                         verdict.action.value)
        elif job.kind == "template" and error.code is not None and 132000 <= error.code < 133000:
            # a template error is configuration (name, language, parameters), not this one patient
            logger.error("outbox %s failed: template error %s (permanent)", job.id, code)
        else:
            logger.warning("outbox %s failed: %s (%s)", job.id, code, verdict.action.value)
        return row.next_attempt_at if retry else None

    def _backoff(self, attempts: int, error: GraphError) -> float:
        """Exponential backoff with equal jitter; the pair rate asks for at least one pair interval."""
        delay = min(self.retry_max_delay, self.retry_base_delay * 2 ** max(0, attempts - 1))
        if error.code == PAIR_RATE_LIMIT:
            delay = max(delay, min(self.pair_interval, self.retry_max_delay))
        delay = delay / 2 + random.uniform(0, delay / 2)
        if error.retry_after:
            delay = max(delay, min(error.retry_after, self.retry_max_delay))
        return delay

    # --- HTTP -------------------------------------------------------------------------------------

    async def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.request_timeout),
                headers={"Authorization": f"Bearer {self.config.access_token}"},
            )
        return self._session

    async def _call(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any, bytes, str]:
        """(status, JSON or None, raw bytes, content type); GraphError for an error or no answer."""
        session = await self._ensure_session()
        try:
            async with session.request(method, url, **kwargs) as response:
                raw = await response.read()
                content_type = response.headers.get("Content-Type", "")
                data = None
                if "json" in content_type:
                    try:
                        data = await response.json(content_type=None)
                    except ValueError:
                        data = None
                if response.status >= 400 or (isinstance(data, dict) and "error" in data):
                    raise _graph_error(response.status, data, response.headers.get("Retry-After"))
                return response.status, data, raw, content_type
        except asyncio.TimeoutError:
            raise GraphError(None, None, "timeout") from None
        except aiohttp.ClientError as error:
            raise GraphError(None, None, f"connection error ({type(error).__name__})") from None

    async def _post_json(self, url: str, payload: dict) -> dict:
        _, data, _, _ = await self._call("POST", url, json=payload)
        return data if isinstance(data, dict) else {}

    async def mark_read(self, wamid: str, typing: bool = True) -> bool:
        """Blue ticks for `wamid`, with the typing indicator while the bot works. Best effort, not queued."""
        payload: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
        if typing:
            payload["typing_indicator"] = {"type": "text"}
        try:  # not paced: Meta's throughput counts messages, and a receipt is none
            await self._post_json(self.config.messages_url, payload)
        except GraphError as error:
            logger.info("mark read %s failed: code %s, HTTP %s", wamid, error.code, error.http_status)
            return False
        return True

    async def upload_media(self, data: bytes, mime: str, filename: str) -> str:
        """Upload a file to the media endpoint; its media id (valid 30 days at Meta)."""
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime)
        form.add_field("file", data, filename=os.path.basename(filename) or "file", content_type=mime)
        _, answer, _, _ = await self._call("POST", self.config.media_url, data=form)
        media_id = answer.get("id") if isinstance(answer, dict) else None
        if not media_id:
            raise GraphError(200, None, "media upload answered without an id")
        logger.info("media uploaded: id %s (%d bytes)", media_id, len(data))
        return str(media_id)

    async def download_media(self, media_id: str) -> tuple[bytes, str]:
        """A received media file: (bytes, mime type). Two calls: the media's URL, then the file."""
        url = f"{self.config.api_base_url}/{self.config.api_version}/{media_id}"
        _, info, _, _ = await self._call("GET", url)
        if not isinstance(info, dict) or not info.get("url"):
            raise GraphError(200, None, "media lookup answered without a url")
        _, _, raw, content_type = await self._call("GET", info["url"])
        mime = info.get("mime_type") or content_type.split(";")[0].strip() or "application/octet-stream"
        return raw, mime


def _graph_error(http_status: int, data: Any, retry_after: str | None) -> GraphError:
    error = data.get("error") if isinstance(data, dict) else None
    code = title = None
    if isinstance(error, dict):
        try:
            code = int(error.get("code")) if error.get("code") is not None else None
        except (TypeError, ValueError):
            code = None
        title = str(error.get("message") or error.get("title") or "")[:300] or None
    seconds = None
    if retry_after:
        try:
            seconds = float(retry_after)
        except ValueError:
            seconds = None
    return GraphError(http_status, code, title, retry_after=seconds)


__all__ = ["WhatsAppClient", "pair_delay", "default_window_parameters", "WINDOW_SOURCE"]
