"""The languages transferbot speaks: one list, and the gettext catalogs of those it writes in.

Mail is written in ``MAIL`` (an account's locale is one of them); config, the API schema, the CLI and the
translations all derive from that tuple. Catalogs are kept as ``.po`` sources under ``transferbot/locale``
and compiled in memory when first used, so there is no binary to commit and no build step to forget. The
reader also reads our own (translated) instruction lines from them, to know them when they are quoted.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Literal, get_args

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

Locale = Literal["en", "fr", "de"]
MAIL: tuple[str, ...] = get_args(Locale)
"""The languages of our mail; English is the source language of the catalogs."""

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "messages"


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
