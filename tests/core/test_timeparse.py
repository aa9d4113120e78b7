"""What find_times understands in Italian and English WhatsApp messages, and what it must leave alone."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from clinic.scheduling import PARTS_OF_DAY
from clinic.timeparse import TimeMention, find_times

ROME = ZoneInfo("Europe/Rome")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=ROME)  # a Wednesday
TODAY = NOW.date()


def on(day: date) -> tuple[datetime, datetime, str]:
    """The whole local day."""
    return datetime.combine(day, time(0), ROME), datetime.combine(day + timedelta(days=1), time(0), ROME), "day"


def part(day: date, name: str) -> tuple[datetime, datetime, str]:
    begin, end = PARTS_OF_DAY[name]
    return datetime.combine(day, begin, ROME), datetime.combine(day, end, ROME), "day"


def at(day: date, hour: int, minute: int = 0, grain: str = "hour") -> tuple[datetime, None, str]:
    return datetime.combine(day, time(hour, minute), ROME), None, grain


def span(first: date, after_last: date) -> tuple[datetime, datetime, str]:
    return datetime.combine(first, time(0), ROME), datetime.combine(after_last, time(0), ROME), "day"


THU, FRI, SAT = date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 28)
MON, TUE, NEXT_WED = date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2)
DEC_3, MONDAY_AFTER = date(2026, 12, 3), date(2026, 12, 7)

ITALIAN = [
    ("oggi", on(TODAY)),
    ("domani", on(THU)),
    ("dmn", on(THU)),
    ("dopodomani", on(FRI)),
    ("dopo domani", on(FRI)),
    ("venerdì", on(FRI)),
    ("venerdi", on(FRI)),
    ("mercoledì", on(NEXT_WED)),  # today's weekday is next week's
    ("venerdì prossimo", on(FRI)),
    ("il prossimo martedì", on(TUE)),
    ("martedì prox", on(TUE)),
    ("sabato 28", on(SAT)),
    ("martedì della settimana prossima", on(TUE)),
    ("la settimana prossima martedì", on(TUE)),
    ("la settimana prossima", span(MON, MONDAY_AFTER)),
    ("la prossima settimana", span(MON, MONDAY_AFTER)),
    ("questa settimana", span(TODAY, MON)),
    ("in settimana", span(TODAY, MON)),
    ("3 dicembre", on(DEC_3)),
    ("il 3 dic", on(DEC_3)),
    ("1° dicembre", on(TUE)),
    ("il 3/12", on(DEC_3)),
    ("3/12", on(DEC_3)),
    ("03.12.2026", on(DEC_3)),
    ("3-12", on(DEC_3)),
    ("25 novembre", on(TODAY)),  # today still counts
    ("20 novembre", on(date(2027, 11, 20))),  # past this year: next year's
    ("29 febbraio", on(date(2028, 2, 29))),
    ("il giorno 5", on(date(2026, 12, 5))),
    ("alle 15:30", at(TODAY, 15, 30, "minute")),
    ("alle 15", at(TODAY, 15)),
    ("alle 15.30", at(TODAY, 15, 30, "minute")),
    ("ore 9", at(THU, 9)),  # 09:00 has passed today
    ("alle 3", at(TODAY, 15)),  # the clinic is shut at 3 am
    ("all'una", at(TODAY, 13)),
    ("alle tre e mezza", at(TODAY, 15, 30, "minute")),
    ("alle 10 e un quarto", at(TODAY, 10, 15, "minute")),
    ("alle 11 meno un quarto", at(TODAY, 10, 45, "minute")),
    ("alle 7", at(THU, 7)),  # 7 is kept as written: blood tests start early
    ("ci sono posti sabato?", on(SAT)),
    ("a mezzogiorno", at(TODAY, 12)),
    ("domani alle 10 e mezza va bene", at(THU, 10, 30, "minute")),
    ("domani verso le 11", at(THU, 11)),
    ("domani mattina", part(THU, "morning")),
    ("domattina", part(THU, "morning")),
    ("martedì pomeriggio", part(TUE, "afternoon")),
    ("martedì prossimo pomeriggio", part(TUE, "afternoon")),
    ("mercoledi' mattina", part(NEXT_WED, "morning")),
    ("stasera", part(TODAY, "evening")),
    ("stamattina", part(TODAY, "morning")),
    ("nel pomeriggio", part(TODAY, "afternoon")),
    ("stasera alle 8", at(TODAY, 20)),
    ("alle 8 di sera", at(TODAY, 20)),
    ("martedì pomeriggio alle 3", at(TUE, 15)),
    ("il 3 dicembre alle 15:30", at(DEC_3, 15, 30, "minute")),
    ("lunedì 30/11 ore 9", at(MON, 9)),
    ("Lunedì 7 dicembre 2026 ore 10:00", at(MONDAY_AFTER, 10, 0, "minute")),
    ("sabato 10 e mezza", at(SAT, 10, 30, "minute")),
    ("fra 3 giorni", on(SAT)),
    ("tra una settimana", on(NEXT_WED)),
    ("fra due settimane", on(date(2026, 12, 9))),
    ("tra 10 giorni", on(date(2026, 12, 5))),
    ("tra un mese", on(date(2026, 12, 25))),
    ("DOMANI ALLE 10", at(THU, 10)),
    ("Ciao! 😊 domani pomeriggio? grazie", part(THU, "afternoon")),
    ("vorrei prenotare per il 3 dicembre, alle 15:30 se possibile", at(DEC_3, 15, 30, "minute")),
]

ENGLISH = [
    ("today", on(TODAY)),
    ("tomorrow", on(THU)),
    ("tmrw 9am", at(THU, 9)),
    ("the day after tomorrow", on(FRI)),
    ("friday", on(FRI)),
    ("next friday", on(FRI)),
    ("Wednesday", on(NEXT_WED)),
    ("tuesday next week", on(TUE)),
    ("Saturday the 28th", on(SAT)),
    ("can I see a dermatologist next week?", span(MON, MONDAY_AFTER)),
    ("this week", span(TODAY, MON)),
    ("December 3rd", on(DEC_3)),
    ("the 3rd of December", on(DEC_3)),
    ("Dec 3", on(DEC_3)),
    ("May 5th, 2027", on(date(2027, 5, 5))),
    ("3/12", on(DEC_3)),
    ("the 5th", on(date(2026, 12, 5))),  # the next 5th, never May
    ("at 3pm", at(TODAY, 15)),
    ("3:30 pm", at(TODAY, 15, 30, "minute")),
    ("at 15:30", at(TODAY, 15, 30, "minute")),
    ("at 9", at(THU, 9)),
    ("half past ten", at(TODAY, 10, 30, "minute")),
    ("quarter to eleven", at(TODAY, 10, 45, "minute")),
    ("quarter to one", at(TODAY, 12, 45, "minute")),
    ("at ten works for me", at(THU, 10)),
    ("at 11 o'clock", at(TODAY, 11)),
    ("tomorrow at noon", at(THU, 12)),
    ("tomorrow morning", part(THU, "morning")),
    ("this afternoon", part(TODAY, "afternoon")),
    ("in the evening", part(TODAY, "evening")),
    ("tonight", part(TODAY, "evening")),
    ("at 8 in the evening", at(TODAY, 20)),
    ("next tuesday at 3pm", at(TUE, 15)),
    ("friday afternoon around 4", at(FRI, 16)),
    ("on the 5th at 10am", at(date(2026, 12, 5), 10)),
    ("in two weeks", on(date(2026, 12, 9))),
    ("in 10 days", on(date(2026, 12, 5))),
    ("in a week", on(NEXT_WED)),
    ("in 3 months", on(date(2027, 2, 25))),
]


def only(text: str, language: str, now: datetime = NOW) -> TimeMention:
    mentions = find_times(text, language, now)
    assert len(mentions) == 1, mentions
    return mentions[0]


@pytest.mark.parametrize(("language", "text", "expected"),
                         [("it", t, e) for t, e in ITALIAN] + [("en", t, e) for t, e in ENGLISH])
def test_understood(language, text, expected):
    mention = only(text, language)
    assert (mention.start, mention.end, mention.grain) == expected
    assert mention.start.tzinfo == ROME
    assert text[mention.char_start:mention.char_end] == mention.text


@pytest.mark.parametrize(("language", "text"), [
    ("en", "May I book a visit?"),
    ("it", "Sabato Rossi"),
    ("it", "Sono Sabato Rossi, vorrei prenotare"),
    ("it", "mi chiamo Sabato"),
    ("it", "sono Domenica Bianchi"),
    ("it", "mi chiamo Anna, 3331234567"),
    ("en", "call me at 3331234567"),
    ("it", "ho 3 figli"),
    ("it", "costa 50 euro"),
    ("it", "costa 12.50 euro"),
    ("en", "it costs 50 euros"),
    ("it", "Buonasera, vorrei prenotare"),
    ("it", "buona sera dottore"),
    ("en", "Good morning, I need an appointment"),
    ("it", "ho la febbre da 3-4 giorni"),
    ("it", "prendo 1/2 compressa"),
    ("en", "my room is on the 5th floor"),
    ("en", "can I book at one of your clinics?"),
    ("en", "do you have doctors at 2 locations?"),
    ("en", "good afternoon"),
    ("en", "I'm 35 years old"),
    ("it", "il 31/2"),
    ("it", "alle 25"),
])
def test_not_a_time(language, text):
    assert find_times(text, language, NOW) == []


def test_several_facts_in_one_line_yield_the_one_time():
    mention = only("vorrei una visita dal cardiologo martedì pomeriggio", "it")
    assert (mention.start, mention.end, mention.grain) == part(TUE, "afternoon")
    assert (mention.text, mention.char_start, mention.char_end) == ("martedì pomeriggio", 33, 51)
    busy = "salve, sono Sabato Rossi, ho 2 figli, il 3/12 alle 10 per la dermatologa? il mio numero è 3331234567"
    mention = only(busy, "it")
    assert (mention.text, mention.start, mention.end) == ("3/12 alle 10", *at(DEC_3, 10)[:2])


def test_a_weekday_said_on_that_weekday_is_next_weeks():
    friday = datetime(2026, 11, 27, 9, 0, tzinfo=ROME)
    assert only("venerdì alle 17", "it", friday).start == datetime(2026, 12, 4, 17, tzinfo=ROME)
    assert only("oggi alle 17", "it", friday).start == datetime(2026, 11, 27, 17, tzinfo=ROME)


def test_a_time_alone_after_a_day_keeps_that_day():
    first, second = find_times("venerdì alle 9 o alle 11", "it", NOW)
    assert (first.start, second.start) == (at(FRI, 9)[0], at(FRI, 11)[0])


def test_two_days_are_two_mentions():
    assert [m.text for m in find_times("I can come on monday or tuesday morning", "en", NOW)] == ["monday",
                                                                                                  "tuesday morning"]


def test_a_part_of_day_that_is_over_means_tomorrows():
    evening = datetime(2026, 11, 25, 19, 0, tzinfo=ROME)
    assert only("di mattina", "it", evening).start == datetime(2026, 11, 26, 6, tzinfo=ROME)
    assert only("in the evening", "en", evening).start == datetime(2026, 11, 25, 18, tzinfo=ROME)


def test_a_time_after_the_dst_change_keeps_its_wall_clock():
    before_spring = datetime(2026, 3, 27, 10, 0, tzinfo=ROME)  # Friday; clocks go forward on Sunday the 29th
    monday = only("lunedì alle 9", "it", before_spring).start
    assert (monday.hour, monday.utcoffset()) == (9, timedelta(hours=2))
    assert monday == datetime(2026, 3, 30, 7, 0, tzinfo=ZoneInfo("UTC"))
    sunday = only("domenica", "it", before_spring)
    utc = ZoneInfo("UTC")  # same-zone subtraction is wall-clock in Python: compare instants
    assert sunday.end.astimezone(utc) - sunday.start.astimezone(utc) == timedelta(hours=23)
    before_autumn = datetime(2026, 10, 23, 10, 0, tzinfo=ROME)  # Friday; clocks go back on Sunday the 25th
    assert only("Monday at 9am", "en", before_autumn).start.utcoffset() == timedelta(hours=1)


def test_now_in_another_zone_is_read_in_the_clinic_zone():
    late_utc = datetime(2026, 11, 25, 23, 30, tzinfo=ZoneInfo("UTC"))  # already Thursday in Rome
    assert only("domani", "it", late_utc).start == datetime(2026, 11, 27, tzinfo=ROME)


def test_the_clinic_zone_comes_from_settings(monkeypatch):
    from clinic.settings import settings

    monkeypatch.setenv("CLINIC_TIMEZONE", "Europe/London")
    settings.cache_clear()
    assert only("tomorrow at 9am", "en", NOW).start == datetime(2026, 11, 26, 9, tzinfo=ZoneInfo("Europe/London"))


def test_an_unknown_language_is_refused():
    with pytest.raises(ValueError, match="unsupported language"):
        find_times("demain", "fr", NOW)
