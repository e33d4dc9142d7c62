"""The application context every use case runs in."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlmodel import select

from transferbot.config import Config
from transferbot.core.addresses import AddressBook
from transferbot.core.tokens import new_secret
from transferbot.store import Store, open_store, schema
from transferbot.store.models import Meta

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class App:
    """Configuration, database and the derived pieces of both, built once."""

    config: Config
    store: Store
    secret: bytes
    book: AddressBook

    @property
    def domain(self) -> str:
        return self.book.domain


def _secret(config: Config, store: Store) -> bytes:
    """The token key: from the config, else generated once and kept in the database."""
    configured = config.workflow.secret.get_secret_value()
    if configured:
        return configured.encode("utf-8")
    with store.read() as session:
        row = session.exec(select(Meta).where(Meta.key == "secret")).first()
        if row is not None:
            return row.value.encode("utf-8")
    with store.write() as session:
        row = session.exec(select(Meta).where(Meta.key == "secret")).first()
        if row is None:
            row = Meta(key="secret", value=new_secret())
            session.add(row)
            log.info("no [workflow] secret configured: generated one and kept it in the database")
        return row.value.encode("utf-8")


def open_app(config: Config, upgrade: bool = False) -> App:
    """Open the database (``upgrade``: create it or bring its schema up to date first; else refuse
    one that is missing or behind) and build the context."""
    store = open_store(config.database)
    try:
        if upgrade:
            schema.upgrade(store)
        else:
            schema.check(store)
        return App(config=config, store=store, secret=_secret(config, store), book=config.inbound.book())
    except BaseException:
        store.close()
        raise
