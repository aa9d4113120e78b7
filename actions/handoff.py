"""Handing a conversation to a nurse: a ticket in the inbox, the patient told when to expect an
answer, and the bot paused (Rasa's own ConversationPaused) until the nurse hands it back.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused
from rasa_sdk.executor import CollectingDispatcher

from actions.common import core, db, guarded, language
from clinic import handoff, patients
from clinic.settings import settings

# Why the bot steps aside, from what the patient just said; anything else is a plain request.
REASON_BY_INTENT = {
    "medical_question": "medical_question",
    "emergency": "emergency",
    "nlu_fallback": "fallback",
    "share_attachment": "attachment",
    "cancel_appointment": "late_cancellation",
}
# A "yes, a nurse" tapped under one of these offers hands over for the reason the offer was made.
REASON_BY_OFFER = {
    "utter_offer_human": "fallback",  # the second message in a row not understood
    "utter_attachment_received": "attachment",
    "utter_too_late_to_cancel": "late_cancellation",
}
# Form bookkeeping, not something the nurse needs to read.
UNSHOWN_SLOTS = {"requested_slot", "slot_page", "known_contact", "first_name", "language", "identity_date_of_birth",
                 "delivered_result_id"}


def last_bot_response(tracker: Tracker) -> str | None:
    """The response the bot sent last (Rasa records it in the bot event's metadata)."""
    for event in reversed(tracker.events):
        if event.get("event") == "bot":
            return (event.get("metadata") or {}).get("utter_action")
    return None


def released_in_this_session(tracker: Tracker) -> bool:
    """Whether reports were released since the conversation's session began (the slot naming the
    last one is carried over into later sessions, where a request for a nurse is about something else).
    """
    for event in reversed(tracker.events):
        if event.get("event") == "session_started":
            return False
        if event.get("event") == "action" and event.get("name") == "action_release_results":
            return True
    return False


async def hand_over(dispatcher: CollectingDispatcher, tracker: Tracker, reason: str, summary: dict) -> list:
    """Open (or update) the contact's ticket, tell the patient when to expect a nurse, pause the bot."""
    contact_id = await core(patients.contact_id, db(), tracker.sender_id)
    await core(handoff.open_ticket, db(), contact_id, reason, language=language(tracker), summary=summary)
    if await core(handoff.staffed):
        dispatcher.utter_message(response="utter_handoff", minutes=settings().handoff_sla_minutes)
    else:
        dispatcher.utter_message(response="utter_handoff_after_hours", hours=settings().handoff_staffed_hours)
    return [ConversationPaused()]


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        understood = {k: v for k, v in tracker.slots.items() if v not in (None, "", []) and k not in UNSHOWN_SLOTS}
        reason = REASON_BY_INTENT.get(intent) or REASON_BY_OFFER.get(last_bot_response(tracker), "request_human")
        summary = {"intent": intent, "slots": understood}
        delivered = tracker.get_slot("delivered_result_id")
        if delivered and released_in_this_session(tracker):  # a question on a report: the nurse sees which one
            summary["result_id"] = int(delivered)
            if reason in ("request_human", "medical_question", "fallback"):
                reason = "results_question"
        return await hand_over(dispatcher, tracker, reason, summary)
