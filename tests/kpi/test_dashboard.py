"""The admins' KPI dashboard in the inbox process: Debian's Chromium shows the same figures as `clinic kpi`."""

from __future__ import annotations

import csv
import io

import pytest

from clinic import staff
from clinic.models import StaffRole
from tests.browser import needs_chromium
from tests.inbox.conftest import PASSWORD, add_nurse, start_inbox  # noqa: F401 - start_inbox is a fixture
from tests.kpi.fixture import build
from tests.kpi.test_cli import run

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

WEEK = ("--from", "2027-03-01", "--to", "2027-03-07")


@pytest.fixture
def inbox(db, start_inbox):  # noqa: F811
    build(db)
    add_nurse(db, "direttrice", StaffRole.admin)
    add_nurse(db, "bianca")
    return start_inbox()


def cli_table(*args: str, url: str) -> dict[str, str]:
    done = run(*args, url=url)
    assert done.returncode == 0, done.stderr
    return {row["label"]: row["shown"] for row in csv.DictReader(io.StringIO(run(*args, "--csv", url=url).stdout))}


@needs_chromium
def test_dashboard_figures_match_the_cli_and_filters_apply(db, inbox, browser):
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(inbox.base_url + "/login")
    page.get_by_label("Username").fill("direttrice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="KPIs").click()
    page.get_by_label("From").fill("2027-03-01")
    page.get_by_label("To").fill("2027-03-07")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("row", name="No-show rate 40.0% (2/5)", exact=True)).to_be_visible()

    def shown() -> dict[str, str]:
        rows = page.locator("#kpi-figures tbody tr")
        return {rows.nth(i).locator("th").inner_text(): rows.nth(i).locator("td").inner_text()
                for i in range(rows.count())}

    assert shown() == cli_table(*WEEK, url=db.url)
    charts = page.get_by_role("img")
    expect(charts).to_have_count(6)  # one per trend figure, a bar for the one week
    expect(page.get_by_role("img", name="No-show rate by week")).to_contain_text("40.0%")

    page.get_by_label("Location").select_option("navigli")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("row", name="No-show rate 50.0% (1/2)", exact=True)).to_be_visible()
    assert shown() == cli_table(*WEEK, "--location", "navigli", url=db.url)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert open(download.value.path(), encoding="utf-8").read() == run(
        *WEEK, "--location", "navigli", "--csv", url=db.url).stdout
    context.close()


def test_nurses_do_not_see_the_dashboard(inbox):
    nurse = inbox.client("bianca")
    assert nurse.get("/kpi").status_code == 403
    assert nurse.get("/kpi.csv?from=2027-03-01&to=2027-03-07").status_code == 403
    assert "KPIs" not in nurse.get("/canned").text


def test_a_backwards_period_is_said_plainly(inbox):
    admin = inbox.client("direttrice")
    answer = admin.get("/kpi?from=2027-03-07&to=2027-03-01")
    assert answer.status_code == 400
    assert "The period ends before it begins." in answer.text


def test_the_demo_admin_sees_the_dashboard_in_demo_mode(db, start_inbox):  # noqa: F811
    build(db)
    inbox = start_inbox(DEMO_MODE="true")
    admin = inbox.client(staff.DEMO_ADMIN_USERNAME, staff.DEMO_ADMIN_PASSWORD)
    answer = admin.get("/kpi?from=2027-03-01&to=2027-03-07")
    assert answer.status_code == 200
    assert "40.0% (2/5)" in answer.text
    nurse = inbox.client(staff.DEMO_USERNAME, staff.DEMO_PASSWORD)
    assert nurse.get("/kpi").status_code == 403
