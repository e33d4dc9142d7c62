"""PostgreSQL for the tests: a fresh database per test, cloned from a migrated template.

Set ``TRANSFERBOT_TEST_POSTGRES_URL`` (a server URL, e.g. postgresql+psycopg://postgres@127.0.0.1/postgres)
to run the tests that cover both backends on PostgreSQL too; without it they skip, saying why.
``TRANSFERBOT_REQUIRE_POSTGRES=1`` (set by .ci/run) turns that skip into a failure.
"""

from __future__ import annotations

import os
import secrets
import threading

import psycopg
import pytest
from sqlalchemy.engine import make_url

SERVER_URL = os.environ.get("TRANSFERBOT_TEST_POSTGRES_URL", "")
REQUIRED = os.environ.get("TRANSFERBOT_REQUIRE_POSTGRES") == "1"


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlalchemy_url(database: str) -> str:
    return make_url(SERVER_URL).set(drivername="postgresql+psycopg", database=database).render_as_string(
        hide_password=False)


def skip_or_fail(why: str) -> None:
    if REQUIRED:
        pytest.fail(f"PostgreSQL is required here (TRANSFERBOT_REQUIRE_POSTGRES=1) but {why}")
    pytest.skip(f"PostgreSQL tests skipped: {why}")


class Databases:
    """Creates databases on the test server: one migrated template per process, cloned per test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.template: str | None = None
        self.prefix = f"tb_{os.getpid()}_{secrets.token_hex(2)}"
        self.count = 0
        self.made: list[str] = []

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(_dsn(SERVER_URL), autocommit=True, connect_timeout=5)

    def available(self) -> None:
        if not SERVER_URL:
            skip_or_fail("TRANSFERBOT_TEST_POSTGRES_URL is not set")
        try:
            with self._admin() as conn:
                conn.execute("select 1")
        except psycopg.Error as exc:
            skip_or_fail(f"cannot reach {make_url(SERVER_URL).render_as_string()}: {exc}")

    def _make_template(self) -> str:
        from transferbot.config import DatabaseConfig
        from transferbot.store import open_store, schema

        name = f"{self.prefix}_template"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        store = open_store(DatabaseConfig(url=_sqlalchemy_url(name)))
        try:
            schema.upgrade(store)
        finally:
            store.close()
        self.made.append(name)
        return name

    def new(self, migrated: bool = True) -> str:
        """A new database's SQLAlchemy URL (migrated to the current schema, or empty)."""
        self.available()
        with self.lock:
            if migrated and self.template is None:
                self.template = self._make_template()
            self.count += 1
            name = f"{self.prefix}_{self.count}"
            with self._admin() as conn:
                template = f' TEMPLATE "{self.template}"' if migrated else ""
                conn.execute(f'CREATE DATABASE "{name}"{template}')
            self.made.append(name)
        return _sqlalchemy_url(name)

    def clone(self, url: str) -> str:
        """A copy of the database ``url`` names (nothing may be connected to it)."""
        source = make_url(url).database
        with self.lock:
            self.count += 1
            name = f"{self.prefix}_{self.count}"
            with self._admin() as conn:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
            self.made.append(name)
        return _sqlalchemy_url(name)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_all(self) -> None:
        if not self.made or not SERVER_URL:
            return
        try:
            with self._admin() as conn:
                for name in reversed(self.made):
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error:
            pass
        self.made.clear()


DATABASES = Databases()
