"""Rasa's own checks on the training data and the test stories (tests/stories, named as sentences)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RASA = str(Path(sys.executable).with_name("rasa"))
ENV = {**os.environ, "RASA_TELEMETRY_ENABLED": "false"}
# Responses are sent by actions, and by the core through clinic.wording (hand-back, data requests, flood notice).
ACTIONS_SOURCE = "\n".join(p.read_text() for folder in ("actions", "clinic") for p in (ROOT / folder).rglob("*.py"))


def run(*args, timeout=900):
    return subprocess.run([RASA, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def is_expected(warning: str) -> bool:
    """Two warnings Rasa 3.6 gives every project like this one, and nothing else is allowed:
    - it counts every response as an utterance the stories must use, but many are sent by custom
      actions (with variables): those must really be sent by an action (`response="utter_x"`,
      `render(domain, "utter_x"…)`, or the `utter_ask_<slot>` a form asks with) or by the core
      (`wording.say("utter_x", …)`);
    - listing the retrieval intent `faq` in the domain (needed for the rule that answers it)
      duplicates the one Rasa derives from the NLU data when it merges them."""
    unused = re.search(r"The utterance '(utter_[\w/]+)' is not used in any story or rule", warning)
    if unused:
        name = unused.group(1)
        return f'"{name}"' in ACTIONS_SOURCE or name.startswith("utter_ask_") or name == "utter_faq"
    return "duplicated intents have been found across multiple domain files: faq" in warning


def test_training_data_validates_without_unexplained_warnings():
    result = run("data", "validate", "--fail-on-warnings")
    output = result.stdout + result.stderr
    warnings = re.findall(r"UserWarning: (.*?)(?=\n\S|\Z)", output, flags=re.S)
    assert "Project validation completed with errors" not in output or all(map(is_expected, warnings)), output[-3000:]
    assert [w for w in warnings if not is_expected(w)] == []


def test_every_test_story_is_predicted_exactly(rasa_model, tmp_path):
    result = run("test", "core", "--stories", "tests/stories", "--model", str(rasa_model),
                 "--fail-on-prediction-errors", "--out", str(tmp_path / "results"))
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
