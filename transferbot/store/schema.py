"""The schema's version: Alembic migrations shipped in the package, run by ``transferbot db upgrade``.

A database that release 0.1 made (its tables, no ``alembic_version``) is recognised as revision
0001 and upgraded in place with its data. Every other command refuses a database that is missing
or behind, naming ``transferbot db upgrade``. Daemons starting at once on one PostgreSQL database
take an advisory lock: one migrates, the others wait for it.

Checking where a database stands (every command, every daemon start) reads ``alembic_version`` and
compares it with ``HEAD`` without importing Alembic (about 9 MiB a daemon never needs again);
upgrading imports it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from transferbot.store.base import DatabaseTrouble, Store

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
ADVISORY_LOCK = 0x7472616E73666572  # "transfer"
LEGACY_TABLE = "transfer"  # present in every database release 0.1 made
VERSION_TABLE = "alembic_version"
HEAD = "0005"  # the newest migration's revision: tests/test_upgrade.py holds it to the scripts' head


def _alembic(connection: sa.Connection | None = None) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The revision this release's code expects."""
    return HEAD


def scripts_head() -> str | None:
    """The head of the migration scripts shipped, as Alembic finds it."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic()).get_current_head()


def _stamped(connection: sa.Connection) -> str | None:
    """The revision in ``alembic_version`` (what Alembic's MigrationContext reads), None without one."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def _current(connection: sa.Connection) -> str | None:
    revision = _stamped(connection)
    if revision is None and sa.inspect(connection).has_table(LEGACY_TABLE):
        return "0001"  # made by release 0.1 with create_all
    return revision


def current_in(connection: sa.Connection) -> str | None:
    """Where the database stands, on a connection the caller holds."""
    return _current(connection)


def current(store: Store) -> str | None:
    """Where the database stands (None: no schema at all)."""
    if not store.exists():
        return None
    with store.engine.connect() as connection:
        return _current(connection)


def upgrade(store: Store) -> tuple[str | None, str]:
    """Create the database or bring it to the current schema; returns (before, after)."""
    from alembic import command

    with store.engine.connect() as connection:
        if store.dialect == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK})
            connection.commit()
        else:
            # SQLite alters a table by copying it (Alembic's batch mode): foreign keys are checked at the end
            # instead (PRAGMA foreign_key_check), since a table being copied is briefly missing. The pragma is
            # set before any transaction begins, on the driver's connection (inside one it does nothing).
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            before = _current(connection)
            if before == "0001" and _stamped(connection) is None:
                command.stamp(_alembic(connection), "0001")  # a release 0.1 database: recognise it
                connection.commit()
            command.upgrade(_alembic(connection), "head")
            connection.commit()
            if store.dialect == "sqlite":
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                connection.commit()
                if broken:
                    raise DatabaseTrouble(f"database {store.where}: the upgrade left {len(broken)} broken references "
                                          f"(first: {tuple(broken[0])})")
            after = _current(connection)
        finally:
            if store.dialect == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK})
                connection.commit()
            else:
                connection.rollback()
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
    if before != after:
        log.info("database %s upgraded from %s to %s", store.where, before or "nothing", after)
    assert after is not None
    return before, after


def check(store: Store) -> None:
    """Refuse a database that is missing or behind (one line naming the command that fixes it)."""
    if not store.exists():
        raise DatabaseTrouble(f"database {store.where} does not exist; create it with `transferbot db upgrade`")
    try:
        revision = current(store)
    except sa.exc.DatabaseError as exc:
        raise DatabaseTrouble(f"cannot open database {store.where}: {exc.orig}") from None
    expected = head()
    if revision is None:
        raise DatabaseTrouble(f"database {store.where} has no transferbot schema; create it with `transferbot db upgrade`")
    if revision != expected:
        from alembic.script import ScriptDirectory

        try:
            known = ScriptDirectory.from_config(_alembic()).get_revision(revision)
        except Exception:  # noqa: BLE001 - alembic raises its own errors for an unknown id
            known = None
        if known is None:
            raise DatabaseTrouble(f"database {store.where} is at revision {revision}, which this release does not know "
                             f"(a newer transferbot made it?)")
        raise DatabaseTrouble(f"database {store.where} is at revision {revision}, behind {expected}; "
                         f"run `transferbot db upgrade`")
