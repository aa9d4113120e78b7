"""Answers to the satisfaction question after a visit (clinic/outreach/followups.py): the rating,
then an optional comment asked for by `satisfaction_form`.
"""

from __future__ import annotations

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import core, db, guarded
from clinic import patients, satisfaction

NO_COMMENT = "-"  # what "No comment" (deny) puts in `visit_comment`


def _number(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


class ActionRateVisit(Action):
    """Store the 1-5 rating of the visit the question was about (the button names it; a typed
    rating means the contact's latest question).
    """

    def name(self) -> str:
        return "action_rate_visit"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        # `appointment_id` came with the button: cleared so that it never pre-fills a later cancel form
        events = [SlotSet("appointment_id", None), SlotSet("visit_comment", None)]
        contact_id = await core(patients.contact_id, db(), tracker.sender_id)
        rating = _number(next(tracker.get_latest_entity_values("rating"), None))
        appointment_id = _number(next(tracker.get_latest_entity_values("appointment_id"), None))
        if appointment_id is None:
            appointment_id = await core(satisfaction.latest_asked, db(), contact_id)
        try:
            if rating is None or appointment_id is None:
                raise satisfaction.NotAsked("no rating or no visit")
            await core(satisfaction.rate, db(), appointment_id=appointment_id, contact_id=contact_id, rating=rating)
        except (satisfaction.NotAsked, ValueError):
            dispatcher.utter_message(response="utter_rating_not_found")
            return events + [SlotSet("rated_appointment_id", None)]
        return events + [SlotSet("rated_appointment_id", str(appointment_id))]


class ValidateSatisfactionForm(FormValidationAction):
    def name(self) -> str:
        return "validate_satisfaction_form"

    async def required_slots(self, domain_slots, dispatcher, tracker: Tracker, domain: DomainDict) -> list[str]:
        """A comment is asked for only after a rating was stored."""
        return ["visit_comment"] if tracker.get_slot("rated_appointment_id") else []


class ActionSaveVisitComment(Action):
    def name(self) -> str:
        return "action_save_visit_comment"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        done = [SlotSet("rated_appointment_id", None), SlotSet("visit_comment", None)]
        rated, text = tracker.get_slot("rated_appointment_id"), tracker.get_slot("visit_comment")
        if not rated:
            return done  # nothing was rated: the patient has been told
        contact_id = await core(patients.contact_id, db(), tracker.sender_id)
        if text and text != NO_COMMENT and await core(satisfaction.comment, db(), appointment_id=int(rated),
                                                      contact_id=contact_id, text=text):
            dispatcher.utter_message(response="utter_comment_saved")
        else:
            dispatcher.utter_message(response="utter_rating_saved")
        return done
