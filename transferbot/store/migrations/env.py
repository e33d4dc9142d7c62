"""Alembic's environment: run on the connection transferbot hands it (see transferbot.store.schema)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from transferbot.store import models  # noqa: F401  (registers the tables)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("transferbot's migrations run through `transferbot db upgrade`, not the alembic command")

context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True,
                  compare_type=False)
with context.begin_transaction():
    context.run_migrations()
