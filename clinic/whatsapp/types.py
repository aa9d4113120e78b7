"""What the webhook parser, the sending client and the channel pass between them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clinic.settings import Settings

# The quick reply of the "you have a new message" template: tapping it opens the 24-hour window (the
# held messages then go out); it is not something for the bot to answer.
WINDOW_REPLY_PAYLOAD = "whatsapp:open_window"


@dataclass(frozen=True)
class GraphConfig:
    """How to reach the Graph API and check Meta's webhooks (sandbox or Meta)."""

    api_base_url: str
    api_version: str
    phone_number_id: str
    access_token: str
    app_secret: str
    verify_token: str
    max_messages_per_second: float = 80.0
    window_template: str = "clinic_new_message"

    @classmethod
    def from_settings(cls, s: Settings) -> GraphConfig:
        return cls(
            api_base_url=s.whatsapp_api_base_url.rstrip("/"),
            api_version=s.whatsapp_api_version,
            phone_number_id=s.whatsapp_phone_number_id,
            access_token=s.whatsapp_access_token,
            app_secret=s.whatsapp_app_secret,
            verify_token=s.whatsapp_verify_token,
            max_messages_per_second=s.whatsapp_max_messages_per_second,
            window_template=s.whatsapp_window_template,
        )

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, Any], fallback: Settings) -> GraphConfig:
        """`credentials.yml`'s `whatsapp:` block; a missing key falls back to the settings."""
        base = cls.from_settings(fallback)
        values = {k: str(v) for k, v in credentials.items() if v not in (None, "") and k in cls.__dataclass_fields__}
        if "max_messages_per_second" in values:
            values["max_messages_per_second"] = float(values["max_messages_per_second"])  # type: ignore[assignment]
        return cls(**{**base.__dict__, **values})

    @property
    def messages_url(self) -> str:
        return f"{self.api_base_url}/{self.api_version}/{self.phone_number_id}/messages"

    @property
    def media_url(self) -> str:
        return f"{self.api_base_url}/{self.api_version}/{self.phone_number_id}/media"


@dataclass(frozen=True)
class Sender:
    """Who wrote: the phone number (`wa_id`) and/or Meta's business-scoped user id."""

    wa_id: str | None
    user_id: str | None
    profile_name: str | None = None

    @property
    def rasa_sender_id(self) -> str:
        """The conversation id in Rasa: the phone number when known, else the user id."""
        return self.wa_id or self.user_id or ""


@dataclass(frozen=True)
class Media:
    id: str
    mime_type: str | None = None
    sha256: str | None = None
    filename: str | None = None
    caption: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    """One message from a webhook, whatever its type. `rasa_text` is what the bot is given
    (text, a button's payload, or an `/intent{...}` for attachments); None means no reply
    (reactions, system events).
    """

    wamid: str
    sender: Sender
    phone_number_id: str
    type: str
    timestamp: datetime
    rasa_text: str | None
    raw: dict
    context_wamid: str | None = None
    media: Media | None = None
    new_wa_id: str | None = None  # system `user_changed_number`


@dataclass(frozen=True)
class StatusUpdate:
    """A status callback for something we sent."""

    wamid: str
    status: str  # sent | delivered | read | failed
    timestamp: datetime
    recipient: Sender
    error_code: int | None = None
    error_title: str | None = None
    biz_opaque_callback_data: str | None = None


@dataclass
class WebhookBatch:
    """Everything one POST carried: possibly several entries, changes, messages and statuses."""

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
