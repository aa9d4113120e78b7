"""Checks an outbound Graph `/messages` body against Meta's documented limits.

Every rule here is one Meta enforces, so a payload the sandbox accepts is one Meta accepts and a
violation is answered with the code a client will meet in production. Lengths are counted in
characters (Unicode code points), the unit Meta's limits are written in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from clinic.sandbox.errors import GraphError, bad_param, invalid
from clinic.sandbox.templates import placeholder_count, render

MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")
CAPTIONED = ("image", "document", "video")
SENDABLE = ("text", "interactive", "template", "reaction", "location", "contacts", *MEDIA_TYPES)

TEXT_BODY_MAX = 4096
CAPTION_MAX = 1024
BUTTON_BODY_MAX = 1024
LIST_BODY_MAX = 4096
HEADER_MAX = 60
FOOTER_MAX = 60
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
LIST_BUTTON_MAX = 20
SECTIONS_MAX = 10
ROWS_MAX = 10
ROW_ID_MAX = 200
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
SECTION_TITLE_MAX = 24


@dataclass
class Outbound:
    """A message the sandbox accepted: who it is for and what the patient's phone shows."""

    type: str
    to: str | None
    recipient: str | None
    view: dict
    category: str = "service"  # pricing category: service for free-form, the template's otherwise
    is_template: bool = False
    context_id: str | None = None
    biz_opaque_callback_data: str | None = None
    extra: dict = field(default_factory=dict)


def _text(value, where: str, maximum: int, minimum: int = 1, code_invalid: bool = True) -> str:
    """A string parameter within [minimum, maximum] characters."""
    if value is None:
        raise GraphError(131008, f"Param {where} is required.")
    if not isinstance(value, str):
        raise bad_param(f"Param {where} must be a string.")
    if not minimum <= len(value) <= maximum:
        raise (invalid if code_invalid else bad_param)(
            f"Param {where} length invalid. Min length: {minimum}, Max length: {maximum}. Received: {len(value)}."
        )
    return value


def _object(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise GraphError(131008, f"Param {where} is required and must be an object.")
    return value


def validate_send(
    payload: dict, templates: dict[str, dict], media_exists: Callable[[str], bool]
) -> Outbound:
    """The accepted message, or the GraphError Meta would answer."""
    if not isinstance(payload, dict):
        raise bad_param("The request body must be a JSON object.")
    if payload.get("messaging_product") != "whatsapp":
        raise bad_param("The parameter messaging_product is required and must be 'whatsapp'.")
    if payload.get("recipient_type", "individual") != "individual":
        raise bad_param("Param recipient_type must be 'individual'.")
    to, recipient = payload.get("to"), payload.get("recipient")
    if not to and not recipient:
        raise bad_param("The parameter to is required.")
    for name, value in (("to", to), ("recipient", recipient)):
        if value is not None and not isinstance(value, str):
            raise bad_param(f"Param {name} must be a string.")
    kind = payload.get("type", "text")
    if kind not in SENDABLE:
        raise bad_param(f"Param type must be one of {{{', '.join(SENDABLE)}}}. Received: {kind!r}.")
    body = payload.get(kind)
    if kind == "text" and body is None:
        raise bad_param("The parameter text['body'] is required.")
    body = _object(body, kind)
    opaque = payload.get("biz_opaque_callback_data")
    if opaque is not None:
        _text(opaque, "biz_opaque_callback_data", 512)
    context = payload.get("context")
    context_id = _text(_object(context, "context").get("message_id"), "context['message_id']", 128) if context else None
    out = Outbound(type=kind, to=to, recipient=recipient, view={},
                   context_id=context_id, biz_opaque_callback_data=opaque)
    if kind == "text":
        out.view = _check_text(body)
    elif kind == "interactive":
        out.view = _check_interactive(body, media_exists)
    elif kind in MEDIA_TYPES:
        out.view = _check_media(kind, body, media_exists)
    elif kind == "template":
        out.view = _check_template(body, templates)
        out.is_template = True
        out.category = out.view["category"]
    elif kind == "reaction":
        out.view = {"message_id": _text(body.get("message_id"), "reaction['message_id']", 128),
                    "emoji": body.get("emoji", "")}
    elif kind == "location":
        for key in ("latitude", "longitude"):
            if not isinstance(body.get(key), (int, float, str)):
                raise GraphError(131008, f"Param location['{key}'] is required.")
        out.view = {k: body.get(k) for k in ("latitude", "longitude", "name", "address")}
    elif kind == "contacts":
        out.view = {"contacts": payload.get("contacts")}
    return out


def _check_text(body: dict) -> dict:
    text = _text(body.get("body"), "text['body']", TEXT_BODY_MAX, code_invalid=False)
    preview = body.get("preview_url", False)
    if not isinstance(preview, bool):
        raise bad_param("Param text['preview_url'] must be a boolean.")
    return {"text": text, "preview_url": preview}


def _check_header(header, allow_media: bool, media_exists: Callable[[str], bool]) -> dict | None:
    if header is None:
        return None
    header = _object(header, "interactive['header']")
    kind = header.get("type")
    if kind == "text":
        return {"type": "text", "text": _text(header.get("text"), "interactive['header']['text']", HEADER_MAX)}
    if allow_media and kind in ("image", "video", "document"):
        return {"type": kind, **_check_media(kind, _object(header.get(kind), f"header['{kind}']"), media_exists)}
    raise invalid(f"Header type {kind!r} is not valid for this interactive message.")


def _check_interactive(body: dict, media_exists: Callable[[str], bool]) -> dict:
    kind = body.get("type")
    if kind not in ("button", "list"):
        raise bad_param(f"Param interactive['type'] must be one of {{button, list}}. Received: {kind!r}.")
    limit = BUTTON_BODY_MAX if kind == "button" else LIST_BODY_MAX
    text = _text(_object(body.get("body"), "interactive['body']").get("text"), "interactive['body']['text']", limit)
    header = _check_header(body.get("header"), kind == "button", media_exists)
    footer = body.get("footer")
    footer_text = _text(_object(footer, "footer").get("text"), "interactive['footer']['text']", FOOTER_MAX) \
        if footer is not None else None
    action = _object(body.get("action"), "interactive['action']")
    view = {"interactive": kind, "header": header, "body": text, "footer": footer_text}
    if kind == "button":
        view["buttons"] = _check_buttons(action.get("buttons"))
    else:
        view["list"] = _check_list(action)
    return view


def _check_buttons(buttons) -> list[dict]:
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= BUTTONS_MAX:
        count = len(buttons) if isinstance(buttons, list) else 0
        raise invalid(f"Invalid buttons count. Min allowed buttons: 1, Max allowed buttons: {BUTTONS_MAX}. "
                      f"Received: {count}.")
    seen_ids, seen_titles, out = set(), set(), []
    for index, button in enumerate(buttons):
        button = _object(button, f"action['buttons'][{index}]")
        if button.get("type") != "reply":
            raise bad_param(f"Param action['buttons'][{index}]['type'] must be 'reply'.")
        reply = _object(button.get("reply"), f"action['buttons'][{index}]['reply']")
        button_id = _text(reply.get("id"), f"action['buttons'][{index}]['reply']['id']", BUTTON_ID_MAX)
        title = _text(reply.get("title"), f"action['buttons'][{index}]['reply']['title']", BUTTON_TITLE_MAX)
        if button_id in seen_ids:
            raise invalid(f"Duplicate button id {index}: button ids must be unique within the message.")
        if title in seen_titles:
            raise invalid(f"Duplicate button title {index}: button titles must be unique within the message.")
        seen_ids.add(button_id)
        seen_titles.add(title)
        out.append({"id": button_id, "title": title})
    return out


def _check_list(action: dict) -> dict:
    label = _text(action.get("button"), "action['button']", LIST_BUTTON_MAX)
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= SECTIONS_MAX:
        count = len(sections) if isinstance(sections, list) else 0
        raise invalid(f"Invalid sections count. Min allowed sections: 1, Max allowed sections: {SECTIONS_MAX}. "
                      f"Received: {count}.")
    total, seen, out = 0, set(), []
    for s_index, section in enumerate(sections):
        section = _object(section, f"action['sections'][{s_index}]")
        title = section.get("title")
        if len(sections) > 1 and not title:
            raise invalid(f"Param action['sections'][{s_index}]['title'] is required when there is more "
                          "than one section.")
        if title is not None:
            _text(title, f"action['sections'][{s_index}]['title']", SECTION_TITLE_MAX)
        rows = section.get("rows")
        if not isinstance(rows, list) or not rows:
            raise invalid(f"Param action['sections'][{s_index}]['rows'] must hold at least one row.")
        total += len(rows)
        if total > ROWS_MAX:
            raise invalid(f"Total row count exceed max allowed count: {ROWS_MAX}.")
        out_rows = []
        for r_index, row in enumerate(rows):
            where = f"action['sections'][{s_index}]['rows'][{r_index}]"
            row = _object(row, where)
            row_id = _text(row.get("id"), f"{where}['id']", ROW_ID_MAX)
            row_title = _text(row.get("title"), f"{where}['title']", ROW_TITLE_MAX)
            description = row.get("description")
            if description is not None:
                _text(description, f"{where}['description']", ROW_DESCRIPTION_MAX, minimum=0)
            if row_id in seen:
                raise invalid(f"Duplicate row id in {where}: row ids must be unique within the message.")
            seen.add(row_id)
            out_rows.append({"id": row_id, "title": row_title, "description": description})
        out.append({"title": title, "rows": out_rows})
    return {"button": label, "sections": out}


def _check_media(kind: str, body: dict, media_exists: Callable[[str], bool]) -> dict:
    media_id, link = body.get("id"), body.get("link")
    if bool(media_id) == bool(link):
        raise bad_param(f"Param {kind} must have exactly one of 'id' or 'link'.")
    if media_id is not None and (not isinstance(media_id, str) or not media_exists(media_id)):
        raise bad_param(f"Param {kind}['id'] is not a valid WhatsApp Business Account media attachment ID.")
    if link is not None and (not isinstance(link, str) or not link.startswith(("http://", "https://"))):
        raise bad_param(f"Param {kind}['link'] must be an http(s) URL.")
    caption = body.get("caption")
    if caption is not None:
        if kind not in CAPTIONED:
            raise bad_param(f"Param {kind}['caption'] is not allowed: only image, video and document have captions.")
        _text(caption, f"{kind}['caption']", CAPTION_MAX)
    filename = body.get("filename")
    if filename is not None:
        if kind != "document":
            raise bad_param(f"Param {kind}['filename'] is only allowed for documents.")
        _text(filename, "document['filename']", 240)
    return {"media": kind, "id": media_id, "link": link, "caption": caption, "filename": filename}


def _check_template(body: dict, templates: dict[str, dict]) -> dict:
    name = _text(body.get("name"), "template['name']", 512, code_invalid=False)
    language = _object(body.get("language"), "template['language']")
    code = _text(language.get("code"), "template['language']['code']", 15, code_invalid=False)
    known = templates.get(name)
    if known is None or code not in known["languages"]:
        raise GraphError(132001, f"template name ({name}) does not exist in {code}")
    spec = known["languages"][code]
    components = body.get("components") or []
    if not isinstance(components, list):
        raise bad_param("Param template['components'] must be an array.")
    params: dict[str, list[str]] = {"header": [], "body": []}
    payloads: dict[int, str] = {}
    for index, component in enumerate(components):
        component = _object(component, f"template['components'][{index}]")
        ctype = component.get("type")
        if ctype in ("header", "body"):
            params[ctype] = [_parameter_text(p, f"components[{index}]") for p in component.get("parameters") or []]
        elif ctype == "button":
            if component.get("sub_type") != "quick_reply":
                raise bad_param(f"Param components[{index}]['sub_type'] must be 'quick_reply' for this template.")
            try:
                button_index = int(component.get("index"))
            except (TypeError, ValueError):
                raise bad_param(f"Param components[{index}]['index'] is required.") from None
            if not 0 <= button_index < len(spec.get("buttons", [])):
                raise invalid(f"Button at index {button_index} does not exist in template {name}.")
            parameters = component.get("parameters") or []
            if len(parameters) != 1 or parameters[0].get("type") != "payload":
                raise bad_param(f"Param components[{index}]['parameters'] must hold one 'payload' parameter.")
            payloads[button_index] = _text(parameters[0].get("payload"), f"components[{index}] payload", 1000)
        else:
            raise bad_param(f"Param components[{index}]['type'] must be header, body or button.")
    for part in ("header", "body"):
        expected = placeholder_count(spec.get(part))
        if len(params[part]) != expected:
            raise GraphError(
                132000, f"{part} expected {expected} parameters, received {len(params[part])} (template {name})."
            )
    buttons = [{"text": text, "payload": payloads.get(i, text)} for i, text in enumerate(spec.get("buttons", []))]
    return {
        "template": name,
        "language": code,
        "category": known.get("category", "utility"),
        "header": render(spec["header"], params["header"]) if spec.get("header") else None,
        "body": render(spec["body"], params["body"]),
        "buttons": buttons,
    }


def _parameter_text(parameter, where: str) -> str:
    parameter = _object(parameter, where)
    if parameter.get("type") != "text":
        return str(parameter.get(parameter.get("type"), ""))
    return _text(parameter.get("text"), f"{where} text parameter", 32768, code_invalid=False)
