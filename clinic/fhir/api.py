"""The FHIR API's operations as plain functions: (database, request data) → (HTTP status, resource).

No HTTP here (see `clinic.fhir.app`): reads and searches query the clinic database; every change goes
through `clinic.scheduling`, the same atomic core the WhatsApp bot uses, with the API client as the
actor. A refusal is a `FhirError`, answered as an OperationOutcome.

Searches (unknown parameters are refused with 400, so a typo never silently widens a search):

- Patient: `_id`, `family`, `given`, `name` (case-insensitive prefix), `birthdate` (a day).
- Practitioner: `_id`, `identifier` (the practitioner's key), `family`, `name`, `active`.
- Location: `_id`, `identifier`, `name`.
- Schedule: `_id`, `actor` (Practitioner/ID), `service-type` (specialty key), `active`.
- Slot: `_id`, `schedule` (Schedule/ID), `start` (with eq/ge/gt/le/lt; a day means the clinic's
  day), `status` (free, busy, busy-unavailable), `service-type`.
- Appointment: `_id`, `patient`, `practitioner` (or `actor`), `date` (as `start`), `status`
  (comma-separated), `slot`.
- DiagnosticReport: `_id`, `patient` (or `subject`), `issued`, `identifier` (the sending system's id).

All take `_count` (default 50, at most 200) and `_offset`; results are ordered by time, then id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from fhir.resources.appointment import Appointment as FhirAppointment
from pydantic import ValidationError
from sqlalchemy import and_, case, exists, false, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from clinic import scheduling
from clinic.db import Database
from clinic.fhir import resources
from clinic.models import (
    Appointment,
    AppointmentStatus,
    LabResult,
    Location,
    Patient,
    Practitioner,
    Slot,
    Specialty,
    practitioner_specialties,
)
from clinic.settings import settings

DEFAULT_COUNT = 50
MAX_COUNT = 200
PAGING = ("_count", "_offset")
_DATE_PREFIX = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(\d.*)$")


@dataclass
class FhirError(Exception):
    """A refusal: HTTP status, FHIR issue code, and a diagnostic naming ids only."""

    status: int
    code: str
    diagnostics: str


Params = dict[str, list[str]]


# --- parameter parsing ------------------------------------------------------------------------------


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise FhirError(400, "invalid", f"{name}: not a number: {value[:40]!r}") from None


def _reference(value: str, resource_type: str, name: str) -> int:
    """`Patient/12`, `12` or a full URL ending in `Patient/12` → 12."""
    tail = value.rstrip("/").split("/")
    if len(tail) >= 2 and tail[-2] != resource_type:
        raise FhirError(400, "invalid", f"{name}: expected a {resource_type} reference")
    return _int(tail[-1], name)


def _token(value: str) -> str:
    """`system|code` or `code` → code (this server has one system per token)."""
    return value.split("|", 1)[-1]


def _moment(text: str, name: str) -> tuple[datetime, datetime]:
    """The interval a FHIR date or dateTime value stands for: a day is the clinic's day."""
    zone = settings().zone
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return (datetime.combine(day, time(0), tzinfo=zone),
                    datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone))
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FhirError(400, "invalid", f"{name}: not a FHIR date or dateTime: {text[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment, moment + timedelta(seconds=1)


def _date_conditions(column, values: list[str], name: str) -> list:
    conditions = []
    for value in values:
        match = _DATE_PREFIX.match(value)
        if not match:
            raise FhirError(400, "invalid", f"{name}: not a FHIR date: {value[:40]!r}")
        prefix, text = match.group(1) or "eq", match.group(2)
        low, high = _moment(text, name)
        if prefix == "eq":
            conditions.append(and_(column >= low, column < high))
        elif prefix == "ge":
            conditions.append(column >= low)
        elif prefix == "gt":
            conditions.append(column >= high)
        elif prefix == "le":
            conditions.append(column < high)
        elif prefix == "lt":
            conditions.append(column < low)
        else:
            raise FhirError(400, "not-supported", f"{name}: the prefix {prefix!r} is not supported")
    return conditions


def _prefix(column, value: str):
    """FHIR string search: case-insensitive, matching the start."""
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(escaped + "%", escape="\\")


def _bool(value: str, name: str) -> bool:
    if value not in ("true", "false"):
        raise FhirError(400, "invalid", f"{name}: true or false")
    return value == "true"


def _offers(specialty_key: str):
    """A condition on a row with `practitioner_id`-like column: the practitioner offers the specialty."""
    return lambda practitioner_id: exists().where(
        practitioner_specialties.c.practitioner_id == practitioner_id,
        practitioner_specialties.c.specialty_id == Specialty.id,
        Specialty.key == specialty_key,
    )


# --- the resource types -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """How one resource type is read and searched."""

    model: Any
    render: Callable[..., dict]
    options: tuple
    order: tuple
    filters: dict[str, Callable[[list[str], str], list]]


def _values(values: list[str]) -> list[str]:
    """Repeated parameters are ANDed; commas inside one are ORed (FHIR)."""
    return [part for value in values for part in value.split(",") if part]


def _any(values: list[str], make: Callable[[str], Any]):
    return or_(*[make(v) for v in _values(values)]) if _values(values) else false()


def _ids(column, resource_type: str):
    return lambda values, name: [_any([v], lambda one: column == _reference(one, resource_type, name))
                                 for v in values]


def _strings(*columns):
    return lambda values, name: [_any([v], lambda one: or_(*[_prefix(c, one) for c in columns])) for v in values]


def _tokens(column):
    return lambda values, name: [_any([v], lambda one: column == _token(one)) for v in values]


def _slot_status(now: datetime):
    """Slot status as FHIR sees it, as a SQL expression: busy, free or busy-unavailable."""
    return case(
        (scheduling.slot_held(), "busy"),
        (scheduling.bookable_now(now), "free"),
        else_="busy-unavailable",
    )


def _appointment_status(values: list[str], name: str) -> list:
    conditions = []
    for value in values:
        codes = _values([value])
        unknown = [c for c in codes if c not in resources.APPOINTMENT_SEARCH_STATUS]
        if unknown:
            raise FhirError(400, "invalid", f"{name}: not an appointment status: {unknown[0][:40]!r}")
        statuses = set().union(*(resources.APPOINTMENT_SEARCH_STATUS[c] for c in codes))
        conditions.append(Appointment.status.in_(statuses) if statuses else false())
    return conditions


def _kinds(now: datetime) -> dict[str, Kind]:
    slot_status = _slot_status(now)
    return {
        "Patient": Kind(Patient, resources.patient, (), (Patient.id,), {
            "_id": _ids(Patient.id, "Patient"),
            "family": _strings(Patient.last_name),
            "given": _strings(Patient.first_name),
            "name": _strings(Patient.first_name, Patient.last_name),
            "birthdate": lambda values, name: [Patient.date_of_birth == _day(v, name) for v in values],
        }),
        "Practitioner": Kind(Practitioner, resources.practitioner, (), (Practitioner.id,), {
            "_id": _ids(Practitioner.id, "Practitioner"),
            "identifier": _tokens(Practitioner.key),
            "family": _strings(Practitioner.last_name),
            "name": _strings(Practitioner.first_name, Practitioner.last_name),
            "active": lambda values, name: [Practitioner.active.is_(_bool(v, name)) for v in values],
        }),
        "Location": Kind(Location, resources.location, (), (Location.id,), {
            "_id": _ids(Location.id, "Location"),
            "identifier": _tokens(Location.key),
            "name": _strings(Location.name),
        }),
        "Schedule": Kind(Practitioner, resources.schedule, (selectinload(Practitioner.specialties),),
                         (Practitioner.id,), {
            "_id": _ids(Practitioner.id, "Schedule"),
            "actor": _ids(Practitioner.id, "Practitioner"),
            "service-type": lambda values, name: [
                _any([v], lambda one: _offers(_token(one))(Practitioner.id)) for v in values],
            "active": lambda values, name: [Practitioner.active.is_(_bool(v, name)) for v in values],
        }),
        "Slot": Kind(Slot, lambda s: resources.slot(s, s._fhir_status),
                     (joinedload(Slot.practitioner).selectinload(Practitioner.specialties),),
                     (Slot.start_at, Slot.id), {
            "_id": _ids(Slot.id, "Slot"),
            "schedule": _ids(Slot.practitioner_id, "Schedule"),
            "start": lambda values, name: _date_conditions(Slot.start_at, values, name),
            "status": lambda values, name: [
                _any([v], lambda one: slot_status == _slot_code(one, name)) for v in values],
            "service-type": lambda values, name: [
                _any([v], lambda one: _offers(_token(one))(Slot.practitioner_id)) for v in values],
        }),
        "Appointment": Kind(Appointment, resources.appointment,
                            (joinedload(Appointment.patient), joinedload(Appointment.practitioner),
                             joinedload(Appointment.location), joinedload(Appointment.specialty)),
                            (Appointment.start_at, Appointment.id), {
            "_id": _ids(Appointment.id, "Appointment"),
            "patient": _ids(Appointment.patient_id, "Patient"),
            "practitioner": _ids(Appointment.practitioner_id, "Practitioner"),
            "actor": lambda values, name: [_actor(v, name) for v in values],
            "date": lambda values, name: _date_conditions(Appointment.start_at, values, name),
            "status": _appointment_status,
            "slot": _ids(Appointment.slot_id, "Slot"),
        }),
        "DiagnosticReport": Kind(LabResult, resources.diagnostic_report, (), (LabResult.created_at, LabResult.id), {
            "_id": _ids(LabResult.id, "DiagnosticReport"),
            "patient": _ids(LabResult.patient_id, "Patient"),
            "subject": _ids(LabResult.patient_id, "Patient"),
            "issued": lambda values, name: _date_conditions(LabResult.created_at, values, name),
            "identifier": _tokens(LabResult.external_id),
        }),
    }


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.removeprefix("eq"))
    except ValueError:
        raise FhirError(400, "invalid", f"{name}: a day, YYYY-MM-DD") from None


def _slot_code(value: str, name: str) -> str:
    if value not in resources.SLOT_STATUSES:
        raise FhirError(400, "invalid", f"{name}: not a slot status: {value[:40]!r}")
    return value


def _actor(value: str, name: str):
    kind, _, ident = value.rpartition("/")
    column = {"Patient": Appointment.patient_id, "Practitioner": Appointment.practitioner_id,
              "Location": Appointment.location_id}.get(kind.rsplit("/", 1)[-1])
    if column is None:
        raise FhirError(400, "invalid", f"{name}: a Patient, Practitioner or Location reference")
    return column == _int(ident, name)


def resource_types() -> list[str]:
    return list(_kinds(datetime.now().astimezone()).keys())


def _kind(resource_type: str, now: datetime) -> Kind:
    kinds = _kinds(now)
    if resource_type not in kinds:
        raise FhirError(404, "not-supported", f"resource type {resource_type[:40]!r} is not served here")
    return kinds[resource_type]


def _rows(session, kind: Kind, stmt):
    if kind.model is Slot:
        return [_with_status(slot, status) for slot, status in session.execute(stmt).unique()]
    return list(session.scalars(stmt).unique())


def _with_status(slot: Slot, status: str) -> Slot:
    slot._fhir_status = status  # read by the Slot renderer only
    return slot


def _select(kind: Kind, now: datetime):
    if kind.model is Slot:
        return select(Slot, _slot_status(now)).join(Slot.practitioner)
    return select(kind.model)


def read(db: Database, resource_type: str, ident: str, now: datetime | None = None) -> dict:
    now = now or datetime.now().astimezone()
    kind = _kind(resource_type, now)
    if not ident.isdigit():
        raise FhirError(404, "not-found", f"{resource_type}/{ident[:40]} does not exist")
    stmt = _select(kind, now).options(*kind.options).where(kind.model.id == int(ident))
    with db.reading() as session:
        rows = _rows(session, kind, stmt)
        if not rows:
            raise FhirError(404, "not-found", f"{resource_type}/{ident} does not exist")
        return kind.render(rows[0])


def search(db: Database, resource_type: str, params: Params, base_url: str, now: datetime | None = None) -> dict:
    """A searchset Bundle: the matches of every parameter (ANDed), one page of them, with `total`."""
    now = now or datetime.now().astimezone()
    kind = _kind(resource_type, now)
    unknown = sorted(set(params) - set(kind.filters) - set(PAGING) - {"_format"})
    if unknown:
        raise FhirError(400, "not-supported", f"{resource_type} search: unknown parameter {unknown[0][:40]!r}; "
                        f"supported: {', '.join(sorted(kind.filters))}")
    count = min(_int(params.get("_count", [str(DEFAULT_COUNT)])[-1], "_count"), MAX_COUNT)
    offset = _int(params.get("_offset", ["0"])[-1], "_offset")
    if count < 0 or offset < 0:
        raise FhirError(400, "invalid", "_count and _offset are not negative")
    conditions = [c for name, make in kind.filters.items() if name in params for c in make(params[name], name)]
    stmt = _select(kind, now).where(*conditions)
    with db.reading() as session:
        total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
        rows = _rows(session, kind, stmt.options(*kind.options).order_by(*kind.order).limit(count).offset(offset))
        entries = [kind.render(row) for row in rows]
    return _bundle(resource_type, entries, total, params, count, offset, base_url)


def _bundle(resource_type: str, entries: list[dict], total: int, params: Params, count: int, offset: int,
            base_url: str) -> dict:
    def page(at: int) -> str:
        query = [(k, v) for k, values in params.items() if k not in PAGING for v in values]
        return f"{base_url}/{resource_type}?" + urlencode([*query, ("_count", count), ("_offset", at)])

    links = [{"relation": "self", "url": page(offset)}]
    if offset + len(entries) < total:
        links.append({"relation": "next", "url": page(offset + count)})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": [{"fullUrl": f"{base_url}/{resource_type}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                  for r in entries],
    }


# --- changes ------------------------------------------------------------------------------------------


_REFUSALS: dict[type, tuple[int, str]] = {
    scheduling.SlotTaken: (409, "conflict"),
    scheduling.UnknownSlot: (422, "not-found"),
    scheduling.UnknownPatient: (422, "not-found"),
    scheduling.UnknownAppointment: (404, "not-found"),
    scheduling.SlotNotBookable: (422, "business-rule"),
    scheduling.WrongSpecialty: (422, "business-rule"),
    scheduling.AppointmentNotActive: (422, "business-rule"),
    scheduling.TooLateToCancel: (422, "business-rule"),
}


def _refused(error: scheduling.SchedulingError) -> FhirError:
    status, code = next((v for t, v in _REFUSALS.items() if isinstance(error, t)), (422, "business-rule"))
    return FhirError(status, code, str(error))


def _appointment_body(body: Any) -> FhirAppointment:
    if not isinstance(body, dict) or body.get("resourceType") != "Appointment":
        raise FhirError(400, "structure", "the body is not an Appointment resource")
    try:
        return FhirAppointment.parse_obj(body)
    except ValidationError as error:
        where = ".".join(str(part) for part in error.errors()[0]["loc"])
        raise FhirError(400, "structure", f"not a valid R4 Appointment: {where}: {error.errors()[0]['msg']}") from None


def _references(resource: FhirAppointment, resource_type: str) -> list[int]:
    found = []
    for participant in resource.participant or []:
        ref = participant.actor.reference if participant.actor else None
        if ref and ref.rstrip("/").split("/")[-2:-1] == [resource_type]:
            found.append(_reference(ref, resource_type, f"participant {resource_type}"))
    return found


def create_appointment(db: Database, body: Any, actor: str) -> dict:
    """Book the one slot the Appointment names, for the one patient among its participants."""
    resource = _appointment_body(body)
    if resource.status not in ("proposed", "pending", "booked"):
        raise FhirError(422, "business-rule", "a new appointment is booked (status booked, pending or proposed)")
    if len(resource.slot or []) != 1:
        raise FhirError(422, "required", "name exactly one Slot in `slot`")
    slot_id = _reference(resource.slot[0].reference or "", "Slot", "slot")
    patients = _references(resource, "Patient")
    if len(patients) != 1:
        raise FhirError(422, "required", "name exactly one Patient among the participants")
    practitioners = _references(resource, "Practitioner")
    found = scheduling.slot(db, slot_id)
    if found is None:
        raise FhirError(422, "not-found", f"Slot/{slot_id} does not exist")
    if practitioners and practitioners != [found.practitioner_id]:
        raise FhirError(422, "business-rule", f"Slot/{slot_id} belongs to Practitioner/{found.practitioner_id}")
    specialties = [coding.code for concept in resource.serviceType or [] for coding in concept.coding or []
                   if coding.system in (None, resources.SPECIALTY_SYSTEM)]
    try:
        booked = scheduling.book(db, patient_id=patients[0], slot_id=slot_id, actor=actor,
                                 specialty=specialties[0] if specialties else None,
                                 reason=(resource.comment or resource.description or "")[:2000])
    except scheduling.SchedulingError as error:
        raise _refused(error) from None
    return read(db, "Appointment", str(booked.id))


# FHIR status an EHR may set → the clinic status, and how the core gets there.
_TARGETS = {
    "cancelled": AppointmentStatus.cancelled,
    "noshow": AppointmentStatus.no_show,
    "fulfilled": AppointmentStatus.completed,
    "booked": None,  # booked stays booked; with the patient `accepted` it is a confirmation
}


def _patient_accepted(resource: FhirAppointment) -> bool:
    return any(p.status == "accepted" for p in resource.participant or []
               if p.actor and (p.actor.reference or "").split("/")[-2:-1] == ["Patient"])


def update_appointment(db: Database, ident: str, body: Any, actor: str) -> dict:
    """PUT: only the status (and a cancellation's reason) may change; the time is changed by booking
    the new slot and cancelling this appointment (or by the patient, in the chat).
    """
    resource = _appointment_body(body)
    if resource.id is not None and resource.id != ident:
        raise FhirError(400, "invalid", f"the body's id {resource.id[:20]!r} is not {ident[:20]!r}")
    current = read(db, "Appointment", ident)
    slot = [s.reference for s in resource.slot or []]
    if slot and slot != [s["reference"] for s in current["slot"]]:
        raise FhirError(422, "business-rule", "the slot cannot be changed by an update: book the new slot (POST) "
                        "and cancel this appointment")
    reason = resource.cancelationReason.text if resource.cancelationReason else None
    return _set_status(db, int(ident), resource.status, _patient_accepted(resource), reason, actor)


def patch_appointment(db: Database, ident: str, operations: Any, actor: str) -> dict:
    """JSON Patch limited to `/status` and `/cancelationReason`: what an EHR sends to cancel or mark
    a no-show without resending the whole resource.
    """
    if not isinstance(operations, list) or not operations:
        raise FhirError(400, "structure", "a JSON Patch document (a list of operations) is expected")
    status, reason = None, None
    for op in operations:
        if not isinstance(op, dict) or op.get("op") not in ("replace", "add"):
            raise FhirError(422, "not-supported", "only replace and add operations are supported")
        if op.get("path") == "/status":
            status = op.get("value")
        elif op.get("path") in ("/cancelationReason", "/cancelationReason/text"):
            value = op.get("value")
            reason = value.get("text") if isinstance(value, dict) else value
        else:
            raise FhirError(422, "not-supported", "only /status and /cancelationReason may be patched")
    if not isinstance(status, str):
        raise FhirError(422, "required", "the patch sets no /status")
    return _set_status(db, _int(ident, "id"), status, status == "booked", reason, actor)


def _set_status(db: Database, appointment_id: int, status: str, accepted: bool, reason: str | None,
                actor: str) -> dict:
    if status not in _TARGETS:
        raise FhirError(422, "business-rule", f"status {status[:20]!r} cannot be set here; "
                        "use cancelled, noshow, fulfilled or booked")
    current = scheduling.appointment(db, appointment_id)
    if current is None:
        raise FhirError(404, "not-found", f"Appointment/{appointment_id} does not exist")
    target = _TARGETS[status]
    try:
        if target is AppointmentStatus.cancelled and current.status is not target:
            scheduling.cancel(db, appointment_id=appointment_id, reason=(reason or "cancelled by the clinic")[:500],
                              actor=actor, allow_late=True)
        elif target in scheduling.ATTENDANCE:
            scheduling.record_attendance(db, appointment_id=appointment_id, status=target, actor=actor)
        elif target is None and current.status is AppointmentStatus.booked and accepted:
            scheduling.confirm(db, appointment_id=appointment_id, actor=actor)
        elif target is None and resources.APPOINTMENT_STATUS[current.status] != "booked":
            raise scheduling.AppointmentNotActive(f"appointment {appointment_id} is {current.status.value}")
    except scheduling.SchedulingError as error:
        raise _refused(error) from None
    return read(db, "Appointment", str(appointment_id))
