"""The demo history: several past weeks a new user sees charts of, made through the core, once."""

from __future__ import annotations

import os
import subprocess
from datetime import date

from clinic import audit, kpi
from clinic.demo import seed
from clinic.demo.history import generate
from tests.kpi.test_cli import CLINIC

TODAY = date(2027, 3, 15)  # a Monday


def test_two_weeks_of_history_fill_every_recorded_figure_and_are_made_once(db):
    seed(db, today=TODAY)
    made = generate(db, 2, today=TODAY)
    assert made.weeks == 2 and made.appointments > 0 and made.tickets > 0
    assert generate(db, 2, today=TODAY) is None  # a second seed adds nothing

    weekly = kpi.trends(db, kpi.Filters(date(2027, 3, 1), date(2027, 3, 14)))
    assert [first for first, _ in weekly] == [date(2027, 3, 1), date(2027, 3, 8)]
    for _, figures in weekly:
        assert all(figure.value is not None for figure in figures.values()), figures
    figures = {f.key: f for f in kpi.report(db, kpi.Filters(date(2027, 3, 1), date(2027, 3, 14)))}
    for key in ("reminder_confirmation_rate", "cancellations", "conversations_without_nurse",
                "nurse_resolution_p50", "window_expiries", "template_fallbacks", "fallback_rate"):
        assert figures[key].value, key
    assert figures["satisfaction_average"].value is None  # not recorded: no invented answers
    assert kpi.no_show_rate(db, kpi.Filters(TODAY, TODAY)).whole == 0  # nothing from today on
    assert audit.verify(db).ok


def test_clinic_seed_adds_the_history_once(db):
    env = {**os.environ, "DATABASE_URL": db.url}
    command = [CLINIC, "seed", "--today", "2027-03-15", "--history-weeks", "1"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "demo history: 1 weeks" in first.stdout
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.stdout.splitlines()[-1] == "demo history: there is some already"
