"""Lab results: registered with their PDF, told about by the outreach job, released after the
identity check as a WhatsApp document or a single-use link.

**Storage.** The PDF is encrypted with `clinic.crypto` (ENCRYPTION_KEYS) and written under
RESULTS_DIR under a random name before its row commits (a crash leaves an orphan file, never a row
without its file); the row keeps its size and SHA-256. Registration is idempotent per
(source, external_id), so a lab system retrying a POST does not register a report twice.

**Release.** Nothing leaves without a passed identity check for the result's patient
(`clinic.identity`, one rule for the chat and the page). The result's `delivery` (RESULTS_DELIVERY
unless set when registered) says how:
- `document`: the action sends it as a WhatsApp document; the outbox holds the *encrypted* file's
  path and the sending client decrypts it in memory just before the upload;
- `link`: a random token (only its SHA-256 stored) for a download page that asks the date of birth
  again; it expires after RESULTS_LINK_MINUTES, works once, and a newer link revokes the older ones.
A result counts as delivered when the document is handed over, or the link is redeemed. Audit
entries: `result.registered`, `result.link_sent`, `result.delivered` (ids and the mode, never the
title, which may itself say what was tested).
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clinic import audit, crypto, identity
from clinic.db import Database
from clinic.models import ContactPatient, LabResult, Patient, ResultDelivery, ResultLink, ResultStatus, utcnow
from clinic.settings import settings

logger = logging.getLogger(__name__)

PDF_MAGIC = b"%PDF-"
MIME = "application/pdf"


class ResultError(ValueError):
    """A result that cannot be registered or released as asked; `status` is the HTTP answer for it."""

    status = 422


class NotAPdf(ResultError):
    status = 415


class TooLarge(ResultError):
    status = 413


class UnknownPatient(ResultError):
    status = 404


class IdentityRequired(ResultError):
    """The contact has no passed identity check for this result's patient."""

    status = 403


@dataclass(frozen=True)
class ResultView:
    id: int
    patient_id: int
    patient_first_name: str
    title: str
    kind: str
    delivery: ResultDelivery
    status: ResultStatus
    source: str
    external_id: str | None
    created_at: datetime
    delivered_at: datetime | None

    @property
    def filename(self) -> str:
        """What the patient's phone shows: the title as a plain file name."""
        plain = unicodedata.normalize("NFKD", self.title).encode("ascii", "ignore").decode()
        slug = re.sub(r"[^A-Za-z0-9]+", "-", plain).strip("-").lower()[:60] or "report"
        return f"{slug}-{self.id}.pdf"


def _view(row: LabResult) -> ResultView:
    return ResultView(row.id, row.patient_id, row.patient.first_name, row.title, row.kind, row.delivery, row.status,
                      row.source, row.external_id, row.created_at, row.delivered_at)


def file_path(file_name: str) -> Path:
    return settings().results_dir / file_name


def _check_pdf(pdf: bytes) -> None:
    if not pdf.startswith(PDF_MAGIC):
        raise NotAPdf("the file is not a PDF (it must start with %PDF-)")
    limit = settings().results_max_mb * 1024 * 1024
    if len(pdf) > limit:
        raise TooLarge(f"the PDF has {len(pdf) / 1024 / 1024:.1f} MB; at most {settings().results_max_mb:g} MB")


def register(db: Database, patient_id: int, title: str, pdf: bytes, *, kind: str = "",
             delivery: str | None = None, source: str = "cli", external_id: str | None = None,
             actor: str = "cli", now: datetime | None = None) -> tuple[ResultView, bool]:
    """Store a report for a patient; (the result, whether it is new). A known (source, external_id)
    returns the result registered first, whatever the new PDF.
    """
    title = " ".join((title or "").split())
    if not 1 <= len(title) <= 200:
        raise ResultError("a title of 1-200 characters is needed")
    kind = (kind or "").strip()[:50]
    external_id = (external_id or "").strip()[:100] or None
    try:
        mode = ResultDelivery(delivery or settings().results_delivery)
    except ValueError:
        raise ResultError("delivery is `document` or `link`") from None
    _check_pdf(pdf)
    if external_id:
        known = _by_external_id(db, source, external_id)
        if known is not None:
            return known, False
    with db.reading() as session:
        if session.get(Patient, patient_id) is None:
            raise UnknownPatient(f"no patient {patient_id}")
    file_name = f"{secrets.token_hex(16)}.pdf.enc"
    path = file_path(file_name)
    crypto.write_file(path, pdf)
    at = now or utcnow()
    try:
        with db.transaction() as session:
            row = LabResult(patient_id=patient_id, title=title, kind=kind, file_name=file_name, size=len(pdf),
                            sha256=hashlib.sha256(pdf).hexdigest(), delivery=mode, status=ResultStatus.ready,
                            source=source[:50], external_id=external_id, created_at=at)
            session.add(row)
            session.flush()
            audit.record(session, "result.registered", actor=actor, subject=f"result:{row.id}", now=at,
                         data={"result_id": row.id, "patient_id": patient_id, "source": row.source,
                               "kind": kind, "delivery": mode, "size": len(pdf)})
            view = _view(row)
    except IntegrityError:
        path.unlink(missing_ok=True)
        known = _by_external_id(db, source, external_id) if external_id else None
        if known is None:
            raise
        return known, False
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    logger.info("result %s registered for patient %s (%s, %s)", view.id, patient_id, view.source, mode.value)
    return view, True


def _by_external_id(db: Database, source: str, external_id: str) -> ResultView | None:
    with db.reading() as session:
        row = session.scalars(select(LabResult).where(LabResult.source == source[:50],
                                                      LabResult.external_id == external_id)).first()
        return _view(row) if row else None


def get(db: Database, result_id: int) -> ResultView | None:
    with db.reading() as session:
        row = session.get(LabResult, result_id)
        return _view(row) if row else None


def listing(db: Database, patient_id: int | None = None, status: ResultStatus | None = None,
            limit: int = 200) -> list[ResultView]:
    """Results, newest first (a patient's, or of a status)."""
    query = select(LabResult).order_by(LabResult.created_at.desc(), LabResult.id.desc()).limit(limit)
    if patient_id is not None:
        query = query.where(LabResult.patient_id == patient_id)
    if status is not None:
        query = query.where(LabResult.status == status)
    with db.reading() as session:
        return [_view(row) for row in session.scalars(query)]


def ready_for(db: Database, patient_ids: list[int]) -> list[ResultView]:
    """The results not yet delivered of these patients, oldest first."""
    if not patient_ids:
        return []
    query = (select(LabResult).where(LabResult.patient_id.in_(patient_ids), LabResult.status == ResultStatus.ready)
             .order_by(LabResult.created_at, LabResult.id))
    with db.reading() as session:
        return [_view(row) for row in session.scalars(query)]


def read_pdf(db: Database, result_id: int) -> bytes:
    """The plaintext PDF (for staff and the download page); raises InvalidToken if the file was altered."""
    with db.reading() as session:
        row = session.get(LabResult, result_id)
        if row is None:
            raise ResultError(f"no result {result_id}")
        file_name = row.file_name
    return crypto.read_file(file_path(file_name))


# --- release ------------------------------------------------------------------------------------


def _require_identity(db: Database, contact_id: int, patient_id: int, now: datetime) -> None:
    if not identity.standing(db, contact_id, now).verified_for(patient_id):
        raise IdentityRequired("no passed identity check for this patient")


def _delivered(session: Session, row: LabResult, contact_id: int, mode: ResultDelivery, now: datetime) -> None:
    if row.status is not ResultStatus.delivered:
        row.status, row.delivered_at, row.delivered_contact_id = ResultStatus.delivered, now, contact_id
    audit.record(session, "result.delivered", actor=f"contact:{contact_id}", subject=f"result:{row.id}", now=now,
                 data={"result_id": row.id, "patient_id": row.patient_id, "contact_id": contact_id, "mode": mode})


def document(db: Database, result_id: int, contact_id: int, now: datetime | None = None) -> dict:
    """Release a result as a WhatsApp document: marks it delivered (audited) and returns the
    channel-neutral attachment (`custom["document"]`) whose encrypted file the client uploads.
    """
    now = now or utcnow()
    view = get(db, result_id)
    if view is None:
        raise ResultError(f"no result {result_id}")
    _require_identity(db, contact_id, view.patient_id, now)
    with db.transaction() as session:
        row = session.get(LabResult, result_id)
        _delivered(session, row, contact_id, ResultDelivery.document, now)
        file_name = row.file_name
    return {"path": str(file_path(file_name)), "encrypted": True, "filename": view.filename, "mime": MIME}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_link(db: Database, result_id: int, contact_id: int, now: datetime | None = None) -> tuple[str, datetime]:
    """A new single-use download token for the result (older unused ones revoked); (token, expiry)."""
    now = now or utcnow()
    view = get(db, result_id)
    if view is None:
        raise ResultError(f"no result {result_id}")
    _require_identity(db, contact_id, view.patient_id, now)
    token = secrets.token_urlsafe(32)
    expires = now + timedelta(minutes=settings().results_link_minutes)
    with db.transaction() as session:
        session.execute(update(ResultLink).where(ResultLink.result_id == result_id, ResultLink.used_at.is_(None),
                                                 ResultLink.revoked_at.is_(None)).values(revoked_at=now))
        session.add(ResultLink(token_hash=_hash(token), result_id=result_id, contact_id=contact_id, created_at=now,
                               expires_at=expires))
        session.flush()
        audit.record(session, "result.link_sent", actor=f"contact:{contact_id}", subject=f"result:{result_id}",
                     now=now, data={"result_id": result_id, "patient_id": view.patient_id, "contact_id": contact_id,
                                    "expires_at": expires})
    return token, expires


def link_url(token: str) -> str:
    return f"{settings().results_link_base_url.rstrip('/')}/r/{token}"


class LinkState(str, enum.Enum):
    open = "open"
    unknown = "unknown"
    expired = "expired"
    used = "used"  # redeemed, revoked by a newer link, or by a lockout


def _link_state(link: ResultLink | None, now: datetime) -> LinkState:
    if link is None:
        return LinkState.unknown
    if link.used_at is not None or link.revoked_at is not None:
        return LinkState.used
    if link.expires_at <= now:
        return LinkState.expired
    return LinkState.open


@dataclass(frozen=True)
class LinkInfo:
    state: LinkState
    language: str | None = None  # the patient's, for the page


def link_info(db: Database, token: str, now: datetime | None = None) -> LinkInfo:
    now = now or utcnow()
    with db.reading() as session:
        link = session.get(ResultLink, _hash(token))
        state = _link_state(link, now)
        if state is not LinkState.open:
            return LinkInfo(state)
        row = session.get(LabResult, link.result_id)
        return LinkInfo(state, row.patient.language)


@dataclass(frozen=True)
class Redemption:
    state: LinkState
    verdict: identity.Verdict | None = None
    pdf: bytes | None = None
    filename: str | None = None
    contact_id: int | None = None  # whom the link was sent to (for a handoff after a lockout)
    result_id: int | None = None


def redeem(db: Database, token: str, answer: date, now: datetime | None = None) -> Redemption:
    """The download page's form: the date of birth checked (counting into the contact's attempts),
    then the file once. A lockout revokes the link.
    """
    now = now or utcnow()
    with db.reading() as session:
        link = session.get(ResultLink, _hash(token))
        if _link_state(link, now) is not LinkState.open:
            return Redemption(_link_state(link, now))
        result_id = link.result_id
    view = get(db, result_id)
    pdf = read_pdf(db, result_id)  # before the transaction: an unreadable file must not use the link up
    with db.transaction() as session:
        query = select(ResultLink).where(ResultLink.token_hash == _hash(token))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        link = session.execute(query.execution_options(populate_existing=True)).scalar_one()
        state = _link_state(link, now)
        if state is not LinkState.open:  # redeemed meanwhile by a second click
            return Redemption(state)
        verdict = identity.check_in(session, link.contact_id, view.patient_id, answer, method="link", now=now)
        contact_id = link.contact_id
        if verdict.outcome is identity.Outcome.locked:
            link.revoked_at = now
            return Redemption(LinkState.used, verdict, contact_id=contact_id, result_id=result_id)
        if verdict.outcome is identity.Outcome.failed:
            return Redemption(LinkState.open, verdict, contact_id=contact_id, result_id=result_id)
        link.used_at = now
        _delivered(session, session.get(LabResult, result_id), contact_id, ResultDelivery.link, now)
    return Redemption(LinkState.used, verdict, pdf, view.filename, contact_id, result_id)


def for_contact(db: Database, result_id: int, contact_id: int) -> ResultView | None:
    """The result if its patient is linked to the contact (what a nurse on that contact's ticket may open)."""
    with db.reading() as session:
        row = session.get(LabResult, result_id)
        if row is None or session.get(ContactPatient, (contact_id, row.patient_id)) is None:
            return None
        return _view(row)
