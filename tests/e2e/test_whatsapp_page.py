"""A person consents and books a visit on the sandbox's phone page (Debian's Chromium through
Playwright), with the real Rasa server, action server and WhatsApp channel behind it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from clinic import scheduling
from clinic.db import Database
from clinic.models import Patient
from clinic.settings import settings
from tests.browser import needs_chromium

pytestmark = needs_chromium
expect = pytest.importorskip("playwright.sync_api").expect
REPLY_MS = 90_000  # a bot turn on a busy 2-core machine


def write(page, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def test_a_new_patient_books_on_the_phone_page(whatsapp, stack, browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(REPLY_MS)
    page.goto(f"{whatsapp.base_url}/")
    page.get_by_label("Your name").fill("Marta")
    page.get_by_label("Phone number").fill("393471119900")
    page.get_by_role("button", name="Open chat").click()

    write(page, "ciao, vorrei una visita dal cardiologo lunedì mattina")
    page.get_by_text("Informativa privacy").wait_for()  # a new number sees the notice first
    page.get_by_role("button", name="Menu").last.click()  # four consent choices come as a list
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("radio", name="Accetto tutto").check()
    dialog.get_by_role("button", name="Send").click()
    page.get_by_text("ho registrato le tue scelte").wait_for()
    write(page, "vorrei una visita dal cardiologo lunedì mattina")
    page.get_by_text("nome e cognome").wait_for()
    write(page, "Marta Conti")
    page.get_by_text("data di nascita").wait_for()
    write(page, "12/05/1979")
    menus = page.get_by_role("button", name="Menu")
    expect(menus).to_have_count(2, timeout=REPLY_MS)  # the consent list, then the offered times
    menus.last.click()
    dialog = page.get_by_role("dialog")
    first_time = dialog.get_by_role("radio").first
    chosen = first_time.evaluate("e => e.labels[0].textContent")  # "lun 30 nov 09:00 · Dott.ssa …"
    first_time.check()
    dialog.get_by_role("button", name="Send").click()
    page.get_by_role("button", name="Sì, conferma").last.click()
    page.get_by_text("Prenotato").wait_for()
    context.close()

    db = Database(stack.database_url)
    with db.reading() as session:
        marta = session.scalars(select(Patient).where(Patient.last_name == "Conti")).one()
    [visit] = scheduling.upcoming_appointments(db, [marta.id])
    local = visit.start_at.astimezone(settings().zone)
    assert visit.specialty == "cardiology" and local.weekday() == 0
    assert local.strftime("%H:%M") in chosen  # the row the patient picked
