"""What the commands share: opening the app, printing JSON and tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from transferbot.cli.exits import CliError
from transferbot.config import Config

if TYPE_CHECKING:
    from transferbot.app.context import App


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip())
    for r in cells:
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())


def app_of(config: Config) -> App:
    """The app on the configured database (imported on call: ``read`` and ``--help`` need no database code)."""
    from transferbot.app.context import open_app

    return open_app(config)


def print_reason(text: str) -> None:
    """A reason or an error, whole, each of its lines indented under the row it explains."""
    for line in text.splitlines() or [""]:
        print(f"      {line}")


def say_more(page: Any) -> None:
    """A page that is not the last says so on stderr, with how to see the rest."""
    if page.more:
        print(f"… {page.more} more; use --limit N, or --cursor {page.next_cursor} for the next page "
              f"(--json pages too)", file=sys.stderr)


def password_from_stdin() -> str:
    """The first line of standard input, without its line end (a password is never an argument)."""
    line = sys.stdin.readline()
    password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        raise CliError("no password on standard input (e.g. printf '%s\\n' \"$PASSWORD\" | transferbot operator "
                       "add NAME --password-stdin)")
    return password
