"""The consent step and STOP: thin adapters over `clinic.consent` (ConsentPolicy decides when they run)."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import core, db, guarded, language
from clinic import consent, patients, rights


def how(tracker: Tracker, what: str) -> str:
    """How a decision was given, for the ledger: channel and means (button, text, keyword)."""
    return f"{tracker.get_latest_input_channel() or 'chat'}:{what}"


def _choice(tracker: Tracker) -> tuple[str, str]:
    """The chosen option and how it came: a consent button, "I accept", or yes/no to the question."""
    message = tracker.latest_message or {}
    intent = (message.get("intent") or {}).get("name")
    choice = next(tracker.get_latest_entity_values("consent_choice"), None)
    tapped = (message.get("text") or "").startswith("/")
    if intent == "deny":
        return "none", "text"
    if choice in consent.CHOICES:
        return choice, "button" if tapped else "text"
    return "all", "button" if tapped else "text"


class ActionAskConsent(Action):
    def name(self) -> str:
        return "action_ask_consent"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        notice = await core(consent.current_notice, db(), language(tracker))
        dispatcher.utter_message(text=notice.text)  # the clinic's published notice, versioned in the database
        dispatcher.utter_message(response="utter_ask_consent")
        return []


class ActionRecordConsent(Action):
    def name(self) -> str:
        return "action_record_consent"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        choice, means = _choice(tracker)
        contact_id = await core(patients.contact_id, db(), tracker.sender_id)
        state = await core(consent.decide, db(), contact_id, consent.CHOICES[choice], how(tracker, means))
        dispatcher.utter_message(response="utter_consent_thanks" if state.granted else "utter_consent_declined")
        return [SlotSet("consented", state.allows("appointments"))]


class ActionOptOut(Action):
    def name(self) -> str:
        return "action_opt_out"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        contact_id = await core(patients.contact_id, db(), tracker.sender_id)
        await core(consent.opt_out, db(), contact_id, how(tracker, "stop"))
        dispatcher.utter_message(response="utter_opt_out_confirmed")
        return [ActiveLoop(None), SlotSet("requested_slot", None), SlotSet("consented", False)]


class ActionRequestData(Action):
    """A copy of one's data or erasure: recorded as a staff task (clinic.rights); staff approve it."""

    def name(self) -> str:
        return "action_request_data"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        kind = "erasure" if intent == "request_erasure" else "export"
        contact_id = await core(patients.contact_id, db(), tracker.sender_id)
        _, created = await core(rights.ask, db(), contact_id, kind)
        dispatcher.utter_message(response="utter_data_request_received" if created else "utter_data_request_open")
        return []
