"""The CLI's exit codes and its one mapping of errors to them: a one-line message, never a traceback."""

from __future__ import annotations

import os
import sys

from sqlalchemy.engine import make_url

from transferbot.config import Config
from transferbot.store.sqlite import database_path

EXIT_REFUSED = 1


EXIT_USAGE = 2


class CliError(Exception):
    """A problem to report on one line."""


# What SQLite's own words mean for the operator.
_DATABASE_PROBLEMS = (
    ("readonly database", "is read-only: check the permissions of the file and of its folder"),
    ("file is not a database", "is not an SQLite database"),
    ("unable to open database file", "cannot be opened: check that its folder exists and is writable"),
    ("database is locked", "is locked by another process: try again"),
    ("disk is full", "cannot grow: the disk is full"),
    ("disk i/o error", "cannot be read or written (disk I/O error)"),
)


def database_error(exc: Exception, config: Config | None) -> str:
    """One line naming the database and what is wrong with it, without SQL or a class name."""
    orig = getattr(exc, "orig", None) or exc
    said = " ".join(str(orig).split())
    where = "database"
    if config is not None:
        try:
            where = f"database {database_path(make_url(config.database.url)) or config.database.url}"
        except Exception:  # noqa: BLE001 - the URL was read once already; name it as written
            where = f"database {config.database.url}"
    for needle, meaning in _DATABASE_PROBLEMS:
        if needle in said.lower():
            return f"{where} {meaning} ({said})"
    return f"{where}: {said}"


def stdout_closed() -> int:
    """The reader of our output went away (`transferbot list | head -1`): stop quietly, as the
    Python documentation recommends, so that the final flush at exit finds somewhere to write."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_REFUSED
