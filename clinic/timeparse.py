"""Dates and times in patients' messages ("martedì pomeriggio", "tomorrow at 3pm") as clinic-zone intervals.

Raw `dateparser` gets most Italian booking phrases wrong and finds dates in "May I book", in the first name
"Sabato" and in phone numbers (RASA_NOTES), so the work is split three ways:

- one small regex per supported expression decides *where* a date or time is and *what kind* it is; anything
  they do not know is not a date (a missed date costs one question, an invented one a wrong booking);
- `dateparser` does the calendar work it is good at: month names in both languages, day/month order, years,
  year roll-over and "in 3 weeks";
- neighbouring pieces ("martedì" + "pomeriggio" + "alle 3") become one mention when only connector words
  ("di", "in the", ",") stand between them.

Decisions, each pinned by tests/core/test_timeparse.py:

- A weekday is the next such day after today, 1 to 7 days ahead: "venerdì" said on a Friday is next week's
  Friday (today is "oggi"/"today"). "prossimo", "next" and "this" do not change that; "martedì della settimana
  prossima" / "Tuesday next week" picks the day inside next week. The assistant echoes the date back.
- A date without a year is its next occurrence, today included; a written year is kept even when past.
- "the 5th" / "giorno 5" is the next 5th of a month, today included.
- A time or a part of day alone takes the day of the mention before it in the message ("venerdì alle 9 o alle
  11"); failing that it is today's while still ahead (a part of day until it ends), else tomorrow's.
- Hours 1-6 with no am/pm and no part of day are afternoon ("alle 3" = 15:00; the clinic is shut at 3 am);
  "pomeriggio", "sera", "evening", "pm" move any hour before 12 to the afternoon/evening.
- "stasera"/"tonight" is today 18-22 and "stamattina"/"this morning" today 06-12 even when over (PARTS_OF_DAY;
  the caller clips to what is still bookable).
- Ranges: "questa settimana"/"this week" is today up to next Monday; "settimana prossima"/"next week" is Monday
  to Monday; "fra due settimane"/"in two weeks" is that one day. A part of day or time said with a week range
  ("next week in the afternoon") joins its text but not its interval, which cannot say "afternoons only".
- "dalle 9 alle 11" is two mentions on one day (9:00, 11:00): time ranges are not understood.
- An Italian weekday followed by a capitalised word that is no date word ("Sabato Rossi"), or after "mi
  chiamo", "sono", "sig."..., is a first name; English weekdays are not names ("Friday I'm free").
- All arithmetic is on local wall-clock dates, so 09:00 stays 09:00 across a DST change.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dateparser

from clinic.scheduling import PARTS_OF_DAY
from clinic.settings import settings

LANGUAGES = ("it", "en")


@dataclass(frozen=True)
class TimeMention:
    """A date or time a patient wrote: [start, end) in the clinic zone, or an exact instant when end is None."""

    start: datetime
    end: datetime | None
    grain: str  # "day" | "hour" | "minute"
    text: str
    char_start: int
    char_end: int


@dataclass(frozen=True)
class _Clock:
    hour: int
    minute: int
    grain: str
    meridiem: str | None = None  # "a" / "p" when am/pm was written


@dataclass(frozen=True)
class _Piece:
    """One recognised expression; it fills one or more of the fields a mention is made of."""

    char_start: int
    char_end: int
    day: date | None = None
    weekday: int | None = None
    week: tuple[date, date] | None = None  # [first day, day after the last)
    part: str | None = None
    clock: _Clock | None = None

    def filled(self) -> set[str]:
        """The fields this piece sets, e.g. {"day", "part"} for "stasera"."""
        return {name for name in ("day", "weekday", "week", "part", "clock") if getattr(self, name) is not None}


@dataclass(frozen=True)
class _Context:
    text: str
    language: str
    now: datetime  # aware, in the clinic zone
    zone: ZoneInfo

    @property
    def today(self) -> date:
        return self.now.date()


_Builder = Callable[[re.Match, _Context], "_Piece | None"]

# ---------------------------------------------------------------- vocabulary

_NUMBERS = {
    "it": {"un": 1, "uno": 1, "una": 1, "due": 2, "tre": 3, "quattro": 4, "cinque": 5, "sei": 6, "sette": 7,
           "otto": 8, "nove": 9, "dieci": 10, "undici": 11, "dodici": 12, "quindici": 15, "venti": 20},
    "en": {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20},
}
_HOUR_WORDS = {
    "it": "una|due|tre|quattro|cinque|sei|sette|otto|nove|dieci|undici|dodici",
    "en": "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve",
}
_MONTHS = {  # no "sett": dateparser reads it as "settimana"
    "it": "gennaio|febbraio|marzo|aprile|maggio|giugno|luglio|agosto|settembre|ottobre|novembre|dicembre"
          "|gen|feb|mar|apr|mag|giu|lug|ago|set|ott|nov|dic",
    "en": "january|february|march|april|may|june|july|august|september|october|november|december"
          "|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec",
}
_WEEKDAYS = {
    "it": ("lun", "mar", "mer", "gio", "ven", "sab", "dom"),
    "en": ("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
}
_WEEKDAY_WORDS = {
    "it": r"(?:lune|marte|mercole|giove|vener)d(?:ì|í|i['’]|i)|sabato|domenica",
    "en": "monday|tuesday|wednesday|thursday|friday|saturday|sunday",
}
# Words that may stand between the pieces of one mention: "martedì [di] pomeriggio", "tomorrow[, in the] morning".
_CONNECTORS = {
    "it": "di|del|della|nel|nella|in|il|la|per|verso|tipo|circa|magari|possibilmente|a",
    "en": "on|at|in|the|of|for|around|about|maybe|preferably|ideally",
}
# A weekday before one of these is a day even when the word is capitalised ("Sabato Mattina").
_DATE_WORD = re.compile(rf"prossim[oa]|prox|mattin[ao]|mattinata|pomerig+i?o|sera|serata|alle|ore|{_MONTHS['it']}",
                        re.IGNORECASE)
_NAME_BEFORE = re.compile(
    r"(?:chiamo|sono|sig(?:\.|nor[ae]?)|sig\.ra|dott\.?(?:ssa)?|dr\.?)\s*$",
    re.IGNORECASE,
)

_AMOUNT_AFTER = r"(?!\s*(?:€|%|\$|euro|eur\b))"
# "da 3-4 giorni", "1/2 compressa": counts, not dates.
_COUNT_AFTER = (r"(?!\s*(?:giorn|settiman|mes[ei]|ann[oi]|volt[ae]|or[ae]\b(?!\s*\d)|compress|pastigl|gocc"
                r"|days?\b|weeks?\b|months?\b|years?\b|times\b|hours?\b|pills?\b|tablets?\b|kg\b|km\b|mg\b))")
_NO_NUMBER_BEFORE = r"(?<![\w/.:,+\-])"

# ---------------------------------------------------------------- calendar helpers


def _dateparser_day(text: str, language: str, base: datetime) -> date | None:
    """The calendar date dateparser reads in a normalised string such as "3 dicembre" or "in 2 weeks".

    Only the date is taken: the wall clock is attached here in the clinic zone, so dateparser works on naive
    local times (RETURN_AS_TIMEZONE_AWARE off) and can never shift the day by converting zones.
    """
    parsed = dateparser.parse(
        text,
        languages=[language],
        settings={
            "PREFER_DATES_FROM": "future",
            "DATE_ORDER": "DMY",
            "RELATIVE_BASE": base.replace(tzinfo=None),
            "RETURN_AS_TIMEZONE_AWARE": False,
        },
    )
    return parsed.date() if parsed else None


def _yesterday_midnight(ctx: _Context) -> datetime:
    """The base that makes dateparser's "future" include today: "il 25 novembre" said on the 25th is today."""
    return datetime.combine(ctx.today - timedelta(days=1), time(0))


def _next_day_of_month(today: date, day: int) -> date | None:
    """The next date, today included, whose day of the month is `day` ("the 5th")."""
    year, month = today.year, today.month
    for _ in range(13):
        try:
            candidate = date(year, month, day)
        except ValueError:
            candidate = None
        if candidate and candidate >= today:
            return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def _number(word: str, language: str) -> int:
    word = word.lower()
    return int(word) if word.isdigit() else _NUMBERS[language][word]


# ---------------------------------------------------------------- builders: match -> piece


def _relative_day(offset: int) -> _Builder:
    return lambda m, ctx: _Piece(m.start(), m.end(), day=ctx.today + timedelta(days=offset))


def _today_part(part: str, offset: int = 0) -> _Builder:
    return lambda m, ctx: _Piece(m.start(), m.end(), day=ctx.today + timedelta(days=offset), part=part)


def _part_of(word: str) -> str:
    word = word.lower()
    return "morning" if word.startswith("m") else "afternoon" if word.startswith(("po", "a")) else "evening"


def _part(m: re.Match, ctx: _Context) -> _Piece:
    piece = _Piece(m.start(), m.end(), part=_part_of(m["part"]))
    return replace(piece, day=ctx.today) if m.groupdict().get("this") else piece


def _weekday(m: re.Match, ctx: _Context) -> _Piece | None:
    if ctx.language == "it" and _looks_like_name(ctx.text, m.start("wd"), m.end("wd")):
        return None
    return _Piece(m.start(), m.end(), weekday=_WEEKDAYS[ctx.language].index(m["wd"][:3].lower()))


def _looks_like_name(text: str, start: int, end: int) -> bool:
    """Whether an Italian weekday word is a first name: "Sabato Rossi", "mi chiamo Domenica"."""
    after = re.match(r"\s+([A-ZÀ-Ý][\w'’]*)", text[end:])
    if after and not _DATE_WORD.fullmatch(after[1]):
        return True
    return bool(_NAME_BEFORE.search(text[:start]))


def _week(which: str) -> _Builder:
    """Week ranges: this week is today up to next Monday (past days are no use), next week Monday to Monday."""
    def build(m: re.Match, ctx: _Context) -> _Piece:
        next_monday = ctx.today + timedelta(days=7 - ctx.today.weekday())
        if which == "this":
            return _Piece(m.start(), m.end(), week=(ctx.today, next_monday))
        return _Piece(m.start(), m.end(), week=(next_monday, next_monday + timedelta(days=7)))

    return build


def _offset(m: re.Match, ctx: _Context) -> _Piece | None:
    """Offsets such as "fra 3 giorni", "in two weeks", normalised to "in 3 giorni" / "in 2 weeks" for dateparser."""
    unit = m["unit"].lower()
    day = _dateparser_day(f"in {_number(m['n'], ctx.language)} {unit}", ctx.language, ctx.now)
    return _Piece(m.start(), m.end(), day=day) if day else None


def _named_date(m: re.Match, ctx: _Context) -> _Piece | None:
    """Dates with a month name ("3 dicembre", "December 3rd, 2027"), given to dateparser as "3 dicembre 2027"."""
    day_number = 1 if m["d"].lower() == "primo" else int(m["d"])
    day = _dateparser_day(f"{day_number} {m['mon'].rstrip('.')} {m['y'] or ''}".strip(), ctx.language,
                          _yesterday_midnight(ctx))
    return _Piece(m.start(), m.end(), day=day) if day else None


def _numeric_date(m: re.Match, ctx: _Context) -> _Piece | None:
    """Numeric dates ("3/12", "03.12.2026", "3-12"): always day first (DATE_ORDER DMY), whatever the language."""
    if not (1 <= int(m["d"]) <= 31 and 1 <= int(m["mo"]) <= 12):
        return None
    day = _dateparser_day(f"{m['d']}/{m['mo']}" + (f"/{m['y']}" if m["y"] else ""), ctx.language,
                          _yesterday_midnight(ctx))
    return _Piece(m.start(), m.end(), day=day) if day else None


def _day_of_month(m: re.Match, ctx: _Context) -> _Piece | None:
    day = _next_day_of_month(ctx.today, int(m["d"]))
    return _Piece(m.start(), m.end(), day=day) if day else None


_FRACTIONS = {"mezza": 30, "mezzo": 30, "un quarto": 15, "tre quarti": 45, "half": 30, "quarter": 15,
              "a quarter": 15}


def _clock(m: re.Match, ctx: _Context) -> _Piece | None:
    """Any written time: "alle 15", "15:30", "3pm", "10 e mezza", "alle 10 meno un quarto", "half past ten"."""
    groups = m.groupdict()
    hour, minute, grain = _number(groups["h"], ctx.language), 0, "hour"
    if groups.get("m"):
        minute, grain = int(groups["m"]), "minute"
    if groups.get("frac"):
        frac = re.sub(r"\s+", " ", groups["frac"].lower())
        minute, grain = (int(frac) if frac.isdigit() else _FRACTIONS[frac]), "minute"
        if groups["dir"].lower() in ("meno", "to"):
            hour, minute = hour - 1 or 12, (60 - minute) % 60  # "quarter to one" is 12:45
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    meridiem = groups["ap"].lower() if groups.get("ap") else None
    if meridiem and hour > 12:
        return None
    return _Piece(m.start(), m.end(), clock=_Clock(hour, minute, grain, meridiem))


def _noon(m: re.Match, ctx: _Context) -> _Piece:
    return _Piece(m.start(), m.end(), clock=_Clock(12, 0, "hour"))


# ---------------------------------------------------------------- patterns


def _patterns(lang: str) -> list[tuple[re.Pattern, _Builder]]:
    """The recognisers of one language, plus the numeric forms both languages share."""
    end = r"(?!\w)"
    hour = rf"(?P<h>\d{{1,2}}|{_HOUR_WORDS[lang]})"
    ampm = r"(?:\s*(?P<ap>[ap])\.?m\.?(?!\w))"
    shared: list[tuple[str, _Builder]] = [
        (rf"{_NO_NUMBER_BEFORE}(?P<h>\d{{1,2}}):(?P<m>\d{{2}}){ampm}?(?![\w:])", _clock),
        (rf"{_NO_NUMBER_BEFORE}(?P<h>\d{{1,2}})(?:[:.](?P<m>\d{{2}}))?{ampm}", _clock),
        (rf"{_NO_NUMBER_BEFORE}(?P<d>\d{{1,2}})(?P<sep>[/\-])(?P<mo>\d{{1,2}})(?:(?P=sep)(?P<y>\d{{4}}|\d{{2}}))?"
         rf"(?![\w/]|[.,]\d){_AMOUNT_AFTER}{_COUNT_AFTER}", _numeric_date),
        (rf"{_NO_NUMBER_BEFORE}(?P<d>\d{{1,2}})\.(?P<mo>\d{{1,2}})\.(?P<y>\d{{4}}|\d{{2}})(?![\w.]){_AMOUNT_AFTER}",
         _numeric_date),
    ]
    # "sabato 28" is a date, "sabato 10 e mezza" / "Saturday 10am" a time.
    not_a_time = r"(?![\w/.:,]|\s+(?:e|meno)\s|\s*[ap]\.?m(?!\w)|\s*o['’]?\s?clock)"
    numbers = "|".join(sorted(_NUMBERS[lang], key=len, reverse=True))
    if lang == "it":
        fraction = r"mezza|mezzo|un\s+quarto|tre\s+quarti"
        next_it = r"prossim[oa]|prox"
        own: list[tuple[str, _Builder]] = [
            (r"(?<!\w)oggi" + end, _relative_day(0)),
            (r"(?<!\w)(?:domani|dmn)" + end, _relative_day(1)),
            (r"(?<!\w)dopo\s*domani" + end, _relative_day(2)),
            (r"(?<!\w)ieri" + end, _relative_day(-1)),
            (r"(?<!\w)(?:stamattina|stamani|stamane)" + end, _today_part("morning")),
            (r"(?<!\w)stasera" + end, _today_part("evening")),
            (r"(?<!\w)domattina" + end, _today_part("morning", 1)),
            (r"(?<!\w)(?<!buona\s)(?<!buon\s)(?P<part>mattin[ao]|mattinata|pomerig{1,2}i?o|sera|serata)" + end,
             _part),
            (rf"(?<!\w)(?:(?<!settimana\s)(?:questo|questa|sto|(?:il\s+|la\s+)?(?:{next_it}))\s+)?"
             rf"(?P<wd>{_WEEKDAY_WORDS['it']})(?:\s+(?:(?:{next_it})(?!\s+settiman)|che\s+viene))?{end}", _weekday),
            (rf"(?<!\w)(?P<wd>{_WEEKDAY_WORDS['it']})\s+(?P<d>\d{{1,2}}){not_a_time}", _day_of_month),
            (rf"(?<!\w)(?:(?:{next_it})\s+settimana|settimana\s+(?:{next_it}|che\s+viene))" + end, _week("next")),
            (r"(?<!\w)(?:questa|in|entro\s+la|entro\s+questa)\s+settimana" + end, _week("this")),
            (rf"(?<!\w)(?:tra|fra|in)\s+(?P<n>\d{{1,2}}|{numbers})\s+(?P<unit>giorn[oi]|settiman[ae]|mes[ei]){end}",
             _offset),
            (rf"(?<!\w)(?:giorno\s+)?(?P<d>\d{{1,2}}|primo)\s*[°º]?\s+(?:di\s+)?(?P<mon>{_MONTHS['it']})\.?"
             rf"(?:\s+(?P<y>\d{{4}}))?{end}", _named_date),
            (r"(?<!\w)giorno\s+(?P<d>\d{1,2})(?![\w/.\-])", _day_of_month),
            (rf"(?<!\w)(?:alle(?:\s+ore)?|all['’]|ore|verso\s+le|per\s+le|dopo\s+le|dalle|h\.?)\s*{hour}"
             rf"(?:[:.](?P<m>\d{{2}})|\s+(?P<dir>e|meno)\s+(?P<frac>{fraction}|\d{{1,2}}))?{ampm}?(?![\w:/])",
             _clock),
            (rf"{_NO_NUMBER_BEFORE}(?P<h>\d{{1,2}})\s+(?P<dir>e|meno)\s+(?P<frac>{fraction}){end}", _clock),
            (r"(?<!\w)mezzogiorno" + end, _noon),
        ]
    else:
        # "at one of your clinics", "at 2 locations", "at 3 months pregnant": counts, not times.
        not_a_count_en = (r"(?!\s+(?:of|point|time|stage|different|locations?|clinics?|places?|sites?|people|persons?"
                          r"|patients?|doctors?|days?|weeks?|months?|years?|percent)(?!\w))")
        own = [
            (r"(?<!\w)today" + end, _relative_day(0)),
            (r"(?<!\w)(?:tomorrow|tomorow|tommorow|tommorrow|tmrw|tmr)" + end, _relative_day(1)),
            (r"(?<!\w)(?:the\s+)?day\s+after\s+tomorrow" + end, _relative_day(2)),
            (r"(?<!\w)yesterday" + end, _relative_day(-1)),
            (r"(?<!\w)tonight" + end, _today_part("evening")),
            (r"(?<!\w)(?:(?P<this>this)\s+)?(?<!good\s)(?P<part>morning|afternoon|evening)s?" + end, _part),
            (rf"(?<!\w)(?:(?:this|next|this\s+coming|coming)\s+)?(?P<wd>{_WEEKDAY_WORDS['en']}){end}", _weekday),
            (rf"(?<!\w)(?P<wd>{_WEEKDAY_WORDS['en']})\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?{not_a_time}", _day_of_month),
            (r"(?<!\w)this\s+week" + end, _week("this")),
            (r"(?<!\w)next\s+week" + end, _week("next")),
            (rf"(?<!\w)in\s+(?P<n>\d{{1,2}}|{numbers})\s+(?P<unit>days?|weeks?|months?){end}", _offset),
            (rf"(?<!\w)(?P<mon>{_MONTHS['en']})\.?\s+(?:the\s+)?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?"
             rf"(?:,?\s+(?P<y>\d{{4}}))?{end}", _named_date),
            (rf"(?<!\w)(?:the\s+)?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mon>{_MONTHS['en']})\.?"
             rf"(?:,?\s+(?P<y>\d{{4}}))?{end}", _named_date),
            (r"(?<!\w)the\s+(?P<d>\d{1,2})(?:st|nd|rd|th)(?!\w)(?!\s+(?:floor|time|row|grade|place|birthday))",
             _day_of_month),
            (rf"(?<!\w)(?:at|around|@)\s*{hour}(?:[:.](?P<m>\d{{2}}))?(?:\s*o['’]?\s?clock)?{ampm}?(?![\w:/])"
             rf"{not_a_count_en}", _clock),
            (rf"(?<!\w)(?:at\s+)?(?P<frac>half|(?:a\s+)?quarter)\s+(?P<dir>past|to)\s+{hour}{end}", _clock),
            (rf"(?<!\w){hour}\s*o['’]?\s?clock{ampm}?{end}", _clock),
            (r"(?<!\w)(?:noon|midday)" + end, _noon),
        ]
    return [(re.compile(pattern, re.IGNORECASE), build) for pattern, build in shared + own]


_PATTERNS = {lang: _patterns(lang) for lang in LANGUAGES}
_GAPS = {
    lang: re.compile(rf"(?:[\s,.;:\-–]|(?<!\w)(?:{_CONNECTORS[lang]})(?!\w))*", re.IGNORECASE) for lang in LANGUAGES
}

# ---------------------------------------------------------------- pieces -> mentions


def _pieces(ctx: _Context) -> list[_Piece]:
    """Every recognised piece, longest first where two overlap ("alle 15:30" beats "15:30"), in text order."""
    found = [
        piece
        for pattern, build in _PATTERNS[ctx.language]
        for match in pattern.finditer(ctx.text)
        if (piece := build(match, ctx)) is not None
    ]
    chosen: list[_Piece] = []
    for piece in sorted(found, key=lambda p: (p.char_start - p.char_end, p.char_start)):
        if all(piece.char_end <= c.char_start or c.char_end <= piece.char_start for c in chosen):
            chosen.append(piece)
    return sorted(chosen, key=lambda p: p.char_start)


def _joinable(group: list[_Piece], piece: _Piece) -> bool:
    """One mention has at most one of each field, and no day inside a week range (two different days)."""
    have = set().union(*(p.filled() for p in group))
    new = piece.filled()
    both = have | new
    return not (have & new) and not ({"day", "week"} <= both)


def _groups(pieces: list[_Piece], ctx: _Context) -> list[list[_Piece]]:
    gap = _GAPS[ctx.language]
    groups: list[list[_Piece]] = []
    for piece in pieces:
        between = ctx.text[groups[-1][-1].char_end:piece.char_start] if groups else ""
        if groups and _joinable(groups[-1], piece) and gap.fullmatch(between):
            groups[-1].append(piece)
        else:
            groups.append([piece])
    return groups


def _wall_clock(clock: _Clock, part: str | None) -> time | None:
    """The local time meant: "alle 3" is 15:00, "alle 8 di sera" 20:00, "12am" midnight."""
    hour = clock.hour
    if clock.meridiem == "p" and hour < 12:
        hour += 12
    elif clock.meridiem == "a" and hour == 12:
        hour = 0
    elif clock.meridiem is None and hour < 12:
        if part in ("afternoon", "evening") or (part is None and 1 <= hour <= 6):
            hour += 12
    return time(hour, clock.minute) if hour <= 23 else None


def _mention(group: list[_Piece], ctx: _Context, carried_day: date | None) -> TimeMention | None:
    """Resolve joined pieces to an interval; `carried_day` is the day of an earlier mention in the message."""
    merged = {name: getattr(p, name) for p in group for name in p.filled()}
    day, weekday, week = merged.get("day"), merged.get("weekday"), merged.get("week")
    part, clock = merged.get("part"), merged.get("clock")
    first, last = group[0].char_start, group[-1].char_end

    def at(d: date, t: time) -> datetime:
        return datetime.combine(d, t, tzinfo=ctx.zone)

    def mention(start: datetime, end: datetime | None, grain: str) -> TimeMention:
        return TimeMention(start, end, grain, ctx.text[first:last], first, last)

    if day is None and weekday is not None:
        start_from = week[0] if week else ctx.today + timedelta(days=1)
        day = start_from + timedelta(days=(weekday - start_from.weekday()) % 7)
    if day is None and week is not None:
        return mention(at(week[0], time(0)), at(week[1], time(0)), "day")
    wall = _wall_clock(clock, part) if clock else None
    if clock and wall is None:
        return None
    if day is None:  # a time or part of day alone
        still_ahead = at(ctx.today, wall) if wall else at(ctx.today, PARTS_OF_DAY[part][1])
        day = carried_day or (ctx.today if still_ahead > ctx.now else ctx.today + timedelta(days=1))
    if wall is not None:
        return mention(at(day, wall), None, clock.grain)
    if part is not None:
        begin, end = PARTS_OF_DAY[part]
        return mention(at(day, begin), at(day, end), "day")
    return mention(at(day, time(0)), at(day + timedelta(days=1), time(0)), "day")


def find_times(text: str, language: str, now: datetime, zone: ZoneInfo | None = None) -> list[TimeMention]:
    """Every date, time, part of day or range in `text` ("it" or "en"), relative to `now`, in text order."""
    language = language.lower()[:2]
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}; expected one of {LANGUAGES}")
    zone = zone or settings().zone
    ctx = _Context(text, language, now.astimezone(zone) if now.tzinfo else now.replace(tzinfo=zone), zone)
    mentions: list[TimeMention] = []
    carried_day: date | None = None
    for group in _groups(_pieces(ctx), ctx):
        mention = _mention(group, ctx, carried_day)
        if mention is None:
            continue
        mentions.append(mention)
        if not any(p.week for p in group):
            carried_day = mention.start.date()
    return mentions
