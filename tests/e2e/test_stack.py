"""What `make run` starts answers a patient."""

import requests


def test_the_bot_greets_a_patient_through_the_running_stack(stack):
    replies = stack.say("393330000001", "buongiorno")
    assert [r["text"] for r in replies] == ["Ciao! Sono l'assistente del Centro Medico. Come posso aiutarti?"]
    assert requests.get(f"{stack.actions_url}/health", timeout=5).json() == {"status": "ok"}
