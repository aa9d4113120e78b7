"""Operations figures of the real stack: after a patient's turns on WhatsApp, the Rasa server's
/metrics (at its root, from the `whatsapp` channel) and the action server's have moved, and each
message carries what the bot understood, which the fallback-rate KPI counts."""

from __future__ import annotations

from datetime import datetime

import requests
from prometheus_client.parser import text_string_to_metric_families

from clinic import kpi
from clinic.db import Database
from clinic.settings import settings
from tests.e2e.test_whatsapp_booking import Chat, consents, contact, inbound_rows

NOT_UNDERSTOOD = ("non ho capito", "Non riesco a capire")  # utter_ask_rephrase, utter_offer_human (it)


def totals(url: str) -> dict[str, float]:
    """Each metric's samples summed over their labels (`name_total`, `name_count`, ...)."""
    answer = requests.get(url, timeout=30)
    answer.raise_for_status()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, 0) + sample.value
    return found


def test_a_patients_turns_move_the_stacks_metrics_and_the_fallback_rate(whatsapp, stack):
    db = Database(stack.database_url)
    before = totals(f"{stack.rasa_url}/metrics")
    chat = Chat(whatsapp, phone="393471110077", name="Marta")
    chat.says("ciao")
    chat.wait_for("Prima di continuare")  # the consent step: a turn like any other
    consents(db, chat)
    chat.says("ciao")
    chat.wait_for("Centro Medico Aurora")
    chat.says("zqxw vrrk plomb fjjt")
    reply = str(chat.wait_for())  # whatever the bot made of it
    fell_back = any(words in reply for words in NOT_UNDERSTOOD)

    marta = contact(db, wa_id="393471110077")
    rows = inbound_rows(db, marta.id)
    assert [(r.nlu_intent is not None, r.nlu_fallback) for r in rows][1:] == [(True, False), (True, fell_back)]
    assert rows[1].nlu_intent == "greet"
    today = datetime.now(settings().zone).date()
    rate = kpi.fallback_rate(db, kpi.Filters(today, today))
    assert rate.whole >= 3 and rate.part >= int(fell_back)

    after = totals(f"{stack.rasa_url}/metrics")
    assert after["clinic_channel_messages_total"] - before.get("clinic_channel_messages_total", 0) >= 3
    assert after["clinic_channel_reply_seconds_count"] - before.get("clinic_channel_reply_seconds_count", 0) >= 3
    assert after["clinic_channel_bot_messages_total"] - before.get("clinic_channel_bot_messages_total", 0) >= 3
    assert after["clinic_channel_nlu_turns_total"] - before.get("clinic_channel_nlu_turns_total", 0) >= 3
    assert "clinic_outbox_depth" in after
    actions = totals(f"{stack.actions_url}/metrics")
    assert actions["clinic_action_runs_total"] >= 1 and actions["clinic_action_seconds_count"] >= 1
