"""The sandbox's Graph API `/messages`: auth, ids, every message type at and past Meta's limits."""

from __future__ import annotations

import pytest
import requests

PATIENT = "393331000001"


def text(body: str, **extra) -> dict:
    return {"messaging_product": "whatsapp", "to": PATIENT, "type": "text", "text": {"body": body}, **extra}


def buttons(*titles: str, ids: list[str] | None = None, body: str = "Pick one", **extra) -> dict:
    ids = ids or [f"b{i}" for i in range(len(titles))]
    interactive = {
        "type": "button",
        "body": {"text": body},
        "action": {"buttons": [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in zip(ids, titles,
                                                                                                 strict=True)]},
        **extra,
    }
    return {"messaging_product": "whatsapp", "to": PATIENT, "type": "interactive", "interactive": interactive}


def a_list(sections: list[dict], label: str = "Choose", body: str = "Which day?", **extra) -> dict:
    interactive = {"type": "list", "body": {"text": body}, "action": {"button": label, "sections": sections}, **extra}
    return {"messaging_product": "whatsapp", "to": PATIENT, "type": "interactive", "interactive": interactive}


def rows(count: int, prefix: str = "r", **fields) -> list[dict]:
    return [{"id": f"{prefix}{i}", "title": f"Row {i}", **fields} for i in range(count)]


def assert_meta_error(reply: requests.Response, code: int, status: int = 400) -> dict:
    """Meta's error shape, exactly: message, type, code, error_data, fbtrace_id."""
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code
    assert error["type"] == "OAuthException"
    assert error["message"].startswith(f"(#{code})") or code == 190
    assert isinstance(error["fbtrace_id"], str) and error["fbtrace_id"]
    if code >= 1000:
        assert error["error_data"]["messaging_product"] == "whatsapp"
        assert error["error_data"]["details"]
    return error


@pytest.fixture(autouse=True)
def window_open(sandbox):
    sandbox.open_window(PATIENT)


def test_a_text_is_accepted_with_metas_response_shape(sandbox):
    reply = sandbox.send(text("Ciao"))
    assert reply.status_code == 200
    body = reply.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": PATIENT, "wa_id": PATIENT}]
    assert body["messages"][0]["id"].startswith("wamid.")
    received = sandbox.received(PATIENT)
    assert [m["id"] for m in received] == [body["messages"][0]["id"]]
    assert received[0]["request"]["text"]["body"] == "Ciao"


def test_a_formatted_phone_number_is_normalised_to_the_wa_id(sandbox):
    reply = sandbox.send({**text("Ciao"), "to": "+39 333 1000001"})
    assert reply.json()["contacts"] == [{"input": "+39 333 1000001", "wa_id": PATIENT}]


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer wrong-token", "Basic sandbox-test-token"])
def test_without_the_right_bearer_token_it_is_metas_oauth_error_190(sandbox, header):
    headers = {"Authorization": header} if header else {}
    reply = requests.post(sandbox.messages_url, json=text("x"), headers=headers, timeout=10)
    assert_meta_error(reply, 190, status=401)


def test_an_unknown_phone_number_id_is_graphs_unknown_object_error(sandbox):
    url = f"{sandbox.base_url}/{sandbox.api_version}/999999999/messages"
    reply = requests.post(url, json=text("x"), headers={"Authorization": f"Bearer {sandbox.access_token}"}, timeout=10)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert (error["code"], error["error_subcode"], error["type"]) == (100, 33, "GraphMethodException")
    assert "999999999" in error["message"]


def test_text_body_of_4096_characters_passes_and_4097_fails(sandbox):
    assert sandbox.send(text("é" * 4096)).status_code == 200  # characters, not bytes
    assert_meta_error(sandbox.send(text("é" * 4097)), 100)


@pytest.mark.parametrize("payload", [
    {"to": PATIENT, "type": "text", "text": {"body": "no product"}},
    {"messaging_product": "whatsapp", "type": "text", "text": {"body": "nobody to"}},
    {"messaging_product": "whatsapp", "to": PATIENT, "type": "text"},
    {"messaging_product": "whatsapp", "to": PATIENT, "type": "text", "text": {"body": "x", "preview_url": "yes"}},
    {"messaging_product": "whatsapp", "to": PATIENT, "type": "carousel", "carousel": {}},
    {"messaging_product": "whatsapp", "to": "not-a-number", "type": "text", "text": {"body": "x"}},
])
def test_malformed_requests_are_invalid_parameter_100(sandbox, payload):
    assert_meta_error(sandbox.send(payload), 100)


def test_text_without_a_body_is_required_parameter_missing(sandbox):
    assert_meta_error(sandbox.send({**text("x"), "text": {}}), 131008)


def test_preview_url_and_reply_context_are_accepted(sandbox):
    wamid = sandbox.say(PATIENT, "question")
    payload = text("see https://example.org", context={"message_id": wamid})
    payload["text"]["preview_url"] = True
    reply = sandbox.send(payload)
    assert reply.status_code == 200
    assert sandbox.received(PATIENT)[-1]["context_id"] == wamid


# --- reply buttons -----------------------------------------------------------------------------


def test_one_to_three_buttons_with_20_character_titles_pass(sandbox):
    assert sandbox.send(buttons("A" * 20)).status_code == 200
    assert sandbox.send(buttons("Yes", "No", "Maybe")).status_code == 200


@pytest.mark.parametrize("payload, fragment", [
    (buttons("A" * 21), "title"),
    (buttons("Yes", "No", "Maybe", "Later"), "buttons count"),
    (buttons("Yes", "No", ids=["same", "same"]), "Duplicate button id"),
    (buttons("Same", "Same"), "Duplicate button title"),
    (buttons("Yes", ids=["x" * 257]), "id"),
    (buttons("Yes", body="b" * 1025), "body"),
    (buttons("Yes", header={"type": "text", "text": "h" * 61}), "header"),
    (buttons("Yes", footer={"text": "f" * 61}), "footer"),
])
def test_button_limits_are_131009(sandbox, payload, fragment):
    error = assert_meta_error(sandbox.send(payload), 131009)
    assert fragment.lower() in error["error_data"]["details"].lower()


def test_button_limits_at_the_boundary_pass(sandbox):
    payload = buttons("Yes", ids=["x" * 256], body="b" * 1024, header={"type": "text", "text": "h" * 60},
                      footer={"text": "f" * 60})
    assert sandbox.send(payload).status_code == 200


def test_zero_buttons_is_131009(sandbox):
    assert_meta_error(sandbox.send(buttons()), 131009)


def test_a_button_message_can_have_an_image_header_by_link(sandbox):
    payload = buttons("Ok", header={"type": "image", "image": {"link": "https://example.org/x.jpg"}})
    assert sandbox.send(payload).status_code == 200


# --- lists -------------------------------------------------------------------------------------


def test_a_list_at_every_limit_passes(sandbox):
    sections = [{"title": "T" * 24, "rows": rows(5, "a", description="d" * 72)},
                {"title": "Second", "rows": [{"id": "i" * 200, "title": "R" * 24}, *rows(4, "b")]}]
    payload = a_list(sections, label="L" * 20, body="b" * 4096, header={"type": "text", "text": "h" * 60},
                     footer={"text": "f" * 60})
    assert sandbox.send(payload).status_code == 200


@pytest.mark.parametrize("payload, fragment", [
    (a_list([{"rows": rows(11)}]), "row count"),
    (a_list([{"title": "A", "rows": rows(6, "a")}, {"title": "B", "rows": rows(5, "b")}]), "row count"),
    (a_list([{"title": f"S{i}", "rows": rows(1, f"s{i}-")} for i in range(11)]), "sections count"),
    (a_list([]), "sections count"),
    (a_list([{"rows": rows(1, "a")}, {"title": "B", "rows": rows(1, "b")}]), "required"),
    (a_list([{"title": "T" * 25, "rows": rows(1)}]), "title"),
    (a_list([{"rows": [{"id": "i" * 201, "title": "x"}]}]), "id"),
    (a_list([{"rows": [{"id": "a", "title": "R" * 25}]}]), "title"),
    (a_list([{"rows": [{"id": "a", "title": "x", "description": "d" * 73}]}]), "description"),
    (a_list([{"rows": [{"id": "a", "title": "x"}, {"id": "a", "title": "y"}]}]), "Duplicate row id"),
    (a_list([{"rows": rows(1)}], label="L" * 21), "button"),
    (a_list([{"rows": rows(1)}], body="b" * 4097), "body"),
    (a_list([{"rows": rows(1)}], header={"type": "text", "text": "h" * 61}), "header"),
    (a_list([{"rows": rows(1)}], footer={"text": "f" * 61}), "footer"),
])
def test_list_limits_are_131009(sandbox, payload, fragment):
    error = assert_meta_error(sandbox.send(payload), 131009)
    assert fragment.lower() in error["error_data"]["details"].lower()


def test_a_single_section_may_omit_its_title(sandbox):
    assert sandbox.send(a_list([{"rows": rows(10)}])).status_code == 200


# --- media messages ------------------------------------------------------------------------------


def test_media_by_link_and_by_uploaded_id(sandbox):
    media_id = sandbox.upload(b"%PDF-1.4 referto", "application/pdf", "referto.pdf").json()["id"]
    document = {"id": media_id, "filename": "referto.pdf", "caption": "c" * 1024}
    for kind, body in [("document", document), ("image", {"link": "https://example.org/a.jpg", "caption": "x"}),
                       ("audio", {"link": "https://example.org/a.ogg"}), ("video", {"link": "https://e.org/v.mp4"}),
                       ("sticker", {"link": "https://example.org/s.webp"})]:
        reply = sandbox.send({"messaging_product": "whatsapp", "to": PATIENT, "type": kind, kind: body})
        assert reply.status_code == 200, (kind, reply.text)


@pytest.mark.parametrize("kind, body, code", [
    ("image", {"link": "https://example.org/a.jpg", "caption": "c" * 1025}, 131009),
    ("image", {"id": "123456", "link": "https://example.org/a.jpg"}, 100),
    ("image", {}, 100),
    ("document", {"id": "999999999999999"}, 100),
    ("audio", {"link": "https://example.org/a.ogg", "caption": "no captions on audio"}, 100),
    ("image", {"link": "https://example.org/a.jpg", "filename": "only documents"}, 100),
    ("video", {"link": "ftp://example.org/v.mp4"}, 100),
])
def test_media_violations(sandbox, kind, body, code):
    assert_meta_error(sandbox.send({"messaging_product": "whatsapp", "to": PATIENT, "type": kind, kind: body}), code)


# --- templates ------------------------------------------------------------------------------------


def template(name: str = "clinic_new_message", code: str = "it", body_params: list[str] | None = None,
             payloads: dict[int, str] | None = None) -> dict:
    components = []
    if body_params is not None:
        components.append({"type": "body", "parameters": [{"type": "text", "text": p} for p in body_params]})
    for index, payload in (payloads or {}).items():
        components.append({"type": "button", "sub_type": "quick_reply", "index": str(index),
                           "parameters": [{"type": "payload", "payload": payload}]})
    return {"messaging_product": "whatsapp", "to": PATIENT, "type": "template",
            "template": {"name": name, "language": {"code": code}, "components": components}}


def test_an_approved_template_is_accepted_with_message_status(sandbox):
    reply = sandbox.send(template(body_params=["Maria"], payloads={0: '/read_message{"id": 7}'}))
    assert reply.status_code == 200
    assert reply.json()["messages"][0]["message_status"] == "accepted"
    view = sandbox.received(PATIENT)[-1]["view"]
    assert "Maria" in view["body"]
    assert view["buttons"] == [{"text": "Leggi", "payload": '/read_message{"id": 7}'}]


def test_an_unknown_template_or_language_is_132001(sandbox):
    assert_meta_error(sandbox.send(template(name="not_approved", body_params=["x"])), 132001)
    assert_meta_error(sandbox.send(template(code="fr", body_params=["x"])), 132001)


def test_the_wrong_number_of_parameters_is_132000(sandbox):
    assert_meta_error(sandbox.send(template(body_params=[])), 132000)
    assert_meta_error(sandbox.send(template(body_params=["a", "b"])), 132000)


def test_a_quick_reply_payload_for_a_missing_button_is_131009(sandbox):
    assert_meta_error(sandbox.send(template(body_params=["x"], payloads={1: "nope"})), 131009)


def test_tests_can_register_templates(sandbox):
    sandbox.add_templates({"custom": {"category": "utility", "languages": {"en": {"body": "Hi", "buttons": []}}}})
    assert sandbox.send(template(name="custom", code="en")).status_code == 200


# --- read receipts and recipients -----------------------------------------------------------------


def test_a_read_receipt_with_typing_indicator_succeeds_for_a_received_message(sandbox):
    wamid = sandbox.say(PATIENT, "hello")
    payload = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid,
               "typing_indicator": {"type": "text"}}
    reply = sandbox.send(payload)
    assert reply.json() == {"success": True}
    assert sandbox.sent(PATIENT)[-1]["read"] is True


def test_a_read_receipt_for_an_unknown_message_is_100(sandbox):
    payload = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.nope"}
    assert_meta_error(sandbox.send(payload), 100)


def test_sending_to_a_business_scoped_user_id(sandbox):
    sandbox.inject(**{"user_id": "IT.555000111", "name": "Username User", "type": "text", "text": "hi"})
    payload = {"messaging_product": "whatsapp", "recipient": "IT.555000111", "type": "text", "text": {"body": "ok"}}
    reply = sandbox.send(payload)
    assert reply.status_code == 200
    assert reply.json()["contacts"] == [{"input": "IT.555000111", "user_id": "IT.555000111"}]
    assert sandbox.received("IT.555000111")[0]["recipient"] == "IT.555000111"


def test_to_wins_over_recipient_when_both_are_given(sandbox):
    reply = sandbox.send({**text("x"), "recipient": "IT.1"})
    assert reply.json()["contacts"][0] == {"input": PATIENT, "wa_id": PATIENT}


def test_rejected_calls_are_recorded_for_tests(sandbox):
    sandbox.send(buttons("A" * 21))
    assert sandbox.rejected()[-1]["error"]["code"] == 131009


def test_an_unknown_path_is_graphs_unknown_path_error(sandbox):
    reply = requests.post(f"{sandbox.base_url}/{sandbox.api_version}/{sandbox.phone_number_id}/mesages",
                          headers={"Authorization": f"Bearer {sandbox.access_token}"}, json={}, timeout=10)
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == 2500
