"""Rasa bot messages → WhatsApp Graph API message bodies. Pure: no I/O, no clock, no settings.

`to_graph_messages(message)` takes the dict Rasa's `OutputChannel.send_response` receives and
returns the bodies to POST to `/<phone-number-id>/messages`, in order, without the recipient (the
client adds `to` or `recipient`). What it produces:

- text, split at WhatsApp's 4096-character limit on paragraph, sentence, line or word boundaries;
- buttons (and quick replies) as reply buttons when they fit (≤ 3, titles ≤ 20, unique), else as a
  list (≤ 10 rows, row title ≤ 24 with the rest of a long title in the description ≤ 72), else as
  several lists, their bodies marked 1/3, 2/3, …; each button's / row's id is the Rasa payload, so
  a tap lands in the right dialogue;
- images and documents: by link (an http(s) URL) or from a local file, which the client uploads
  through the media endpoint before sending (`local_path`, never sent to Meta);
- templates from `custom["template"]`, and `template_message()` for the outreach jobs.

Lengths are counted in characters (code points), the unit Meta's limits are written in. Text is
only ever cut between grapheme clusters (`regex`'s grapheme pattern), so an emoji or an accented letter is never
split; titles are cut between words when there is a word boundary to cut at. No wording lives here:
the list's button label comes from `custom["list_button"]`, else the language-neutral `Menu`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import regex

logger = logging.getLogger(__name__)

TEXT_MAX = 4096
CAPTION_MAX = 1024
BUTTON_BODY_MAX = 1024
LIST_BODY_MAX = 4096
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
ROWS_MAX = 10
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
ROW_ID_MAX = 200
LIST_BUTTON_MAX = 20
FILENAME_MAX = 240

LIST_BUTTON_FALLBACK = "Menu"  # the same word in Italian and English; `custom["list_button"]` overrides it
EMPTY_BODY = "👇"  # an interactive message needs a body; used only when the bot sent buttons without text
ELLIPSIS = "…"
LOCAL_PATH = "local_path"  # a media object's file on this machine: uploaded by the client, then replaced by `id`
LOCAL_ENCRYPTED = "local_encrypted"  # true: that file was stored with `clinic.crypto.write_file`
MEDIA_KINDS = ("image", "document", "video", "audio")

MB = 1024 * 1024
# mime type -> (media kind, max bytes): Meta's supported media types table (the sandbox enforces it too)
MEDIA_LIMITS = {
    "image/jpeg": ("image", 5 * MB),
    "image/png": ("image", 5 * MB),
    "image/webp": ("sticker", 500 * 1024),
    "audio/aac": ("audio", 16 * MB),
    "audio/amr": ("audio", 16 * MB),
    "audio/mpeg": ("audio", 16 * MB),
    "audio/mp4": ("audio", 16 * MB),
    "audio/ogg": ("audio", 16 * MB),
    "video/mp4": ("video", 16 * MB),
    "video/3gpp": ("video", 16 * MB),
    "text/plain": ("document", 100 * MB),
    "application/pdf": ("document", 100 * MB),
    "application/msword": ("document", 100 * MB),
    "application/vnd.ms-excel": ("document", 100 * MB),
    "application/vnd.ms-powerpoint": ("document", 100 * MB),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ("document", 100 * MB),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ("document", 100 * MB),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ("document", 100 * MB),
}

_GRAPHEME = regex.compile(r"\X")
_PARAGRAPH = regex.compile(r"\n[^\S\n]*\n\s*")
_SENTENCE = regex.compile(r"[.!?…;:][)\]\"'»”’]*(?=\s)")
_LINE = regex.compile(r"\n")
_SPACE = regex.compile(r"\s+")


# --- text: trimming and splitting -------------------------------------------------------------


def _grapheme_cut(text: str, limit: int) -> int:
    """The largest index ≤ limit that falls between two grapheme clusters (at least one cluster)."""
    end = 0
    for match in _GRAPHEME.finditer(text):
        if match.end() > limit:
            break
        end = match.end()
    if end == 0:  # a single cluster longer than the limit: cut it by code points rather than loop
        end = min(limit, len(text))
    return end


def _cut(text: str, limit: int, patterns: Sequence[regex.Pattern], use_end: Sequence[bool]) -> tuple[int, int]:
    """Where to end the first chunk of `text` (≤ limit) and where the next one starts.

    Boundaries are tried from the strongest (paragraph) to the weakest; one in the second half of
    the window wins over a stronger one that would leave a tiny chunk.
    """
    window = text[: limit + 1]
    found: list[tuple[int, int]] = []
    for pattern, at_end in zip(patterns, use_end, strict=True):
        best = None
        for match in pattern.finditer(window):
            cut = match.end() if at_end else match.start()
            if 0 < cut <= limit:
                best = (cut, match.end())
        if best is not None:
            if best[0] >= limit // 2:
                return best
            found.append(best)
    if found:
        return max(found)
    cut = _grapheme_cut(text, limit)
    return cut, cut


def split_text(text: str, limit: int = TEXT_MAX) -> list[str]:
    """`text` in chunks of at most `limit` characters, cut at the most natural boundary available."""
    if limit < 1:
        raise ValueError("limit must be positive")
    rest = (text or "").strip()
    chunks: list[str] = []
    patterns = (_PARAGRAPH, _SENTENCE, _LINE, _SPACE)
    while len(rest) > limit:
        cut, next_start = _cut(rest, limit, patterns, (False, True, False, False))
        chunk = rest[:cut].rstrip()
        if chunk:
            chunks.append(chunk)
        rest = rest[max(next_start, cut) :].lstrip()
    if rest:
        chunks.append(rest)
    return chunks


def _one_line(text: str) -> str:
    return " ".join((text or "").split())


def split_words(text: str, limit: int) -> tuple[str, str]:
    """The longest head of `text` (≤ limit) that ends between words, and the rest.

    A single word longer than `limit` is cut between grapheme clusters.
    """
    text = _one_line(text)
    if len(text) <= limit:
        return text, ""
    cut = None
    for match in _SPACE.finditer(text[: limit + 1]):
        if 0 < match.start() <= limit:
            cut = match.start()
    if cut is None:
        cut = _grapheme_cut(text, limit)
    return text[:cut].rstrip(), text[cut:].strip()


def trim(text: str, limit: int, ellipsis: str = ELLIPSIS) -> str:
    """`text` on one line, at most `limit` characters; when cut, cut between words and end with `ellipsis`."""
    text = _one_line(text)
    if len(text) <= limit:
        return text
    head, _ = split_words(text, max(1, limit - len(ellipsis)))
    return head.rstrip(" ,;:-–—") + ellipsis


# --- buttons → reply buttons or lists ---------------------------------------------------------


def _options(buttons: Iterable[Any]) -> list[tuple[str, str, str | None]]:
    """(title, payload, description) for each usable button, duplicates of a payload dropped."""
    out: list[tuple[str, str, str | None]] = []
    seen: set[str] = set()
    for button in buttons or ():
        if not isinstance(button, dict):
            continue
        title = _one_line(str(button.get("title") or ""))
        payload = str(button.get("payload") or "").strip() or title
        if not title:
            title = _one_line(payload)
        if not title or payload in seen:
            continue
        seen.add(payload)
        description = button.get("description")
        out.append((title, payload, _one_line(str(description)) if description else None))
    return out


def _option_id(payload: str, title: str, limit: int) -> str:
    """The id WhatsApp echoes back on a tap: the Rasa payload, or the title when the payload is too long."""
    if len(payload) <= limit:
        return payload
    logger.warning("button payload of %d characters exceeds WhatsApp's %d: the title is used instead", len(payload),
                   limit)
    return trim(title, limit, ellipsis="")


def _fits_reply_buttons(options: list[tuple[str, str, str | None]]) -> bool:
    titles = [title for title, _, _ in options]
    return (
        1 <= len(options) <= BUTTONS_MAX
        and all(len(title) <= BUTTON_TITLE_MAX for title in titles)
        and len(set(titles)) == len(titles)
        and all(description is None for _, _, description in options)
    )


def _reply_buttons(body: str, options: list[tuple[str, str, str | None]]) -> dict:
    return {
        "messaging_product": "whatsapp",
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": _option_id(payload, title, BUTTON_ID_MAX), "title": title}}
                    for title, payload, _ in options
                ]
            },
        },
    }


def _row(title: str, payload: str, description: str | None) -> dict:
    head, rest = split_words(title, ROW_TITLE_MAX)
    extra = " · ".join(part for part in (rest, description) if part)
    row = {"id": _option_id(payload, title, ROW_ID_MAX), "title": head}
    if extra:
        row["description"] = trim(extra, ROW_DESCRIPTION_MAX)
    return row


def _unique_row_ids(rows: list[dict]) -> list[dict]:
    """Row ids must be unique in a message; a fallback id (a trimmed title) may collide."""
    seen: set[str] = set()
    out = []
    for row in rows:
        if row["id"] in seen:
            continue
        seen.add(row["id"])
        out.append(row)
    return out


def _lists(body: str, options: list[tuple[str, str, str | None]], label: str) -> list[dict]:
    pages = math.ceil(len(options) / ROWS_MAX)
    per_page = math.ceil(len(options) / pages)
    messages = []
    for page in range(pages):
        chunk = options[page * per_page : (page + 1) * per_page]
        marker = f"{page + 1}/{pages}" if pages > 1 else ""
        if page == 0:
            text = f"{body}\n\n{marker}" if marker and body else (body or marker)
        else:
            text = marker
        messages.append(
            {
                "messaging_product": "whatsapp",
                "type": "interactive",
                "interactive": {
                    "type": "list",
                    "body": {"text": text or EMPTY_BODY},
                    "action": {
                        "button": label,
                        "sections": [{"rows": _unique_row_ids([_row(*option) for option in chunk])}],
                    },
                },
            }
        )
    return messages


def _interactive(text: str, buttons: list, custom: dict) -> list[dict]:
    """Leading text messages (when the text is long) and the interactive message(s) carrying the choice."""
    options = _options(buttons)
    if not options:
        return [_text_message(chunk) for chunk in split_text(text)]
    reply = _fits_reply_buttons(options)
    pages = 1 if reply else math.ceil(len(options) / ROWS_MAX)
    marker_room = 0 if pages == 1 else len(f"\n\n{pages}/{pages}")
    body_max = (BUTTON_BODY_MAX if reply else LIST_BODY_MAX) - marker_room
    chunks = split_text(text, TEXT_MAX)
    if chunks and len(chunks[-1]) > body_max:
        chunks[-1:] = split_text(chunks[-1], body_max)
    body = chunks.pop() if chunks else ""
    messages = [_text_message(chunk) for chunk in chunks]
    if reply:
        messages.append(_reply_buttons(body or EMPTY_BODY, options))
    else:
        label = trim(str(custom.get("list_button") or LIST_BUTTON_FALLBACK), LIST_BUTTON_MAX) or LIST_BUTTON_FALLBACK
        messages.extend(_lists(body, options, label))
    return messages


# --- text, media, templates --------------------------------------------------------------------


def _text_message(text: str) -> dict:
    return {"messaging_product": "whatsapp", "type": "text", "text": {"body": text, "preview_url": False}}


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def media_message(
    kind: str,
    *,
    link: str | None = None,
    path: str | None = None,
    media_id: str | None = None,
    filename: str | None = None,
    caption: str | None = None,
    mime: str | None = None,
    encrypted: bool = False,
) -> dict:
    """An image/document/video/audio message from exactly one of: a URL, a local file, an uploaded media id.

    A local file stays a `local_path` in the outbox; the client uploads it just before sending,
    decrypted first when `encrypted` (files the clinic keeps: nurses' attachments, results).
    """
    if kind not in MEDIA_KINDS:
        raise ValueError(f"unsupported media kind {kind!r}")
    if sum(1 for source in (link, path, media_id) if source) != 1:
        raise ValueError("a media message needs exactly one of link, path, media_id")
    media: dict[str, Any] = {}
    if link:
        media["link"] = link
    elif path:
        media[LOCAL_PATH] = path
        if encrypted:
            media[LOCAL_ENCRYPTED] = True
        if mime:
            media["mime_type"] = mime
        filename = filename or os.path.basename(path)
    else:
        media["id"] = media_id
    if caption and kind in ("image", "document", "video"):
        media["caption"] = split_text(caption, CAPTION_MAX)[0]
    if filename and kind == "document":
        media["filename"] = trim(filename, FILENAME_MAX, ellipsis="")
    return {"messaging_product": "whatsapp", "type": kind, kind: media}


def _source(value: str) -> dict:
    return {"link": value} if _is_url(value) else {"path": value}


def template_message(
    name: str,
    language: str,
    body_parameters: Sequence[str] = (),
    quick_replies: Sequence[str | None] = (),
    header_parameters: Sequence[str] = (),
) -> dict:
    """A template message: `quick_replies[i]` is the payload of the template's i-th quick-reply button
    (None keeps the button's own text as payload).
    """
    components: list[dict] = []
    for part, parameters in (("header", header_parameters), ("body", body_parameters)):
        if parameters:
            components.append({"type": part, "parameters": [{"type": "text", "text": str(p)} for p in parameters]})
    for index, payload in enumerate(quick_replies):
        if payload is None:
            continue
        components.append(
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": str(index),
                "parameters": [{"type": "payload", "payload": str(payload)}],
            }
        )
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if components:
        template["components"] = components
    return {"messaging_product": "whatsapp", "type": "template", "template": template}


def _attachment(attachment: Any) -> list[dict]:
    """Rasa's `attachment`: a URL or local path (a document), or a dict with type, path/url/id, filename, caption."""
    if not attachment:
        return []
    if isinstance(attachment, str):
        return [media_message("document", **_source(attachment))]
    if isinstance(attachment, dict):
        kind = attachment.get("type") or "document"
        link = attachment.get("url") or attachment.get("link")
        sources = {"link": link, "path": attachment.get("path"), "media_id": attachment.get("id")}
        if kind in MEDIA_KINDS and sum(1 for value in sources.values() if value) == 1:
            return [
                media_message(
                    kind,
                    **{key: str(value) for key, value in sources.items() if value},
                    filename=attachment.get("filename"),
                    caption=attachment.get("caption"),
                    mime=attachment.get("mime") or attachment.get("mime_type"),
                    encrypted=bool(attachment.get("encrypted")),
                )
            ]
    logger.warning("attachment of an unsupported shape dropped (%s)", type(attachment).__name__)
    return []


def _custom(custom: dict) -> list[dict]:
    """Messages carried in `custom`: `template`, `document`/`image` dicts, or raw Graph bodies under `whatsapp`."""
    out: list[dict] = []
    spec = custom.get("template")
    if isinstance(spec, dict) and spec.get("name"):
        out.append(
            template_message(
                spec["name"],
                str(spec.get("language") or "en"),
                body_parameters=spec.get("body") or spec.get("body_parameters") or (),
                quick_replies=spec.get("quick_replies") or (),
                header_parameters=spec.get("header") or spec.get("header_parameters") or (),
            )
        )
    for kind in MEDIA_KINDS:
        if isinstance(custom.get(kind), dict):
            out.extend(_attachment({"type": kind, **custom[kind]}))
    raw = custom.get("whatsapp")
    for body in raw if isinstance(raw, list) else [raw] if raw else []:
        if isinstance(body, dict) and body.get("type"):
            out.append({"messaging_product": "whatsapp", **body})
    return out


def to_graph_messages(message: dict) -> list[dict]:
    """The Graph API bodies (without recipient) for one Rasa bot message, in the order to send them."""
    text = str(message.get("text") or "")
    custom = message.get("custom") if isinstance(message.get("custom"), dict) else {}
    buttons = list(message.get("buttons") or []) + list(message.get("quick_replies") or [])
    out: list[dict] = []
    if buttons:
        out.extend(_interactive(text, buttons, custom))
    elif text.strip():
        out.extend(_text_message(chunk) for chunk in split_text(text))
    image = message.get("image")
    if image:
        out.append(media_message("image", **_source(str(image))))
    out.extend(_attachment(message.get("attachment")))
    out.extend(_custom(custom))
    return out
