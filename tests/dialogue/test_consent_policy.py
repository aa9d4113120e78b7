"""ConsentPolicy on real Rasa trackers and the project's domain: when privacy comes first."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActiveLoop, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from clinic.policies.consent import ASK, OPT_OUT, RECORD, next_action

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(ROOT / "domain.yml"))


def tracker(domain: Domain, *events) -> DialogueStateTracker:
    return DialogueStateTracker.from_events("393331112223", [ActionExecuted("action_listen"), *events],
                                            domain.slots)


def says(intent: str, **entities) -> list:
    return [UserUttered("…", {"name": intent, "confidence": 1.0},
                        [{"entity": k, "value": v} for k, v in entities.items()])]


@pytest.mark.parametrize("intent", ["greet", "book_appointment", "list_appointments", "request_test_results",
                                    "medical_question", "help", "inform", "nlu_fallback"])
def test_without_consent_everything_but_the_open_intents_gets_the_consent_step(domain, intent):
    assert next_action(tracker(domain, SlotSet("consented", False), *says(intent))) == ASK


@pytest.mark.parametrize("intent", ["faq", "emergency", "change_language", "thank", "goodbye", "bot_challenge"])
def test_faqs_emergencies_and_courtesies_need_no_consent(domain, intent):
    assert next_action(tracker(domain, SlotSet("consented", False), *says(intent))) is None


def test_with_consent_or_without_the_slot_the_gate_stays_out_of_the_way(domain):
    assert next_action(tracker(domain, SlotSet("consented", True), *says("book_appointment"))) is None
    assert next_action(tracker(domain, *says("book_appointment"))) is None  # rasa test stories run no actions


def test_stop_wins_at_any_moment_even_inside_a_form(domain):
    in_form = tracker(domain, SlotSet("consented", True), *says("book_appointment"), ActionExecuted("booking_form"),
                      ActiveLoop("booking_form"), SlotSet("requested_slot", "specialty"),
                      ActionExecuted("action_listen"), *says("opt_out"))
    assert next_action(in_form) == OPT_OUT


def test_answers_to_the_consent_step_are_recorded(domain):
    asked = [SlotSet("consented", False), *says("greet"), ActionExecuted(ASK), ActionExecuted("action_listen")]
    assert next_action(tracker(domain, *asked, *says("affirm"))) == RECORD
    assert next_action(tracker(domain, *asked, *says("deny"))) == RECORD
    assert next_action(tracker(domain, *says("give_consent", consent_choice="all"))) == RECORD
    assert next_action(tracker(domain, *says("opt_in"))) == ASK


def test_a_yes_to_something_else_is_not_a_consent(domain):
    other = [SlotSet("consented", True), *says("cancel_appointment"), ActionExecuted("utter_ask_cancel_confirmed"),
             ActionExecuted("action_listen")]
    assert next_action(tracker(domain, *other, *says("affirm"))) is None


def test_after_its_own_actions_the_bot_listens(domain):
    for action in (ASK, RECORD, OPT_OUT):
        assert next_action(tracker(domain, *says("greet"), ActionExecuted(action))) == "action_listen"
    assert next_action(tracker(domain, *says("greet"), ActionExecuted("action_greet"))) is None
