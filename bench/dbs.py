"""The benchmark's databases on either backend: made empty, cloned from a template, measured, dropped.

SQLite: a file in the work folder; a clone is a copy of the checkpointed file.
PostgreSQL: a database of its own on the server the ``--postgres-url`` names,
with a unique name (``tbbench_<pid>_<random>_<n>_<label>``); a clone is
``CREATE DATABASE … TEMPLATE``; every database made is dropped at the end,
however the run ends. Nothing here is timed.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sqlite3
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1/postgres"
BACKENDS = ("sqlite", "postgresql")


def postgres_url_default() -> str:
    return os.environ.get("TRANSFERBOT_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    assert database, url
    return Path(database)


class Backend:
    """Makes, clones and drops the databases of one backend for one run."""

    def __init__(self, name: str, work: Path, postgres_url: str | None = None) -> None:
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}")
        self.name = name
        self.work = work
        self.server = postgres_url or postgres_url_default()
        self.prefix = f"tbbench_{os.getpid()}_{secrets.token_hex(2)}"
        self.count = 0
        self.made: list[str] = []

    @property
    def postgres(self) -> bool:
        return self.name == "postgresql"

    # -- naming ----------------------------------------------------------------------------
    def _name(self, label: str) -> str:
        self.count += 1
        clean = re.sub(r"[^a-z0-9_]", "_", label.lower())
        return f"{self.prefix}_{self.count}_{clean}"[:63]

    def _pg_url(self, database: str) -> str:
        return make_url(self.server).set(drivername="postgresql+psycopg", database=database).render_as_string(
            hide_password=False)

    def _admin_execute(self, sql: str) -> None:
        """One statement on the server's own database, outside a transaction (CREATE/DROP DATABASE)."""
        engine = sa.create_engine(self._pg_url(make_url(self.server).database or "postgres"),
                                  isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(sql))
        finally:
            engine.dispose()

    def check(self) -> None:
        """Fail early, and clearly, if the server cannot be reached."""
        if self.postgres:
            self._admin_execute("SELECT 1")

    # -- databases -------------------------------------------------------------------------
    def _url(self, name: str) -> str:
        """The URL of database ``name`` on this backend, remembered so that it is dropped at the end."""
        url = f"sqlite:///{self.work / (name + '.db')}" if not self.postgres else self._pg_url(name)
        self.made.append(url)
        return url

    def new(self, label: str) -> str:
        """A new, empty database (the daemon's migrations make the schema)."""
        name = self._name(label)
        if self.postgres:
            self._admin_execute(f'CREATE DATABASE "{name}"')
        return self._url(name)

    def clone(self, source: str, label: str) -> str:
        """A copy of ``source`` (nobody may be connected to it)."""
        name = self._name(label)
        if self.postgres:
            self._admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(source).database}"')
        else:
            src = sqlite_path(source)
            con = sqlite3.connect(src)
            try:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                con.close()
            shutil.copyfile(src, self.work / (name + ".db"))
        return self._url(name)

    def drop(self, url: str) -> None:
        if url in self.made:
            self.made.remove(url)
        if not self.postgres:
            path = sqlite_path(url)
            for other in path.parent.glob(path.name + "*"):
                other.unlink(missing_ok=True)
            return
        self._admin_execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')

    def analyze(self, url: str) -> None:
        """After a bulk load: statistics as a database in service has them (autovacuum would, later)."""
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("ANALYZE"))
        finally:
            engine.dispose()

    def size_bytes(self, url: str) -> int:
        if not self.postgres:
            return sqlite_path(url).stat().st_size
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())
        finally:
            engine.dispose()

    def close(self) -> None:
        """Drop every database this run made and still has."""
        for url in list(self.made):
            try:
                self.drop(url)
            except Exception as exc:  # noqa: BLE001 - report and go on dropping the others
                print(f"could not drop {make_url(url).render_as_string()}: {exc}", flush=True)


def engine_for(url: str) -> sa.Engine:
    """A small engine for the orchestrator's probes and bulk work (no pool kept between uses)."""
    if url.startswith("sqlite"):
        return sa.create_engine(url, connect_args={"timeout": 30}, poolclass=sa.pool.NullPool)
    return sa.create_engine(url, poolclass=sa.pool.NullPool)
