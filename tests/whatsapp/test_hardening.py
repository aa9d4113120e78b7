"""Hardened edges over real HTTP: a flooding contact is limited without slowing anyone else, request
bodies have a ceiling, and every web page carries the security headers.
"""

from __future__ import annotations

import requests
from sqlalchemy import select

from clinic.models import InboundMessage as InboundRow
from clinic.models import InboundStatus, OutboundMessage
from clinic.settings import settings
from clinic.whatsapp.receive import FLOOD_SOURCE
from clinic.wording import say
from tests.whatsapp.test_channel import OTHER, PHONE, Bot, graph, serve, text_message  # noqa: F401 - fixtures
from tests.whatsapp.test_ingest import servers  # noqa: F401 - fixture

LIMIT = 5
NOTICE = say("utter_flood_limit", "it")


def limit_floods(monkeypatch) -> None:
    monkeypatch.setenv("INBOUND_LIMIT_MESSAGES", str(LIMIT))
    monkeypatch.setenv("INBOUND_LIMIT_SECONDS", "600")
    settings.cache_clear()


def texts_to(stub, phone: str) -> list[str]:
    return [m["text"]["body"] for m in stub.sent if m.get("to") == phone and m.get("type") == "text"]


async def test_a_flooding_number_gets_one_notice_while_others_and_red_flags_are_still_answered(
        serve, graph, monkeypatch, caplog):  # noqa: F811 - pytest fixtures
    limit_floods(monkeypatch)
    bot = Bot(reply=True)
    server = await serve(bot)
    flood = [f"messaggio numero {n} della signora Bianchi" for n in range(1, 13)]
    for n, body in enumerate(flood[:8], 1):
        assert (await server.post(text_message(f"wamid.FLOOD{n:03d}", body)))[0] == 200
    assert (await server.post(text_message("wamid.OTHER001", "Vorrei prenotare una visita", phone=OTHER)))[0] == 200
    for n, body in enumerate(flood[8:], 9):
        assert (await server.post(text_message(f"wamid.FLOOD{n:03d}", body)))[0] == 200
    assert (await server.post(text_message("wamid.FLOOD999", "ho un forte dolore al petto")))[0] == 200
    await server.settled()

    assert bot.texts(PHONE) == [*flood[:LIMIT], "ho un forte dolore al petto"]  # the red flag still goes through
    assert bot.texts(OTHER) == ["Vorrei prenotare una visita"]  # the other patient was not held up
    assert texts_to(graph, PHONE).count(NOTICE) == 1  # one notice, not one per message
    assert NOTICE not in texts_to(graph, OTHER)
    rows = server.inbound()
    limited = [r for r in rows if r.status == InboundStatus.limited]
    assert [r.rasa_text for r in limited] == flood[LIMIT:]  # kept for the nurses, in order
    with server.db.reading() as session:
        assert session.scalars(select(OutboundMessage.source).where(OutboundMessage.source == FLOOD_SOURCE)).all() \
            == [FLOOD_SOURCE]
    assert "over 5 messages" in caplog.text
    assert "Bianchi" not in caplog.text and PHONE not in caplog.text


async def test_through_the_ingest_too_the_flood_is_cut_and_told_once(servers, graph, monkeypatch):  # noqa: F811
    limit_floods(monkeypatch)
    bot = Bot()
    rasa = await servers["rasa"](bot)
    ingest = await servers["ingest"](rasa)
    for n in range(1, 10):
        assert (await ingest.post(text_message(f"wamid.INGESTFLOOD{n:03d}", f"ciao {n}")))[0] == 200
    await ingest.ingest.idle()
    await rasa.settled()
    assert bot.texts(PHONE) == [f"ciao {n}" for n in range(1, LIMIT + 1)]
    assert texts_to(graph, PHONE) == [NOTICE]  # queued by the ingest, sent by the channel's client


async def test_an_oversized_webhook_is_refused_before_anything_is_stored(serve):  # noqa: F811
    server = await serve()
    huge = text_message("wamid.HUGE", "x" * 1_100_000)
    status, _ = await server.post(huge)
    assert status == 413
    assert server.inbound() == []


def test_the_sandbox_phone_page_carries_the_security_headers(sandbox):
    page = requests.get(sandbox.base_url + "/", timeout=10)
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert (page.headers["X-Frame-Options"], page.headers["X-Content-Type-Options"]) == ("DENY", "nosniff")
    script = requests.get(sandbox.base_url + "/static/app.js", timeout=10)
    assert script.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_ingest_refuses_an_oversized_body_and_answers_with_the_security_headers(db):
    from tests.whatsapp.test_ingest import NOWHERE, IngestServer

    server = await IngestServer(db, NOWHERE).start()
    try:
        status, _ = await server.post(text_message("wamid.HUGE", "x" * 1_100_000))
        assert status == 413
        with db.reading() as session:
            assert session.scalars(select(InboundRow)).all() == []
        async with server.http.get(server.url.removesuffix("webhook")) as health:
            assert health.headers["X-Content-Type-Options"] == "nosniff"
    finally:
        await server.stop()
