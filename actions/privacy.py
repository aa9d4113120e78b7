"""The consent step, STOP and data-rights requests: thin adapters over `clinic.consent` and `clinic.rights`
(ConsentPolicy decides when the consent actions run).
"""

from __future__ import annotations

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import core, db, guarded, language
from actions.handoff import hand_over
from actions.results import identity_answer, identity_needed
from clinic import consent, identity, patients, rights
from clinic.settings import settings


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


async def requester(tracker: Tracker) -> tuple[int, patients.LinkedPatient | None]:
    """(contact id, whose date of birth proves who asks): the contact's own record first; none when the
    number has no patient, whose copy then holds only what it wrote itself.
    """
    contact_id = await core(patients.contact_id, db(), tracker.sender_id)
    linked = await core(patients.linked_patients, db(), tracker.sender_id)
    return contact_id, linked[0] if linked else None


INTENT_OF = {"export": "request_data_copy", "erasure": "request_erasure"}


class ValidateDataRequestForm(FormValidationAction):
    """A copy or erasure covers the linked patients' health data: the date of birth comes first."""

    def name(self) -> str:
        return "validate_data_request_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> list[str]:
        contact_id, patient = await requester(tracker)
        return await identity_needed(tracker, contact_id, patient)

    async def validate_identity_date_of_birth(self, value, dispatcher: CollectingDispatcher, tracker: Tracker,
                                              domain: DomainDict) -> dict:
        contact_id, patient = await requester(tracker)
        return await identity_answer(value, dispatcher, contact_id, patient)


class ActionRequestData(Action):
    """A copy of one's data or erasure, once the identity check passed: recorded as a staff task
    (clinic.rights); staff approve it.
    """

    def name(self) -> str:
        return "action_request_data"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        kind = tracker.get_slot("data_request") or "export"
        done = [SlotSet("identity_date_of_birth", None), SlotSet("data_request", None),
                SlotSet("time", None), SlotSet("time_end", None)]  # a date of birth may also read as a `time`
        contact_id, patient = await requester(tracker)
        standing = await core(identity.standing, db(), contact_id)
        if standing.locked:
            dispatcher.utter_message(response="utter_identity_locked", minutes=settings().identity_lockout_minutes)
            summary = {"intent": INTENT_OF[kind], "slots": {}}
            return done + await hand_over(dispatcher, tracker, "identity_failed", summary)
        if patient is not None and not standing.verified_for(patient.id):
            return done  # the check was left unfinished: nothing is recorded
        _, created = await core(rights.ask, db(), contact_id, kind)
        dispatcher.utter_message(response="utter_data_request_received" if created else "utter_data_request_open")
        return done
