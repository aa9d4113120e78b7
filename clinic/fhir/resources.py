"""The clinic's rows as FHIR R4 resources (JSON), each checked against the `fhir.resources` R4 models.

Mapping (one place, so the API, the tests and the docs agree):

- Patient/ID, Practitioner/ID (identifier: the practitioner's key), Location/ID.
- Schedule/ID: one per practitioner (same id), its specialties as `serviceType`.
- Slot/ID: `free` when bookable now (the core's rule), `busy` when an appointment holds it,
  `busy-unavailable` when withdrawn, past or inside the booking lead time.
- Appointment/ID: booked and confirmed are both `booked` (confirmed: the patient participant has
  `accepted`, else `needs-action`); completed → `fulfilled`, no_show → `noshow`, cancelled →
  `cancelled` (`cancelationReason.text`: why; `rescheduled` when it was moved to a new appointment).
- DiagnosticReport/ID: a lab result (`clinic.results`), `final`; `code.text` its title, `category` its
  kind, `identifier` the sending system's id (system: the source), `issued` when it was registered.
  `presentedForm` says a PDF of that size exists; its bytes never leave through the API (patients get
  them after the identity check, staff in the inbox).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir.resources.appointment import Appointment as FhirAppointment
from fhir.resources.diagnosticreport import DiagnosticReport as FhirDiagnosticReport
from fhir.resources.location import Location as FhirLocation
from fhir.resources.operationoutcome import OperationOutcome
from fhir.resources.patient import Patient as FhirPatient
from fhir.resources.practitioner import Practitioner as FhirPractitioner
from fhir.resources.schedule import Schedule as FhirSchedule
from fhir.resources.slot import Slot as FhirSlot

from clinic.models import (
    Appointment,
    AppointmentStatus,
    LabResult,
    Location,
    Patient,
    Practitioner,
    Slot,
    Specialty,
)
from clinic.settings import settings

FHIR_VERSION = "4.0.1"
SPECIALTY_SYSTEM = "urn:clinic-assistant:specialty"
PRACTITIONER_SYSTEM = "urn:clinic-assistant:practitioner"
LOCATION_SYSTEM = "urn:clinic-assistant:location"
LANGUAGE_SYSTEM = "urn:ietf:bcp:47"
RESULT_KIND_SYSTEM = "urn:clinic-assistant:result-kind"
RESULT_SOURCE_SYSTEM = "urn:clinic-assistant:result-source:"  # + the source (`fhir:lab`, `lab:api`, `cli`)
PDF = "application/pdf"

APPOINTMENT_STATUS = {
    AppointmentStatus.booked: "booked",
    AppointmentStatus.confirmed: "booked",
    AppointmentStatus.completed: "fulfilled",
    AppointmentStatus.no_show: "noshow",
    AppointmentStatus.cancelled: "cancelled",
}
# Every code of FHIR R4's AppointmentStatus value set, and the clinic statuses each one finds.
APPOINTMENT_SEARCH_STATUS: dict[str, set[AppointmentStatus]] = {
    code: set() for code in ("proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow",
                             "entered-in-error", "checked-in", "waitlist")
}
for _clinic, _fhir in APPOINTMENT_STATUS.items():
    APPOINTMENT_SEARCH_STATUS[_fhir].add(_clinic)
SLOT_STATUSES = ("free", "busy", "busy-unavailable", "busy-tentative", "entered-in-error")


def instant(moment: datetime) -> str:
    """A FHIR instant in the clinic's zone, with its offset (what a clinician's system shows)."""
    return moment.astimezone(settings().zone).isoformat(timespec="seconds")


def _checked(model, data: dict[str, Any]) -> dict[str, Any]:
    """`data`, after the R4 model accepted it: a wrong shape here is a bug, caught by every test."""
    model.parse_obj(data)
    return data


def _codings(specialties: list[Specialty]) -> list[dict]:
    return [{"coding": [{"system": SPECIALTY_SYSTEM, "code": s.key, "display": s.name_en}], "text": s.name_en}
            for s in specialties]


def patient(p: Patient) -> dict:
    return _checked(FhirPatient, {
        "resourceType": "Patient",
        "id": str(p.id),
        "name": [{"use": "official", "family": p.last_name, "given": [p.first_name]}],
        "birthDate": p.date_of_birth.isoformat(),
        "communication": [{"language": {"coding": [{"system": LANGUAGE_SYSTEM, "code": p.language}]},
                           "preferred": True}],
    })


def practitioner(p: Practitioner) -> dict:
    name = {"use": "official", "family": p.last_name, "given": [p.first_name], "text": p.display_name}
    if p.title:
        name["prefix"] = [p.title]
    return _checked(FhirPractitioner, {
        "resourceType": "Practitioner",
        "id": str(p.id),
        "identifier": [{"system": PRACTITIONER_SYSTEM, "value": p.key}],
        "active": bool(p.active),
        "name": [name],
        "communication": [{"coding": [{"system": LANGUAGE_SYSTEM, "code": code}]} for code in p.languages or []],
    })


def location(loc: Location) -> dict:
    data = {
        "resourceType": "Location",
        "id": str(loc.id),
        "identifier": [{"system": LOCATION_SYSTEM, "value": loc.key}],
        "status": "active",
        "name": loc.name,
        "address": {"text": loc.address},
    }
    if loc.phone:
        data["telecom"] = [{"system": "phone", "value": loc.phone}]
    return _checked(FhirLocation, data)


def schedule(p: Practitioner) -> dict:
    return _checked(FhirSchedule, {
        "resourceType": "Schedule",
        "id": str(p.id),
        "active": bool(p.active),
        "serviceType": _codings(p.specialties),
        "actor": [{"reference": f"Practitioner/{p.id}", "display": p.display_name},
                  {"reference": f"Location/{p.location_id}"}],
    })


def slot(s: Slot, status: str) -> dict:
    return _checked(FhirSlot, {
        "resourceType": "Slot",
        "id": str(s.id),
        "schedule": {"reference": f"Schedule/{s.practitioner_id}"},
        "serviceType": _codings(s.practitioner.specialties),
        "status": status,
        "start": instant(s.start_at),
        "end": instant(s.end_at),
    })


def appointment(a: Appointment) -> dict:
    patient_status = "accepted" if a.status is AppointmentStatus.confirmed else "needs-action"
    data: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": str(a.id),
        "status": APPOINTMENT_STATUS[a.status],
        "start": instant(a.start_at),
        "end": instant(a.end_at),
        "minutesDuration": int((a.end_at - a.start_at).total_seconds() // 60),
        "slot": [{"reference": f"Slot/{a.slot_id}"}],
        "created": a.created_at.date().isoformat(),
        "participant": [
            {"actor": {"reference": f"Patient/{a.patient_id}", "display": a.patient.full_name},
             "required": "required", "status": patient_status},
            {"actor": {"reference": f"Practitioner/{a.practitioner_id}", "display": a.practitioner.display_name},
             "required": "required", "status": "accepted"},
            {"actor": {"reference": f"Location/{a.location_id}", "display": a.location.name},
             "required": "required", "status": "accepted"},
        ],
    }
    if a.specialty is not None:
        data["serviceType"] = _codings([a.specialty])
    if a.reason:
        data["comment"] = a.reason
    if a.status is AppointmentStatus.cancelled and a.cancellation_reason:
        data["cancelationReason"] = {"text": a.cancellation_reason}
    return _checked(FhirAppointment, data)


def diagnostic_report(r: LabResult) -> dict:
    """A lab result's metadata: never its PDF (see the module's docstring)."""
    data: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": str(r.id),
        "status": "final",
        "code": {"text": r.title},
        "subject": {"reference": f"Patient/{r.patient_id}"},
        "issued": instant(r.created_at),
        "presentedForm": [{"contentType": PDF, "size": r.size}],
    }
    if r.external_id:
        data["identifier"] = [{"system": RESULT_SOURCE_SYSTEM + r.source, "value": r.external_id}]
    if r.kind:
        data["category"] = [{"coding": [{"system": RESULT_KIND_SYSTEM, "code": r.kind}], "text": r.kind}]
    return _checked(FhirDiagnosticReport, data)


def outcome(code: str, diagnostics: str, severity: str = "error") -> dict:
    """An OperationOutcome with one issue (`code` from FHIR's IssueType value set)."""
    return _checked(OperationOutcome, {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    })
