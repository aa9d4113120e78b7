"""The lab endpoint, the patients' download page and a nurse opening the report a ticket is about,
over real HTTP against the inbox process."""

from __future__ import annotations

import base64
from datetime import date

import pytest
import requests
from sqlalchemy import select

from clinic import handoff, identity, results
from clinic.models import AuditEntry, ResultStatus
from clinic.settings import settings
from tests.inbox.conftest import add_contact, add_nurse

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n"
KEY = "lab-key-for-tests"
GIULIA_BORN = date(2015, 5, 5)  # add_contact's patient


@pytest.fixture
def results_env(tmp_path, monkeypatch) -> dict:
    env = {"RESULTS_DIR": str(tmp_path / "results"), "LAB_API_KEY": KEY}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.cache_clear()
    return env


def patient_of(db, contact_id: int) -> int:
    from clinic.models import ContactPatient

    with db.reading() as session:
        return session.scalars(select(ContactPatient.patient_id).where(ContactPatient.contact_id == contact_id)).one()


def post_json(inbox, body: dict, key: str | None = KEY) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(inbox.base_url + "/api/lab/results", json=body, headers=headers, timeout=30)


def test_a_lab_system_registers_a_report_once_with_its_key(db, start_inbox, results_env, tmp_path):
    patient = patient_of(db, add_contact(db, "393331110001"))
    inbox = start_inbox(**results_env)
    body = {"patient_id": patient, "title": "Emocromo completo", "kind": "blood_tests", "external_id": "LAB-1",
            "pdf_base64": base64.b64encode(PDF).decode()}
    assert post_json(inbox, body, key=None).status_code == 401
    assert post_json(inbox, body, key="wrong").status_code == 401
    created = post_json(inbox, body)
    assert created.status_code == 201, created.text
    assert created.json()["created"] is True and created.json()["status"] == "ready"
    again = post_json(inbox, body)
    assert (again.status_code, again.json()["id"], again.json()["created"]) == (200, created.json()["id"], False)
    (stored,) = (tmp_path / "results").iterdir()
    assert PDF not in stored.read_bytes()
    assert results.read_pdf(db, created.json()["id"]) == PDF

    multipart = requests.post(inbox.base_url + "/api/lab/results", headers={"Authorization": f"Bearer {KEY}"},
                              data={"patient_id": str(patient), "title": "Glicemia", "delivery": "document"},
                              files={"file": ("glicemia.pdf", PDF, "application/pdf")}, timeout=30)
    assert multipart.status_code == 201, multipart.text
    assert results.get(db, multipart.json()["id"]).delivery.value == "document"


@pytest.mark.parametrize(("change", "status", "words"), [
    ({"pdf_base64": base64.b64encode(b"GIF89a").decode()}, 415, "not a PDF"),
    ({"pdf_base64": "%%%"}, 422, "base64"),
    ({"patient_id": 999}, 404, "no patient"),
    ({"patient_id": None}, 422, "patient_id"),
    ({"title": ""}, 422, "title"),
    ({"delivery": "fax"}, 422, "delivery"),
])
def test_a_bad_lab_post_gets_a_clear_4xx(db, start_inbox, results_env, change, status, words):
    patient = patient_of(db, add_contact(db, "393331110002"))
    inbox = start_inbox(**results_env)
    body = {"patient_id": patient, "title": "Emocromo", "pdf_base64": base64.b64encode(PDF).decode(), **change}
    answer = post_json(inbox, body)
    assert answer.status_code == status and words in answer.json()["error"]


def test_without_a_key_the_lab_endpoint_is_off(db, start_inbox, results_env):
    inbox = start_inbox(RESULTS_DIR=results_env["RESULTS_DIR"], LAB_API_KEY="")
    assert post_json(inbox, {"patient_id": 1}).status_code == 503


def link_for(db, contact_id: int) -> tuple[int, str]:
    patient = patient_of(db, contact_id)
    view, _ = results.register(db, patient, "Emocromo", PDF, delivery="link")
    identity.check(db, contact_id, patient, GIULIA_BORN)
    token, _ = results.issue_link(db, view.id, contact_id)
    return view.id, token


def test_the_download_page_asks_the_date_of_birth_and_serves_the_report_once(db, start_inbox, results_env):
    contact = add_contact(db, "393331110003")
    result_id, token = link_for(db, contact)
    inbox = start_inbox(**results_env)
    page = requests.get(f"{inbox.base_url}/r/{token}", timeout=30)
    assert page.status_code == 200 and "Data di nascita" in page.text and 'type="date"' in page.text
    assert page.headers["Cache-Control"] == "no-store" and "frame-ancestors 'none'" in \
        page.headers["Content-Security-Policy"] and page.headers["Referrer-Policy"] == "no-referrer"
    wrong = requests.post(f"{inbox.base_url}/r/{token}", data={"date_of_birth": "2015-05-06"}, timeout=30)
    assert wrong.status_code == 403 and "Tentativi rimasti: 2" in wrong.text
    right = requests.post(f"{inbox.base_url}/r/{token}", data={"date_of_birth": "2015-05-05"}, timeout=30)
    assert right.status_code == 200 and right.content == PDF
    assert right.headers["Content-Type"] == "application/pdf" and "attachment" in right.headers["Content-Disposition"]
    assert results.get(db, result_id).status is ResultStatus.delivered
    assert requests.get(f"{inbox.base_url}/r/{token}", timeout=30).status_code == 410
    assert requests.post(f"{inbox.base_url}/r/{token}", data={"date_of_birth": "2015-05-05"},
                         timeout=30).status_code == 410
    assert requests.get(f"{inbox.base_url}/r/not-a-real-token", timeout=30).status_code == 404


def test_too_many_wrong_dates_on_the_page_lock_it_and_call_a_nurse(db, start_inbox, results_env):
    contact = add_contact(db, "393331110004")
    result_id, token = link_for(db, contact)
    inbox = start_inbox(**results_env)
    answers = [requests.post(f"{inbox.base_url}/r/{token}", data={"date_of_birth": "01/01/2000"}, timeout=30)
               for _ in range(3)]
    assert [a.status_code for a in answers] == [403, 403, 429]
    assert "Bloccato" in answers[-1].text
    ticket = handoff.open_ticket_for(db, contact)
    assert ticket.reason == "identity_failed" and ticket.summary["result_id"] == result_id
    assert requests.post(f"{inbox.base_url}/r/{token}", data={"date_of_birth": "2015-05-05"},
                         timeout=30).status_code == 410
    assert results.get(db, result_id).status is ResultStatus.ready


def test_a_nurse_opens_the_report_the_ticket_is_about(db, start_inbox, results_env):
    contact = add_contact(db, "393331110005")
    other = add_contact(db, "393331110006")
    mine, _ = results.register(db, patient_of(db, contact), "Emocromo", PDF)
    theirs, _ = results.register(db, patient_of(db, other), "Emocromo", PDF)
    ticket = handoff.open_ticket(db, contact, "results_question", summary={"intent": "medical_question",
                                                                           "result_id": mine.id})
    nurse_id = add_nurse(db, "rossi")
    inbox = start_inbox(**results_env)
    nurse = inbox.client("rossi")
    assert f"/tickets/{ticket.id}/result" in nurse.get(f"/tickets/{ticket.id}").text
    report = nurse.get(f"/tickets/{ticket.id}/result")
    assert report.status_code == 200 and report.content == PDF
    assert inbox.client().get(f"/tickets/{ticket.id}/result").status_code == 303  # signed out: to the login
    foreign = handoff.open_ticket(db, other, "results_question", summary={"result_id": mine.id})
    assert nurse.get(f"/tickets/{foreign.id}/result").status_code == 404  # not a report of that contact's patients
    assert theirs.id != mine.id
    with db.reading() as session:
        viewed = session.scalars(select(AuditEntry).where(AuditEntry.kind == "staff.view_result")).all()
    assert [(e.actor, e.data["ticket_id"]) for e in viewed] == [(f"staff:{nurse_id}", ticket.id)]
