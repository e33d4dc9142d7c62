"""Translations and locale formatting (gettext catalogs through Babel).

Catalogs are kept as ``.po`` sources under ``transferbot/locale`` and
compiled in memory when first used, so there is no binary to commit and no
build step to forget.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
_KEEP_TOGETHER = re.compile(r"(?<!,) ")
DOMAIN = "messages"
SUPPORTED = ("en", "fr", "de")


def catalog_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(locale: str) -> NullTranslations:
    """The gettext translations for a locale; English is the source language."""
    path = catalog_path(locale)
    if locale == "en" or not path.is_file():
        return NullTranslations()
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer, domain=DOMAIN)


@lru_cache(maxsize=4096)
def format_when(value: datetime, locale: str, tz: str) -> str:
    """A date and time for a reader: their locale's words, their time zone, the zone named.

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
