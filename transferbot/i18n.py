"""Translations and locale formatting (gettext catalogs through Babel).

Catalogs are kept as ``.po`` sources under ``transferbot/locale`` and
compiled in memory when first used, so there is no binary to commit and no
build step to forget.
"""

from __future__ import annotations

import io
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
SUPPORTED = ("en", "fr", "de")


def catalog_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=None)
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


def format_when(value: datetime, locale: str, tz: str) -> str:
    """A date and time for a reader: their locale's words, their time zone, the zone named."""
    zone = ZoneInfo(tz)
    where = Locale.parse(locale)
    day = format_date(value.astimezone(zone), format="full", locale=where)
    time = format_time(value, format="short", tzinfo=zone, locale=where)
    return f"{day} {time} ({tz})"
