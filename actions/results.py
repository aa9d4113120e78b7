"""Results: the identity check (results_form asks the date of birth), then the release of the
ready reports as WhatsApp documents or single-use links, or a nurse after too many wrong answers.

The rules (who may see what, attempts, lockout, how long a check holds, the delivery mode) are the
core's (`clinic.identity`, `clinic.results`); these actions only pick the patient, ask and answer.
"""

from __future__ import annotations

from datetime import date

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import core, db, guarded, language
from actions.handoff import hand_over
from actions.presenting import long_date
from clinic import consent, identity, patients, results
from clinic.models import ResultDelivery
from clinic.settings import settings

VERIFIED, LOCKED = "verified", "locked"  # what the identity slot keeps: never the answer itself


async def wanted(tracker: Tracker) -> tuple[int, patients.LinkedPatient | None, list[results.ResultView]]:
    """(contact id, the patient whose reports are asked for, their ready reports): the one the
    results-ready button names, else the patient with the oldest ready report among the contact's own.
    """
    contact_id = await core(patients.contact_id, db(), tracker.sender_id)
    linked = {p.id: p for p in await core(patients.linked_patients, db(), tracker.sender_id)}
    ready = await core(results.ready_for, db(), list(linked))
    named = tracker.get_slot("result_id")
    first = next((r for r in ready if str(r.id) == str(named)), ready[0] if ready else None)
    if first is None:
        return contact_id, None, []
    return contact_id, linked[first.patient_id], [r for r in ready if r.patient_id == first.patient_id]


class ValidateResultsForm(FormValidationAction):
    def name(self) -> str:
        return "validate_results_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> list[str]:
        """Ask the date of birth only when there is something to release and no check holds or blocks."""
        contact_id, patient, _ = await wanted(tracker)
        if patient is None or not await core(consent.allows, db(), contact_id, "results"):
            return []
        return await identity_needed(tracker, contact_id, patient)

    async def validate_identity_date_of_birth(self, value, dispatcher: CollectingDispatcher, tracker: Tracker,
                                              domain: DomainDict) -> dict:
        contact_id, patient, _ = await wanted(tracker)
        return await identity_answer(value, dispatcher, contact_id, patient)


async def identity_needed(tracker: Tracker, contact_id: int, patient: patients.LinkedPatient | None) -> list[str]:
    """The date of birth is asked unless there is no one to check, or a check still holds or blocks."""
    if patient is None or tracker.get_slot("identity_date_of_birth") in (VERIFIED, LOCKED):
        return []
    standing = await core(identity.standing, db(), contact_id)
    if standing.locked or standing.verified_for(patient.id):
        return []
    return ["identity_date_of_birth"]


async def identity_answer(value, dispatcher: CollectingDispatcher, contact_id: int,
                          patient: patients.LinkedPatient | None) -> dict:
    """A date of birth checked against the patient's (clinic.identity counts attempts and locks)."""
    if value in (VERIFIED, LOCKED):
        return {"identity_date_of_birth": value}
    born = patients.parse_date_of_birth(str(value or ""), date.today())
    if born is None:  # not a date at all: asked again, no attempt counted
        dispatcher.utter_message(response="utter_invalid_date_of_birth")
        return {"identity_date_of_birth": None}
    if patient is None:
        return {"identity_date_of_birth": VERIFIED}  # no one to check any more: the next action says so
    verdict = await core(identity.check, db(), contact_id, patient.id, born, method="chat")
    if verdict.outcome is identity.Outcome.passed:
        return {"identity_date_of_birth": VERIFIED}
    if verdict.outcome is identity.Outcome.locked:
        return {"identity_date_of_birth": LOCKED}
    dispatcher.utter_message(response="utter_identity_mismatch", attempts_left=verdict.attempts_left)
    return {"identity_date_of_birth": None}


class ActionAskIdentityDateOfBirth(Action):
    def name(self) -> str:
        return "action_ask_identity_date_of_birth"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        """The same check guards results and data requests; the question says which."""
        if tracker.active_loop.get("name") == "data_request_form":
            dispatcher.utter_message(response="utter_ask_identity_for_data_request")
            return []
        _, patient, _ = await wanted(tracker)
        dispatcher.utter_message(response="utter_ask_identity_date_of_birth",
                                 patient=patient.first_name if patient else "")
        return []


def _done(delivered: int | None = None) -> list[EventType]:
    """Slots the check leaves behind; a date of birth may also have been read as a visit `time`."""
    events: list[EventType] = [SlotSet("identity_date_of_birth", None), SlotSet("result_id", None),
                               SlotSet("time", None), SlotSet("time_end", None)]
    if delivered is not None:
        events.append(SlotSet("delivered_result_id", str(delivered)))
    return events


class ActionReleaseResults(Action):
    def name(self) -> str:
        return "action_release_results"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        contact_id, patient, ready = await wanted(tracker)
        if not await core(consent.allows, db(), contact_id, "results"):
            dispatcher.utter_message(response="utter_results_need_consent")
            return _done()
        standing = await core(identity.standing, db(), contact_id)
        if standing.locked:
            dispatcher.utter_message(response="utter_identity_locked", minutes=settings().identity_lockout_minutes)
            summary = {"intent": "request_test_results", "slots": {}, "result_id": ready[0].id if ready else None}
            return _done() + await hand_over(dispatcher, tracker, "identity_failed", summary)
        if patient is None:
            dispatcher.utter_message(response="utter_no_results_ready")
            return _done()
        lang = language(tracker)
        for result in ready:
            values = {"title": result.title, "patient": patient.first_name,
                      "date": long_date(result.created_at.astimezone(settings().zone).date(), lang)}
            if result.delivery is ResultDelivery.document:
                attachment = await core(results.document, db(), result.id, contact_id)
                dispatcher.utter_message(response="utter_result_document", **values)
                dispatcher.utter_message(json_message={"document": attachment})
            else:
                token, _ = await core(results.issue_link, db(), result.id, contact_id)
                dispatcher.utter_message(response="utter_result_link", url=results.link_url(token),
                                         minutes=settings().results_link_minutes, **values)
        dispatcher.utter_message(response="utter_results_questions")
        return _done(ready[-1].id)
