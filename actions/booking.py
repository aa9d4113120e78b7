"""Booking a visit: the booking form's validation, its questions, and the booking itself.

The reschedule form shares the slot questions (`action_ask_slot_id`, `action_ask_booking_confirmed`).
The booking and reschedule confirmations are followed by a link to the visit's `.ics`
(`send_calendar_link`, `clinic.ical`).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import actor, core, db, guarded, language, render
from actions.presenting import appointment_values, long_date, short_when, slot_values, specialty_name
from clinic import catalog, ical, patients, scheduling, waitlist
from clinic.models import Relationship
from clinic.settings import settings

SLOTS_PER_PAGE = 8  # + "more times" fits WhatsApp's 10-row list
# Slots a finished (or abandoned) booking leaves behind, cleared so the next one starts afresh.
BOOKING_SLOTS = (
    "specialty", "doctor", "time", "time_end", "relation", "patient_id", "full_name", "date_of_birth",
    "slot_page", "slot_id", "booking_confirmed",
)
# The entity `relation` says what the patient is to the writer; links record what the writer is
# to the patient.
WRITER_ROLE = {
    "self": {Relationship.self},
    "child": {Relationship.parent, Relationship.guardian},
    "parent": {Relationship.child, Relationship.carer},
    "spouse": {Relationship.spouse},
}


logger = logging.getLogger(__name__)


async def send_calendar_link(dispatcher: CollectingDispatcher, tracker: Tracker, appointment_id: int) -> None:
    """After a confirmation: "add it to your calendar", a link to the visit's `.ics` (WhatsApp cannot
    send a text/calendar document). The booking stands without it: a failure here is logged only.
    """
    try:
        token = await core(ical.issue_visit_link, db(), appointment_id, language(tracker))
    except Exception as error:  # noqa: BLE001 - the confirmation is already said; the link is a nicety
        logger.error("calendar link for appointment %s not issued: %s", appointment_id, type(error).__name__)
        return
    dispatcher.utter_message(response="utter_calendar_link", url=ical.visit_url(token))


def reset_booking() -> list[EventType]:
    return [SlotSet(name, 0 if name == "slot_page" else None) for name in BOOKING_SLOTS]


def previous_value(tracker: Tracker, slot: str):
    """The slot's value before the latest message (which may have overwritten it by mistake)."""
    seen_latest_user = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            seen_latest_user = True
        elif seen_latest_user and event.get("event") == "slot" and event.get("name") == slot:
            return event.get("value")
    return None


def time_window(tracker: Tracker) -> tuple[datetime, datetime] | None:
    """The interval the patient asked for: the `time` slot, to `time_end` or the end of that day."""
    start_text = tracker.get_slot("time")
    if not start_text:
        return None
    start = datetime.fromisoformat(start_text)
    end_text = tracker.get_slot("time_end")
    if end_text:
        return start, datetime.fromisoformat(end_text)
    _, day_end = scheduling.day_window(start.astimezone(settings().zone).date())
    return start, day_end


def time_entity(tracker: Tracker) -> dict | None:
    return next((e for e in tracker.latest_message.get("entities", []) if e.get("entity") == "time"), None)


def booking_patient(tracker: Tracker, profile: patients.ContactProfile) -> int | None:
    """Whom the booking is for: chosen, named by relation, or the only patient of the contact."""
    chosen = tracker.get_slot("patient_id")
    if chosen and chosen != "new":
        return int(chosen)
    relation = tracker.get_slot("relation")
    if relation in WRITER_ROLE:
        matching = [p.id for p in profile.patients if p.relation in WRITER_ROLE[relation]]
        if len(matching) == 1:
            return matching[0]
    if len(profile.patients) == 1 and chosen != "new":
        return profile.patients[0].id
    return None


def offer_extractions(tracker: Tracker) -> list[EventType]:
    """Slots a form fills from the latest message besides the requested one: the next page of
    slots on "more times", and the end of a time window from the time entity's additional_info.
    """
    extracted: dict = {}
    if tracker.latest_message.get("intent", {}).get("name") == "more_options":
        extracted.update(slot_page=(tracker.get_slot("slot_page") or 0) + 1, slot_id=None)
    entity = time_entity(tracker)
    if entity is not None and tracker.get_slot("requested_slot") not in ("full_name", "date_of_birth"):
        extracted["time_end"] = (entity.get("additional_info") or {}).get("end")
    tracker.slots.update(extracted)
    return [SlotSet(name, value) for name, value in extracted.items()]


def check_time(value, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict:
    """Accept a visit time that is understood and not over; a new time means new slot offers."""
    if tracker.get_slot("requested_slot") in ("full_name", "date_of_birth"):
        return {"time": previous_value(tracker, "time")}  # a birth date is not a visit date
    window = time_window(tracker)
    if window is None:
        dispatcher.utter_message(response="utter_time_not_understood")
        return {"time": None}
    if window[1] <= datetime.now(timezone.utc):
        dispatcher.utter_message(response="utter_time_in_past")
        return {"time": None, "time_end": None}
    return {"time": value, "slot_page": 0, "slot_id": None, "booking_confirmed": None}


class ValidateBookingForm(FormValidationAction):
    def name(self) -> str:
        return "validate_booking_form"

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        profile = await core(patients.contact_profile, db(), tracker.sender_id)
        needed: list[str] = []
        if not profile.patients or tracker.get_slot("patient_id") == "new":
            needed += ["full_name", "date_of_birth"]
        elif booking_patient(tracker, profile) is None:
            needed.append("patient_id")
        if not tracker.get_slot("doctor"):
            needed.append("specialty")
        return needed + ["time", "slot_id", "booking_confirmed"]

    async def get_extraction_events(self, dispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        return await super().get_extraction_events(dispatcher, tracker, domain) + offer_extractions(tracker)

    async def validate_time(self, value, dispatcher, tracker: Tracker, domain: DomainDict) -> dict:
        return check_time(value, dispatcher, tracker)

    async def validate_specialty(self, value, dispatcher, tracker: Tracker, domain: DomainDict) -> dict:
        offered = await core(catalog.specialties, db())
        if value in offered:
            return {"specialty": value}
        names = ", ".join(s.name(language(tracker)) for s in offered.values())
        dispatcher.utter_message(response="utter_unknown_specialty", specialties=names)
        return {"specialty": None}

    async def validate_doctor(self, value, dispatcher, tracker: Tracker, domain: DomainDict) -> dict:
        return {"doctor": value if await core(catalog.practitioner_id, db(), value) else None}

    async def validate_patient_id(self, value, dispatcher, tracker: Tracker, domain: DomainDict) -> dict:
        profile = await core(patients.contact_profile, db(), tracker.sender_id)
        if value == "new" or value in {str(p.id) for p in profile.patients}:
            return {"patient_id": value}
        return {"patient_id": None}  # not one of this contact's patients: ask again

    async def validate_full_name(self, value, dispatcher, tracker: Tracker, domain: DomainDict) -> dict:
        if patients.split_full_name(value or "") is None:
            dispatcher.utter_message(response="utter_invalid_full_name")
            return {"full_name": None}
        return {"full_name": value}

    async def validate_date_of_birth(self, value, dispatcher, tracker: Tracker, domain: DomainDict) -> dict:
        born = patients.parse_date_of_birth(value or "", date.today())
        names = patients.split_full_name(tracker.get_slot("full_name") or "")
        if born is None or names is None:
            dispatcher.utter_message(response="utter_invalid_date_of_birth")
            return {"date_of_birth": None}
        adding_dependant = tracker.get_slot("patient_id") == "new"
        relation = tracker.get_slot("relation")
        role = sorted(WRITER_ROLE.get(relation, {Relationship.other}))[0] if adding_dependant else Relationship.self
        patient_id = await core(
            patients.register_patient,
            db(),
            wa_id=tracker.sender_id,
            first_name=names[0],
            last_name=names[1],
            date_of_birth=born,
            language=language(tracker),
            relation=role,
        )
        dispatcher.utter_message(response="utter_registered", first_name=names[0])
        return {"date_of_birth": born.isoformat(), "patient_id": str(patient_id)}


class ActionAskPatientId(Action):
    def name(self) -> str:
        return "action_ask_patient_id"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        profile = await core(patients.contact_profile, db(), tracker.sender_id)
        buttons = [{"title": p.first_name, "payload": f'/inform{{"patient_id": "{p.id}"}}'} for p in profile.patients]
        buttons.append({"title": render(domain, "utter_someone_else", language(tracker)),
                        "payload": '/inform{"patient_id": "new"}'})
        dispatcher.utter_message(response="utter_ask_patient_id", buttons=buttons)
        return []


def slot_query(tracker: Tracker, start: datetime, end: datetime, doctor_id: int | None) -> scheduling.SlotQuery:
    return scheduling.SlotQuery(start, end, specialty=tracker.get_slot("specialty"), practitioner_id=doctor_id)


def slot_button(domain: dict, offered: scheduling.FreeSlot, lang: str) -> dict:
    values = {**slot_values(offered, lang), **short_when(offered.start_at, lang)}
    title = render(domain, "utter_slot_option", lang, **values)
    return {"title": title, "payload": f'/inform{{"slot_id": "{offered.id}"}}'}


class ActionAskSlotId(Action):
    """Offer free slots in the asked window; if none, the nearest ones after it."""

    def name(self) -> str:
        return "action_ask_slot_id"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        lang, page = language(tracker), int(tracker.get_slot("slot_page") or 0)
        doctor = tracker.get_slot("doctor")
        doctor_id = await core(catalog.practitioner_id, db(), doctor) if doctor else None
        if not tracker.get_slot("specialty") and doctor_id is None:  # rescheduling: same practitioner
            current = await core(scheduling.appointment, db(), int(tracker.get_slot("appointment_id")))
            doctor_id = current.practitioner_id if current else None
        start, end = time_window(tracker)
        offered = await core(scheduling.free_slots, db(), slot_query(tracker, start, end, doctor_id),
                             limit=SLOTS_PER_PAGE + 1, offset=page * SLOTS_PER_PAGE)
        intro = "utter_pick_a_slot"
        if not offered and page == 0:
            dispatcher.utter_message(response="utter_no_free_slots")
            horizon = start + timedelta(days=settings().slot_horizon_days)
            offered = await core(scheduling.free_slots, db(), slot_query(tracker, start, horizon, doctor_id),
                                 limit=SLOTS_PER_PAGE + 1)
            intro = "utter_nearest_alternatives"
        waitlist_button = {"title": render(domain, "utter_waitlist_button", lang), "payload": "/join_waitlist"}
        if not offered:
            dispatcher.utter_message(response="utter_nothing_soon", buttons=[waitlist_button])
            return [SlotSet("slot_page", 0)]
        buttons = [slot_button(domain, s, lang) for s in offered[:SLOTS_PER_PAGE]]
        if len(offered) > SLOTS_PER_PAGE:
            buttons.append({"title": render(domain, "utter_more_options", lang), "payload": "/more_options"})
        if intro == "utter_nearest_alternatives":
            buttons.append(waitlist_button)
        dispatcher.utter_message(response=intro, buttons=buttons)
        return []


class ActionJoinWaitlist(Action):
    """Nothing suits the patient: put them on the waitlist for what they asked, in the window asked."""

    def name(self) -> str:
        return "action_join_waitlist"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        specialty, doctor = tracker.get_slot("specialty"), tracker.get_slot("doctor")
        profile = await core(patients.contact_profile, db(), tracker.sender_id)
        patient_id = booking_patient(tracker, profile)
        doctor_id = await core(catalog.practitioner_id, db(), doctor) if doctor else None
        if patient_id is None or (specialty is None and doctor_id is None):
            dispatcher.utter_message(response="utter_waitlist_how")
            return reset_booking()
        zone = settings().zone
        today = datetime.now(zone).date()
        start, end = time_window(tracker) or scheduling.day_window(today, today + timedelta(
            days=settings().slot_horizon_days))
        entry = await core(waitlist.join, db(), patient_id=patient_id, specialty=specialty,
                           practitioner_id=doctor_id, wanted_from=max(start.astimezone(zone).date(), today),
                           wanted_until=max((end - timedelta(seconds=1)).astimezone(zone).date(), today))
        lang = language(tracker)
        dispatcher.utter_message(response="utter_waitlist_joined", first_day=long_date(entry.wanted_from, lang),
                                 last_day=long_date(entry.wanted_until, lang))
        return reset_booking()


class ActionAskBookingConfirmed(Action):
    """The summary before booking or moving: who, what, when, where."""

    def name(self) -> str:
        return "action_ask_booking_confirmed"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        lang = language(tracker)
        chosen = await core(scheduling.slot, db(), int(tracker.get_slot("slot_id")))
        profile = await core(patients.contact_profile, db(), tracker.sender_id)
        specialties = await core(catalog.specialties, db())
        if tracker.active_loop_name == "reschedule_form":
            current = await core(scheduling.appointment, db(), int(tracker.get_slot("appointment_id")))
            patient, specialty = current.patient_name, current.specialty
        else:
            patient_id = booking_patient(tracker, profile)
            patient = next((f"{p.first_name} {p.last_name}" for p in profile.patients if p.id == patient_id), "")
            specialty = tracker.get_slot("specialty")
        dispatcher.utter_message(
            response="utter_ask_booking_confirmed",
            **slot_values(chosen, lang),
            patient=patient,
            specialty=specialty_name(specialty, lang, specialties) or chosen.practitioner_name,
        )
        return []


class ActionBookAppointment(Action):
    def name(self) -> str:
        return "action_book_appointment"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        if not tracker.get_slot("booking_confirmed"):
            dispatcher.utter_message(response="utter_booking_not_made")
            return reset_booking()
        profile = await core(patients.contact_profile, db(), tracker.sender_id)
        try:
            booked = await core(
                scheduling.book,
                db(),
                patient_id=booking_patient(tracker, profile),
                slot_id=int(tracker.get_slot("slot_id")),
                specialty=tracker.get_slot("specialty"),
                actor=actor(tracker),
            )
        except (scheduling.SlotTaken, scheduling.SlotNotBookable):
            dispatcher.utter_message(response="utter_slot_taken")
            return [SlotSet("slot_id", None), SlotSet("booking_confirmed", None), SlotSet("slot_page", 0),
                    FollowupAction("booking_form")]
        specialties = await core(catalog.specialties, db())
        dispatcher.utter_message(response="utter_booked", **appointment_values(booked, language(tracker), specialties))
        await send_calendar_link(dispatcher, tracker, booked.id)
        return reset_booking()
