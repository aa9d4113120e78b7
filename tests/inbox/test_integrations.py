"""The admins' webhook page in the inbox process: real deliveries to local receivers (one answering 200,
one failing), shown by Debian's Chromium; nurses are refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from clinic import hooks
from clinic.demo import seed
from clinic.models import StaffRole
from clinic.settings import settings
from tests.browser import needs_chromium
from tests.conftest import DEMO_TODAY
from tests.inbox.conftest import PASSWORD, add_nurse
from tests.integration.conftest import Receiver
from tests.outreach.conftest import BOOKED_AT, book

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    ok, down = Receiver(), Receiver()
    down.answers = [503] * 20
    yield ok, down
    ok.close()
    down.close()


@pytest.fixture
def deliveries(db, receivers, monkeypatch) -> dict:
    """Two bookings' events to both receivers, delivered for real: the working receiver has both; the
    failing one gave up on the first (2 attempts) and is retrying the second.
    """
    ok, down = receivers
    env = {"WEBHOOK_URLS": f"{ok.url},{down.url}", "WEBHOOK_MAX_ATTEMPTS": "2", "WEBHOOK_RETRY_BASE_SECONDS": "10",
           "WEBHOOK_SECRET": "s3cret"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.cache_clear()
    seed(db, today=DEMO_TODAY)
    first = book(db, day=date(2027, 3, 5))
    assert hooks.deliver_due(db, now=BOOKED_AT + timedelta(minutes=1)) == 2
    assert hooks.deliver_due(db, now=BOOKED_AT + timedelta(minutes=5)) == 1  # the second and last attempt
    second = book(db, day=date(2027, 3, 8), now=BOOKED_AT + timedelta(minutes=6))
    assert hooks.deliver_due(db, now=BOOKED_AT + timedelta(minutes=7)) == 2
    assert len(ok.received) == 2 and len(down.received) == 3
    return {"env": env, "first": first, "second": second, "ok": ok, "down": down}


@pytest.fixture
def inbox(db, deliveries, start_inbox):
    add_nurse(db, "bianca")
    add_nurse(db, "capo", StaffRole.admin)
    return start_inbox(**deliveries["env"])


@needs_chromium
def test_an_admin_sees_the_failing_receiver_first_and_requeues_a_delivery(inbox, deliveries, browser):
    first, second = deliveries["first"], deliveries["second"]
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    expect.set_options(timeout=10_000)
    page.goto(inbox.base_url + "/login")
    page.get_by_label("Username").fill("capo")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Integrations").click()
    expect(page.get_by_role("heading", name="Integrations: webhook deliveries")).to_be_visible()

    sections = page.locator("section.endpoint")
    expect(sections).to_have_count(2)
    failing, working = sections.nth(0), sections.nth(1)
    expect(failing.get_by_role("heading")).to_have_text(deliveries["down"].url)
    expect(working.get_by_role("heading")).to_have_text(deliveries["ok"].url)
    expect(failing.get_by_role("status")).to_contain_text("1 delivery has failed for good")
    expect(failing.get_by_role("status")).to_contain_text("1 delivery is being retried")
    expect(failing).to_contain_text("Failed (gave up): 1 · Retrying: 1 · Queued: 0 · Delivered: 0")
    expect(working).to_contain_text("Failed (gave up): 0 · Retrying: 0 · Queued: 0 · Delivered: 2")

    def row(section, index: int) -> list[str]:
        return [cell.strip() for cell in section.locator("tbody tr").nth(index).locator("td").all_inner_texts()]

    gave_up, retrying = row(failing, 0), row(failing, 1)
    assert gave_up[1:6] == ["appointment.created", str(first.id), "Failed (gave up)", "2", gave_up[5]]
    assert gave_up[5].startswith("HTTP 503") and gave_up[6] == "–" and gave_up[7] == "–"
    assert retrying[1:5] == ["appointment.created", str(second.id), "Retrying", "1"]
    assert retrying[5].startswith("HTTP 503") and retrying[6] != "–" and retrying[7] == "–"
    expect(failing.locator("tbody tr").nth(0).locator("td.state")).to_have_class("state status-failed")
    delivered = [row(working, i) for i in range(2)]
    assert {d[2] for d in delivered} == {str(first.id), str(second.id)}
    assert all(d[3] == "Delivered" and d[5].startswith("HTTP 200") and d[6] == "–" and d[7] != "–"
               for d in delivered)
    content = page.content()
    assert "Giovanni" not in content and "Verdi" not in content and "patient" not in content.lower()

    page.get_by_role("button", name=f"Retry #{gave_up[0].split()[0].lstrip('#')}").click()
    expect(failing).to_contain_text("Failed (gave up): 0 · Retrying: 1 · Queued: 1")
    expect(failing.get_by_role("status")).not_to_contain_text("failed for good")
    assert "Queued" in [c.strip() for c in failing.locator("td.state").all_inner_texts()]
    context.close()


def test_nurses_are_refused_and_not_shown_the_link(inbox, deliveries, db):
    nurse = inbox.client("bianca")
    assert nurse.get("/integrations").status_code == 403
    delivery_id = hooks.deliveries(db, failed_only=True)[0].id
    assert nurse.post(f"/integrations/deliveries/{delivery_id}/retry").status_code == 403
    assert hooks.deliveries(db, failed_only=True)[0].id == delivery_id  # still given up
    assert "/integrations" not in nurse.get("/canned").text
    admin = inbox.client("capo")
    listed = admin.get("/integrations")
    assert listed.status_code == 200 and deliveries["down"].url in listed.text
    assert listed.headers["X-Frame-Options"] == "DENY" and "default-src 'self'" in listed.headers[
        "Content-Security-Policy"]
    assert admin.post("/integrations/deliveries/999999/retry").status_code == 409
    assert inbox.client().get("/integrations").status_code == 303  # signed out: to the sign-in page
