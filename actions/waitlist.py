"""Answers to a waitlist offer (clinic/outreach/backfill.py): book the freed slot, or pass it on.

Joining the waitlist is part of booking (`action_join_waitlist` in actions/booking.py).
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.booking import send_calendar_link
from actions.common import actor, core, db, guarded, language
from actions.presenting import appointment_values
from clinic import catalog, patients
from clinic.outreach import backfill

# What the patient is told when the answer does not book anything.
NOT_BOOKED = {"gone": "utter_waitlist_offer_gone", "expired": "utter_waitlist_offer_expired",
              "declined": "utter_waitlist_offer_declined"}


async def offer_in_question(tracker: Tracker, contact_id: int) -> int | None:
    """The offer the button names, else (a typed answer) the contact's newest open offer."""
    tapped = next(tracker.get_latest_entity_values("offer_id"), None)
    if tapped is not None and str(tapped).isdigit():
        return int(tapped)
    return await core(backfill.latest_open_offer, db(), contact_id)


async def answer_offer(tracker: Tracker, answer_with) -> backfill.Answer:
    contact_id = await core(patients.contact_id, db(), tracker.sender_id)
    offer_id = await offer_in_question(tracker, contact_id)
    if offer_id is None:
        return backfill.Answer("unknown")
    return await core(answer_with, db(), offer_id=offer_id, contact_id=contact_id, actor=actor(tracker))


class ActionAcceptWaitlistOffer(Action):
    """"Book it": the first patient to accept gets the slot; a later one hears it has gone."""

    def name(self) -> str:
        return "action_accept_waitlist_offer"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        answer = await answer_offer(tracker, backfill.accept)
        if answer.appointment is None:
            dispatcher.utter_message(response=NOT_BOOKED.get(answer.outcome, "utter_waitlist_offer_unknown"))
            return []
        specialties = await core(catalog.specialties, db())
        dispatcher.utter_message(response="utter_booked",
                                 **appointment_values(answer.appointment, language(tracker), specialties))
        await send_calendar_link(dispatcher, tracker, answer.appointment.id)
        return []


class ActionDeclineWaitlistOffer(Action):
    """"No, thanks": the slot's place in the batch goes to the next patient in line."""

    def name(self) -> str:
        return "action_decline_waitlist_offer"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        answer = await answer_offer(tracker, backfill.decline)
        if answer.appointment is not None:  # accepted before: it stays booked, the patient can cancel it
            specialties = await core(catalog.specialties, db())
            dispatcher.utter_message(response="utter_booked",
                                     **appointment_values(answer.appointment, language(tracker), specialties))
            return []
        dispatcher.utter_message(response=NOT_BOOKED.get(answer.outcome, "utter_waitlist_offer_unknown"))
        return []
