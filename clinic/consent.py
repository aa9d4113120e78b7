"""Consent: the privacy notice (versioned, both languages) and the ledger of who consented to what.

Three purposes, each granted or withdrawn on its own: `appointments` (booking and reminders),
`results` (results ready / delivered) and `followups` (messages after a visit, surveys). Every
decision is a new `consent_records` row (contact, purpose, notice version, granted or withdrawn,
when, how) and an audit entry; nothing is updated, so the ledger shows the whole history. A
purpose counts as granted only if its latest row grants it *under the current notice*: publishing
a new notice version makes everyone be asked again.

STOP works by keyword, in both languages, at any moment (`is_opt_out`): it withdraws every purpose
at once. Opting in again (`is_opt_in`) shows the consent step again.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clinic import audit
from clinic.db import Database
from clinic.models import ConsentRecord, Contact, PrivacyNotice, utcnow

PURPOSES = ("appointments", "results", "followups")
# The choices the consent step offers (button payloads carry the key).
CHOICES = {
    "all": PURPOSES,
    "appointments_results": ("appointments", "results"),
    "appointments": ("appointments",),
    "none": (),
}
LANGUAGES = ("it", "en")
DEFAULT_NOTICE_VERSION = "1"
DEFAULT_NOTICE_DIR = Path(__file__).resolve().parent / "privacy_notice"

# Whole messages that mean "stop writing to me" / "write to me again" (after normalising case,
# accents, punctuation and emojis). Single words only as the whole message: "basta che sia di
# mattina" is not an opt-out.
OPT_OUT_MESSAGES = {
    "stop", "stop all", "stopall", "basta", "basta messaggi", "annulla iscrizione", "annullare iscrizione",
    "cancellami", "disiscrivimi", "disiscrivi", "unsubscribe", "opt out", "optout", "revoca", "revoca consenso",
}
OPT_OUT_PHRASES = (
    "non scrivetemi piu", "non scrivermi piu", "non mandatemi piu", "non inviatemi piu", "non voglio piu ricevere",
    "non voglio piu messaggi", "revoco il consenso", "ritiro il consenso", "revocare il consenso",
    "cancellatemi dalla lista", "toglietemi dalla lista", "smettete di scrivermi", "smettetela di scrivermi",
    "smetti di scrivermi", "stop writing to me",
    "stop messaging me", "stop sending me", "stop texting me", "dont message me", "do not message me",
    "dont text me", "do not text me", "dont contact me", "do not contact me", "no more messages",
    "withdraw my consent", "withdraw consent", "unsubscribe me",
)
OPT_IN_MESSAGES = {
    "start", "riattiva", "riattiva messaggi", "iscrivimi", "avvia", "opt in", "optin", "subscribe",
    "resubscribe", "unstop", "privacy", "consenso", "consensi", "i miei consensi", "consent", "my consent",
    "my consents",
}
OPT_IN_PHRASES = (
    "voglio di nuovo ricevere", "voglio ricevere di nuovo", "riattivate i messaggi", "riattiva i messaggi",
    "potete scrivermi di nuovo", "scrivetemi di nuovo", "ridare il consenso",
    "start messaging me again", "message me again", "send me messages again", "you can message me again",
    "opt back in", "subscribe again", "i want messages again", "give my consent again",
)
# Not here: "do il consenso" / "I give my consent" answer the consent step (intent give_consent, recorded
# as "all"); as opt-in phrases they would only show the step again.


class ConsentError(ValueError):
    """A bad purpose, choice or notice."""


@dataclass(frozen=True)
class Notice:
    version: str
    language: str
    text: str


@dataclass(frozen=True)
class ConsentState:
    """Under the current notice: whether the contact has decided at all, and what they granted."""

    version: str
    asked: bool
    granted: frozenset[str]

    def allows(self, purpose: str) -> bool:
        return purpose in self.granted


def _words(text: str) -> str:
    """Lower case, no accents, punctuation or emojis, single spaces: "Non scrivetemi più!!" → "non scrivetemi piu"."""
    plain = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w\s]|_", " ", plain.replace("'", "").replace("’", "")).split())


def is_opt_out(text: str) -> bool:
    words = _words(text)
    return words in OPT_OUT_MESSAGES or any(phrase in words for phrase in OPT_OUT_PHRASES)


def is_opt_in(text: str) -> bool:
    words = _words(text)
    return not is_opt_out(text) and (words in OPT_IN_MESSAGES or any(p in words for p in OPT_IN_PHRASES))


# --- the notice -----------------------------------------------------------------------------------


def publish(db: Database, version: str, texts: dict[str, str], now: datetime | None = None) -> None:
    """Publish a notice version in both languages; from now on consents are asked for it."""
    version = version.strip()
    if not version or len(version) > 40:
        raise ConsentError("a notice version is 1-40 characters")
    if set(texts) != set(LANGUAGES) or not all(t.strip() for t in texts.values()):
        raise ConsentError("a notice needs a text in Italian and in English")
    at = now or utcnow()
    try:
        with db.transaction() as session:
            for language, text in texts.items():
                session.add(PrivacyNotice(version=version, language=language, text=text.strip(), published_at=at))
            session.flush()
            audit.record(session, "privacy.notice_published", actor="cli", data={"version": version}, now=at)
    except IntegrityError as error:
        raise ConsentError(f"notice version {version} is already published") from error


def _current_version(session: Session) -> str | None:
    return session.scalars(
        select(PrivacyNotice.version).order_by(PrivacyNotice.published_at.desc(), PrivacyNotice.id.desc()).limit(1)
    ).first()


def _ensure_notice(db: Database) -> None:
    """A clinic that never published a notice shows the packaged one as version 1."""
    with db.reading() as session:
        if session.scalar(select(func.count()).select_from(PrivacyNotice)):
            return
    texts = {language: (DEFAULT_NOTICE_DIR / f"{language}.md").read_text(encoding="utf-8") for language in LANGUAGES}
    try:
        publish(db, DEFAULT_NOTICE_VERSION, texts)
    except ConsentError:
        pass  # published meanwhile by another process


def current_notice(db: Database, language: str) -> Notice:
    _ensure_notice(db)
    with db.reading() as session:
        version = _current_version(session)
        text = session.scalars(select(PrivacyNotice.text).where(
            PrivacyNotice.version == version, PrivacyNotice.language == language)).first()
    if text is None:
        raise ConsentError(f"no notice in {language!r}")
    return Notice(version, language, text)


# --- the ledger -----------------------------------------------------------------------------------


def _state(session: Session, contact_id: int, version: str) -> ConsentState:
    latest = {}
    rows = session.execute(
        select(ConsentRecord.purpose, ConsentRecord.granted, ConsentRecord.notice_version)
        .where(ConsentRecord.contact_id == contact_id).order_by(ConsentRecord.id)
    ).all()
    for purpose, granted, notice_version in rows:
        latest[purpose] = (granted, notice_version)
    current = {p: granted for p, (granted, v) in latest.items() if v == version}
    return ConsentState(version, bool(current), frozenset(p for p, granted in current.items() if granted))


def state(db: Database, contact_id: int) -> ConsentState:
    _ensure_notice(db)
    with db.reading() as session:
        return _state(session, contact_id, _current_version(session))


def allows(db: Database, contact_id: int, purpose: str) -> bool:
    """May the clinic process / message this contact for this purpose now?"""
    if purpose not in PURPOSES:
        raise ConsentError(f"unknown purpose {purpose!r}")
    return state(db, contact_id).allows(purpose)


def allows_in(session: Session, contact_id: int, purpose: str, version: str | None = None) -> bool:
    """`allows` inside a caller's transaction that holds the contact's row lock (`lock_contact`), so
    a STOP being written at the same moment is either seen or waits for the caller to finish.
    `version`: the current notice's, when the caller read it in this transaction (`current_version`).
    """
    return _state(session, contact_id, version or _current_version(session)).allows(purpose)


def current_version(session: Session) -> str | None:
    """The version of the privacy notice in force (None: none published yet)."""
    return _current_version(session)


def lock_contact(session: Session, contact_id: int) -> None:
    """Serialise consent changes with whoever sends to the contact (PostgreSQL; SQLite's write lock does it)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Contact.id).where(Contact.id == contact_id).with_for_update())


def _write(session: Session, contact_id: int, purposes: dict[str, bool], version: str, how: str,
           at: datetime) -> None:
    lock_contact(session, contact_id)
    for purpose, granted in purposes.items():
        session.add(ConsentRecord(contact_id=contact_id, purpose=purpose, granted=granted, notice_version=version,
                                  at=at, how=how[:60]))
    session.flush()
    for purpose, granted in purposes.items():
        audit.record(session, "consent.granted" if granted else "consent.withdrawn", actor=f"contact:{contact_id}",
                     subject=f"contact:{contact_id}",
                     data={"contact_id": contact_id, "purpose": purpose, "notice_version": version, "how": how[:60]},
                     now=at)


def decide(db: Database, contact_id: int, granted: Iterable[str], how: str, now: datetime | None = None
           ) -> ConsentState:
    """The contact's answer to the consent step: the purposes named are granted, the others withdrawn."""
    granted = set(granted)
    if not granted <= set(PURPOSES):
        raise ConsentError(f"unknown purposes {sorted(granted - set(PURPOSES))}")
    _ensure_notice(db)
    at = now or utcnow()
    with db.transaction() as session:
        version = _current_version(session)
        _write(session, contact_id, {p: p in granted for p in PURPOSES}, version, how, at)
        return _state(session, contact_id, version)


def withdraw_all_in(session: Session, contact_id: int, how: str, at: datetime) -> None:
    """Every purpose withdrawn inside the caller's transaction (an approved erasure)."""
    version = _current_version(session) or DEFAULT_NOTICE_VERSION
    _write(session, contact_id, dict.fromkeys(PURPOSES, False), version, how, at)


def opt_out(db: Database, contact_id: int, how: str, now: datetime | None = None) -> ConsentState:
    """STOP: every purpose withdrawn at once (recorded even if nothing was granted: the wish is on file)."""
    return decide(db, contact_id, (), how, now)
