"""The operator's tools against a running daemon: cancel, resend, replace-contact, certificate, verify."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.e2e.test_lifecycle import ADDRESSES, mail, outcome_of
from tests.helpers import RunningDaemon, reply, reply_address, send, wait_until
from transferbot.app.queries.views import transfer_detail
from transferbot.app.transfers import request_transfer
from transferbot.cli import main
from transferbot.devtools.sink import MailSink


def cli(path: Path, *args: str) -> int:
    return main(["--config", str(path), *args])


def test_cancel_tells_everyone_why_and_later_replies_change_nothing(
    daemon: RunningDaemon, sink: MailSink, cli_config: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    tid = request_transfer(daemon.app, "ent-r1", "r2")
    conf = mail(sink, ADDRESSES["customer"], "confirmation", tid)[0]
    assert cli(cli_config, "cancel", tid, "--reason", "The customer changed its mind.") == 0
    for role in ("customer", "isv", "current-reseller", "new-reseller"):
        notice = mail(sink, ADDRESSES[role], "cancelled", tid)[0]
        assert "The customer changed its mind." in notice.text()
        assert notice.message["In-Reply-To"]
    send(daemon.port, reply(conf, ADDRESSES["customer"], "APPROVE"), reply_address(conf))
    assert outcome_of(daemon.app, tid, 1) == ["closed"]
    detail = transfer_detail(daemon.app, tid)
    assert detail["status"] == "cancelled" and detail["entitlement"]["reseller"] == "r1"
    assert detail["parties"][0]["decision"] == "pending"
    capsys.readouterr()
    assert cli(cli_config, "cancel", tid, "--reason", "again") == 1
    assert "only a pending transfer can be cancelled" in capsys.readouterr().err
    assert cli(cli_config, "cancel", "TR-NOPE00", "--reason", "x") == 1
    assert request_transfer(daemon.app, "ent-r1", "r2") != tid, "a new request may be filed"


def test_resend_uses_the_same_token_and_threads_under_the_first_confirmation(
    daemon: RunningDaemon, sink: MailSink, cli_config: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    tid = request_transfer(daemon.app, "ent-direct", "r2")
    first = {role: mail(sink, ADDRESSES[role], "confirmation", tid)[0]
             for role in ("customer", "isv", "new-reseller")}
    send(daemon.port, reply(first["isv"], ADDRESSES["isv"], "APPROVE"), reply_address(first["isv"]))
    assert outcome_of(daemon.app, tid, 1) == ["approved"]
    assert cli(cli_config, "resend", tid) == 0
    for role in ("customer", "new-reseller"):
        again = mail(sink, ADDRESSES[role], "confirmation", tid, count=2)[1]
        assert reply_address(again) == reply_address(first[role])
        assert again.message["In-Reply-To"] == first[role].message_id
    assert len(mail(sink, ADDRESSES["isv"], "confirmation", tid)) == 1, "decided parties are not asked again"
    capsys.readouterr()
    assert cli(cli_config, "resend", tid, "--role", "isv") == 1
    assert "already approved" in capsys.readouterr().err
    assert cli(cli_config, "resend", tid, "--role", "customer") == 1, "resent within the hour"
    assert "at most once an hour" in capsys.readouterr().err
    assert cli(cli_config, "resend", tid, "--role", "customer", "--force") == 0
    mail(sink, ADDRESSES["customer"], "confirmation", tid, count=3)


def test_replace_contact_revokes_the_old_token_and_keeps_decisions(
    daemon: RunningDaemon, sink: MailSink, cli_config: Path,
) -> None:
    tid = request_transfer(daemon.app, "ent-r1", "r2")
    old = mail(sink, ADDRESSES["current-reseller"], "confirmation", tid)[0]
    assert cli(cli_config, "replace-contact", tid, "current-reseller", "New.Ops@R1.example.com") == 0
    new = mail(sink, "new.ops@r1.example.com", "confirmation", tid)[0]
    assert reply_address(new) != reply_address(old)
    assert not new.message["In-Reply-To"], "a fresh confirmation starts a new thread"
    # The old contact answering with the old token no longer counts.
    send(daemon.port, reply(old, ADDRESSES["current-reseller"], "APPROVE"), reply_address(old))
    assert outcome_of(daemon.app, tid, 1) == ["not-a-party"]
    send(daemon.port, reply(new, "new.ops@r1.example.com", "APPROVE"), reply_address(new))
    assert outcome_of(daemon.app, tid, 2)[-1] == "approved"
    detail = transfer_detail(daemon.app, tid)
    reseller = next(p for p in detail["parties"] if p["role"] == "current-reseller")
    assert reseller["emails"] == ["new.ops@r1.example.com"] and reseller["decision"] == "approved"
    assert any(e["kind"] == "contact-replaced" and e["old"] == ["ops@r1.example.com"] for e in detail["events"])
    # Replacing a contact after its decision keeps the decision.
    assert cli(cli_config, "replace-contact", tid, "current-reseller", "third@r1.example.com") == 0
    detail = transfer_detail(daemon.app, tid)
    assert next(p for p in detail["parties"] if p["role"] == "current-reseller")["decision"] == "approved"
    mail(sink, "third@r1.example.com", "status", tid)


def test_replace_contact_refusals(daemon: RunningDaemon, cli_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tid = request_transfer(daemon.app, "ent-direct", "r2")
    capsys.readouterr()
    assert cli(cli_config, "replace-contact", tid, "current-reseller", "x@r1.example.com") == 1
    assert "has no current-reseller" in capsys.readouterr().err
    assert cli(cli_config, "replace-contact", tid, "customer", "not-an-address") == 1
    assert "invalid email address" in capsys.readouterr().err


def test_completion_carries_the_certificate_and_the_chain_verifies(
    daemon: RunningDaemon, sink: MailSink, cli_config: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    tid = request_transfer(daemon.app, "ent-direct", "r2", "Moving to R2 as agreed")
    for n, role in enumerate(("customer", "isv", "new-reseller"), start=1):
        conf = mail(sink, ADDRESSES[role], "confirmation", tid)[0]
        send(daemon.port, reply(conf, ADDRESSES[role], "APPROVE"), reply_address(conf))
        outcome_of(daemon.app, tid, n)
    wait_until(lambda: transfer_detail(daemon.app, tid)["status"] == "completed")
    notice = mail(sink, ADDRESSES["customer"], "completed", tid)[0]
    names = {part.get_filename(): part for part in notice.message.iter_attachments()}
    assert set(names) == {f"certificate-{tid}.html", f"certificate-{tid}.json"}
    attached = json.loads(names[f"certificate-{tid}.json"].get_content())
    assert attached["fingerprint"]["matches"] and attached["chain"]["intact"]

    capsys.readouterr()
    assert cli(cli_config, "certificate", tid, "--format", "json") == 0
    cert = json.loads(capsys.readouterr().out)
    assert cert["transfer"]["status"] == "completed" and cert["fingerprint"]["matches"]
    assert cert["fingerprint"]["stored"] == transfer_detail(daemon.app, tid)["fingerprint"]
    for party in cert["parties"]:
        assert party["decision"] == "approved" and party["decided_at"]
        assert party["reply"]["from"] == ADDRESSES[party["role"]]
        assert party["reply"]["message_id"].startswith("<")
    assert [e["kind"] for e in cert["events"]][0] == "requested"
    assert cli(cli_config, "certificate", tid) == 0
    text = capsys.readouterr().out
    assert "CERTIFICATE OF COMPLETION" in text and "matches" in text and "chain intact" in text
    assert cli(cli_config, "certificate", tid, "--format", "html") == 0
    assert "<h1>Certificate of completion" in capsys.readouterr().out

    assert cli(cli_config, "verify", tid) == 0
    assert "audit chain intact" in capsys.readouterr().out
    db = Path(daemon.app.config.database.url.removeprefix("sqlite:///"))
    with sqlite3.connect(db) as conn:
        seq = conn.execute("select seq from event where transfer_id = ? and kind = 'approved' order by seq limit 1",
                           (tid,)).fetchone()[0]
        conn.execute("update event set data = json_set(data, '$.role', 'isv') where transfer_id = ? and seq = ?",
                     (tid, seq))
    assert cli(cli_config, "verify", tid) == 1
    err = capsys.readouterr().err
    assert f"event #{seq} (approved" in err and "does not match its hash" in err


def test_account_update_and_lists(daemon: RunningDaemon, cli_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(cli_config, "account", "update", "r2", "--email", "sales@r2.example.com", "--locale", "de",
               "--timezone", "Europe/Berlin") == 0
    capsys.readouterr()
    assert cli(cli_config, "account", "list", "--json") == 0
    accounts = {a["id"]: a for a in json.loads(capsys.readouterr().out)}
    assert accounts["r2"]["emails"] == ["sales@r2.example.com"] and accounts["r2"]["locale"] == "de"
    assert cli(cli_config, "entitlement", "list", "--json") == 0
    ents = {e["id"]: e for e in json.loads(capsys.readouterr().out)}
    assert ents["ent-r1"]["reseller"] == "r1" and ents["ent-direct"]["reseller"] is None
    assert cli(cli_config, "account", "update", "ghost", "--name", "X") == 1
    assert cli(cli_config, "account", "update", "r2") == 1
    assert "nothing to update" in capsys.readouterr().err
