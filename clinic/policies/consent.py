"""The consent gate as a Rasa policy: one place decides when privacy comes before everything else.

Right after a patient's message it predicts, with full confidence and above RulePolicy:
- `opt_out` (STOP, any moment, also mid-form) → `action_opt_out`;
- `give_consent` (a consent button, or "accetto") → `action_record_consent`;
- `affirm` / `deny` as the answer to the consent step → `action_record_consent`;
- `opt_in` (START, "privacy") → `action_ask_consent`;
- while the `consented` slot is false (set after every message from the consent ledger by
  `action_identify_sender`), any message but an FAQ, an emergency, a language switch, a greeting
  formula, an unreadable message type, the consent intents and answers inside a data-rights
  request → `action_ask_consent`.
After its own actions it predicts `action_listen`; otherwise it abstains. Its predictions are
marked as not depending on user featurisation (`is_no_user_prediction`) so that they also win over
an active form's happy path, which RulePolicy would otherwise force. A `consented` slot that was
never set (`rasa test` stories, which run no actions) leaves the gate open.
"""

from __future__ import annotations

from typing import Any

from rasa.core.policies.policy import Policy, PolicyPrediction, SupportedData
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, UserUttered
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

ASK, RECORD, OPT_OUT = "action_ask_consent", "action_record_consent", "action_opt_out"
OPEN_INTENTS = frozenset({
    "faq", "emergency", "change_language", "bot_challenge", "goodbye", "thank",
    "opt_out", "opt_in", "give_consent", "send_unsupported_message",
    "request_data_copy", "request_erasure",  # data rights hold whatever was consented
})
OPEN_FORMS = frozenset({"data_request_form"})  # the identity check of a data-rights request
PRIORITY = 7  # RulePolicy is 6: a privacy decision outranks any rule


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True)
class ConsentPolicy(Policy):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"priority": PRIORITY}

    @staticmethod
    def supported_data() -> SupportedData:
        return SupportedData.ML_DATA

    def __init__(self, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
                 execution_context: ExecutionContext, featurizer: Any = None) -> None:
        super().__init__(config, model_storage, resource, execution_context, featurizer)

    def train(self, training_trackers: list[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        """Nothing to learn: the gate is a rule of the clinic, not of the training data."""
        with self._model_storage.write_to(self._resource):
            pass
        return self._resource

    def predict_action_probabilities(self, tracker: DialogueStateTracker, domain: Domain,
                                     rule_only_data: dict[str, Any] | None = None, **kwargs: Any) -> PolicyPrediction:
        action = next_action(tracker)
        probabilities = self._default_predictions(domain)
        if action is not None and action in domain.action_names_or_texts:
            probabilities[domain.index_for_action(action)] = 1.0
        return self._prediction(probabilities, is_no_user_prediction=action is not None)


def _asked_just_before(tracker: DialogueStateTracker) -> bool:
    """Whether the bot's last action before the latest user message was the consent step."""
    seen_user = False
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            if seen_user:
                return False
            seen_user = True
        elif seen_user and isinstance(event, ActionExecuted) and event.action_name != ACTION_LISTEN_NAME:
            return event.action_name == ASK
    return False


def next_action(tracker: DialogueStateTracker) -> str | None:
    """The gate's decision for this turn, or None to let the other policies decide."""
    latest = tracker.latest_action_name
    if latest in (ASK, RECORD, OPT_OUT):
        return ACTION_LISTEN_NAME
    if latest != ACTION_LISTEN_NAME or tracker.latest_message is None:
        return None
    intent = (tracker.latest_message.intent or {}).get("name")
    if intent is None:
        return None
    if intent == "opt_out":
        return OPT_OUT
    if intent == "give_consent":
        return RECORD
    if intent == "opt_in":
        return ASK
    if intent in ("affirm", "deny") and _asked_just_before(tracker):
        return RECORD
    answering_open_form = tracker.active_loop_name in OPEN_FORMS
    if tracker.get_slot("consented") is False and intent not in OPEN_INTENTS and not answering_open_form:
        return ASK
    return None
