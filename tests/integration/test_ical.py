"""Calendar feeds over real HTTP, parsed back by the `icalendar` library as a phone's calendar would."""

from __future__ import annotations

import requests
from icalendar import Calendar
from sqlalchemy import select

from clinic import ical, scheduling
from clinic.models import Patient, Practitioner
from clinic.settings import settings
from tests.conftest import DEMO_TODAY
from tests.fhir.conftest import start_fhir, stop


def _events(body: bytes) -> dict[str, dict]:
    calendar = Calendar.from_ical(body)
    return {str(e["uid"]): {"start": e.decoded("dtstart"), "end": e.decoded("dtend"), "summary": str(e["summary"]),
                            "status": str(e["status"])}
            for e in calendar.walk("VEVENT")}


def _book(db, specialty: str, patient_first_name: str, index: int = 0):
    query = scheduling.SlotQuery(*scheduling.day_window(DEMO_TODAY), specialty=specialty)
    slot = scheduling.free_slots(db, query, limit=5)[index]
    with db.reading() as s:
        patient_id = s.scalar(select(Patient.id).where(Patient.first_name == patient_first_name))
    return scheduling.book(db, patient_id=patient_id, slot_id=slot.id, actor="contact:1")


def test_a_practitioners_private_feed_shows_their_day_until_revoked(demo_db, tmp_path, monkeypatch):
    server, process = start_fhir(demo_db, tmp_path / "fhir.log")
    monkeypatch.setenv("FHIR_BASE_URL", server.base)
    settings.cache_clear()
    try:
        mine = _book(demo_db, "cardiology", "Giovanni")
        dropped = _book(demo_db, "cardiology", "Giovanni", 1)
        scheduling.cancel(demo_db, appointment_id=dropped.id, reason="ill", actor="staff:1", allow_late=True)
        others = _book(demo_db, "dermatology", "Emily")
        feed_id, token = ical.create_feed(demo_db, practitioner="bianchi")
        url = ical.feed_url(token)
        assert url.startswith(server.base + "/calendar/")

        answer = requests.get(url, timeout=30)

        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/calendar")
        events = _events(answer.content)
        assert list(events) == [f"appointment-{mine.id}@clinic-assistant"]
        event = events[f"appointment-{mine.id}@clinic-assistant"]
        assert (event["start"], event["end"]) == (mine.start_at, mine.end_at)
        assert "G.V." in event["summary"] and "Giovanni" not in answer.text and "Verdi" not in answer.text
        assert f"appointment-{others.id}@clinic-assistant" not in events

        ical.revoke_feed(demo_db, feed_id)
        assert requests.get(url, timeout=30).status_code == 404
        assert requests.get(f"{server.base}/calendar/not-a-token.ics", timeout=30).status_code == 404
    finally:
        stop(process)


def test_a_location_feed_holds_every_practitioner_there(demo_db):
    cardiology = _book(demo_db, "cardiology", "Giovanni")
    with demo_db.reading() as s:
        location_key = s.scalars(select(Practitioner).where(Practitioner.key == "bianchi")).one().location.key
    _, token = ical.create_feed(demo_db, location=location_key)
    events = _events(ical.feed(demo_db, token))
    assert f"appointment-{cardiology.id}@clinic-assistant" in events
    assert "Bianchi" in events[f"appointment-{cardiology.id}@clinic-assistant"]["summary"]


def test_the_patients_ics_of_one_booking_parses_back(demo_db):
    booked = _book(demo_db, "cardiology", "Giovanni")
    (event,) = Calendar.from_ical(ical.appointment_ics(booked, "en")).walk("VEVENT")
    assert (event.decoded("dtstart"), event.decoded("dtend")) == (booked.start_at, booked.end_at)
    assert booked.location_address in str(event["location"])
    assert str(event["summary"]) == f"Appointment – {booked.practitioner_name}"
    assert str(event["uid"]) == f"appointment-{booked.id}@clinic-assistant"
