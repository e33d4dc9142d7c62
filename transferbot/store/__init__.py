"""The database: SQLite (embedded, one daemon) or PostgreSQL (several daemons), behind one interface."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from transferbot.config import DatabaseConfig
from transferbot.store import models  # noqa: F401  (registers the tables)
from transferbot.store.base import DatabaseTrouble, Store, StoreError

__all__ = ["DatabaseTrouble", "Store", "StoreError", "open_store"]


def open_store(config: DatabaseConfig) -> Store:
    """Open (not create) the database the URL names; the schema is checked by store.schema."""
    try:
        url = make_url(config.url)
    except ArgumentError:
        raise StoreError(f"database.url: not a database URL: {config.url!r}") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        from transferbot.store.sqlite import SqliteStore

        return SqliteStore(config, url)
    if backend in ("postgresql", "postgres"):
        from transferbot.store.postgres import PostgresStore

        return PostgresStore(config, url.set(drivername="postgresql+psycopg"))
    raise StoreError(f"database.url: {backend!r} is not supported (use sqlite:///PATH or postgresql+psycopg://…)")
