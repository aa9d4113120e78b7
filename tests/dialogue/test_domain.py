"""The domain holds every word the bot says, in both languages, and matches the action server."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = {"it", "en"}


def domain() -> dict:
    return yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


def test_every_response_exists_in_italian_and_english():
    missing = {}
    for name, variations in domain()["responses"].items():
        languages = {
            c["value"] for v in variations for c in v.get("condition") or [] if c.get("name") == "language"
        }
        if languages != LANGUAGES:
            missing[name] = sorted(LANGUAGES - languages)
    assert missing == {}


def test_both_languages_of_a_response_take_the_same_variables_and_buttons():
    import string

    for name, variations in domain()["responses"].items():
        fields = [{f for _, f, _, _ in string.Formatter().parse(v["text"]) if f} for v in variations]
        buttons = [[b["payload"] for b in v.get("buttons", [])] for v in variations]
        assert all(f == fields[0] for f in fields), name
        assert all(b == buttons[0] for b in buttons), name


def test_the_action_server_registers_exactly_the_domains_custom_actions():
    from rasa_sdk.executor import ActionExecutor

    executor = ActionExecutor()
    executor.register_package("actions")
    custom = {a for a in domain()["actions"]}
    assert set(executor.actions) == custom
