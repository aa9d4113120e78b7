"""What to do about a Graph API error: retry it, give up on the message, or alert a person.

Built from Meta's Cloud API error-code table (developers.facebook.com → WhatsApp → Support →
Error codes). Meta asks integrations to branch on the numeric `code`, never on titles or texts,
which change. Three answers:

- `retry`: transient (throughput, pair rate, Meta-side outages); backoff with jitter, then again.
- `permanent`: this message can never go out as it is (bad parameter, undeliverable recipient,
  template errors); retrying only burns throughput, so it is marked failed at once.
- `alert`: the account, token, billing or phone number is broken. The message itself is fine,
  so it is retried with backoff (a person may fix the cause within the retry budget), and every
  occurrence is logged at ERROR so someone notices.

`131047` (the 24-hour window is closed) is neither: the client holds the message and sends the
window template instead, see `clinic.whatsapp.client`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(str, enum.Enum):
    retry = "retry"
    permanent = "permanent"
    alert = "alert"
    window = "window"  # 131047: hold the message, send the window template


@dataclass(frozen=True)
class Verdict:
    action: Action
    why: str

    @property
    def retried(self) -> bool:
        return self.action in (Action.retry, Action.alert)


RE_ENGAGEMENT = 131047
PAIR_RATE_LIMIT = 131056
THROUGHPUT_LIMIT = 130429

_R, _P, _A = Action.retry, Action.permanent, Action.alert

# code → (action, why). Codes not listed fall back on the HTTP status (see `classify`).
CODES: dict[int, tuple[Action, str]] = {
    # Authorization: the token or the app's permissions, never the message.
    0: (_A, "AuthException: the access token cannot be authenticated"),
    3: (_A, "API method: the app lacks the capability or permission"),
    10: (_A, "permission denied or revoked"),
    190: (_A, "access token expired or invalidated"),
    # Throttling: wait and try again.
    4: (_R, "app-level API call rate limit"),
    80007: (_R, "WhatsApp Business Account rate limit"),
    THROUGHPUT_LIMIT: (_R, "Cloud API throughput (messages per second) reached"),
    PAIR_RATE_LIMIT: (_R, "pair rate limit: too many messages to this recipient in a short time"),
    131048: (_A, "spam rate limit: sending restricted because of quality (blocks/reports)"),
    # Integrity and account state: a person has to act.
    368: (_A, "temporarily blocked for policy violations"),
    130497: (_P, "the business may not message users in this country"),
    131031: (_A, "business account locked"),
    131042: (_A, "business eligibility: payment issue"),
    131037: (_A, "the phone number's display name needs approval"),
    131045: (_A, "incorrect certificate: phone number registration"),
    131005: (_A, "access denied: permissions"),
    33: (_A, "the business phone number was deleted or is not valid"),
    133010: (_A, "the business phone number is not registered"),
    133005: (_A, "two-step verification PIN mismatch"),
    # Meta-side trouble: transient.
    1: (_R, "API unknown: possibly a server error"),
    2: (_R, "API service: temporary downtime or overload"),
    131000: (_R, "something went wrong on Meta's side"),
    131016: (_R, "service temporarily unavailable"),
    131057: (_R, "business account in maintenance mode"),
    133004: (_R, "server temporarily unavailable"),
    # The request or the recipient: this message will never go out as it is.
    100: (_P, "invalid parameter"),
    131008: (_P, "required parameter missing"),
    131009: (_P, "parameter value not valid"),
    131021: (_P, "recipient cannot be the sender"),
    131026: (_P, "message undeliverable: not a WhatsApp user, old app, or terms not accepted"),
    131049: (_P, "Meta chose not to deliver it (per-user engagement limit); not retried by us"),
    131050: (_P, "the user stopped marketing messages"),
    131051: (_P, "unsupported message type"),
    131052: (_P, "media download error"),
    131053: (_P, "media upload error: unsupported or broken file"),
    131055: (_P, "method not allowed"),
    130472: (_P, "the user's number is part of a Meta experiment"),
    135000: (_P, "generic user error"),
    RE_ENGAGEMENT: (Action.window, "more than 24 hours since the user last wrote: template required"),
}

# Template errors (132xxx) are all permanent: wrong name, language, parameters, paused or disabled
# template. Retrying the same body cannot succeed.
_TEMPLATE_ERRORS = range(132000, 133000)
_TEMPLATE_WHY = "template error (name, language, parameters, or template paused/disabled)"


def classify(code: int | None, http_status: int | None = None) -> Verdict:
    """The verdict for a Graph API error `code` (None when the body had none) and its HTTP status."""
    if code is not None:
        if code in CODES:
            action, why = CODES[code]
            return Verdict(action, why)
        if code in _TEMPLATE_ERRORS:
            return Verdict(Action.permanent, _TEMPLATE_WHY)
        if 200 <= code <= 299:
            return Verdict(Action.alert, "API permission not granted or revoked")
    if http_status is None:
        return Verdict(Action.retry, "no answer (timeout or connection error)")
    if http_status == 429:
        return Verdict(Action.retry, "HTTP 429 too many requests")
    if http_status >= 500:
        return Verdict(Action.retry, f"HTTP {http_status} from the server")
    if http_status in (401, 403):
        return Verdict(Action.alert, f"HTTP {http_status}: credentials or permissions")
    if http_status == 408:
        return Verdict(Action.retry, "HTTP 408 request timeout")
    return Verdict(Action.permanent, f"HTTP {http_status} with an unknown error code")


class GraphError(Exception):
    """A Graph API call that did not succeed; `code` is Meta's error code when it sent one."""

    def __init__(
        self,
        http_status: int | None,
        code: int | None = None,
        title: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.http_status = http_status
        self.code = code
        self.title = title
        self.retry_after = retry_after
        self.verdict = classify(code, http_status)
        super().__init__(f"Graph API error: HTTP {http_status}, code {code} ({self.verdict.action.value})")
