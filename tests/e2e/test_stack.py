"""What `make run` starts answers a patient."""

import requests


def test_the_bot_greets_a_known_patient_by_name_in_their_language(stack):
    replies = stack.say("393330000001", "buongiorno")
    assert [r["text"] for r in replies] == ["Ciao Giovanni! Come posso aiutarti oggi?"]
    replies = stack.say("447700900001", "hello")
    assert [r["text"] for r in replies] == ["Hi Emily! How can I help you today?"]
    assert requests.get(f"{stack.actions_url}/health", timeout=5).json() == {"status": "ok"}
