"""A patient's "add to calendar" link over real HTTP (`python -m clinic.fhir`), parsed back by the
`icalendar` library as a phone's calendar would: the event follows a reschedule and a cancellation,
names no patient, and the link ends a week after the visit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from icalendar import Calendar
from sqlalchemy import select

from clinic import ical, scheduling
from clinic.models import Patient, VisitCalendarLink
from clinic.settings import settings
from tests.conftest import DEMO_TODAY
from tests.fhir.conftest import FhirServer, start_fhir, stop


@pytest.fixture
def server(any_demo_db, tmp_path, monkeypatch) -> Iterator[FhirServer]:
    served, process = start_fhir(any_demo_db, tmp_path / "fhir.log")
    monkeypatch.setenv("FHIR_BASE_URL", served.base)  # the links this test process makes point at it
    settings.cache_clear()
    yield served
    stop(process)


def free(db, count: int = 2) -> list[scheduling.FreeSlot]:
    query = scheduling.SlotQuery(*scheduling.day_window(DEMO_TODAY, DEMO_TODAY.replace(day=5)),
                                 specialty="cardiology")
    return scheduling.free_slots(db, query, limit=count)


def fetch(url: str):
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/calendar")
    assert answer.headers["Cache-Control"] == "no-store"
    assert "Giovanni" not in answer.text and "Verdi" not in answer.text and "1958" not in answer.text
    calendar = Calendar.from_ical(answer.content)
    (event,) = calendar.walk("VEVENT")
    return event


def test_the_visit_link_follows_a_reschedule_then_a_cancellation(server):
    db = server.db
    with db.reading() as s:
        patient_id = s.scalar(select(Patient.id).where(Patient.first_name == "Giovanni"))
    first, second = free(db)
    booked = scheduling.book(db, patient_id=patient_id, slot_id=first.id, actor="contact:1")
    url = ical.visit_url(ical.issue_visit_link(db, booked.id, "it"))
    assert url.startswith(server.base + "/calendar/visit/")
    with db.reading() as s:
        [stored] = s.scalars(select(VisitCalendarLink)).all()
    assert stored.token_hash == ical.token_hash(url.rsplit("/", 1)[1].removesuffix(".ics"))

    event = fetch(url)
    uid = f"appointment-{booked.id}@clinic-assistant"
    assert (event.decoded("dtstart"), event.decoded("dtend")) == (booked.start_at, booked.end_at)
    assert (str(event["uid"]), str(event["status"]), event["sequence"]) == (uid, "CONFIRMED", 0)
    assert str(event["summary"]) == f"Visita – {booked.practitioner_name}"
    assert booked.location_address in str(event["location"])

    moved = scheduling.reschedule(db, appointment_id=booked.id, new_slot_id=second.id, actor="contact:1")
    event = fetch(url)
    assert (event.decoded("dtstart"), event.decoded("dtend")) == (moved.start_at, moved.end_at)
    assert moved.start_at != booked.start_at
    assert (str(event["uid"]), str(event["status"]), event["sequence"]) == (uid, "CONFIRMED", 3)

    scheduling.cancel(db, appointment_id=moved.id, reason="ill", actor="contact:1", allow_late=True)
    event = fetch(url)
    assert event.decoded("dtstart") == moved.start_at
    assert (str(event["uid"]), str(event["status"]), event["sequence"]) == (uid, "CANCELLED", 5)
    # A link sent with the reschedule confirmation is the same event.
    later = fetch(ical.visit_url(ical.issue_visit_link(db, moved.id, "en")))
    assert (str(later["uid"]), str(later["status"]), str(later["summary"])) == (
        uid, "CANCELLED", f"Appointment – {moved.practitioner_name}")


def test_the_link_ends_a_week_after_the_visit_and_a_wrong_token_finds_nothing(server):
    db = server.db
    [slot] = free(db, 1)
    booked = scheduling.book(db, patient_id=1, slot_id=slot.id, actor="contact:1")
    token = ical.issue_visit_link(db, booked.id)
    assert ical.visit_ics(db, token, now=booked.end_at + ical.VISIT_LINK_AFTER / 2) is not None
    assert ical.visit_ics(db, token, now=booked.end_at + ical.VISIT_LINK_AFTER) is None
    assert requests.get(f"{server.base}/calendar/visit/{'A' * 43}.ics", timeout=30).status_code == 404
    assert requests.get(f"{server.base}/calendar/visit/{token}.ics", timeout=30).status_code == 200
