"""A lab system registers a result as a FHIR DiagnosticReport with its PDF: real HTTP to
`python -m clinic.fhir` over a real database, then the outreach worker's results pass through the
sandbox, as for a result registered by the CLI or the lab endpoint."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from fhir.resources.bundle import Bundle
from fhir.resources.capabilitystatement import CapabilityStatement
from fhir.resources.diagnosticreport import DiagnosticReport
from sqlalchemy import func, select

from clinic import crypto, results
from clinic.models import AuditEntry, LabResult, Patient, ResultStatus
from clinic.outreach import results as results_ready
from clinic.settings import settings
from clinic.whatsapp.client import WhatsAppClient
from tests.conftest import DEMO_NOW
from tests.fhir.conftest import FHIR_JSON, FhirServer, start_fhir, stop

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
MAX_MB = "0.05"  # 52 kB: room for the size tests without megabytes of traffic
MORNING = DEMO_NOW + timedelta(hours=2)  # 10:00 in Rome, outside quiet hours


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    """RESULTS_DIR for the FHIR process and for this test process (which reads the files back)."""
    folder = tmp_path / "results"
    monkeypatch.setenv("RESULTS_DIR", str(folder))
    monkeypatch.setenv("RESULTS_MAX_MB", MAX_MB)
    settings.cache_clear()
    return folder


@pytest.fixture
def lab(any_demo_db, results_dir, tmp_path) -> Iterator[FhirServer]:
    server, process = start_fhir(any_demo_db, tmp_path / "fhir.log", RESULTS_DIR=str(results_dir),
                                 RESULTS_MAX_MB=MAX_MB)
    yield server
    stop(process)


def giovanni(db) -> int:
    with db.reading() as s:
        return s.scalar(select(Patient.id).where(Patient.first_name == "Giovanni"))


def report(patient_id: int, pdf: bytes = PDF, **extra) -> dict:
    body = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "identifier": [{"system": "urn:oid:1.2.3.4", "value": "LAB-2027-0042"}],
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "HM"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2"}], "text": "Emocromo completo"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "presentedForm": [{"contentType": "application/pdf", "data": base64.b64encode(pdf).decode()}],
    }
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def outcome(answer, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith(FHIR_JSON)
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == code, body
    return body["issue"][0]["diagnostics"]


def lab_results(db) -> list[LabResult]:
    with db.reading() as s:
        return s.scalars(select(LabResult).order_by(LabResult.id)).all()


async def test_a_report_is_registered_through_the_results_core_and_the_patient_is_told(lab, results_dir, sandbox):
    db, patient_id = lab.db, giovanni(lab.db)
    ehr = lab.client("lab")

    answer = ehr.post("DiagnosticReport", report(patient_id))

    assert answer.status_code == 201, answer.text
    created = DiagnosticReport.parse_obj(answer.json())
    assert answer.headers["Location"] == f"{lab.base}/fhir/DiagnosticReport/{created.id}"
    assert (created.status, created.code.text, created.subject.reference) == (
        "final", "Emocromo completo", f"Patient/{patient_id}")
    assert created.presentedForm[0].data is None and created.presentedForm[0].size == len(PDF)
    [row] = lab_results(db)
    assert (row.id, row.patient_id, row.title, row.kind) == (int(created.id), patient_id, "Emocromo completo", "HM")
    assert (row.source, row.external_id, row.status) == ("fhir:lab", "LAB-2027-0042", ResultStatus.ready)
    # The file is stored encrypted, under a random name, and reads back as the PDF.
    [stored] = results_dir.iterdir()
    assert PDF not in stored.read_bytes() and crypto.decrypt(stored.read_bytes()) == PDF
    assert results.read_pdf(db, row.id) == PDF
    # Audited like the other entry points, with the API client as actor and no title.
    with db.reading() as s:
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.kind == "result.registered")).all()
    assert (entry.actor, entry.subject, entry.data["patient_id"]) == ("fhir:lab", f"result:{row.id}", patient_id)
    assert "Emocromo" not in str(entry.data)

    # The results-ready pass sees it pending and tells the patient's phone (the sandbox).
    client = WhatsAppClient(db, sandbox.config, default_language="it")
    try:
        assert results_ready.send_due(db, client, MORNING).sent == 1
        assert await client.deliver_due() == 1
    finally:
        await client.close()
    [message] = sandbox.received("393330000001")
    assert message["request"]["template"]["name"] == "results_ready"
    assert message["request"]["biz_opaque_callback_data"] == f"result:{row.id}"
    assert results_ready.send_due(db, client, MORNING + timedelta(minutes=5)).sent == 0


def test_the_same_report_posted_again_is_registered_once(lab):
    ehr = lab.client("lab")
    first = ehr.post("DiagnosticReport", report(giovanni(lab.db)))
    again = ehr.post("DiagnosticReport", report(giovanni(lab.db)))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] and len(lab_results(lab.db)) == 1


def test_read_and_search_give_the_metadata_never_the_pdf(lab):
    patient_id = giovanni(lab.db)
    ehr = lab.client("lab")
    created = ehr.post("DiagnosticReport", report(patient_id)).json()
    other = ehr.post("DiagnosticReport", report(patient_id + 1, identifier=[{"value": "LAB-2"}])).json()

    read = ehr.get(f"DiagnosticReport/{created['id']}")
    assert read.status_code == 200 and read.json() == created
    for answer in (ehr.get("DiagnosticReport", patient=str(patient_id)),
                   ehr.get("DiagnosticReport", subject=f"Patient/{patient_id}"),
                   ehr.get("DiagnosticReport", identifier="urn:oid:1.2.3.4|LAB-2027-0042")):
        assert answer.status_code == 200, answer.text
        bundle = Bundle.parse_obj(answer.json())
        assert [e.resource.id for e in bundle.entry] == [created["id"]]
        assert base64.b64encode(PDF).decode() not in answer.text and '"data"' not in answer.text
    assert ehr.get("DiagnosticReport", patient=str(patient_id + 1)).json()["entry"][0]["resource"]["id"] == other["id"]
    everything = ehr.get("DiagnosticReport", issued=f"ge{created['issued'][:10]}").json()
    assert everything["total"] == 2
    outcome(ehr.get("DiagnosticReport/999999"), 404, "not-found")
    outcome(ehr.get("DiagnosticReport", title="x"), 400, "not-supported")
    # Only created: never changed or removed through the API.
    outcome(ehr.put(f"DiagnosticReport/{created['id']}", created), 405, "not-supported")


def test_the_capability_statement_names_diagnostic_report(lab):
    statement = CapabilityStatement.parse_obj(lab.anonymous().get("metadata").json())
    [served] = [r for r in statement.rest[0].resource if r.type == "DiagnosticReport"]
    assert {i.code for i in served.interaction} == {"read", "search-type", "create"}
    assert {p.name for p in served.searchParam} >= {"patient", "subject", "issued", "identifier"}


def test_an_oauth2_access_token_registers_too(lab):
    key = lab.client("lab").http.headers["Authorization"].removeprefix("Bearer ")
    token = requests.post(f"{lab.base}/oauth2/token", data={"grant_type": "client_credentials"},
                          auth=("lab", key), timeout=30).json()["access_token"]
    answer = lab.anonymous(token).post("DiagnosticReport", report(giovanni(lab.db)))
    assert answer.status_code == 201, answer.text


def _form(**attachment) -> list[dict]:
    return [{"contentType": "application/pdf", **attachment}]


B64 = base64.b64encode


@pytest.mark.parametrize(("change", "status", "code", "says"), [
    ({"subject": {"reference": "Patient/999999"}}, 422, "not-found", "Patient/999999 does not exist"),
    ({"subject": {"reference": "Practitioner/1"}}, 422, "invalid", "a Patient reference"),
    ({"subject": None}, 422, "required", "subject"),
    ({"presentedForm": None}, 422, "required", "presentedForm"),
    ({"presentedForm": [{"contentType": "text/plain", "data": B64(b"hello").decode()}]}, 422, "not-supported",
     "application/pdf"),
    ({"presentedForm": _form(url="https://lab.example/report.pdf")}, 422, "not-supported", "inline"),
    ({"presentedForm": _form(data=B64(b"GIF89a not a pdf").decode())}, 422, "invalid", "not a PDF"),
    ({"presentedForm": _form(data="%%% not base64 %%%")}, 400, "structure", "not base64"),
    ({"presentedForm": _form(data=B64(PDF + b"0" * 60_000).decode())}, 413, "too-long", "at most"),
    ({"status": "preliminary"}, 422, "business-rule", "finished report"),
    ({"status": None}, 400, "structure", "status"),
    ({"code": {"text": " "}}, 422, "required", "names the report"),
    ({"resourceType": "Observation"}, 400, "structure", "not a DiagnosticReport"),
], ids=["unknown-patient", "not-a-patient", "no-subject", "no-form", "not-pdf-type", "url-only", "not-pdf-bytes",
        "not-base64", "pdf-too-large", "preliminary", "no-status", "blank-title", "wrong-type"])
def test_refusals_are_operation_outcomes_and_register_nothing(lab, results_dir, change, status, code, says):
    answer = lab.client("lab").post("DiagnosticReport", report(giovanni(lab.db), **change))
    assert says in outcome(answer, status, code)
    assert lab_results(lab.db) == [] and not (results_dir.exists() and any(results_dir.iterdir()))


def test_bad_json_wrong_type_oversize_body_and_no_key_are_refused(lab, results_dir):
    ehr = lab.client("lab")
    url = f"{lab.base}/fhir/DiagnosticReport"

    def post(data: bytes, content_type: str = FHIR_JSON, http=ehr.http) -> requests.Response:
        return http.post(url, data=data, headers={"Content-Type": content_type}, timeout=30)

    assert "not JSON" in outcome(post(b'{"resourceType": "DiagnosticReport",'), 400, "structure")
    outcome(post(b"%PDF-1.4", "application/pdf"), 415, "not-supported")
    # A body beyond what a RESULTS_MAX_MB PDF needs is refused while it streams in.
    huge = b'{"resourceType": "DiagnosticReport", "padding": "' + b"A" * 200_000 + b'"}'
    assert "larger than" in outcome(post(huge), 413, "too-long")
    anonymous = post(b"{}", http=requests.Session())
    outcome(anonymous, 401, "login")
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    with lab.db.reading() as s:
        assert s.scalar(select(func.count()).select_from(LabResult)) == 0
