"""Rasa bot messages → Graph API bodies: table tests at and past every WhatsApp limit.

Every body produced is also checked by the sandbox's validator, which enforces Meta's documented
limits, so "the mapping's output is accepted" is proven, not assumed.
"""

from __future__ import annotations

import copy
import random

import pytest
import regex

from clinic.sandbox.templates import default_templates
from clinic.sandbox.validate import validate_send
from clinic.whatsapp.outbound import (
    BUTTON_BODY_MAX,
    EMPTY_BODY,
    LIST_BODY_MAX,
    LIST_BUTTON_FALLBACK,
    LOCAL_PATH,
    ROW_DESCRIPTION_MAX,
    TEXT_MAX,
    media_message,
    split_text,
    split_words,
    template_message,
    to_graph_messages,
    trim,
)

FAMILY = "👨‍👩‍👧‍👦"  # one grapheme, seven code points
FLAG = "🇮🇹"  # one grapheme, two code points
ACCENT = "e\u0301"  # é as e + combining acute: one grapheme, two code points


def graphemes(text: str) -> list[str]:
    return regex.findall(r"\X", text)


def accepted(body: dict) -> dict:
    """The body as the sandbox (Meta's limits) sees it, addressed and with local files uploaded."""
    payload = copy.deepcopy(body)
    payload["to"] = "393331234567"
    media = payload.get(payload["type"])
    if isinstance(media, dict) and LOCAL_PATH in media:
        media.pop(LOCAL_PATH)
        media.pop("mime_type", None)
        media["id"] = "1234"
    validate_send(payload, default_templates(), media_exists=lambda _id: True)
    return body


def buttons(*titles: str) -> list[dict]:
    return [{"title": title, "payload": f"/choose{{\"n\": \"{i}\"}}"} for i, title in enumerate(titles)]


def kinds(bodies: list[dict]) -> list[str]:
    return [b["type"] if b["type"] != "interactive" else b["interactive"]["type"] for b in bodies]


# --- text ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("   \n ", []),
        ("Ciao", ["Ciao"]),
        ("a" * TEXT_MAX, ["a" * TEXT_MAX]),
        ("  padded  ", ["padded"]),
    ],
)
def test_short_texts_are_one_message(text, expected):
    bodies = [accepted(b) for b in to_graph_messages({"text": text})]
    assert [b["text"]["body"] for b in bodies] == expected


def test_text_one_past_the_limit_is_two_messages():
    bodies = [accepted(b) for b in to_graph_messages({"text": "a" * (TEXT_MAX + 1)})]
    assert [len(b["text"]["body"]) for b in bodies] == [TEXT_MAX, 1]


def test_long_text_is_cut_between_paragraphs():
    first, second = "Uno due tre. " * 200, "Quattro cinque sei. " * 100
    chunks = split_text(first.strip() + "\n\n" + second.strip())
    assert chunks == [first.strip(), second.strip()]


def test_long_text_without_paragraphs_is_cut_after_a_sentence():
    text = " ".join(f"Frase numero {i} della lunga spiegazione." for i in range(300))
    chunks = split_text(text)
    assert len(chunks) > 1
    assert all(len(c) <= TEXT_MAX and c.endswith(".") for c in chunks)
    assert " ".join(chunks) == text


def test_long_text_without_sentences_is_cut_between_words():
    text = " ".join(["parola"] * 1500)
    chunks = split_text(text)
    assert all(len(c) <= TEXT_MAX and not c.startswith(" ") and c.split(" ")[-1] == "parola" for c in chunks)
    assert " ".join(chunks) == text


@pytest.mark.parametrize("cluster", [FAMILY, FLAG, ACCENT, "😀"])
def test_text_without_spaces_is_never_cut_inside_a_grapheme(cluster):
    text = cluster * 3000
    chunks = split_text(text)
    assert "".join(chunks) == text
    for chunk in chunks:
        assert len(chunk) <= TEXT_MAX
        assert set(graphemes(chunk)) == {cluster}


def test_a_weak_boundary_late_beats_a_strong_one_early():
    text = "Intro.\n\n" + ("parola " * 1000)
    chunks = split_text(text, 100)
    assert chunks[0] != "Intro."  # cutting there would waste most of the message
    assert all(len(c) <= 100 for c in chunks)


def test_random_texts_keep_every_invariant():
    rng = random.Random(7)
    alphabet = ["a", "b", " ", " ", "\n", "\n\n", ".", "!", FAMILY, FLAG, ACCENT, "é", "😀", "parola "]
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        limit = rng.randint(5, 60)
        chunks = split_text(text, limit)
        assert all(0 < len(c) <= limit for c in chunks)
        assert all(c == c.strip() for c in chunks)
        # nothing is lost or invented but whitespace, and no grapheme is split
        assert "".join("".join(chunks).split()) == "".join(text.split())
        original = graphemes("".join(text.split()))
        assert graphemes("".join("".join(chunks).split())) == original


# --- trimming titles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("Cardiologia", 20, "Cardiologia"),
        ("a" * 20, 20, "a" * 20),
        ("Visita cardiologica di controllo", 20, "Visita cardiologica…"),
        ("Martedì 12 marzo 10:00", 20, "Martedì 12 marzo…"),
        ("Supercalifragilistichespiralidoso", 20, "Supercalifragilisti…"),
        ("Prenota  una\nvisita", 20, "Prenota una visita"),
        (FAMILY * 4, 20, FAMILY * 2 + "…"),
        ("Ok " + FLAG * 10, 20, "Ok…"),
    ],
)
def test_trim(text, limit, expected):
    assert trim(text, limit) == expected
    assert len(trim(text, limit)) <= limit


def test_split_words_keeps_the_rest():
    assert split_words("Dott.ssa Maria Rossi, cardiologia pediatrica", 24) == (
        "Dott.ssa Maria Rossi,",
        "cardiologia pediatrica",
    )


# --- buttons ---------------------------------------------------------------------------------------


def test_three_short_buttons_are_reply_buttons_carrying_the_payload():
    bodies = [accepted(b) for b in to_graph_messages({"text": "Confermi?", "buttons": buttons("Sì", "No", "Forse")})]
    assert kinds(bodies) == ["button"]
    action = bodies[0]["interactive"]["action"]
    assert [b["reply"] for b in action["buttons"]] == [
        {"id": '/choose{"n": "0"}', "title": "Sì"},
        {"id": '/choose{"n": "1"}', "title": "No"},
        {"id": '/choose{"n": "2"}', "title": "Forse"},
    ]
    assert bodies[0]["interactive"]["body"] == {"text": "Confermi?"}


@pytest.mark.parametrize(
    ("titles", "expected"),
    [
        (["a" * 20], "button"),  # at the title limit
        (["a" * 21], "list"),  # one past it
        (["Uno", "Due", "Tre"], "button"),  # at the count limit
        (["Uno", "Due", "Tre", "Quattro"], "list"),  # one past it
        (["Stesso", "Stesso"], "list"),  # reply titles must be unique
        ([FAMILY * 2 + "abcdef"], "button"),  # 20 code points
        ([FAMILY * 3], "list"),  # 21 code points
    ],
)
def test_buttons_or_list(titles, expected):
    payload_buttons = [{"title": t, "payload": f"/p{i}"} for i, t in enumerate(titles)]
    bodies = [accepted(b) for b in to_graph_messages({"text": "Scegli", "buttons": payload_buttons})]
    assert kinds(bodies) == [expected]


def test_a_long_title_overflows_into_the_row_description():
    title = "Martedì 12 marzo ore 10:30 con la Dott.ssa Maria Rossi (cardiologia)"
    bodies = [accepted(b) for b in to_graph_messages({"text": "Orari", "buttons": [{"title": title, "payload": "/x"}]})]
    row = bodies[0]["interactive"]["action"]["sections"][0]["rows"][0]
    assert row == {
        "id": "/x",
        "title": "Martedì 12 marzo ore",
        "description": "10:30 con la Dott.ssa Maria Rossi (cardiologia)",
    }


@pytest.mark.parametrize(
    ("title", "row_title", "description"),
    [
        ("a" * 24, "a" * 24, None),
        ("a" * 25, "a" * 24, "a"),
        ("parola " * 3 + "fine", "parola parola parola", "fine"),
    ],
)
def test_row_title_limit(title, row_title, description):
    bodies = to_graph_messages({"text": "x", "buttons": [{"title": title, "payload": "/p"}, *buttons("1", "2", "3")]})
    row = accepted(bodies[0])["interactive"]["action"]["sections"][0]["rows"][0]
    assert row["title"] == row_title
    assert row.get("description") == description


def test_description_past_its_limit_is_trimmed_with_an_ellipsis():
    title = "Visita " + " ".join(["specialistica"] * 12)
    bodies = [accepted(b) for b in to_graph_messages({"text": "x", "buttons": [{"title": title, "payload": "/p"}]})]
    row = bodies[0]["interactive"]["action"]["sections"][0]["rows"][0]
    assert len(row["description"]) <= ROW_DESCRIPTION_MAX
    assert row["description"].endswith("specialistica…")


@pytest.mark.parametrize(
    ("count", "pages"),
    [(4, [4]), (10, [10]), (11, [6, 5]), (20, [10, 10]), (21, [7, 7, 7]), (25, [9, 9, 7])],
)
def test_more_than_ten_options_are_paged_lists(count, pages):
    message = {"text": "Scegli un orario", "buttons": buttons(*(f"Orario {i}" for i in range(count)))}
    bodies = [accepted(b) for b in to_graph_messages(message)]
    assert kinds(bodies) == ["list"] * len(pages)
    rows = [b["interactive"]["action"]["sections"][0]["rows"] for b in bodies]
    assert [len(r) for r in rows] == pages
    assert [row["title"] for page in rows for row in page] == [f"Orario {i}" for i in range(count)]
    texts = [b["interactive"]["body"]["text"] for b in bodies]
    if len(pages) == 1:
        assert texts == ["Scegli un orario"]
    else:
        n = len(pages)
        assert texts == [f"Scegli un orario\n\n1/{n}"] + [f"{i}/{n}" for i in range(2, n + 1)]


@pytest.mark.parametrize(
    ("custom", "label"),
    [
        ({}, LIST_BUTTON_FALLBACK),
        ({"list_button": "Scegli"}, "Scegli"),
        ({"list_button": "a" * 20}, "a" * 20),
        ({"list_button": "Scegli l'orario che preferisci"}, "Scegli l'orario che…"),
    ],
)
def test_list_button_label_comes_from_custom(custom, label):
    bodies = to_graph_messages({"text": "x", "buttons": buttons("1", "2", "3", "4"), "custom": custom})
    assert accepted(bodies[0])["interactive"]["action"]["button"] == label


@pytest.mark.parametrize(
    ("payload_length", "kind", "uses_payload"),
    [(256, "button", True), (257, "button", False), (200, "list", True), (201, "list", False)],
)
def test_ids_carry_the_payload_up_to_the_limit(payload_length, kind, uses_payload):
    payload = "/choose_slot" + "x" * (payload_length - len("/choose_slot"))
    others = [] if kind == "button" else buttons("1", "2", "3")
    bodies = to_graph_messages({"text": "x", "buttons": [{"title": "Slot", "payload": payload}, *others]})
    body = accepted(bodies[0])["interactive"]
    option_id = body["action"]["buttons"][0]["reply"]["id"] if kind == "button" else (
        body["action"]["sections"][0]["rows"][0]["id"]
    )
    assert option_id == (payload if uses_payload else "Slot")


def test_duplicate_payloads_are_dropped():
    message = {"text": "x", "buttons": [{"title": "A", "payload": "/a"}, {"title": "B", "payload": "/a"}]}
    bodies = [accepted(b) for b in to_graph_messages(message)]
    assert [b["reply"]["title"] for b in bodies[0]["interactive"]["action"]["buttons"]] == ["A"]


def test_quick_replies_are_buttons_too():
    bodies = to_graph_messages({"text": "x", "quick_replies": [{"title": "Ok", "payload": "/affirm"}]})
    assert accepted(bodies[0])["interactive"]["action"]["buttons"][0]["reply"] == {"id": "/affirm", "title": "Ok"}


@pytest.mark.parametrize(
    ("length", "expected_kinds"),
    [(BUTTON_BODY_MAX, ["button"]), (BUTTON_BODY_MAX + 1, ["text", "button"])],
)
def test_button_body_limit_moves_the_start_of_a_long_text_into_a_text_message(length, expected_kinds):
    text = ("parola " * 600)[: length - 1] + "!"
    text = text[:length]
    bodies = [accepted(b) for b in to_graph_messages({"text": text, "buttons": buttons("Sì", "No")})]
    assert kinds(bodies) == expected_kinds
    assert all(len(b["interactive"]["body"]["text"]) <= BUTTON_BODY_MAX for b in bodies if b["type"] == "interactive")


@pytest.mark.parametrize(
    ("length", "expected_kinds"), [(LIST_BODY_MAX, ["list"]), (LIST_BODY_MAX + 1, ["text", "list"])]
)
def test_list_body_limit(length, expected_kinds):
    text = ("parola " * 1000)[: length - 1] + "!"
    bodies = [accepted(b) for b in to_graph_messages({"text": text, "buttons": buttons(*"ABCD")})]
    assert kinds(bodies) == expected_kinds
    assert "".join(b.get("text", {}).get("body", "") + b.get("interactive", {}).get("body", {}).get("text", "")
                   for b in bodies).replace(" ", "") == text.replace(" ", "")


def test_a_text_longer_than_a_message_before_a_list():
    text = "Spiegazione. " * 700  # ~9100 characters
    bodies = [accepted(b) for b in to_graph_messages({"text": text, "buttons": buttons(*"ABCDEFGHIJKL")})]
    assert kinds(bodies) == ["text", "text", "list", "list"]
    assert bodies[2]["interactive"]["body"]["text"].endswith("\n\n1/2")


def test_buttons_without_text_still_have_a_body():
    bodies = [accepted(b) for b in to_graph_messages({"buttons": buttons("Sì")})]
    assert bodies[0]["interactive"]["body"]["text"] == EMPTY_BODY


# --- media, templates, custom ----------------------------------------------------------------------


def test_image_by_url_and_from_a_local_file():
    assert to_graph_messages({"image": "https://example.org/map.png"}) == [
        {"messaging_product": "whatsapp", "type": "image", "image": {"link": "https://example.org/map.png"}}
    ]
    body = accepted(to_graph_messages({"image": "/var/media/map.png"})[0])
    assert body["image"] == {LOCAL_PATH: "/var/media/map.png"}


def test_document_attachment_with_filename_and_caption():
    message = {
        "text": "Ecco il referto",
        "attachment": {"type": "document", "path": "/srv/results/42.pdf", "filename": "referto.pdf",
                       "caption": "Referto del 3 marzo"},
    }
    bodies = [accepted(b) for b in to_graph_messages(message)]
    assert kinds(bodies) == ["text", "document"]
    assert bodies[1]["document"] == {LOCAL_PATH: "/srv/results/42.pdf", "filename": "referto.pdf",
                                     "caption": "Referto del 3 marzo"}


def test_document_from_a_path_string_is_named_after_the_file():
    body = accepted(to_graph_messages({"attachment": "/srv/results/referto.pdf"})[0])
    assert body["document"] == {LOCAL_PATH: "/srv/results/referto.pdf", "filename": "referto.pdf"}


def test_caption_past_its_limit_is_cut():
    body = media_message("image", link="https://example.org/a.png", caption="Parola. " * 200)
    assert len(accepted(body)["image"]["caption"]) <= 1024


def test_media_needs_exactly_one_source():
    with pytest.raises(ValueError):
        media_message("document", link="https://example.org/a.pdf", path="/tmp/a.pdf")
    with pytest.raises(ValueError):
        media_message("sticker", link="https://example.org/a.webp")


def test_template_from_custom_with_parameters_and_quick_replies():
    message = {
        "custom": {
            "template": {
                "name": "appointment_reminder",
                "language": "it",
                "body": ["Anna", "3 marzo", "10:30", "Dott. Rossi", "Sede", "-"],
                "quick_replies": ['/confirm_appointment{"appointment_id": "7"}', None, "/cancel_appointment"],
            }
        }
    }
    (body,) = [accepted(b) for b in to_graph_messages(message)]
    assert body == {
        "messaging_product": "whatsapp",
        "type": "template",
        "template": {
            "name": "appointment_reminder",
            "language": {"code": "it"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": t}
                                                for t in ("Anna", "3 marzo", "10:30", "Dott. Rossi", "Sede", "-")]},
                {"type": "button", "sub_type": "quick_reply", "index": "0",
                 "parameters": [{"type": "payload", "payload": '/confirm_appointment{"appointment_id": "7"}'}]},
                {"type": "button", "sub_type": "quick_reply", "index": "2",
                 "parameters": [{"type": "payload", "payload": "/cancel_appointment"}]},
            ],
        },
    }


def test_template_without_parameters():
    assert accepted(template_message("hello_world", "en_US")) == {
        "messaging_product": "whatsapp",
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }


def test_raw_graph_bodies_in_custom_pass_through():
    raw = {"type": "location", "location": {"latitude": 45.46, "longitude": 9.19, "name": "Sede"}}
    assert to_graph_messages({"custom": {"whatsapp": raw}}) == [{"messaging_product": "whatsapp", **raw}]


def test_everything_in_one_message_keeps_rasa_order():
    message = {
        "text": "Ecco",
        "buttons": buttons("Ok"),
        "image": "https://example.org/a.png",
        "attachment": "https://example.org/a.pdf",
    }
    assert kinds([accepted(b) for b in to_graph_messages(message)]) == ["button", "image", "document"]


def test_nothing_to_send():
    assert to_graph_messages({}) == []
    assert to_graph_messages({"text": None, "buttons": [], "custom": None}) == []
