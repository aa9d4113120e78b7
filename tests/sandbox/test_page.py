"""The phone page, driven by Debian's Chromium through Playwright, as a person would use it."""

from __future__ import annotations

import struct
import zlib

import pytest

from tests.browser import needs_chromium

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium

PATIENT = "393334000005"


def one_pixel_png() -> bytes:
    """A valid 1×1 PNG, built here rather than pasted as an opaque blob."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)  # 1×1, 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0\0\0\0\0")) + chunk(
        b"IEND", b"")


@pytest.fixture
def page(browser, sandbox):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{sandbox.base_url}/")
    page.get_by_label("Your name").fill("Maria Rossi")
    page.get_by_label("Phone number").fill(PATIENT)
    page.get_by_role("button", name="Open chat").click()
    yield page
    context.close()


def send(sandbox, interactive: dict) -> str:
    reply = sandbox.send({"messaging_product": "whatsapp", "to": PATIENT, "type": "interactive",
                          "interactive": interactive})
    assert reply.status_code == 200, reply.text
    return reply.json()["messages"][0]["id"]


def test_tapping_a_reply_button_delivers_a_signed_button_reply(sandbox, webhook_receiver, page):
    sandbox.open_window(PATIENT)
    wamid = send(sandbox, {"type": "button", "body": {"text": "Confermi la visita di lunedì?"},
                           "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Confermo"}},
                                                  {"type": "reply", "reply": {"id": "no", "title": "Annulla"}}]}})
    page.get_by_text("Confermi la visita di lunedì?").wait_for()
    page.get_by_role("button", name="Confermo").click()
    (message,) = webhook_receiver.wait_messages(1)
    assert message["interactive"] == {"type": "button_reply", "button_reply": {"id": "yes", "title": "Confermo"}}
    assert message["context"]["id"] == wamid
    assert message["from"] == PATIENT
    (received,) = webhook_receiver.snapshot()[-1:]
    assert received.signature_ok
    assert [s["status"] for s in webhook_receiver.wait_statuses(wamid, 3)][-1] == "read"  # shown = read


def test_a_list_opens_and_a_row_is_picked_with_the_keyboard(sandbox, webhook_receiver, page):
    sandbox.open_window(PATIENT)
    send(sandbox, {"type": "list", "body": {"text": "Scegli un orario"},
                   "action": {"button": "Orari", "sections": [
                       {"title": "Lunedì", "rows": [{"id": "slot-1", "title": "09:00", "description": "Dr. Bianchi"},
                                                    {"id": "slot-2", "title": "10:30"}]}]}})
    page.get_by_role("button", name="Orari").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("10:30").check()
    page.keyboard.press("Tab")
    dialog.get_by_role("button", name="Send").press("Enter")
    (message,) = webhook_receiver.wait_messages(1)
    assert message["interactive"] == {"type": "list_reply", "list_reply": {"id": "slot-2", "title": "10:30"}}


def test_a_template_quick_reply_sends_its_payload(sandbox, webhook_receiver, page):
    sandbox.close_window(PATIENT)
    sandbox.send({"messaging_product": "whatsapp", "to": PATIENT, "type": "template",
                  "template": {"name": "appointment_reminder", "language": {"code": "it"}, "components": [
                      {"type": "body", "parameters": [{"type": "text", "text": t} for t in
                                                      ("Anna", "3 marzo", "9:00", "Dott. Rossi", "Sede", "-")]},
                      {"type": "button", "sub_type": "quick_reply", "index": "1",
                       "parameters": [{"type": "payload", "payload": "/reschedule_appointment"}]}]}})
    page.get_by_text("Promemoria per Anna: visita 3 marzo alle 9:00", exact=False).wait_for()
    page.get_by_role("button", name="Sposta").click()
    (message,) = webhook_receiver.wait_messages(1)
    assert message["button"] == {"payload": "/reschedule_appointment", "text": "Sposta"}


def test_typing_text_and_sending_a_photo_and_a_document(sandbox, webhook_receiver, page, tmp_path):
    page.get_by_label("Message", exact=True).fill("Buongiorno")
    page.get_by_label("Message", exact=True).press("Enter")
    photo = tmp_path / "ricetta.png"
    photo.write_bytes(one_pixel_png())
    page.get_by_text("Send a photo or a document").click()
    page.get_by_label("Caption (optional)").fill("la ricetta")
    page.get_by_label("Photo", exact=True).set_input_files(str(photo))
    webhook_receiver.wait_messages(2)
    document = tmp_path / "referto.pdf"
    document.write_bytes(b"%PDF-1.4 referto")
    page.get_by_label("Document", exact=True).set_input_files(str(document))
    text, image, pdf = webhook_receiver.wait_messages(3)
    assert text["text"] == {"body": "Buongiorno"}
    assert image["type"] == "image" and image["image"]["caption"] == "la ricetta"
    assert image["image"]["mime_type"] == "image/png"
    assert pdf["document"]["filename"] == "referto.pdf"
    headers = {"Authorization": f"Bearer {sandbox.access_token}"}
    info = sandbox.http.get(f"{sandbox.base_url}/{sandbox.api_version}/{pdf['document']['id']}",
                            headers=headers).json()
    assert sandbox.http.get(info["url"], headers=headers).content == b"%PDF-1.4 referto"


def test_images_and_documents_from_the_clinic_are_shown(sandbox, page):
    sandbox.open_window(PATIENT)
    media_id = sandbox.upload(b"%PDF-1.4 x", "application/pdf", "referto.pdf").json()["id"]
    sandbox.send({"messaging_product": "whatsapp", "to": PATIENT, "type": "document",
                  "document": {"id": media_id, "filename": "referto.pdf", "caption": "Il tuo referto"}})
    link = page.get_by_role("link", name="referto.pdf")
    link.wait_for()
    assert link.get_attribute("href") == f"/_sandbox/media/{media_id}"
    page.get_by_text("Il tuo referto").wait_for()
