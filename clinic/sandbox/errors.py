"""Meta's error objects, so a client handles sandbox failures with the code it will meet in production.

Codes, titles and the `{"error": {...}}` shape follow Meta's Cloud API error-code reference; the
`details` strings are the sandbox's own wording of what was wrong.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

ERROR_CODES_URL = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"

# code -> (title, default details); the title is what Meta puts in `message` after "(#code)".
CATALOGUE: dict[int, tuple[str, str]] = {
    0: ("AuthException", "We were unable to authenticate the app user."),
    1: ("API Unknown", "Invalid request or possible server error."),
    2: ("API Service", "Temporary due to downtime or due to being overloaded."),
    100: ("Invalid parameter", "The request included one or more unsupported or misspelled parameters."),
    190: ("Invalid OAuth access token - Cannot parse access token", "The access token is missing or invalid."),
    130429: ("Rate limit hit", "Cloud API message throughput has been reached."),
    130501: ("Unsupported message type", "Message type is not currently supported"),
    131000: ("Something went wrong", "Message failed to send due to an unknown error."),
    131008: ("Required parameter is missing", "The request is missing a required parameter."),
    131009: ("Parameter value is not valid", "One or more parameter values are invalid."),
    131016: ("Service unavailable", "A service is temporarily unavailable."),
    131026: ("Message undeliverable", "Message Undeliverable."),
    131047: (
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
    ),
    131048: ("Spam rate limit hit", "Message failed to send because there are restrictions on how many messages "
             "can be sent from this phone number."),
    131051: ("Message type unknown", "Message type is currently not supported."),
    131052: ("Media download error", "Unable to download the media sent by the user."),
    131053: ("Media upload error", "Unable to upload the media used in the message."),
    131056: (
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone number "
        "to the same phone number in a short period of time.",
    ),
    132000: ("Number of parameters does not match the expected number of params",
             "The number of variable parameter values does not match the template's."),
    132001: ("Template name does not exist in the translation", "The template does not exist in this language."),
}

# Codes whose HTTP status is not the usual 400.
HTTP_STATUS = {190: 401, 0: 401, 131000: 500, 131016: 503, 1: 500, 2: 503}


def fbtrace_id() -> str:
    """Meta returns an opaque trace id with every error; clients log it, so it must look like one."""
    return "A" + secrets.token_urlsafe(16).replace("-", "x").replace("_", "y")[:22]


@dataclass
class GraphError(Exception):
    """A Graph API error answered synchronously: `status` is the HTTP status, `body()` Meta's JSON."""

    code: int
    details: str | None = None
    status: int | None = None
    message: str | None = None
    type: str = "OAuthException"
    subcode: int | None = None

    @property
    def title(self) -> str:
        return CATALOGUE.get(self.code, ("Unknown error", ""))[0]

    @property
    def http_status(self) -> int:
        return self.status or HTTP_STATUS.get(self.code, 400)

    def body(self) -> dict:
        message = self.message or f"(#{self.code}) {self.title}"
        error: dict = {"message": message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.code >= 1000 or (self.code == 100 and self.type == "OAuthException"):
            error["error_data"] = {
                "messaging_product": "whatsapp",
                "details": self.details or CATALOGUE.get(self.code, ("", ""))[1],
            }
        error["fbtrace_id"] = fbtrace_id()
        return {"error": error}


def webhook_error(code: int, details: str | None = None) -> dict:
    """The error object carried by a `failed` status (and by inbound `unsupported` messages)."""
    title, default = CATALOGUE.get(code, ("Unknown error", ""))
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details or default},
        "href": ERROR_CODES_URL,
    }


def invalid(details: str) -> GraphError:
    """Meta's 131009 for a value out of bounds (lengths, counts, duplicates)."""
    return GraphError(131009, details)


def bad_param(details: str) -> GraphError:
    """Meta's 100 for a missing, misspelt or mistyped parameter."""
    return GraphError(100, details)


def unauthorized(details: str = "Invalid OAuth access token - Cannot parse access token") -> GraphError:
    return GraphError(190, message=details, status=401)


def unknown_object(object_id: str) -> GraphError:
    """What Graph answers for an id that does not exist (or that the token may not see)."""
    return GraphError(
        100,
        type="GraphMethodException",
        subcode=33,
        message=(
            f"Unsupported post request. Object with ID '{object_id}' does not exist, cannot be loaded due to "
            "missing permissions, or does not support this operation. Please read the Graph API documentation "
            "at https://developers.facebook.com/docs/graph-api"
        ),
        details=None,
    )
