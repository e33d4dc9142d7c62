"""`transferbot serve` as an operator runs it: a subprocess, the CLI beside it, signals to stop it."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DOMAIN
from tests.helpers import dns_toml, reply, reply_address, send, wait_until
from transferbot.devtools.sink import MailSink

pytestmark = pytest.mark.slow


class Serve:
    """A `transferbot serve` subprocess whose log is read as it runs."""

    def __init__(self, cfg: Path) -> None:
        self.cfg = cfg
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "transferbot", "--config", str(cfg), "serve"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=cfg.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        match = wait_until(lambda: next((re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                                         for line in self.lines if "listening on" in line), None),
                           timeout=20, what="the daemon to listen")
        self.port = int(match.group(1))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def log(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(30)
        self.reader.join(5)
        return code


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "transferbot", "--config", str(cfg), *args],
                          capture_output=True, text=True, cwd=cfg.parent, timeout=60)


@pytest.fixture
def cfg(tmp_path: Path, sink: MailSink) -> Iterator[Path]:
    path = tmp_path / "transferbot.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "tb.db"}"\n'
        f'[inbound]\nhost = "127.0.0.1"\nport = 0\ndomain = "{DOMAIN}"\n{dns_toml()}'
        f'[outbound]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {sink.port}\n'
        '[workflow]\nsecret = "serve-test"\n[http]\nport = 0\n'
    )
    for args in (["db", "upgrade"],
                 ["account", "add", "acme", "--kind", "customer", "--name", "Acme", "--email", "alice@acme.example.com"],
                 ["account", "add", "vendor", "--kind", "isv", "--name", "Vendor", "--email", "deals@vendor.example.com"],
                 ["account", "add", "r2", "--kind", "reseller", "--name", "R2", "--email", "ops@r2.example.com"],
                 ["entitlement", "add", "ent-1", "--product", "P", "--customer", "acme", "--isv", "vendor"],
                 ["entitlement", "add", "ent-2", "--product", "Q", "--customer", "acme", "--isv", "vendor"]):
        assert cli(path, *args).returncode == 0
    yield path


def test_serve_mails_requests_filed_while_down_and_while_running_then_stops_on_sigterm(
    cfg: Path, sink: MailSink,
) -> None:
    down = cli(cfg, "request", "ent-1", "--to-reseller", "r2")
    assert down.returncode == 0, down.stderr
    filed_while_down = down.stdout.strip()
    serve = Serve(cfg)
    try:
        sink.wait_for(lambda ms: sum(m.message["X-Transferbot-Transfer"] == filed_while_down for m in ms) == 3,
                      timeout=10)
        running = cli(cfg, "request", "ent-2", "--to-reseller", "r2")
        assert running.returncode == 0, running.stderr
        tid = running.stdout.strip()
        # Filed by another process while the daemon runs: mailed within a couple of seconds (poll: 1 s).
        sink.wait_for(lambda ms: sum(m.message["X-Transferbot-Transfer"] == tid for m in ms) == 3, timeout=4)
        conf = next(m for m in sink.to("alice@acme.example.com") if m.message["X-Transferbot-Transfer"] == tid)
        send(serve.port, reply(conf, "alice@acme.example.com", "APPROVE"), reply_address(conf))
        wait_until(lambda: '"decision": "approved"' in cli(cfg, "show", tid, "--json").stdout, what="approval")
    finally:
        code = serve.stop(signal.SIGTERM)
    assert code == 0, serve.log()
    assert "transferbot stopped" in serve.log()
    assert "Traceback" not in serve.log()


def test_sigterm_lets_an_smtp_transaction_under_way_finish_and_nothing_is_lost(cfg: Path, sink: MailSink) -> None:
    serve = Serve(cfg)
    client = smtplib.SMTP("127.0.0.1", serve.port, timeout=10)
    try:
        client.ehlo("client.example.com")
        assert client.mail("alice@acme.example.com")[0] == 250
        assert client.rcpt(f"transfer@{DOMAIN}")[0] == 250
        code, _ = client.docmd("DATA")
        assert code == 354
        client.send(b"From: alice@acme.example.com\r\nSubject: in flight\r\nMessage-ID: <inflight@acme.example.com>\r\n\r\nAPPROVE\r\n")
        serve.proc.send_signal(signal.SIGINT)
        wait_until(lambda: "stopping" in serve.log(), what="the daemon to start stopping")
        client.send(b".\r\n")
        code, text = client.getreply()
        assert code == 250, text
    finally:
        client.close()
    assert serve.stop() == 0
    with sqlite3.connect(cfg.parent / "tb.db") as conn:
        rows = conn.execute("select message_id from inboundmessage").fetchall()
    assert rows == [("<inflight@acme.example.com>",)]
    # A new connection after the stop is refused: the server is gone.
    with pytest.raises(OSError):
        smtplib.SMTP("127.0.0.1", serve.port, timeout=3)
