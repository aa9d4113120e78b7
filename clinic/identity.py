"""Identity before health data: the one rule for releasing results (and anything beyond the
appointments of a contact's own linked patients).

Whoever writes from a number linked to a patient must still give that patient's date of birth
before a result goes out: a shared or lost phone must not be enough. The check belongs to the
contact (the WhatsApp conversation), so it is one row per contact:

- a right answer holds for `IDENTITY_VERIFICATION_MINUTES`, for that patient only;
- wrong answers are counted within `IDENTITY_LOCKOUT_MINUTES`; the `IDENTITY_MAX_ATTEMPTS`-th locks
  the contact for that long (no answer is even compared meanwhile), and the caller hands over to a nurse;
- the chat and the download page count into the same attempts, so a link cannot be used to guess
  the date the chat refused.

Every check, passed or failed, is an audit entry (`identity.passed`, `identity.failed`), with ids,
the method and the attempts left, never the answer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinic import audit
from clinic.db import Database
from clinic.models import Contact, IdentityCheck, Patient, utcnow
from clinic.settings import settings


class Outcome(str, enum.Enum):
    passed = "passed"
    failed = "failed"  # wrong, attempts remain
    locked = "locked"  # wrong too often (now or before): nothing is compared until `locked_until`


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    attempts_left: int
    locked_until: datetime | None = None


@dataclass(frozen=True)
class Rules:
    max_attempts: int
    lockout: timedelta
    validity: timedelta

    @classmethod
    def from_settings(cls) -> Rules:
        s = settings()
        return cls(s.identity_max_attempts, timedelta(minutes=s.identity_lockout_minutes),
                   timedelta(minutes=s.identity_verification_minutes))


def _row(session: Session, contact_id: int, now: datetime) -> IdentityCheck:
    """The contact's row, locked (PostgreSQL) so two answers at once are counted one after the other."""
    query = select(IdentityCheck).where(IdentityCheck.contact_id == contact_id)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Contact.id).where(Contact.id == contact_id).with_for_update())
        query = query.with_for_update()
    row = session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()
    if row is None:
        row = IdentityCheck(contact_id=contact_id, failures=0, updated_at=now)
        session.add(row)
        session.flush()
    return row


def _locked(row: IdentityCheck, now: datetime) -> bool:
    return row.locked_until is not None and row.locked_until > now


def check_in(session: Session, contact_id: int, patient_id: int, answer: date, *, method: str,
             now: datetime | None = None, rules: Rules | None = None) -> Verdict:
    """Compare `answer` with the patient's date of birth, inside the caller's transaction (which
    may release the result in the same commit); audits the outcome. `method`: chat, link.
    """
    now = now or utcnow()
    rules = rules or Rules.from_settings()
    row = _row(session, contact_id, now)
    if _locked(row, now):
        verdict = Verdict(Outcome.locked, 0, row.locked_until)
    else:
        if row.first_failed_at is not None and row.first_failed_at <= now - rules.lockout:
            row.failures, row.first_failed_at = 0, None  # old failures no longer count
        born = session.scalar(select(Patient.date_of_birth).where(Patient.id == patient_id))
        if born is not None and born == answer:
            row.failures, row.first_failed_at, row.locked_until = 0, None, None
            row.verified_patient_id, row.verified_until = patient_id, now + rules.validity
            verdict = Verdict(Outcome.passed, rules.max_attempts)
        else:
            row.failures += 1
            row.first_failed_at = row.first_failed_at or now
            row.verified_patient_id, row.verified_until = None, None
            left = max(rules.max_attempts - row.failures, 0)
            if left == 0:
                row.locked_until = now + rules.lockout
                row.failures, row.first_failed_at = 0, None
                verdict = Verdict(Outcome.locked, 0, row.locked_until)
            else:
                verdict = Verdict(Outcome.failed, left)
    row.updated_at = now
    audit.record(session, "identity.passed" if verdict.outcome is Outcome.passed else "identity.failed",
                 actor=f"contact:{contact_id}", subject=f"patient:{patient_id}", now=now,
                 data={"contact_id": contact_id, "patient_id": patient_id, "method": method,
                       "outcome": verdict.outcome.value, "attempts_left": verdict.attempts_left,
                       "locked_until": verdict.locked_until})
    return verdict


def check(db: Database, contact_id: int, patient_id: int, answer: date, *, method: str = "chat",
          now: datetime | None = None, rules: Rules | None = None) -> Verdict:
    """`check_in` in its own transaction."""
    with db.transaction() as session:
        return check_in(session, contact_id, patient_id, answer, method=method, now=now, rules=rules)


@dataclass(frozen=True)
class Standing:
    """Where a contact stands now: verified for a patient (until when), or locked (until when)."""

    verified_patient_id: int | None
    verified_until: datetime | None
    locked_until: datetime | None

    def verified_for(self, patient_id: int) -> bool:
        return self.verified_patient_id == patient_id and self.verified_until is not None

    @property
    def locked(self) -> bool:
        return self.locked_until is not None


def standing(db: Database, contact_id: int, now: datetime | None = None) -> Standing:
    now = now or utcnow()
    with db.reading() as session:
        row = session.get(IdentityCheck, contact_id)
    if row is None:
        return Standing(None, None, None)
    verified = row.verified_until is not None and row.verified_until > now
    return Standing(row.verified_patient_id if verified else None, row.verified_until if verified else None,
                    row.locked_until if _locked(row, now) else None)

