"""The models (transferbot.store.models) and the migrations describe the same schema, on SQLite and on PostgreSQL:
a database brought to head by the migrations differs in nothing from the models (alembic compare_metadata)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from transferbot.config import parse_config
from transferbot.store import open_store, schema

PG_ADMIN = os.environ.get("TRANSFERBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def differences(url: str) -> list[object]:
    store = open_store(parse_config({"database": {"url": url}}, "test", env={}).database)
    try:
        schema.upgrade(store)
        with store.engine.connect() as connection:
            return list(compare_metadata(MigrationContext.configure(connection), SQLModel.metadata))
    finally:
        store.close()


def test_the_migrated_sqlite_schema_is_the_models(tmp_path: Path) -> None:
    assert differences(f"sqlite:///{tmp_path / 'schema.db'}") == []


def test_the_migrated_postgresql_schema_is_the_models() -> None:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 2})
    name = f"tb_schema_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"no PostgreSQL at {PG_ADMIN}: {exc.orig}")
    try:
        assert differences(sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)) == []
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
