"""Frequently asked questions: the ResponseSelector picks the answer, the clinic database fills in
the facts (hours, addresses, preparation), so changing them needs no retraining.
"""

from __future__ import annotations

from itertools import groupby

from babel.dates import get_day_names
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import core, db, guarded, language
from clinic import catalog

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def opening_hours(hours: dict[str, list[list[str]]], lang: str) -> str:
    """"lun–ven 08:00–19:00, sab 08:00–13:00": consecutive days with the same hours grouped."""
    names = get_day_names("abbreviated", locale=lang)
    days = [(n, tuple(map(tuple, hours.get(day) or []))) for n, day in enumerate(WEEKDAYS)]
    parts = []
    for spans, group in groupby(days, key=lambda d: d[1]):
        numbers = [n for n, _ in group]
        if not spans:
            continue
        when = names[numbers[0]] if len(numbers) == 1 else f"{names[numbers[0]]}–{names[numbers[-1]]}"
        parts.append(f"{when} " + " ".join(f"{a}–{b}" for a, b in spans))
    return ", ".join(parts)


class ActionAnswerFaq(Action):
    def name(self) -> str:
        return "action_answer_faq"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        selected = tracker.latest_message.get("response_selector", {}).get("faq", {}).get("response", {})
        response = selected.get("utter_action") or "utter_faq/opening_hours"
        lang = language(tracker)
        locations = await core(catalog.locations, db())
        blood_tests = (await core(catalog.specialties, db())).get("blood_tests")
        dispatcher.utter_message(
            response=response,
            hours="\n".join(f"{loc.name}: {opening_hours(loc.opening_hours, lang)}" for loc in locations),
            addresses="\n".join(f"{loc.name}: {loc.address}" for loc in locations),
            blood_tests_preparation=(blood_tests.preparation(lang) if blood_tests else "") or "",
        )
        return []
