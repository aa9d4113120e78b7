"""Who is writing, in which language, and whether they consented: run after every message (a custom slot mapping)."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import core, db, guarded
from clinic import consent, patients
from clinic.language import detect_language, requested_language
from clinic.settings import settings


def choose_language(text: str, intent: str | None, current: str | None, remembered: str | None, phone: str) -> str:
    """The conversation's language: an explicit switch, else what it already is, else the first
    message's language, else what we remember of the contact, else the +39 tie-breaker.
    """
    if intent == "change_language":
        return requested_language(text) or ("en" if current == "it" else "it")
    if current:
        return current
    # A button's payload (`/confirm_appointment{...}`, e.g. a reminder's quick reply) is English-looking
    # markup the patient never wrote: no evidence of their language.
    written = "" if text.startswith("/") else text
    return detect_language(written) or remembered or detect_language("", phone) or settings().default_language


def tie_breaker(sender_id: str) -> str:
    """The number that breaks a language tie: the phone number, or, for a WhatsApp user known only
    by a business-scoped user id (country first: `IT.1502…`), Italy's calling code for `IT`.
    """
    return "39" if sender_id[:3].upper() == "IT." else sender_id


class ActionIdentifySender(Action):
    def name(self) -> str:
        return "action_identify_sender"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        message = tracker.latest_message or {}
        profile = await core(patients.contact_profile, db(), tracker.sender_id)
        chosen = choose_language(
            message.get("text") or "",
            (message.get("intent") or {}).get("name"),
            tracker.get_slot("language"),
            profile.language,
            tie_breaker(tracker.sender_id),
        )
        if chosen != profile.language:
            await core(patients.remember_language, db(), tracker.sender_id, chosen)
        contact_id = await core(patients.contact_id, db(), tracker.sender_id)
        consents = await core(consent.state, db(), contact_id)
        return [
            SlotSet("language", chosen),
            SlotSet("first_name", profile.first_name),
            SlotSet("known_contact", bool(profile.patients)),
            SlotSet("consented", consents.allows("appointments")),
        ]


class ActionGreet(Action):
    def name(self) -> str:
        return "action_greet"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        first_name = tracker.get_slot("first_name")
        if first_name:
            dispatcher.utter_message(response="utter_greet_known", first_name=first_name)
        else:
            dispatcher.utter_message(response="utter_greet")
        return []


