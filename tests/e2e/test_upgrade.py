"""Upgrading in place: a database release 0.1 made, with its data, brought to this release's schema.

The fixture is a dump of a database that release 0.1 (commit b30b963) made with its create_all and
its own code: accounts, a completed transfer, a pending one with two approvals, and mail it queued
and rendered but had not sent yet. After `transferbot db upgrade`, the daemon sends that mail as it
was rendered, the pending transfer completes, and every audit chain still verifies.
"""

from __future__ import annotations

import gzip
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import make_config
from tests.helpers import RunningDaemon, reply, reply_address, send, wait_until
from tests.paths import TESTS
from transferbot.app.context import open_app
from transferbot.app.queries.certificate import verify
from transferbot.app.queries.views import list_transfers, transfer_detail
from transferbot.cli import main
from transferbot.config import DatabaseConfig
from transferbot.devtools.sink import MailSink, Received
from transferbot.store import open_store, schema

FIXTURE = TESTS / "fixtures" / "release-0.1.sql.gz"


def release_01_database(path: Path) -> None:
    """The dump, with its pending transfer's deadline a week from today.

    The dump was taken on 2026-11-27 and that transfer expired on 2026-12-04: run on any later day, the daemon
    would rightly expire it instead of completing it. Only the transfer row's deadline moves; the audit chain
    and the queued mail are as release 0.1 wrote them.
    """
    week_ahead = (datetime.now(UTC) + timedelta(days=7)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(path) as db:
        db.executescript(gzip.decompress(FIXTURE.read_bytes()).decode("utf-8"))
        db.execute("UPDATE transfer SET expires_at = ? WHERE status = 'pending'", (week_ahead,))


@pytest.fixture
def old(tmp_path: Path, sink: MailSink) -> Path:
    release_01_database(tmp_path / "tb.db")
    cfg = tmp_path / "tb.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "tb.db"}"\n[inbound]\ndomain = "transfers.example.com"\n'
                   '[workflow]\nsecret = "test-secret"\n')
    return cfg


def test_every_command_but_db_upgrade_refuses_a_database_that_is_behind(
        old: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["--config", str(old), "list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "behind" in err and "transferbot db upgrade" in err
    assert main(["--config", str(old), "db", "current"]) == 0
    assert capsys.readouterr().out.strip() == f"0001 (behind {schema.head()})"


def test_a_missing_database_is_not_created_by_looking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "tb.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "nothing.db"}"\n[workflow]\nsecret = "x"\n')
    assert main(["--config", str(cfg), "list"]) == 1
    assert "does not exist; create it with `transferbot db upgrade`" in capsys.readouterr().err
    assert not (tmp_path / "nothing.db").exists()
    assert main(["--config", str(cfg), "db", "upgrade"]) == 0
    assert (tmp_path / "nothing.db").exists() and main(["--config", str(cfg), "list", "--json"]) == 0


def test_a_release_01_database_is_upgraded_in_place_and_its_pending_transfer_completes(
        old: Path, tmp_path: Path, sink: MailSink, capsys: pytest.CaptureFixture[str]) -> None:
    with sqlite3.connect(tmp_path / "tb.db") as db:
        queued = {row[0]: bytes(row[1]) for row in db.execute(
            "select m.message_id, r.raw from outboundmessage m join outboundraw r on r.id = m.id "
            "where m.status = 'queued'")}
    assert len(queued) == 14
    assert main(["--config", str(old), "db", "upgrade"]) == 0
    assert f"upgraded from 0001 to {schema.head()}" in capsys.readouterr().err
    assert main(["--config", str(old), "db", "upgrade"]) == 0  # again: nothing to do
    app = open_app(make_config(tmp_path, sink.port, database={"url": f"sqlite:///{tmp_path / 'tb.db'}"}))
    try:
        before = {t["id"]: t for t in list_transfers(app)}
        assert sorted(t["status"] for t in before.values()) == ["completed", "pending"]
        for tid in before:
            assert verify(app, tid)[0]
        [pending] = [t for t in before.values() if t["status"] == "pending"]
        assert pending["parties"] == {"customer": "approved", "isv": "approved", "current-reseller": "pending",
                                      "new-reseller": "pending"}
        d = RunningDaemon(app).start()
        try:
            # The mail release 0.1 queued goes out as it was rendered then, byte for byte.
            sink.wait_for(lambda ms: {m.message_id for m in ms} >= set(queued), timeout=20)
            for m in sink.unique():
                if m.message_id in queued:
                    assert m.raw.replace(b"\r\n", b"\n").rstrip() == queued[m.message_id].replace(b"\r\n", b"\n").rstrip()
            for address in ("ops@r1.example.com", "ops@r2.example.com"):
                conf = _confirmation(sink, address, pending["id"])
                send(d.port, reply(conf, address, "APPROVE"), reply_address(conf), mail_from=address)
            wait_until(lambda: transfer_detail(app, pending["id"])["status"] == "completed", what="completed")
            detail = transfer_detail(app, pending["id"])
            assert detail["entitlement"]["reseller"] == "r2"
            assert verify(app, pending["id"])[0]
            sink.wait_for(lambda ms: sum(m.message["X-Transferbot-Kind"] == "completed"
                                         and m.message["X-Transferbot-Transfer"] == pending["id"] for m in ms) == 4)
        finally:
            d.stop()
    finally:
        app.store.close()


def _confirmation(sink: MailSink, address: str, tid: str) -> Received:
    found = [m for m in sink.to(address) if m.message["X-Transferbot-Transfer"] == tid
             and m.message["X-Transferbot-Kind"] == "confirmation"]
    assert found, address
    raw = found[0].raw
    return Received(found[0].mail_from, found[0].rcpt_tos, raw,
                    BytesParser(policy=policy.default).parsebytes(raw))  # type: ignore[arg-type]


def test_daemons_starting_at_once_on_one_postgresql_database_migrate_it_once(tmp_path: Path) -> None:
    from tests.postgres import DATABASES

    url = DATABASES.new(migrated=False)
    errors: list[BaseException] = []
    results: list[tuple[str | None, str]] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        store = open_store(DatabaseConfig(url=url))
        try:
            barrier.wait()
            results.append(schema.upgrade(store))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors
        assert sorted(str(before) for before, _after in results) == sorted(["None"] + [schema.head()] * 3)
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("select version_num from alembic_version")).all() == [(schema.head(),)]
        engine.dispose()
    finally:
        DATABASES.drop(url)


def test_the_head_the_code_expects_is_the_head_of_the_migration_scripts_shipped() -> None:
    """schema.HEAD lets every command check a database without importing Alembic; a new migration must move it."""
    assert schema.head() == schema.scripts_head()


def test_checking_a_database_does_not_import_alembic(tmp_path: Path) -> None:
    """A daemon checks its database at every start; Alembic (about 9 MiB) is imported only to upgrade."""
    import subprocess
    import sys

    config = make_config(tmp_path)
    open_app(config, upgrade=True).store.close()
    url = config.database.url
    code = ("import sys\n"
            "from transferbot.config import DatabaseConfig\n"
            "from transferbot.store import open_store, schema\n"
            f"store = open_store(DatabaseConfig(url={url!r}))\n"
            "schema.check(store)\n"
            "print(schema.current(store), 'alembic' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [schema.head(), "False"]
