from datetime import timedelta

from icalendar import Calendar
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select

from actions.appointments import ActionRescheduleAppointment
from actions.booking import (
    ActionAskBookingConfirmed,
    ActionAskPatientId,
    ActionAskSlotId,
    ActionBookAppointment,
    ActionJoinWaitlist,
    ValidateBookingForm,
)
from clinic import ical, scheduling, waitlist
from clinic.models import Appointment, Patient, VisitCalendarLink
from clinic.settings import settings
from tests.actions.conftest import CHIARA, GIOVANNI, STRANGER, next_weekday, responses, tracker


def monday_morning():
    """Dott.ssa Bianchi (cardiology) works Mondays 09:00-13:00 in 30-minute slots."""
    start = next_weekday(0)
    return {"specialty": "cardiology", "time": (start + timedelta(hours=6)).isoformat(),
            "time_end": (start + timedelta(hours=12)).isoformat()}


def offered_ids(dispatcher):
    return [b["payload"] for b in dispatcher.messages[-1]["buttons"] if "slot_id" in b["payload"]]


async def test_offers_the_first_free_slots_of_the_window_with_a_way_to_see_more(clinic_db, domain):
    dispatcher = CollectingDispatcher()
    await ActionAskSlotId().run(dispatcher, tracker(slots=monday_morning()), domain)
    assert responses(dispatcher) == ["utter_pick_a_slot"]
    buttons = dispatcher.messages[0]["buttons"]
    assert len(buttons) == 6  # 09:00 … 11:30 start in the morning (06:00-12:00); no "more" needed
    assert buttons[0]["title"].startswith("lun ") and "09:00 · Dott.ssa Laura Bianchi" in buttons[0]["title"]
    assert all(b["payload"].startswith('/inform{"slot_id": "') for b in buttons)

    whole_week = {**monday_morning(), "time_end": (next_weekday(0) + timedelta(days=7)).isoformat()}
    dispatcher = CollectingDispatcher()
    await ActionAskSlotId().run(dispatcher, tracker(slots={**whole_week, "language": "en"}), domain)
    titles = [b["title"] for b in dispatcher.messages[0]["buttons"]]
    assert len(titles) == 9 and titles[-1] == "More times" and titles[0].startswith("Mon ")
    page_two = CollectingDispatcher()
    await ActionAskSlotId().run(page_two, tracker(slots={**whole_week, "slot_page": 1}), domain)
    assert not set(offered_ids(page_two)) & set(offered_ids(dispatcher))


async def test_nothing_free_offers_the_nearest_alternatives(clinic_db, domain):
    sunday = next_weekday(6)
    monday = sunday + timedelta(days=1)
    slots = {"specialty": "cardiology", "time": sunday.isoformat(), "time_end": monday.isoformat()}
    dispatcher = CollectingDispatcher()
    await ActionAskSlotId().run(dispatcher, tracker(slots=slots), domain)
    assert responses(dispatcher) == ["utter_no_free_slots", "utter_nearest_alternatives"]
    assert "lun " in dispatcher.messages[1]["buttons"][0]["title"]


async def test_the_summary_names_who_what_when_where(clinic_db, domain):
    slot = (await offered(clinic_db))[0]
    dispatcher = CollectingDispatcher()
    chosen = tracker(slots={**monday_morning(), "slot_id": str(slot.id)})
    await ActionAskBookingConfirmed().run(dispatcher, chosen, domain)
    message = dispatcher.messages[0]
    assert message["response"] == "utter_ask_booking_confirmed"
    assert (message["patient"], message["specialty"], message["time"]) == ("Giovanni Verdi", "Cardiologia", "09:00")
    assert message["practitioner"] == "Dott.ssa Laura Bianchi" and "Via dei Mille" in message["address"]


async def offered(db):
    start = next_weekday(0)
    return scheduling.free_slots(db, scheduling.SlotQuery(start, start + timedelta(days=1), specialty="cardiology"))


def count_appointments(db):
    with db.transaction() as s:
        return s.scalar(select(func.count()).select_from(Appointment))


async def test_a_confirmed_booking_is_made_and_the_form_slots_cleared(clinic_db, domain):
    slot = (await offered(clinic_db))[0]
    dispatcher = CollectingDispatcher()
    events = await ActionBookAppointment().run(
        dispatcher, tracker(slots={**monday_morning(), "slot_id": str(slot.id), "booking_confirmed": True}), domain)
    assert responses(dispatcher) == ["utter_booked", "utter_calendar_link"]
    assert dispatcher.messages[0]["patient"] == "Giovanni Verdi"
    assert SlotSet("slot_id", None) in events and SlotSet("specialty", None) in events
    [booked] = scheduling.upcoming_appointments(clinic_db, [1])
    assert booked.slot_id == slot.id
    # "Add to calendar": a link of its own to this visit's .ics, which holds no patient data.
    event = served_event(clinic_db, dispatcher.messages[1]["url"])
    assert (event.decoded("dtstart"), event.decoded("dtend"), str(event["status"])) == (
        booked.start_at, booked.end_at, "CONFIRMED")
    assert str(event["summary"]) == "Visita – Dott.ssa Laura Bianchi"
    assert "Giovanni" not in event.to_ical().decode() and "Verdi" not in event.to_ical().decode()


def served_event(db, url: str):
    """The single event behind a calendar link, as the FHIR process would serve it."""
    assert url.startswith(settings().fhir_base_url + "/calendar/visit/") and url.endswith(".ics")
    token = url.rsplit("/", 1)[1].removesuffix(".ics")
    assert len(token) >= 40 and token not in str(select_link_hashes(db))  # only the hash is stored
    (event,) = Calendar.from_ical(ical.visit_ics(db, token)).walk("VEVENT")
    return event


def select_link_hashes(db) -> list[str]:
    with db.reading() as s:
        return s.scalars(select(VisitCalendarLink.token_hash)).all()


async def test_the_reschedule_confirmation_carries_a_link_to_the_moved_visit(clinic_db, domain):
    first, second = (await offered(clinic_db))[:2]
    booking = CollectingDispatcher()
    await ActionBookAppointment().run(
        booking, tracker(slots={**monday_morning(), "slot_id": str(first.id), "booking_confirmed": True,
                                "language": "en"}), domain)
    [booked] = scheduling.upcoming_appointments(clinic_db, [1])
    dispatcher = CollectingDispatcher()
    slots = {"appointment_id": str(booked.id), "slot_id": str(second.id), "booking_confirmed": True, "language": "en"}
    await ActionRescheduleAppointment().run(dispatcher, tracker(slots=slots), domain)
    assert responses(dispatcher) == ["utter_rescheduled", "utter_calendar_link"]
    [moved] = scheduling.upcoming_appointments(clinic_db, [1])
    new_link, old_link = dispatcher.messages[1]["url"], booking.messages[1]["url"]
    assert new_link != old_link
    # Both links now give the moved visit, as one event (the first booking's UID, a higher SEQUENCE).
    for url in (new_link, old_link):
        event = served_event(clinic_db, url)
        assert (event.decoded("dtstart"), str(event["status"])) == (moved.start_at, "CONFIRMED")
        assert str(event["uid"]) == f"appointment-{booked.id}@clinic-assistant" and event["sequence"] == 3
        assert str(event["summary"]) == "Appointment – Dott.ssa Laura Bianchi"


async def test_a_failing_calendar_link_leaves_the_booking_and_its_confirmation(clinic_db, domain, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(ical, "issue_visit_link", broken)
    slot = (await offered(clinic_db))[0]
    dispatcher = CollectingDispatcher()
    await ActionBookAppointment().run(
        dispatcher, tracker(slots={**monday_morning(), "slot_id": str(slot.id), "booking_confirmed": True}), domain)
    assert responses(dispatcher) == ["utter_booked"]
    assert count_appointments(clinic_db) == 1


async def test_a_slot_taken_meanwhile_gets_an_apology_and_fresh_options(clinic_db, domain):
    slot = (await offered(clinic_db))[0]
    scheduling.book(clinic_db, patient_id=2, slot_id=slot.id, actor="someone else")
    dispatcher = CollectingDispatcher()
    events = await ActionBookAppointment().run(
        dispatcher, tracker(slots={**monday_morning(), "slot_id": str(slot.id), "booking_confirmed": True}), domain)
    assert responses(dispatcher) == ["utter_slot_taken"]
    assert events == [SlotSet("slot_id", None), SlotSet("booking_confirmed", None), SlotSet("slot_page", 0),
                      FollowupAction("booking_form")]
    assert count_appointments(clinic_db) == 1


async def test_saying_no_at_the_summary_changes_nothing(clinic_db, domain):
    slot = (await offered(clinic_db))[0]
    dispatcher = CollectingDispatcher()
    await ActionBookAppointment().run(
        dispatcher, tracker(slots={**monday_morning(), "slot_id": str(slot.id), "booking_confirmed": False}), domain)
    assert responses(dispatcher) == ["utter_booking_not_made"]
    assert count_appointments(clinic_db) == 0


async def test_the_form_asks_only_for_what_is_missing(clinic_db, domain):
    form = ValidateBookingForm()
    ask = lambda sender, **slots: form.required_slots([], CollectingDispatcher(), tracker(sender, slots=slots), domain)  # noqa: E731
    assert await ask(GIOVANNI) == ["specialty", "time", "slot_id", "booking_confirmed"]
    assert await ask(GIOVANNI, doctor="bianchi") == ["time", "slot_id", "booking_confirmed"]
    assert await ask(CHIARA) == ["patient_id", "specialty", "time", "slot_id", "booking_confirmed"]
    assert await ask(CHIARA, relation="child") == ["specialty", "time", "slot_id", "booking_confirmed"]
    assert await ask(STRANGER) == ["full_name", "date_of_birth", "specialty", "time", "slot_id", "booking_confirmed"]


async def test_a_parent_chooses_whom_the_visit_is_for(clinic_db, domain):
    dispatcher = CollectingDispatcher()
    await ActionAskPatientId().run(dispatcher, tracker(CHIARA), domain)
    titles = [b["title"] for b in dispatcher.messages[0]["buttons"]]
    assert titles == ["Chiara", "Tommaso", "Un'altra persona"]


async def test_an_unknown_number_registers_before_booking(clinic_db, domain):
    form = ValidateBookingForm()
    dispatcher = CollectingDispatcher()
    bad = await form.validate_full_name("Anna", dispatcher, tracker(STRANGER), domain)
    assert bad == {"full_name": None} and responses(dispatcher) == ["utter_invalid_full_name"]
    t = tracker(STRANGER, slots={"full_name": "anna maria de luca"})
    assert await form.validate_date_of_birth("31/02/1990", dispatcher, t, domain) == {"date_of_birth": None}
    done = await form.validate_date_of_birth("12/04/1990", dispatcher, t, domain)
    with clinic_db.transaction() as s:
        patient = s.get(Patient, int(done["patient_id"]))
        registered = (patient.first_name, patient.last_name, str(patient.date_of_birth))
    assert registered == ("Anna Maria", "De Luca", "1990-04-12")
    assert responses(dispatcher)[-1] == "utter_registered"
    assert await form.required_slots([], dispatcher, tracker(STRANGER, slots=done), domain) == [
        "specialty", "time", "slot_id", "booking_confirmed"]


async def test_unknown_specialties_and_past_times_are_refused_with_a_reason(clinic_db, domain):
    form = ValidateBookingForm()
    dispatcher = CollectingDispatcher()
    assert await form.validate_specialty("astrology", dispatcher, tracker(), domain) == {"specialty": None}
    assert "Cardiologia" in dispatcher.messages[0]["specialties"]
    past = tracker(slots={"time": "2020-01-01T09:00:00+01:00", "time_end": "2020-01-01T10:00:00+01:00"})
    assert (await form.validate_time("2020-01-01T09:00:00+01:00", dispatcher, past, domain))["time"] is None
    assert responses(dispatcher)[-1] == "utter_time_in_past"


async def test_the_nearest_alternatives_come_with_a_waitlist_button(clinic_db, domain):
    sunday = next_weekday(6)
    slots = {"specialty": "cardiology", "time": sunday.isoformat(),
             "time_end": (sunday + timedelta(days=1)).isoformat()}
    dispatcher = CollectingDispatcher()
    await ActionAskSlotId().run(dispatcher, tracker(slots=slots), domain)
    assert dispatcher.messages[1]["buttons"][-1] == {"title": "Lista d'attesa", "payload": "/join_waitlist"}


async def test_joining_the_waitlist_records_the_window_asked_for(clinic_db, domain):
    dispatcher = CollectingDispatcher()
    events = await ActionJoinWaitlist().run(dispatcher, tracker(slots=monday_morning()), domain)
    [entry] = waitlist.entries(clinic_db, patient_id=1)
    monday = next_weekday(0).date()
    assert (entry.specialty, entry.wanted_from, entry.wanted_until) == ("cardiology", monday, monday)
    assert responses(dispatcher) == ["utter_waitlist_joined"]
    assert dispatcher.messages[0]["first_day"] == dispatcher.messages[0]["last_day"]
    assert dispatcher.messages[0]["first_day"].startswith("lunedì ")
    assert SlotSet("specialty", None) in events


async def test_the_waitlist_needs_to_know_what_for(clinic_db, domain):
    dispatcher = CollectingDispatcher()
    await ActionJoinWaitlist().run(dispatcher, tracker(), domain)
    assert responses(dispatcher) == ["utter_waitlist_how"]
    assert waitlist.entries(clinic_db, patient_id=1) == []
