"""`POST /fhir/DiagnosticReport`: a lab system registers a result with its PDF.

The report goes through `clinic.results.register`, the one entry point the staff CLI and the lab
endpoint use: the PDF is stored encrypted, the registration is audited (`result.registered`, the API
client as actor), the outreach worker tells the patient the results are ready, and the report is
released only after the identity check, exactly as for the other entry points.

What is read from the resource (checked by the `fhir.resources` R4 model first):

- `status`: a finished report (`final`, `amended`, `corrected`, `appended`); a preliminary one is
  refused, as patients are told when their results are ready.
- `subject`: `Patient/ID`.
- `code`: its `text` (else the first coding's display, else its code) is the title.
- `category`: the first coding's code (else the text) is the kind, e.g. `LAB`.
- `presentedForm`: the first attachment with `contentType` `application/pdf`, its base64 `data`
  inline (a `url` is not fetched).
- `identifier`: the first value is the system's own id: the same report posted again (a retry)
  answers 200 with the report registered first, instead of 201.

Refusals: 400 (not JSON, not a valid R4 DiagnosticReport, `data` not base64), 413 (the PDF above
RESULTS_MAX_MB, or a body above what such a PDF needs), 422 (a preliminary report, no Patient
subject, an unknown patient, no title, no PDF form, no inline data, bytes that are not a PDF).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fhir.resources.diagnosticreport import DiagnosticReport
from pydantic import ValidationError

from clinic import results
from clinic.db import Database
from clinic.fhir import api, resources
from clinic.settings import settings

FINISHED = ("final", "amended", "corrected", "appended")
BODY_SLACK = 64 * 1024  # the resource around its base64 PDF


def max_body_bytes() -> int:
    """The largest request body: RESULTS_MAX_MB of PDF as base64, and the resource around it."""
    return int(settings().results_max_mb * 1024 * 1024 * 4 / 3) + BODY_SLACK


def _resource(body: Any) -> DiagnosticReport:
    if not isinstance(body, dict) or body.get("resourceType") != "DiagnosticReport":
        raise api.FhirError(400, "structure", "the body is not a DiagnosticReport resource")
    try:
        return DiagnosticReport.parse_obj(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if part != "__root__")
        raise api.FhirError(400, "structure", f"not a valid R4 DiagnosticReport: {where}: {first['msg']}") from None


def _patient(resource: DiagnosticReport) -> int:
    reference = (resource.subject.reference or "") if resource.subject else ""
    if not reference:
        raise api.FhirError(422, "required", "subject: the report's Patient reference is required")
    parts = reference.rstrip("/").split("/")
    if len(parts) < 2 or parts[-2] != "Patient" or not parts[-1].isdigit():
        raise api.FhirError(422, "invalid", "subject: a Patient reference (Patient/ID) is expected")
    return int(parts[-1])


def _title(resource: DiagnosticReport) -> str:
    code = resource.code
    codings = code.coding or []
    title = code.text or next((c.display or c.code for c in codings if c.display or c.code), None)
    if not title or not title.strip():
        raise api.FhirError(422, "required", "code: a text (or a coding with a display) names the report")
    return title


def _kind(resource: DiagnosticReport) -> str:
    for concept in resource.category or []:
        for coding in concept.coding or []:
            if coding.code:
                return coding.code
        if concept.text:
            return concept.text
    return ""


def _pdf(resource: DiagnosticReport) -> bytes:
    forms = resource.presentedForm or []
    if not forms:
        raise api.FhirError(422, "required", "presentedForm: the report's PDF is required")
    pdfs = [f for f in forms if (f.contentType or "").split(";")[0].strip().lower() == resources.PDF]
    if not pdfs:
        raise api.FhirError(422, "not-supported", "presentedForm: the report is accepted as a PDF "
                            "(contentType application/pdf)")
    if pdfs[0].data is None:
        raise api.FhirError(422, "not-supported", "presentedForm: send the PDF inline as base64 `data` "
                            "(a url is not fetched)")
    encoded = pdfs[0].data
    encoded = encoded if isinstance(encoded, bytes) else str(encoded).encode()
    try:
        return base64.b64decode(b"".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise api.FhirError(400, "structure", "presentedForm.data is not base64") from None


def _external_id(resource: DiagnosticReport) -> str | None:
    return next((i.value for i in resource.identifier or [] if i.value), None)


def create_diagnostic_report(db: Database, body: Any, actor: str) -> tuple[dict, bool]:
    """Register the report: (the DiagnosticReport as read back, whether it is new)."""
    resource = _resource(body)
    if resource.status not in FINISHED:
        raise api.FhirError(422, "business-rule", f"status {resource.status!r}: only a finished report "
                            f"({', '.join(FINISHED)}) is registered, as the patient is told it is ready")
    patient_id = _patient(resource)
    title = _title(resource)
    pdf = _pdf(resource)
    try:
        view, new = results.register(db, patient_id, title, pdf, kind=_kind(resource), source=actor,
                                     external_id=_external_id(resource), actor=actor)
    except results.UnknownPatient:
        raise api.FhirError(422, "not-found", f"Patient/{patient_id} does not exist") from None
    except results.TooLarge as error:
        raise api.FhirError(413, "too-long", f"presentedForm: {error}") from None
    except results.NotAPdf:
        raise api.FhirError(422, "invalid", "presentedForm.data is not a PDF (it must start with %PDF-)") from None
    except results.ResultError as error:
        raise api.FhirError(422, "invalid", str(error)) from None
    return api.read(db, "DiagnosticReport", str(view.id)), new
