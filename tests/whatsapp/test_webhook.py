"""Meta's webhook payloads, one fixture per type as Meta documents them, read by the pure parser."""

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from clinic.whatsapp.types import WINDOW_REPLY_PAYLOAD, Media, Sender
from clinic.whatsapp.webhook import MalformedWebhook, parse, sign, verify_signature

PAYLOADS = Path(__file__).parent / "payloads"
PHONE, BSUID = "393471234567", "IT.1502576394655843"
SENT = datetime(2026, 2, 25, 6, 13, 20, tzinfo=timezone.utc)


def payload(name: str) -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))


def only_message(name: str):
    batch = parse(payload(name))
    assert batch.statuses == []
    [message] = batch.messages
    return message


@pytest.mark.parametrize(
    ("fixture", "kind", "rasa_text"),
    [
        ("text", "text", "Buongiorno, vorrei prenotare una visita"),
        ("interactive_button_reply", "interactive", "/affirm"),
        ("interactive_list_reply", "interactive", '/choose_slot{"slot_id": "12"}'),
        ("button_template_reply", "button", '/confirm_appointment{"appointment_id": "7"}'),
        ("image", "image", '/share_attachment{"media_type": "image"}'),
        ("document", "document", '/share_attachment{"media_type": "document"}'),
        ("audio_voice", "audio", '/share_attachment{"media_type": "audio"}'),
        ("video", "video", '/share_attachment{"media_type": "video"}'),
        ("sticker", "sticker", '/share_attachment{"media_type": "sticker"}'),
        ("location", "location", '/share_attachment{"media_type": "location"}'),
        ("contacts", "contacts", '/share_attachment{"media_type": "contacts"}'),
        ("reaction", "reaction", None),
        ("unsupported", "unsupported", "/send_unsupported_message"),
        ("unknown_legacy", "unknown", "/send_unsupported_message"),
        ("system_user_changed_number", "system", None),
        ("user_id_only", "text", "Hello, I'd like to book a visit"),
    ],
)
def test_every_inbound_type_becomes_what_the_bot_is_given(fixture, kind, rasa_text):
    message = only_message(fixture)
    assert (message.type, message.rasa_text) == (kind, rasa_text)
    assert message.wamid.startswith("wamid.")
    assert message.phone_number_id == "106540352242922"
    assert message.timestamp == SENT
    assert message.raw == payload(fixture)["entry"][0]["changes"][0]["value"]["messages"][0]


def test_the_sender_carries_number_user_id_and_profile_name():
    assert only_message("text").sender == Sender(PHONE, BSUID, "Giulia Bianchi")


def test_a_user_without_a_visible_number_is_known_by_user_id():
    message = only_message("user_id_only")
    assert message.sender == Sender(None, "IT.7702576394655777", "Sam")
    assert message.sender.rasa_sender_id == "IT.7702576394655777"


def test_legacy_unknown_messages_have_a_number_only():
    assert only_message("unknown_legacy").sender == Sender(PHONE, None, "Giulia Bianchi")


@pytest.mark.parametrize(
    ("fixture", "media"),
    [
        ("image", Media("1003383421387256", "image/jpeg", only_message("image").raw["image"]["sha256"], None,
                        "la ricetta")),
        ("document", Media("1003383421387257", "application/pdf", only_message("document").raw["document"]["sha256"],
                           "referto_esami.pdf", "referto")),
        ("audio_voice", Media("1003383421387258", "audio/ogg; codecs=opus",
                              only_message("audio_voice").raw["audio"]["sha256"])),
    ],
)
def test_media_messages_name_the_media_to_download(fixture, media):
    assert only_message(fixture).media == media


@pytest.mark.parametrize("fixture", ["video", "sticker"])
def test_video_and_stickers_are_media_too(fixture):
    message = only_message(fixture)
    assert message.media is not None and message.media.id.isdigit()


@pytest.mark.parametrize("fixture", ["text", "location", "contacts", "reaction", "unsupported"])
def test_other_types_have_no_media(fixture):
    assert only_message(fixture).media is None


def test_replies_name_the_message_they_answer():
    assert only_message("button_template_reply").context_wamid == "wamid.HBgMMzkzNDcxMjM0NTY3FQIAERgSREMINDER0001AA=="
    assert only_message("interactive_list_reply").context_wamid.startswith("wamid.")
    assert only_message("text").context_wamid is None


def test_a_reaction_is_recorded_without_a_reply():
    message = only_message("reaction")
    assert message.rasa_text is None and message.context_wamid is None
    assert message.raw["reaction"]["message_id"].startswith("wamid.")


def test_tapping_the_window_templates_button_is_nothing_for_the_bot():
    body = payload("button_template_reply")
    tap = body["entry"][0]["changes"][0]["value"]["messages"][0]
    tap["button"] = {"payload": WINDOW_REPLY_PAYLOAD, "text": "Leggi"}
    [message] = parse(body).messages
    assert message.rasa_text is None  # stored and acknowledged; the held messages go out, no bot reply


def test_a_changed_number_names_the_old_and_the_new_number():
    message = only_message("system_user_changed_number")
    assert message.sender == Sender(PHONE, BSUID)
    assert message.new_wa_id == "393479999999"


@pytest.mark.parametrize(
    ("fixture", "status", "error_code", "opaque"),
    [
        ("status_sent", "sent", None, "appointment:7"),
        ("status_delivered", "delivered", None, "appointment:7"),
        ("status_read", "read", None, None),
        ("status_failed", "failed", 131047, None),
    ],
)
def test_statuses_are_read_with_their_errors(fixture, status, error_code, opaque):
    batch = parse(payload(fixture))
    assert batch.messages == []
    [update] = batch.statuses
    assert (update.status, update.error_code, update.biz_opaque_callback_data) == (status, error_code, opaque)
    assert update.recipient.wa_id == PHONE and update.timestamp == SENT
    assert update.wamid.startswith("wamid.")


def test_a_failed_status_has_the_error_title_and_no_user_id():
    [update] = parse(payload("status_failed")).statuses
    assert update.error_title == "Re-engagement message"
    assert update.recipient == Sender(PHONE, None)


def test_one_post_with_several_entries_changes_messages_and_statuses_is_read_whole():
    batch = parse(payload("multi_entry"))
    assert [m.raw["text"]["body"] for m in batch.messages] == ["primo", "secondo", "hello"]
    assert [m.sender.wa_id for m in batch.messages] == [PHONE, PHONE, "447700900123"]
    assert batch.messages[2].sender.profile_name == "Emily Clark"
    assert [s.status for s in batch.statuses] == ["delivered", "read", "sent"]


def test_a_bad_message_is_skipped_and_the_rest_kept():
    body = payload("multi_entry")
    del body["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    assert [m.raw["text"]["body"] for m in parse(body).messages] == ["secondo", "hello"]


@pytest.mark.parametrize("body", [[], "text", 3, None, {"object": "whatsapp_business_account"},
                                  {"entry": {"id": 1}}, {"entry": ["x"]}, {"entry": [{"changes": "x"}]}])
def test_a_body_that_is_not_a_webhook_is_malformed(body):
    with pytest.raises(MalformedWebhook):
        parse(body)


def test_other_objects_and_fields_are_ignored():
    assert parse({"object": "page", "entry": []}).messages == []
    body = {"object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "account_update", "value": {"event": "x"}}]}]}
    batch = parse(body)
    assert batch.messages == [] and batch.statuses == []


BODY = b'{"object":"whatsapp_business_account","entry":[]}'


def test_the_right_signature_is_accepted():
    assert verify_signature("secret", BODY, sign("secret", BODY))
    assert verify_signature("secret", BODY, sign("secret", BODY).upper().replace("SHA256", "sha256"))


@pytest.mark.parametrize(
    "header",
    [None, "", "sha256=", "sha1=" + "0" * 40, "sha256=" + "0" * 64, "sha256=zz" + "0" * 62,
     sign("other secret", BODY), sign("secret", BODY + b" "), sign("secret", BODY)[:-1], "sha256=é" + "0" * 63],
)
def test_a_missing_or_wrong_signature_is_refused(header):
    assert not verify_signature("secret", BODY, header)


def test_no_secret_refuses_everything():
    assert not verify_signature("", BODY, sign("", BODY))
