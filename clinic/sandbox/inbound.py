"""Patient messages in the exact shapes of Meta's messages webhook, built from short test-API specs.

One spec describes one message (`{"from": "39333…", "type": "text", "text": "Ciao"}`); the result is
the `messages[]` item Meta would send, so the bot's parser is exercised on every documented type.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from clinic.sandbox.errors import webhook_error
from clinic.sandbox.state import Patient, SandboxState, new_wamid

MEDIA_KINDS = ("image", "document", "audio", "voice", "video", "sticker")
DEFAULT_MIME = {
    "image": "image/jpeg",
    "document": "application/pdf",
    "audio": "audio/mpeg",
    "voice": "audio/ogg; codecs=opus",
    "video": "video/mp4",
    "sticker": "image/webp",
}
INBOUND_TYPES = (
    "text", "button_reply", "list_reply", "button", *MEDIA_KINDS, "location", "contacts", "reaction",
    "unsupported", "unknown", "system",
)


class SpecError(ValueError):
    """A test-API spec the sandbox cannot turn into a message (answered with HTTP 400)."""


def store_media(state: SandboxState, content: bytes, mime_type: str, filename: str | None, owner: str) -> dict:
    """Keep bytes under a Meta-like numeric media id, downloadable through the Graph media endpoints."""
    media_id = str(10**15 + secrets.randbelow(9 * 10**15))
    item = {
        "id": media_id,
        "bytes": content,
        "mime_type": mime_type,
        "sha256": hashlib.sha256(content).hexdigest(),
        "file_size": len(content),
        "filename": filename,
        "owner": owner,
        "at": state.now(),
    }
    state.media[media_id] = item
    return item


def build(state: SandboxState, spec: dict) -> tuple[Patient, dict]:
    """The patient (created on first sight) and Meta's `messages[]` item for this spec."""
    if not isinstance(spec, dict):
        raise SpecError("each message must be an object")
    phone, user_id = spec.get("from"), spec.get("user_id")
    if not phone and not user_id:
        raise SpecError("'from' (phone) or 'user_id' (BSUID) is required")
    kind = spec.get("type", "text")
    if kind not in INBOUND_TYPES:
        raise SpecError(f"type must be one of {', '.join(INBOUND_TYPES)}")
    patient = state.patient(wa_id=phone, user_id=user_id, name=spec.get("name"))
    if "hide_phone" in spec:
        patient.hide_phone = bool(spec["hide_phone"])
    message: dict = {}
    if patient.wa_id and not patient.hide_phone:
        message["from"] = patient.wa_id
    if patient.user_id:
        message["from_user_id"] = patient.user_id
    message["id"] = spec.get("wamid") or new_wamid()  # `id` is a tapped reply's id, never the wamid
    message["timestamp"] = str(int(spec.get("timestamp") or state.now()))
    if spec.get("context"):
        message["context"] = {"from": state.config["display_phone_number"], "id": spec["context"]}
    message.update(_content(state, patient, kind, spec))
    if kind != "system":
        patient.last_inbound = state.now()
    return patient, message


def _require(spec: dict, *keys: str) -> None:
    missing = [k for k in keys if spec.get(k) in (None, "")]
    if missing:
        raise SpecError(f"{spec.get('type', 'text')} needs {', '.join(missing)}")


def _content(state: SandboxState, patient: Patient, kind: str, spec: dict) -> dict:
    if kind == "text":
        _require(spec, "text")
        return {"type": "text", "text": {"body": spec["text"]}}
    if kind in ("button_reply", "list_reply"):
        _require(spec, "id", "title")
        reply = {"id": spec["id"], "title": spec["title"]}
        if kind == "list_reply" and spec.get("description"):
            reply["description"] = spec["description"]
        return {"type": "interactive", "interactive": {"type": kind, kind: reply}}
    if kind == "button":
        _require(spec, "payload")
        return {"type": "button", "button": {"payload": spec["payload"], "text": spec.get("text") or spec["payload"]}}
    if kind in MEDIA_KINDS:
        return _media(state, kind, spec)
    if kind == "location":
        _require(spec, "latitude", "longitude")
        location = {"latitude": spec["latitude"], "longitude": spec["longitude"]}
        location.update({k: spec[k] for k in ("name", "address", "url") if spec.get(k)})
        return {"type": "location", "location": location}
    if kind == "contacts":
        contacts = spec.get("contacts") or [{
            "name": {"formatted_name": spec.get("contact_name", "Contact"),
                     "first_name": spec.get("contact_name", "Contact")},
            "phones": [{"phone": "+" + spec.get("contact_phone", "390000000000"),
                        "wa_id": spec.get("contact_phone", "390000000000"), "type": "CELL"}],
        }]
        return {"type": "contacts", "contacts": contacts}
    if kind == "reaction":
        _require(spec, "message_id")
        return {"type": "reaction", "reaction": {"message_id": spec["message_id"], "emoji": spec.get("emoji", "")}}
    if kind == "unsupported":
        error = webhook_error(131051)
        error.pop("href")
        return {"type": "unsupported", "errors": [error], "unsupported": {"type": spec.get("unsupported_type", "edit")}}
    if kind == "unknown":
        return {"type": "unknown", "errors": [{"code": 130501, "title": "Unsupported message type",
                                               "details": "Message type is not currently supported"}]}
    return _system(state, patient, spec)


def _media(state: SandboxState, kind: str, spec: dict) -> dict:
    mime = spec.get("mime_type") or DEFAULT_MIME[kind]
    if spec.get("media_id"):
        item = state.media.get(spec["media_id"])
        if item is None:
            raise SpecError("media_id is not a stored media id")
    else:
        try:
            content = base64.b64decode(spec.get("content_base64") or "", validate=True)
        except ValueError as error:
            raise SpecError("content_base64 is not valid base64") from error
        if not content:
            raise SpecError(f"{kind} needs content_base64 (or media_id)")
        item = store_media(state, content, mime, spec.get("filename"), owner="patient")
    meta_type = "audio" if kind == "voice" else kind
    body: dict = {"mime_type": item["mime_type"], "sha256": item["sha256"], "id": item["id"]}
    if kind in ("image", "video", "document") and spec.get("caption"):
        body["caption"] = spec["caption"]
    if kind == "document":
        body["filename"] = spec.get("filename") or item.get("filename") or "document"
    if kind in ("audio", "voice"):
        body["voice"] = kind == "voice"
    if kind == "sticker":
        body["animated"] = bool(spec.get("animated", False))
    return {"type": meta_type, meta_type: body}


def _system(state: SandboxState, patient: Patient, spec: dict) -> dict:
    system_type = spec.get("system_type", "user_changed_number")
    if system_type == "user_changed_number":
        _require(spec, "new_wa_id")
        old = patient.wa_id
        state.change_number(patient, spec["new_wa_id"])
        return {"type": "system", "system": {
            "body": f"User {patient.name} changed from {old} to {patient.wa_id}",
            "wa_id": patient.wa_id, "type": "user_changed_number"}}
    if system_type == "user_changed_user_id":
        _require(spec, "new_user_id")
        old = patient.user_id
        state.change_user_id(patient, spec["new_user_id"])
        return {"type": "system", "system": {
            "body": f"User {patient.name} changed from {old} to {patient.user_id}",
            "user_id": patient.user_id, "type": "user_changed_user_id"}}
    raise SpecError("system_type must be user_changed_number or user_changed_user_id")
