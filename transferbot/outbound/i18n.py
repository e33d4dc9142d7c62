"""Locale formatting of our mail: dates and times in the reader's words and time zone (Babel's CLDR)."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time

from transferbot.core.languages import translations

_KEEP_TOGETHER = re.compile(r"(?<!,) ")


@lru_cache(maxsize=4096)
def format_when(value: datetime, locale: str, tz: str) -> str:
    """A date and time for a reader: their locale's words, their time zone, the zone named.

    Cached: a transfer's few dates are written into every notice to every party, and CLDR
    formatting costs more than the rest of a line of the template.

    The full date and the short time come from CLDR; joining them is a
    translated pattern, since CLDR's own joiner ("{1}, {0}") reads poorly
    inside a sentence ("by Tuesday, 17 December 2024 at 00:30").
    """
    zone = ZoneInfo(tz)
    where = Locale.parse(locale)
    # No-break spaces keep "17 décembre 2024" / "17. Dezember 2024" on one line when the text part is
    # wrapped; a space after a comma ("Dienstag, 17. …") may still break.
    day = _KEEP_TOGETHER.sub("\u00a0", format_date(value.astimezone(zone), format="full", locale=where))
    time = format_time(value, format="short", tzinfo=zone, locale=where)
    # TRANSLATORS: a date and time in a sentence: "Tuesday, December 17, 2024 at 12:30 AM (Europe/Paris)".
    pattern = translations(locale).gettext("%(date)s at %(time)s (%(zone)s)")
    return pattern % {"date": day, "time": time, "zone": tz}
