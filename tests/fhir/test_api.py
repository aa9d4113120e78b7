"""The FHIR R4 API as an EHR uses it: real HTTP to `python -m clinic.fhir` over a real database."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
import requests
from fhir.resources.bundle import Bundle
from fhir.resources.capabilitystatement import CapabilityStatement
from sqlalchemy import select

from clinic import scheduling
from clinic.db import Database
from clinic.fhir import clients
from clinic.models import Appointment, AppointmentStatus, AuditEntry, Patient, Practitioner, Slot
from tests.conftest import DEMO_TODAY

DAY = DEMO_TODAY.isoformat()
NEXT_DAY = (DEMO_TODAY + timedelta(days=1)).isoformat()


def _ids(db: Database) -> tuple[int, int]:
    """(a demo patient, the cardiologist)."""
    with db.reading() as s:
        return (s.scalar(select(Patient.id).where(Patient.first_name == "Giovanni")),
                s.scalar(select(Practitioner.id).where(Practitioner.key == "bianchi")))


def _free_cardiology(ehr, count: int = 5) -> list[dict]:
    answer = ehr.search("Slot", [("status", "free"), ("service-type", "cardiology"), ("start", f"ge{DAY}"),
                                 ("start", f"lt{NEXT_DAY}"), ("_count", str(count))])
    assert answer.status_code == 200, answer.text
    return [e["resource"] for e in answer.json().get("entry", [])]


def _booking(slot_id: str, patient_id: int, **extra) -> dict:
    return {"resourceType": "Appointment", "status": "booked", "slot": [{"reference": f"Slot/{slot_id}"}],
            "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}], **extra}


def _outcome(answer, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/fhir+json")
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code, body
    return body["issue"][0]["diagnostics"]


def test_the_capability_statement_is_public_and_names_what_is_served(fhir):
    answer = fhir.anonymous().get("metadata")
    assert answer.status_code == 200
    statement = CapabilityStatement.parse_obj(answer.json())
    assert statement.fhirVersion == "4.0.1"
    served = {r.type: r for r in statement.rest[0].resource}
    assert {"Patient", "Practitioner", "Schedule", "Slot", "Appointment"} <= set(served)
    assert {i.code for i in served["Appointment"].interaction} >= {"read", "search-type", "create", "update"}
    assert {p.name for p in served["Slot"].searchParam} >= {"schedule", "start", "status", "service-type"}


def test_everything_else_needs_a_valid_active_api_key(fhir):
    patient_id, _ = _ids(fhir.db)
    for ehr in (fhir.anonymous(), fhir.anonymous("clk_not-a-key")):
        answer = ehr.get(f"Patient/{patient_id}")
        _outcome(answer, 401, "login")
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    ehr = fhir.client("lab")
    assert ehr.get(f"Patient/{patient_id}").status_code == 200
    clients.revoke_client(fhir.db, "lab")
    _outcome(ehr.get(f"Patient/{patient_id}"), 401, "login")


def test_read_patient_practitioner_schedule(fhir):
    ehr = fhir.client()
    patient_id, practitioner_id = _ids(fhir.db)
    patient = ehr.get(f"Patient/{patient_id}").json()
    assert (patient["name"][0]["family"], patient["birthDate"]) == ("Verdi", "1958-04-12")
    practitioner = ehr.get(f"Practitioner/{practitioner_id}").json()
    assert practitioner["identifier"][0]["value"] == "bianchi"
    schedule = ehr.get(f"Schedule/{practitioner_id}").json()
    assert schedule["actor"][0]["reference"] == f"Practitioner/{practitioner_id}"
    assert [c["coding"][0]["code"] for c in schedule["serviceType"]] == ["cardiology"]
    found = ehr.get("Practitioner", identifier="bianchi").json()
    assert [e["resource"]["id"] for e in found["entry"]] == [str(practitioner_id)]
    assert [e["resource"]["id"] for e in ehr.get("Patient", family="verd").json()["entry"]] == [str(patient_id)]


def test_slot_search_by_schedule_start_status_and_specialty(fhir):
    ehr = fhir.client()
    _, practitioner_id = _ids(fhir.db)
    answer = ehr.search("Slot", [("status", "free"), ("service-type", "cardiology"), ("start", f"ge{DAY}"),
                                 ("start", f"lt{NEXT_DAY}")])
    bundle = answer.json()
    Bundle.parse_obj(bundle)
    slots = [e["resource"] for e in bundle["entry"]]
    assert bundle["total"] == len(slots) > 0
    assert {s["status"] for s in slots} == {"free"}
    assert {s["schedule"]["reference"] for s in slots} == {f"Schedule/{practitioner_id}"}
    assert all(s["start"].startswith(DAY) for s in slots)

    patient_id, _ = _ids(fhir.db)
    scheduling.book(fhir.db, patient_id=patient_id, slot_id=int(slots[0]["id"]), actor="contact:393330000001")
    still_free = {s["id"] for s in _free_cardiology(ehr, 50)}
    assert slots[0]["id"] not in still_free and slots[1]["id"] in still_free
    assert ehr.get(f"Slot/{slots[0]['id']}").json()["status"] == "busy"
    busy = ehr.search("Slot", [("schedule", f"Schedule/{practitioner_id}"), ("status", "busy")]).json()
    assert [e["resource"]["id"] for e in busy["entry"]] == [slots[0]["id"]]
    assert ehr.search("Slot", [("service-type", "dermatology"), ("schedule", f"Schedule/{practitioner_id}")]
                      ).json()["total"] == 0


def test_pages_link_to_the_next_page(fhir):
    ehr = fhir.client()
    first = ehr.search("Slot", [("service-type", "cardiology"), ("_count", "3")]).json()
    assert len(first["entry"]) == 3 and first["total"] > 3
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = ehr.http.get(following, timeout=30).json()
    assert not {e["resource"]["id"] for e in first["entry"]} & {e["resource"]["id"] for e in second["entry"]}


def test_an_ehr_books_through_the_same_core_and_the_chat_sees_it(fhir):
    ehr = fhir.client("ehr")
    patient_id, practitioner_id = _ids(fhir.db)
    slot = _free_cardiology(ehr)[0]

    answer = ehr.post("Appointment", _booking(slot["id"], patient_id, comment="follow-up"))

    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert answer.headers["Location"].endswith(f"/fhir/Appointment/{created['id']}")
    assert (created["status"], created["start"], created["slot"]) == ("booked", slot["start"],
                                                                      [{"reference": f"Slot/{slot['id']}"}])
    assert {p["actor"]["reference"] for p in created["participant"]} >= {f"Patient/{patient_id}",
                                                                        f"Practitioner/{practitioner_id}"}
    upcoming = scheduling.upcoming_appointments(fhir.db, [patient_id], now=datetime.now().astimezone())
    assert [a.id for a in upcoming] == [int(created["id"])]
    with fhir.db.reading() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.kind == "appointment.booked")).one()
    assert entry.actor == "fhir:ehr" and entry.subject == f"appointment:{created['id']}"

    again = ehr.post("Appointment", _booking(slot["id"], patient_id))
    assert "booked by someone else" in _outcome(again, 409, "conflict")


def test_appointment_search_by_patient_practitioner_date_and_status(fhir):
    ehr = fhir.client()
    patient_id, practitioner_id = _ids(fhir.db)
    first, second = _free_cardiology(ehr)[:2]
    kept = ehr.post("Appointment", _booking(first["id"], patient_id)).json()
    dropped = ehr.post("Appointment", _booking(second["id"], patient_id)).json()
    ehr.patch(f"Appointment/{dropped['id']}", [{"op": "replace", "path": "/status", "value": "cancelled"}])

    def ids(params):
        answer = ehr.search("Appointment", params)
        assert answer.status_code == 200, answer.text
        return [e["resource"]["id"] for e in answer.json()["entry"]]

    assert ids([("patient", f"Patient/{patient_id}")]) == [kept["id"], dropped["id"]]
    assert ids([("patient", str(patient_id)), ("status", "booked")]) == [kept["id"]]
    assert ids([("practitioner", f"Practitioner/{practitioner_id}"), ("status", "cancelled")]) == [dropped["id"]]
    assert ids([("date", DAY), ("status", "booked,cancelled")]) == [kept["id"], dropped["id"]]
    assert ids([("date", f"ge{NEXT_DAY}")]) == []
    assert ids([("actor", f"Practitioner/{practitioner_id}"), ("status", "noshow")]) == []


@pytest.mark.parametrize("path, params, status, code", [
    ("Slot", [("colour", "blue")], 400, "not-supported"),
    ("Slot", [("start", "tomorrow")], 400, "invalid"),
    ("Slot", [("status", "vacant")], 400, "invalid"),
    ("Appointment", [("status", "done")], 400, "invalid"),
    ("Appointment", [("patient", "Practitioner/1")], 400, "invalid"),
    ("Patient/99999", [], 404, "not-found"),
    ("Observation", [], 404, "not-supported"),
])
def test_bad_requests_get_operation_outcomes(fhir, path, params, status, code):
    _outcome(fhir.client().search(path, params), status, code)


def test_bad_bookings_get_operation_outcomes(fhir):
    ehr = fhir.client()
    patient_id, _ = _ids(fhir.db)
    slot = _free_cardiology(ehr)[0]
    _outcome(ehr.post("Appointment", {"resourceType": "Appointment", "slot": []}), 400, "structure")
    _outcome(ehr.post("Appointment", _booking("999999", patient_id)), 422, "not-found")
    _outcome(ehr.post("Appointment", _booking(slot["id"], 999999)), 422, "not-found")
    _outcome(ehr.post("Appointment", {**_booking(slot["id"], patient_id), "slot": []}), 422, "required")
    _outcome(ehr.post("Patient", {"resourceType": "Patient"}), 405, "not-supported")
    answer = ehr.http.post(f"{ehr.base}/fhir/Appointment", data="<Appointment/>",
                           headers={"Content-Type": "application/xml"}, timeout=30)
    _outcome(answer, 415, "not-supported")
    huge = ehr.post("Appointment", _booking(slot["id"], patient_id, comment="x" * 300_000))
    assert huge.status_code == 413 and huge.headers["X-Content-Type-Options"] == "nosniff"
    assert ehr.get(f"Slot/{slot['id']}").json()["status"] == "free"


def _past_appointment(db: Database, patient_id: int, hours_ago: int) -> int:
    """A visit that began hours ago (booking refuses the past, so it is written as the past would have)."""
    with db.transaction() as s:
        practitioner = s.scalars(select(Practitioner).where(Practitioner.key == "bianchi")).one()
        start = datetime.now().astimezone().replace(microsecond=0) - timedelta(hours=hours_ago)
        slot = Slot(practitioner_id=practitioner.id, location_id=practitioner.location_id, start_at=start,
                    end_at=start + timedelta(minutes=30))
        s.add(slot)
        s.flush()
        appointment = Appointment(patient_id=patient_id, practitioner_id=practitioner.id,
                                  location_id=practitioner.location_id, slot_id=slot.id, start_at=slot.start_at,
                                  end_at=slot.end_at, status=AppointmentStatus.confirmed, created_by="test",
                                  changed_by="test")
        s.add(appointment)
        s.flush()
        return appointment.id


def test_the_ehr_sets_cancelled_noshow_and_fulfilled(fhir):
    ehr = fhir.client("ehr")
    patient_id, _ = _ids(fhir.db)
    slot = _free_cardiology(ehr)[0]
    booked = ehr.post("Appointment", _booking(slot["id"], patient_id)).json()

    early = ehr.patch(f"Appointment/{booked['id']}", [{"op": "replace", "path": "/status", "value": "noshow"}])
    assert "has not started yet" in _outcome(early, 422, "business-rule")
    cancelled = ehr.put(f"Appointment/{booked['id']}", {**booked, "status": "cancelled",
                                                        "cancelationReason": {"text": "doctor ill"}})
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["cancelationReason"]["text"]) == ("cancelled", "doctor ill")
    assert ehr.get(f"Slot/{slot['id']}").json()["status"] == "free"
    _outcome(ehr.patch(f"Appointment/{booked['id']}", [{"op": "replace", "path": "/status", "value": "fulfilled"}]),
             422, "business-rule")

    missed, visited = _past_appointment(fhir.db, patient_id, 1), _past_appointment(fhir.db, patient_id, 2)
    noshow = ehr.patch(f"Appointment/{missed}", [{"op": "replace", "path": "/status", "value": "noshow"}])
    assert noshow.status_code == 200 and noshow.json()["status"] == "noshow"
    done = ehr.patch(f"Appointment/{visited}", [{"op": "replace", "path": "/status", "value": "fulfilled"}])
    assert done.json()["status"] == "fulfilled"
    with fhir.db.reading() as s:
        kinds = [(e.kind, e.actor) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
    assert ("appointment.no_show", "fhir:ehr") in kinds and ("appointment.completed", "fhir:ehr") in kinds
    assert ("appointment.cancelled", "fhir:ehr") in kinds


def test_moving_an_appointment_by_update_is_refused(fhir):
    ehr = fhir.client()
    patient_id, _ = _ids(fhir.db)
    first, second = _free_cardiology(ehr)[:2]
    booked = ehr.post("Appointment", _booking(first["id"], patient_id)).json()
    moved = ehr.put(f"Appointment/{booked['id']}", {**booked, "slot": [{"reference": f"Slot/{second['id']}"}]})
    _outcome(moved, 422, "business-rule")
    assert ehr.get(f"Appointment/{booked['id']}").json()["slot"] == [{"reference": f"Slot/{first['id']}"}]


def test_a_fhir_booking_and_a_chat_booking_racing_for_one_slot_leave_one_appointment(fhir):
    """Over HTTP and through the core at the same moment, slot after slot: one wins every time."""
    ehr = fhir.client()
    patient_id, _ = _ids(fhir.db)
    with fhir.db.reading() as s:
        other_patient = s.scalar(select(Patient.id).where(Patient.id != patient_id).order_by(Patient.id))
    for slot in _free_cardiology(ehr, 5):
        barrier = threading.Barrier(2)

        def over_fhir(slot_id=slot["id"], barrier=barrier):
            barrier.wait()
            return ehr.post("Appointment", _booking(slot_id, patient_id)).status_code

        def in_chat(slot_id=int(slot["id"]), barrier=barrier):
            own = Database(fhir.db.url)
            try:
                barrier.wait()
                scheduling.book(own, patient_id=other_patient, slot_id=slot_id, actor="contact:393330000002")
                return "booked"
            except scheduling.SlotTaken:
                return "taken"
            finally:
                own.dispose()

        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(map(str, [f.result() for f in [pool.submit(over_fhir), pool.submit(in_chat)]]))
        assert outcomes in (["201", "taken"], ["409", "booked"]), outcomes
        with fhir.db.reading() as s:
            holders = s.scalars(select(Appointment).where(Appointment.slot_id == int(slot["id"]))).all()
        assert len(holders) == 1


def test_oauth2_client_credentials_give_an_access_token_that_ends_with_the_client(fhir):
    key = clients.add_client(fhir.db, "his")
    token_url = f"{fhir.base}/oauth2/token"
    refused = requests.post(token_url, data={"grant_type": "client_credentials"}, auth=("his", "clk_wrong"),
                            timeout=30)
    assert (refused.status_code, refused.json()) == (401, {"error": "invalid_client"})
    wrong_grant = requests.post(token_url, data={"grant_type": "password"}, auth=("his", key), timeout=30)
    assert wrong_grant.json() == {"error": "unsupported_grant_type"}

    granted = requests.post(token_url, data={"grant_type": "client_credentials", "client_id": "his",
                                             "client_secret": key}, timeout=30)
    assert granted.status_code == 200 and granted.json()["token_type"] == "Bearer"
    assert granted.json()["expires_in"] > 0
    ehr = fhir.anonymous(granted.json()["access_token"])
    patient_id, _ = _ids(fhir.db)
    assert ehr.get(f"Patient/{patient_id}").status_code == 200
    forged = fhir.anonymous(granted.json()["access_token"][:-4] + "0000")
    _outcome(forged.get(f"Patient/{patient_id}"), 401, "login")
    clients.revoke_client(fhir.db, "his")
    _outcome(ehr.get(f"Patient/{patient_id}"), 401, "login")


def test_an_access_token_expires(db):
    key = clients.add_client(db, "lab.north")
    token, lifetime = clients.issue_token(db, "lab.north", key, now=datetime.now().astimezone() - timedelta(hours=2))
    assert lifetime < 2 * 3600
    assert clients.authenticate(db, token) is None
    fresh, _ = clients.issue_token(db, "lab.north", key)
    assert clients.authenticate(db, fresh) == "fhir:lab.north"
