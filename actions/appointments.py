"""A contact's appointments: list, confirm, cancel and reschedule (the slot questions are shared
with booking, see actions/booking.py).
"""

from __future__ import annotations

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.booking import check_time, offer_extractions, reset_booking, send_calendar_link
from actions.common import actor, core, db, guarded, language, render
from actions.presenting import appointment_values, short_when
from clinic import catalog, patients, scheduling
from clinic.outreach import reminders

APPOINTMENT_SLOTS = ("appointment_id", "cancel_confirmed")


async def upcoming(tracker: Tracker) -> list[scheduling.AppointmentView]:
    """Upcoming appointments of every patient the writing contact acts for."""
    profile = await core(patients.contact_profile, db(), tracker.sender_id)
    return await core(scheduling.upcoming_appointments, db(), [p.id for p in profile.patients])


async def chosen_appointment(tracker: Tracker) -> scheduling.AppointmentView | None:
    """The appointment the conversation is about, if it is one of this contact's."""
    wanted = tracker.get_slot("appointment_id")
    return next((a for a in await upcoming(tracker) if str(a.id) == wanted), None)


async def reminded(tracker: Tracker, appointments: list[scheduling.AppointmentView]) -> str | None:
    """The appointment a reply to a reminder is about ("non riesco a venire" under a reminder): the
    reminder tapped or quoted (the channel's `context` metadata), else the contact's latest one.
    """
    context = (tracker.latest_message.get("metadata") or {}).get("context") or {}
    contact = await core(patients.contact_id, db(), tracker.sender_id)
    found = await core(reminders.reminded_appointment, db(), contact, context.get("biz_opaque_callback_data"))
    return str(found) if found in {a.id for a in appointments} else None


async def appointment_extractions(tracker: Tracker, appointments: list[scheduling.AppointmentView]
                                  ) -> list[EventType]:
    """Nothing to ask when the patient answers a reminder or has a single upcoming appointment."""
    if tracker.get_slot("appointment_id") is not None or not appointments:
        return []
    chosen = await reminded(tracker, appointments) or (str(appointments[0].id) if len(appointments) == 1 else None)
    if chosen is None:
        return []
    tracker.slots["appointment_id"] = chosen
    return [SlotSet("appointment_id", chosen)]


async def validate_appointment_choice(value, tracker: Tracker) -> dict:
    return {"appointment_id": value if value in {str(a.id) for a in await upcoming(tracker)} else None}


class ValidateCancelForm(FormValidationAction):
    def name(self) -> str:
        return "validate_cancel_form"

    async def required_slots(self, domain_slots, dispatcher, tracker: Tracker, domain: DomainDict) -> list[str]:
        return ["appointment_id", "cancel_confirmed"] if await upcoming(tracker) else []

    async def get_extraction_events(self, dispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        events = await super().get_extraction_events(dispatcher, tracker, domain)
        return events + await appointment_extractions(tracker, await upcoming(tracker))

    async def validate_appointment_id(self, value, dispatcher, tracker: Tracker, domain: DomainDict) -> dict:
        return await validate_appointment_choice(value, tracker)


class ValidateRescheduleForm(FormValidationAction):
    def name(self) -> str:
        return "validate_reschedule_form"

    async def required_slots(self, domain_slots, dispatcher, tracker: Tracker, domain: DomainDict) -> list[str]:
        return ["appointment_id", "time", "slot_id", "booking_confirmed"] if await upcoming(tracker) else []

    async def get_extraction_events(self, dispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        events = await super().get_extraction_events(dispatcher, tracker, domain)
        return events + await appointment_extractions(tracker, await upcoming(tracker)) + offer_extractions(tracker)

    async def validate_appointment_id(self, value, dispatcher, tracker: Tracker, domain: DomainDict) -> dict:
        return await validate_appointment_choice(value, tracker)

    async def validate_time(self, value, dispatcher, tracker: Tracker, domain: DomainDict) -> dict:
        return check_time(value, dispatcher, tracker)


class ActionAskAppointmentId(Action):
    def name(self) -> str:
        return "action_ask_appointment_id"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        lang = language(tracker)
        buttons = [
            {"title": render(domain, "utter_slot_option", lang, **short_when(a.start_at, lang),
                             practitioner=a.practitioner_name),
             "payload": f'/inform{{"appointment_id": "{a.id}"}}'}
            for a in (await upcoming(tracker))[:10]
        ]
        dispatcher.utter_message(response="utter_ask_appointment_id", buttons=buttons)
        return []


class ActionAskCancelConfirmed(Action):
    def name(self) -> str:
        return "action_ask_cancel_confirmed"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        appointment = await chosen_appointment(tracker)
        specialties = await core(catalog.specialties, db())
        dispatcher.utter_message(response="utter_ask_cancel_confirmed",
                                 **appointment_values(appointment, language(tracker), specialties))
        return []


class ActionCancelAppointment(Action):
    def name(self) -> str:
        return "action_cancel_appointment"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        done = [SlotSet(name, None) for name in APPOINTMENT_SLOTS]
        appointment = await chosen_appointment(tracker)
        if appointment is None:
            dispatcher.utter_message(response="utter_no_appointments")
            return done
        if not tracker.get_slot("cancel_confirmed"):
            dispatcher.utter_message(response="utter_cancel_not_done")
            return done
        try:
            cancelled = await core(scheduling.cancel, db(), appointment_id=appointment.id,
                                   reason="cancelled by the patient on WhatsApp", actor=actor(tracker))
        except scheduling.TooLateToCancel:
            dispatcher.utter_message(response="utter_too_late_to_cancel")
            return done
        specialties = await core(catalog.specialties, db())
        dispatcher.utter_message(response="utter_cancelled",
                                 **appointment_values(cancelled, language(tracker), specialties))
        return done


class ActionRescheduleAppointment(Action):
    def name(self) -> str:
        return "action_reschedule_appointment"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        done = reset_booking() + [SlotSet("appointment_id", None)]
        appointment = await chosen_appointment(tracker)
        if appointment is None:
            dispatcher.utter_message(response="utter_no_appointments")
            return done
        if not tracker.get_slot("booking_confirmed"):
            dispatcher.utter_message(response="utter_reschedule_not_done")
            return done
        try:
            moved = await core(scheduling.reschedule, db(), appointment_id=appointment.id,
                               new_slot_id=int(tracker.get_slot("slot_id")), actor=actor(tracker))
        except (scheduling.SlotTaken, scheduling.SlotNotBookable):
            dispatcher.utter_message(response="utter_slot_taken")
            return [SlotSet("slot_id", None), SlotSet("booking_confirmed", None), SlotSet("slot_page", 0),
                    FollowupAction("reschedule_form")]
        specialties = await core(catalog.specialties, db())
        dispatcher.utter_message(response="utter_rescheduled",
                                 **appointment_values(moved, language(tracker), specialties))
        await send_calendar_link(dispatcher, tracker, moved.id)
        return done


class ActionListAppointments(Action):
    def name(self) -> str:
        return "action_list_appointments"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        appointments = await upcoming(tracker)
        if not appointments:
            dispatcher.utter_message(response="utter_no_appointments")
            return []
        lang, specialties = language(tracker), await core(catalog.specialties, db())
        dispatcher.utter_message(response="utter_your_appointments")
        for appointment in appointments:
            dispatcher.utter_message(response="utter_appointment_line",
                                     **appointment_values(appointment, lang, specialties))
        return []


class ActionConfirmAppointment(Action):
    """The patient says they will come: the appointment in question (a reminder's button names it; a
    reply to a reminder means the reminded one), else the next one.
    """

    def name(self) -> str:
        return "action_confirm_appointment"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        appointments = await upcoming(tracker)
        reminded_id = await reminded(tracker, appointments) if appointments else None
        appointment = (await chosen_appointment(tracker)
                       or next((a for a in appointments if str(a.id) == reminded_id), None)
                       or (appointments[0] if appointments else None))
        if appointment is None:
            dispatcher.utter_message(response="utter_no_appointments")
            return []
        confirmed = await core(scheduling.confirm, db(), appointment_id=appointment.id, actor=actor(tracker))
        specialties = await core(catalog.specialties, db())
        dispatcher.utter_message(response="utter_appointment_confirmed",
                                 **appointment_values(confirmed, language(tracker), specialties))
        return [SlotSet("appointment_id", None)]
