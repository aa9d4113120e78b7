"""The bot's wording for messages the clinic sends outside a Rasa turn (staff approvals, hand-backs).

The words stay in `domain.yml`, one response per message with a variation per language, exactly
as for the bot's own turns; this picks the variation the way the actions do.
"""

from __future__ import annotations

import functools
from typing import Any

import yaml

from clinic.settings import PROJECT_ROOT


def pick(responses: dict, response: str, lang: str, **values: Any) -> str:
    """The text of `response` in `lang` (the variation whose `language` condition matches), filled in."""
    for variation in responses.get(response, []):
        conditions = variation.get("condition") or []
        if all(c.get("name") != "language" or c.get("value") == lang for c in conditions):
            return variation["text"].format(**values)
    raise KeyError(f"{response} has no {lang} variation")


@functools.cache
def _responses() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8")).get("responses", {})


def say(response: str, lang: str, **values: Any) -> str:
    """A domain response's text in a language, for the core, the inbox and the outreach worker."""
    return pick(_responses(), response, lang, **values)
