"""Webhooks to the bot: Meta's envelope and signature, every inbound type, status callbacks, the window."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading

import pytest

PATIENT = "393332000002"


def only_value(received) -> dict:
    (entry,) = received.json["entry"]
    (change,) = entry["changes"]
    assert change["field"] == "messages"
    return change["value"]


def test_an_injected_text_arrives_signed_in_metas_envelope(sandbox, webhook_receiver):
    result = sandbox.inject(**{"from": PATIENT, "name": "Maria", "type": "text", "text": "Vorrei prenotare"})
    (delivery,) = result["deliveries"]
    assert delivery["status"] == 200 and delivery["delivered"]
    (received,) = webhook_receiver.snapshot()
    assert received.signature_ok
    assert received.headers["Content-Type"] == "application/json"
    payload = received.json
    assert payload["object"] == "whatsapp_business_account"
    assert payload["entry"][0]["id"]
    value = only_value(received)
    assert value["messaging_product"] == "whatsapp"
    assert value["metadata"] == {"display_phone_number": "390200000000", "phone_number_id": sandbox.phone_number_id}
    (contact,) = value["contacts"]
    assert contact["profile"] == {"name": "Maria"}
    assert contact["wa_id"] == PATIENT
    assert contact["user_id"].startswith("IT.")
    (message,) = value["messages"]
    assert message["from"] == PATIENT
    assert message["from_user_id"] == contact["user_id"]
    assert message["id"] == result["messages"][0]["id"]
    assert message["timestamp"].isdigit()
    assert message["type"] == "text" and message["text"] == {"body": "Vorrei prenotare"}


def test_the_signature_covers_metas_escaped_bytes(sandbox, webhook_receiver):
    sandbox.inject(**{"from": PATIENT, "name": "Nicolò", "type": "text", "text": "è ok? a/b"})
    (received,) = webhook_receiver.snapshot()
    assert b"\\u00e8" in received.body and b"a\\/b" in received.body  # as Meta sends it
    expected = hmac.new(sandbox.app_secret.encode(), received.body, hashlib.sha256).hexdigest()
    assert received.headers["X-Hub-Signature-256"] == f"sha256={expected}"
    reserialised = json.dumps(received.json).encode()
    assert hmac.new(sandbox.app_secret.encode(), reserialised, hashlib.sha256).hexdigest() != expected


def test_a_receiver_that_rejects_the_signature_is_recorded_as_403(sandbox, webhook_receiver):
    webhook_receiver.app_secret = "another-secret"
    result = sandbox.inject(**{"from": PATIENT, "type": "text", "text": "x"})
    assert result["deliveries"][0]["status"] == 403
    assert not webhook_receiver.snapshot()[0].signature_ok


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake image").decode()


@pytest.mark.parametrize("spec, expected", [
    ({"type": "button_reply", "id": "confirm", "title": "Confermo"},
     {"type": "interactive", "interactive": {"type": "button_reply",
                                             "button_reply": {"id": "confirm", "title": "Confermo"}}}),
    ({"type": "list_reply", "id": "slot-1", "title": "Lun 9:00", "description": "Dr. Bianchi"},
     {"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {
         "id": "slot-1", "title": "Lun 9:00", "description": "Dr. Bianchi"}}}),
    ({"type": "button", "payload": "/confirm_appointment", "text": "Confermo"},
     {"type": "button", "button": {"payload": "/confirm_appointment", "text": "Confermo"}}),
    ({"type": "location", "latitude": 45.46, "longitude": 9.19, "name": "Clinica"},
     {"type": "location", "location": {"latitude": 45.46, "longitude": 9.19, "name": "Clinica"}}),
    ({"type": "reaction", "message_id": "wamid.X", "emoji": "👍"},
     {"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "👍"}}),
])
def test_inbound_types_have_metas_shapes(sandbox, webhook_receiver, spec, expected):
    sandbox.inject(**{"from": PATIENT, **spec})
    (message,) = webhook_receiver.messages()
    assert {k: message[k] for k in expected} == expected


def test_contacts_message(sandbox, webhook_receiver):
    sandbox.inject(**{"from": PATIENT, "type": "contacts", "contact_name": "Luca", "contact_phone": "393330000099"})
    (message,) = webhook_receiver.messages()
    (card,) = message["contacts"]
    assert card["name"]["formatted_name"] == "Luca"
    assert card["phones"][0]["wa_id"] == "393330000099"


@pytest.mark.parametrize("kind, meta_type, mime", [
    ("image", "image", "image/png"), ("document", "document", "application/pdf"), ("audio", "audio", "audio/mpeg"),
    ("voice", "audio", "audio/ogg; codecs=opus"), ("video", "video", "video/mp4"), ("sticker", "sticker", "image/webp"),
])
def test_inbound_media_is_stored_and_downloadable_by_the_bot(sandbox, webhook_receiver, kind, meta_type, mime):
    spec = {"from": PATIENT, "type": kind, "content_base64": PNG, "mime_type": mime, "caption": "guardi",
            "filename": "esame.pdf"}
    sandbox.inject(**spec)
    (message,) = webhook_receiver.messages()
    assert message["type"] == meta_type
    media = message[meta_type]
    assert media["mime_type"] == mime
    assert media["sha256"] == hashlib.sha256(base64.b64decode(PNG)).hexdigest()
    assert ("caption" in media) == (kind in ("image", "document", "video"))
    if kind == "document":
        assert media["filename"] == "esame.pdf"
    if meta_type == "audio":
        assert media["voice"] is (kind == "voice")
    headers = {"Authorization": f"Bearer {sandbox.access_token}"}
    info = sandbox.http.get(f"{sandbox.base_url}/{sandbox.api_version}/{media['id']}", headers=headers).json()
    assert sandbox.http.get(info["url"], headers=headers).content == base64.b64decode(PNG)


def test_unsupported_and_legacy_unknown_messages(sandbox, webhook_receiver):
    sandbox.inject_many([{"from": PATIENT, "type": "unsupported", "unsupported_type": "poll_creation"},
                         {"from": PATIENT, "type": "unknown"}])
    unsupported, unknown = webhook_receiver.wait_messages(2)
    assert unsupported["type"] == "unsupported"
    assert unsupported["unsupported"] == {"type": "poll_creation"}
    assert unsupported["errors"][0]["code"] == 131051
    assert unsupported["errors"][0]["error_data"]["details"]
    assert unknown["type"] == "unknown" and unknown["errors"][0]["code"] == 130501


def test_a_user_changed_number_system_message_has_no_contacts(sandbox, webhook_receiver):
    sandbox.say(PATIENT, "hi")
    sandbox.inject(**{"from": PATIENT, "type": "system", "new_wa_id": "393339999999"})
    received = webhook_receiver.snapshot()[-1]
    value = only_value(received)
    assert "contacts" not in value
    (message,) = value["messages"]
    assert message["from"] == PATIENT
    assert message["system"]["type"] == "user_changed_number"
    assert message["system"]["wa_id"] == "393339999999"
    assert sandbox.patient("393339999999")["wa_id"] == "393339999999"


def test_a_reply_carries_the_context_of_the_message_replied_to(sandbox, webhook_receiver):
    sandbox.open_window(PATIENT)
    wamid = sandbox.send_text(PATIENT, "Quando?").json()["messages"][0]["id"]
    sandbox.inject(**{"from": PATIENT, "type": "text", "text": "Domani", "context": wamid})
    message = webhook_receiver.messages()[-1]
    assert message["context"] == {"from": "390200000000", "id": wamid}


def test_a_username_user_without_phone_has_from_user_id_only(sandbox, webhook_receiver):
    sandbox.inject(**{"user_id": "IT.8877665544", "name": "anna.b", "type": "text", "text": "ciao"})
    value = only_value(webhook_receiver.snapshot()[0])
    (message,) = value["messages"]
    assert "from" not in message
    assert message["from_user_id"] == "IT.8877665544"
    assert value["contacts"] == [{"profile": {"name": "anna.b"}, "user_id": "IT.8877665544"}]


def test_a_hidden_phone_is_left_out_even_when_the_sandbox_knows_it(sandbox, webhook_receiver):
    sandbox.inject(**{"from": PATIENT, "hide_phone": True, "type": "text", "text": "ciao"})
    message = webhook_receiver.messages()[0]
    assert "from" not in message and message["from_user_id"]


def test_duplicate_delivery_sends_the_same_signed_body_twice(sandbox, webhook_receiver):
    result = sandbox.inject(**{"from": PATIENT, "type": "text", "text": "once", "duplicate": True})
    assert [d["duplicate"] for d in result["deliveries"]] == [False, True]
    first, second = webhook_receiver.snapshot()
    assert first.body == second.body and second.signature_ok


def test_several_messages_in_one_post_and_in_one_webhook(sandbox, webhook_receiver):
    specs = [{"from": PATIENT, "type": "text", "text": "uno"}, {"from": "393332000003", "type": "text", "text": "due"}]
    sandbox.inject_many(specs, batch=True)
    (received,) = webhook_receiver.snapshot()
    value = only_value(received)
    assert [m["text"]["body"] for m in value["messages"]] == ["uno", "due"]
    assert {c["wa_id"] for c in value["contacts"]} == {PATIENT, "393332000003"}


def test_inject_without_batch_sends_one_webhook_per_message(sandbox, webhook_receiver):
    sandbox.inject_many([{"from": PATIENT, "type": "text", "text": str(i)} for i in range(3)])
    assert len(webhook_receiver.snapshot()) == 3


# --- statuses ---------------------------------------------------------------------------------------


def test_an_accepted_message_gets_sent_then_delivered_statuses(sandbox, webhook_receiver):
    sandbox.say(PATIENT, "hi")
    wamid = sandbox.send_text(PATIENT, "ciao", biz_opaque_callback_data="outbox:42").json()["messages"][0]["id"]
    sent, delivered = webhook_receiver.wait_statuses(wamid, 2)
    assert [sent["status"], delivered["status"]] == ["sent", "delivered"]
    for status in (sent, delivered):
        assert status["recipient_id"] == PATIENT
        assert status["recipient_user_id"].startswith("IT.")
        assert status["biz_opaque_callback_data"] == "outbox:42"
        assert status["timestamp"].isdigit()
        assert status["pricing"] == {"billable": False, "pricing_model": "PMP", "category": "service",
                                     "type": "free_customer_service"}
        assert status["conversation"]["origin"] == {"type": "service"}
    assert "expiration_timestamp" in sent["conversation"]
    value = only_value(webhook_receiver.snapshot()[-1])
    assert value["contacts"][0]["wa_id"] == PATIENT


def test_read_is_sent_when_the_patient_reads(sandbox, webhook_receiver):
    sandbox.say(PATIENT, "hi")
    wamid = sandbox.send_text(PATIENT, "ciao").json()["messages"][0]["id"]
    webhook_receiver.wait_statuses(wamid, 2)
    assert sandbox.mark_read(wamid)["sent"] is True
    assert sandbox.mark_read(wamid)["sent"] is False  # once only
    statuses = webhook_receiver.wait_statuses(wamid, 3)
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    assert sandbox.message(wamid)["status"] == "read"


def test_status_order_and_duplicates_are_controllable(sandbox, webhook_receiver):
    sandbox.configure(statuses=["sent", "read", "delivered"], duplicate_webhooks=True)
    sandbox.say(PATIENT, "hi")
    wamid = sandbox.send_text(PATIENT, "ciao").json()["messages"][0]["id"]
    statuses = webhook_receiver.wait_statuses(wamid, 6)
    assert [s["status"] for s in statuses] == ["sent", "sent", "read", "read", "delivered", "delivered"]
    assert sandbox.message(wamid)["status"] == "read"  # the furthest state, whatever the order


def test_any_status_can_be_sent_on_demand(sandbox, webhook_receiver):
    sandbox.configure(statuses=[])
    sandbox.say(PATIENT, "hi")
    wamid = sandbox.send_text(PATIENT, "ciao").json()["messages"][0]["id"]
    sandbox.status(wamid, "delivered", copies=2)
    sandbox.status(wamid, "failed", code=131026)
    delivered, again, failed = webhook_receiver.wait_statuses(wamid, 3)
    assert delivered == again
    assert failed["errors"][0]["code"] == 131026


def test_free_form_outside_the_24_hour_window_is_accepted_then_fails_131047(sandbox, webhook_receiver):
    sandbox.close_window(PATIENT)
    reply = sandbox.send_text(PATIENT, "Ciao di nuovo")
    assert reply.status_code == 200  # Meta accepts it...
    wamid = reply.json()["messages"][0]["id"]
    (failed,) = webhook_receiver.wait_statuses(wamid)  # ...and then reports the failure
    assert failed["status"] == "failed"
    (error,) = failed["errors"]
    assert error["code"] == 131047
    assert error["title"] == "Re-engagement message"
    assert error["error_data"]["details"]
    assert "pricing" not in failed and "conversation" not in failed
    assert "contacts" not in only_value(webhook_receiver.snapshot()[-1])


def test_the_window_closes_24_hours_after_the_last_patient_message(sandbox, webhook_receiver):
    sandbox.say(PATIENT, "hi")
    sandbox.advance_clock(24 * 3600 - 60)
    first = sandbox.send_text(PATIENT, "still open").json()["messages"][0]["id"]
    sandbox.advance_clock(120)
    second = sandbox.send_text(PATIENT, "now closed").json()["messages"][0]["id"]
    assert [s["status"] for s in webhook_receiver.wait_statuses(first, 2)] == ["sent", "delivered"]
    assert webhook_receiver.wait_statuses(second)[0]["errors"][0]["code"] == 131047


def test_a_template_is_delivered_outside_the_window_and_billed(sandbox, webhook_receiver):
    sandbox.close_window(PATIENT)
    payload = {"messaging_product": "whatsapp", "to": PATIENT, "type": "template",
               "template": {"name": "clinic_new_message", "language": {"code": "en"},
                            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Maria"}]}]}}
    wamid = sandbox.send(payload).json()["messages"][0]["id"]
    sent, _ = webhook_receiver.wait_statuses(wamid, 2)
    assert sent["pricing"] == {"billable": True, "pricing_model": "PMP", "category": "utility", "type": "regular"}


def test_statuses_for_a_bsuid_send_name_the_user_id(sandbox, webhook_receiver):
    sandbox.inject(**{"user_id": "IT.4455", "type": "text", "text": "hi"})
    payload = {"messaging_product": "whatsapp", "recipient": "IT.4455", "type": "text", "text": {"body": "ok"}}
    wamid = sandbox.send(payload).json()["messages"][0]["id"]
    sent, _ = webhook_receiver.wait_statuses(wamid, 2)
    assert sent["recipient_user_id"] == "IT.4455" and "recipient_id" not in sent


# --- delivery bookkeeping ---------------------------------------------------------------------------


def test_every_delivery_attempt_and_its_http_status_is_recorded(sandbox, webhook_receiver):
    sandbox.configure(webhook_retries=1, webhook_retry_delay=0.01)
    webhook_receiver.status = 500
    sandbox.inject(**{"from": PATIENT, "type": "text", "text": "x"})
    (delivery,) = sandbox.webhooks("messages")
    assert [a["status"] for a in delivery["attempts"]] == [500, 500]
    assert delivery["delivered"] is False
    assert len(webhook_receiver.snapshot()) == 2  # Meta retries a failed delivery


def test_an_unreachable_bot_is_recorded_without_blocking_the_graph_api(sandbox):
    sandbox.say(PATIENT, "hi")  # the default target is a closed port
    assert sandbox.send_text(PATIENT, "ciao").status_code == 200
    deliveries = sandbox.webhooks()
    assert deliveries and all(d["status"] is None and d["attempts"][0]["error"] for d in deliveries)


def test_the_verification_handshake(sandbox, webhook_receiver):
    reply = sandbox.http.post(f"{sandbox.base_url}/_sandbox/verify", json={}).json()
    assert reply == {"status": 200, "verified": True}
    wrong = sandbox.http.post(f"{sandbox.base_url}/_sandbox/verify", json={"verify_token": "nope"}).json()
    assert wrong["verified"] is False and wrong["status"] == 403


def test_a_slow_bot_never_holds_up_the_graph_api(sandbox, webhook_receiver):
    webhook_receiver.gate = threading.Event()  # the bot hangs on every webhook until released
    try:
        sandbox.inject(**{"from": PATIENT, "type": "text", "text": "hi"}, wait=False)
        reply = sandbox.send_text(PATIENT, "ciao")
        assert reply.status_code == 200
        assert any(d["pending"] for d in sandbox.webhooks(settle=False))
    finally:
        webhook_receiver.gate.set()
    wamid = reply.json()["messages"][0]["id"]
    assert [s["status"] for s in webhook_receiver.wait_statuses(wamid, 2)] == ["sent", "delivered"]


def test_a_changed_user_id_is_reported_and_followed(sandbox, webhook_receiver):
    sandbox.inject(**{"user_id": "IT.100", "type": "text", "text": "hi"})
    sandbox.inject(**{"user_id": "IT.100", "type": "system", "system_type": "user_changed_user_id",
                      "new_user_id": "IT.200"})
    system = webhook_receiver.messages()[-1]["system"]
    assert system["type"] == "user_changed_user_id" and system["user_id"] == "IT.200"
    assert sandbox.patient("IT.200")["user_id"] == "IT.200"


def test_the_fixture_helpers_speak_for_the_patient(sandbox, webhook_receiver):
    sandbox.open_window(PATIENT)
    wamid = sandbox.send_text(PATIENT, "Scegli").json()["messages"][0]["id"]
    assert sandbox.last_received(PATIENT)["id"] == wamid
    sandbox.tap_button(PATIENT, "yes", "Sì", context=wamid)
    sandbox.pick_row(PATIENT, "slot-3", "11:00")
    sandbox.tap_quick_reply(PATIENT, "/confirm", "Confermo")
    sandbox.send_media(PATIENT, "document", b"%PDF-1.4", "application/pdf", filename="a.pdf", caption="ecco")
    reply, row, quick, document = webhook_receiver.wait_messages(4)
    assert reply["interactive"]["button_reply"]["id"] == "yes" and reply["context"]["id"] == wamid
    assert row["interactive"]["list_reply"]["id"] == "slot-3"
    assert quick["button"]["payload"] == "/confirm"
    assert document["document"]["filename"] == "a.pdf" and document["document"]["caption"] == "ecco"
