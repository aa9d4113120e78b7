"""The audit trail: append-only, hash-chained entries of who did what, with ids and metadata only.

`record()` appends one entry inside the caller's transaction, so the entry commits or rolls back
with the change it describes; `record_many()` appends several at once (one read and one write of
the chain head for all: a batch of reminders, the acceptances of many sends). Each entry has a
`seq` (1, 2, 3, ...), its time (UTC), a `kind`, an `actor`, an optional `subject`
(`"appointment:12"`) and `data`: ids, codes, statuses and times, never message text, names, phone
numbers or dates of birth (keys that would hold them are refused).
`hash` is the SHA-256 of the entry's fields and the previous entry's hash, serialised as sorted-key
JSON; the chain head (`audit_head`) keeps the last seq and hash, so deleting the last entries shows.

Appends are serialised, so two writers never fork the chain: on PostgreSQL by a transaction-level
advisory lock, on SQLite by the write lock every transaction takes. Take it last: call `record()`
(or `record_many()`) at the end of a transaction, after the rows it describes are written (and locked).

Kinds (the actor in brackets):

- `message.inbound` (contact:ID): inbound id, wamid, contact id, Meta's type.
- `message.outbound.queued` (the outbox source: bot, outreach:..., inbox:..., whatsapp:window):
  outbound id, contact id, kind, status (queued or held).
- `message.outbound.status` (whatsapp or system): outbound id, wamid, old and new status
  (sent, delivered, read, failed), Meta's error code. Sending, pacing and retries are not recorded.
- `appointment.booked`, `.rescheduled` (the old appointment is cancelled by the move), `.cancelled`,
  `.confirmed` (whoever the caller names): appointment and patient ids, old and new status, slot and start.
- `appointment.completed`, `.no_show` (staff through `clinic appointments complete|no-show`: cli; or
  system:outreach after NO_SHOW_AFTER_HOURS): as the other booking changes. A waitlist booking's
  `appointment.booked` also names the `offer_id`.
- `waitlist.offered`, `.accepted`, `.declined`, `.expired`, `.gone` (system:outreach, or the contact
  answering): offer, entry, slot, patient, contact, outbound and appointment ids.
- `after_visit.sent`, `after_visit.skipped` (system:outreach): message, appointment, contact and
  outbound ids, kind (followup, survey, rebook), the reason of a skip (no_consent, no_contact, late,
  not_configured).
- `satisfaction.rated` (contact:ID): appointment and contact ids, the rating; `satisfaction.commented`:
  that a comment was given (never its text).
- `reminder.sent`, `reminder.skipped` (system:outreach): reminder, appointment, contact and outbound
  ids, offset in hours, the reason of a skip (no_consent, no_contact, late, superseded).
- `ticket.opened`, `ticket.updated` (bot): ticket and contact ids, reason and priority codes.
- `staff.view`, `.view_media`, `.claim`, `.reply`, `.note`, `.release`, `.reassign`, `.resolve`
  (staff:ID): ticket id (and the new holder for a reassign).
- `staff.login`, `staff.login_failed` (cause: password, inactive, unknown_user), `staff.login_refused`
  (locked), `staff.locked_out` (until), `staff.logout` (staff:ID, or `anonymous` for an unknown user).
- `consent.granted`, `consent.withdrawn` (contact:ID): contact id, purpose, notice version, how.
- `identity.passed`, `identity.failed` (contact:ID): contact and patient ids, method (chat, link),
  outcome (passed, failed, locked), attempts left, lockout end; never the answer (`clinic.identity`).
- `result.registered` (cli, lab:api): result and patient ids, source, kind, delivery mode, size;
  `result.notified`, `result.notify_skipped` (system:outreach): result, patient, contact and outbound
  ids, the reason of a skip (no_contact, no_consent); `result.link_sent` (contact:ID): result,
  patient and contact ids, expiry; `result.delivered` (contact:ID): result, patient and contact ids,
  mode (document, link). Never a result's title (`clinic.results`).
- `staff.view_result` (staff:ID): the ticket whose report a nurse opened.

Actors: `staff:ID`, `contact:ID`, `bot`, `system`, `cli`, `whatsapp` (Meta's answers and status
callbacks), an outbox source. A contact named by its WhatsApp sender id (phone number or user id, as
the Rasa actions name it) is recorded by its contact id: phone numbers never reach the trail.

Command line: `clinic audit verify` walks the chain and names the first problem (an entry altered,
missing, inserted or reordered; the head out of step) or prints `ok, N entries` and the head hash,
worth noting outside the database: a chain without a secret key shows tampering by anyone who does
not also recompute every later hash and the head. `clinic audit export --from DAY --to DAY
[--output FILE]` writes the entries of those clinic days as JSON Lines for an auditor.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from enum import Enum
from typing import Any

from sqlalchemy import func, or_, select, text
from sqlalchemy.orm import Session

from clinic.db import Database
from clinic.models import AuditEntry, AuditHead, Contact, utcnow

GENESIS = "0" * 64  # the prev_hash of entry 1
HEAD_ID = 1
LOCK_KEY = 0x61756469_74  # "audit": PostgreSQL advisory lock that serialises appends
# Keys that would carry patient data or message text: refused, so a slip shows in the tests.
FORBIDDEN_KEYS = frozenset({
    "text", "body", "caption", "name", "first_name", "last_name", "full_name", "profile_name", "phone",
    "wa_id", "user_id", "date_of_birth", "dob", "password", "token", "username", "summary", "note",
})
_CONTACT_ACTOR = re.compile(r"^contact:(.+)$")


class AuditError(ValueError):
    """An entry that may not be recorded as given (e.g. a key that would hold patient data)."""


def _stamp(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(value: Any, path: str = "data") -> Any:
    """JSON-ready copy of `value`: times as UTC stamps, enums as their value; anything else refused."""
    if isinstance(value, Enum):
        return _plain(value.value, path)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise AuditError(f"{path}: naive datetime")
        return _stamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{path}[]") for item in value]
    if isinstance(value, dict):
        plain = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditError(f"{path}: keys must be strings")
            if key.lower() in FORBIDDEN_KEYS:
                raise AuditError(f"{path}.{key}: the audit trail holds ids and metadata, not {key}")
            plain[key] = _plain(item, f"{path}.{key}")
        return plain
    raise AuditError(f"{path}: {type(value).__name__} is not recordable")


def digest(seq: int, at: datetime, kind: str, actor: str, subject: str | None, data: dict, prev_hash: str) -> str:
    """SHA-256 (hex) of an entry: its fields and the previous hash as sorted-key, compact JSON."""
    canonical = json.dumps(
        {"seq": seq, "at": _stamp(at), "kind": kind, "actor": actor, "subject": subject, "data": data,
         "prev_hash": prev_hash},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _entry_digest(entry: AuditEntry, seq: int | None = None) -> str:
    seq = entry.seq if seq is None else seq
    return digest(seq, entry.at, entry.kind, entry.actor, entry.subject, entry.data, entry.prev_hash)


def _actor(session: Session, actor: str) -> str:
    """`contact:<phone number or user id>` becomes `contact:<contact id>`; other actors stay as given."""
    match = _CONTACT_ACTOR.match(actor)
    if not match:
        return actor
    ref = match.group(1)
    found = session.scalars(select(Contact.id).where(or_(Contact.wa_id == ref, Contact.user_id == ref))).first()
    if found is None and ref.isdigit() and session.get(Contact, int(ref)) is not None:
        found = int(ref)
    return f"contact:{found if found is not None else 'unknown'}"


@dataclass(frozen=True)
class Entry:
    """An entry to append with `record_many` (the arguments of `record`)."""

    kind: str
    actor: str
    subject: str | None = None
    data: dict | None = None
    now: datetime | None = None


def record(
    session: Session,
    kind: str,
    *,
    actor: str,
    subject: str | None = None,
    data: dict | None = None,
    now: datetime | None = None,
) -> int:
    """Append an entry in the session's transaction; its seq. Call it after the change it describes."""
    return record_many(session, [Entry(kind, actor, subject, data, now)])[0]


def record_many(session: Session, entries: list[Entry]) -> list[int]:
    """Append entries in this order in the session's transaction; their seqs. One lock, one read and
    one write of the chain head for them all: a transaction that describes many changes (a batch of
    reminders, the acceptances of many sends) records them together, at its end.
    """
    rows = []
    for entry in entries:  # all checked before anything is written
        if not entry.kind or not entry.actor:
            raise AuditError("an entry needs a kind and an actor")
        rows.append({"kind": entry.kind[:40], "subject": entry.subject, "data": _plain(entry.data or {}),
                     "at": (entry.now or utcnow()).astimezone(timezone.utc), "actor": entry.actor})
    if not rows:
        return []
    session.flush()  # the changes described take their row locks before the trail's lock, never after
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == HEAD_ID)).first()
    seq, prev_hash = head if head is not None else (0, GENESIS)
    for row in rows:
        seq += 1
        row.update(seq=seq, actor=_actor(session, row["actor"])[:100], prev_hash=prev_hash)
        row["hash"] = prev_hash = digest(seq, row["at"], row["kind"], row["actor"], row["subject"], row["data"],
                                         prev_hash)
    session.execute(AuditEntry.__table__.insert(), rows)
    if head is None:
        session.execute(AuditHead.__table__.insert().values(id=HEAD_ID, seq=seq, hash=prev_hash))
    else:
        session.execute(AuditHead.__table__.update().where(AuditHead.id == HEAD_ID).values(seq=seq, hash=prev_hash))
    return [row["seq"] for row in rows]


# --- verification -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """`ok` with the number of entries and the head hash, or the first problem and where it is."""

    ok: bool
    entries: int
    head: str
    problem: str | None = None
    seq: int | None = None  # the entry the problem is reported at

    def __str__(self) -> str:
        if self.ok:
            return f"ok, {self.entries} entries, head {self.head}"
        return self.problem or "broken"


def _span(first: int, last: int) -> str:
    return f"entry {first} is" if first == last else f"entries {first}-{last} are"


def verify(db: Database) -> Verdict:
    """Walk the chain in seq order; report the first entry altered, missing, inserted or reordered."""
    with db.reading() as session:
        head = session.get(AuditHead, HEAD_ID)
        head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
        highest = max(head_seq, session.scalar(select(func.max(AuditEntry.seq))) or 0)
        rows = session.execute(select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=1000))
        count, last, problem = _walk(session, iter(rows.scalars()), highest)
        if problem is None:
            problem = _check_head(head is not None, head_seq, head_hash, last)
    if problem is not None:
        return Verdict(False, count, head_hash, problem[1], problem[0])
    return Verdict(True, count, head_hash)


def _walk(
    session: Session, entries: Iterator[AuditEntry], highest: int
) -> tuple[int, AuditEntry | None, tuple[int, str] | None]:
    """(entries seen, the last one, the first problem as (seq, message) or None)."""
    before: AuditEntry | None = None  # the entry before `previous`
    previous: AuditEntry | None = None
    count = 0
    current = next(entries, None)
    while current is not None:
        following = next(entries, None)
        count += 1
        problem = _check(session, before, previous, current, following, highest)
        if problem is not None:
            return count, current, problem
        before, previous, current = previous, current, following
    return count, previous, None


def _check(
    session: Session, before: AuditEntry | None, previous: AuditEntry | None, entry: AuditEntry,
    following: AuditEntry | None, highest: int,
) -> tuple[int, str] | None:
    expected_hash = previous.hash if previous else GENESIS
    expected_seq = previous.seq + 1 if previous else 1
    after = f"entry {previous.seq}" if previous else "the start"
    original = entry.seq if _entry_digest(entry) == entry.hash else _original_seq(session, entry, highest)
    if original is None:
        if following is not None and following.prev_hash == expected_hash:
            return entry.seq, f"entry {entry.seq} was inserted: entry {following.seq} follows {after}"
        return entry.seq, f"entry {entry.seq} was altered: its content does not match its hash"
    if entry.prev_hash == expected_hash:
        if original != entry.seq:
            return entry.seq, f"entry {entry.seq} was renumbered: it is entry {original}"
        if entry.seq != expected_seq:
            return entry.seq, f"entry {entry.seq} follows entry {expected_seq - 1}: numbering altered"
        return None
    predecessor = _by_hash(session, entry.prev_hash)
    if predecessor is None:
        if original > expected_seq:
            return expected_seq, f"{_span(expected_seq, original - 1)} missing (deleted)"
        assert previous is not None  # a missing predecessor of entry 1 would be GENESIS
        return previous.seq, (f"entry {previous.seq} was altered and re-hashed: "
                              f"entry {entry.seq} does not follow it")
    if predecessor.seq >= entry.seq:
        return entry.seq, (f"entries reordered: entry {entry.seq} (originally {original}) belongs after "
                           f"entry {predecessor.seq}")
    assert previous is not None  # otherwise the predecessor would be before the first entry
    if entry.prev_hash == (before.hash if before else GENESIS):
        return previous.seq, (f"entry {previous.seq} was inserted: entry {entry.seq} (originally {original}) "
                              f"follows entry {predecessor.seq}")
    return predecessor.seq + 1, f"entries {predecessor.seq + 1}-{previous.seq} were inserted"


class _Genesis:
    seq = 0


def _by_hash(session: Session, hash_: str) -> Any:
    if hash_ == GENESIS:
        return _Genesis()
    return session.scalars(select(AuditEntry).where(AuditEntry.hash == hash_).limit(1)).first()


def _original_seq(session: Session, entry: AuditEntry, highest: int) -> int | None:
    """The seq this entry's hash was made with, if only its number changed (moved); None if altered.

    Likely numbers first; then every number up to the highest seen (only ever for one entry).
    """
    predecessor = _by_hash(session, entry.prev_hash)
    likely = [entry.seq - 1, entry.seq + 1] + ([predecessor.seq + 1] if predecessor is not None else [])
    candidates = [*likely, *range(1, highest + 2)]
    return next((seq for seq in candidates if seq > 0 and _entry_digest(entry, seq) == entry.hash), None)


def _check_head(exists: bool, head_seq: int, head_hash: str, last: AuditEntry | None) -> tuple[int, str] | None:
    last_seq = last.seq if last else 0
    if not exists:
        return None if last is None else (last_seq, "the chain head is missing")
    if head_seq > last_seq:
        return last_seq + 1, f"{_span(last_seq + 1, head_seq)} missing (deleted from the end)"
    if head_seq < last_seq:
        return head_seq + 1, f"{_span(head_seq + 1, last_seq)} not in the chain head (inserted after the end)"
    if last is not None and head_hash != last.hash:
        return last_seq, f"entry {last_seq} was altered and re-hashed (or the chain head was altered)"
    return None


# --- export -----------------------------------------------------------------------------------------


def as_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq, "at": _stamp(entry.at), "kind": entry.kind, "actor": entry.actor,
        "subject": entry.subject, "data": entry.data, "prev_hash": entry.prev_hash, "hash": entry.hash,
    }


def export(db: Database, start: datetime, end: datetime) -> Iterator[str]:
    """Entries with `start <= at < end` as JSON Lines (one sorted-key object per line, with newline)."""
    with db.reading() as session:
        rows = session.execute(
            select(AuditEntry)
            .where(AuditEntry.at >= start, AuditEntry.at < end)
            .order_by(AuditEntry.seq)
            .execution_options(yield_per=1000)
        )
        for entry in rows.scalars():
            yield json.dumps(as_dict(entry), sort_keys=True, ensure_ascii=False) + "\n"
