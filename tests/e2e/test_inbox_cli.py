"""`transferbot read`, `inbox` and `inbox retry`: explaining and re-reading inbound mail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from email.policy import SMTP
from pathlib import Path

import pytest

from tests.e2e.test_lifecycle import ADDRESSES, mail
from tests.helpers import RunningDaemon, reply, reply_address, send, wait_until
from transferbot.app import replies
from transferbot.app.queries.views import list_inbox, transfer_detail
from transferbot.app.transfers import request_transfer
from transferbot.cli import main
from transferbot.devtools.sink import MailSink


def run(cfg: Path, *args: str) -> int:
    return main(["--config", str(cfg), *args])


def test_read_explains_a_reply_without_changing_anything(
    daemon: RunningDaemon, sink: MailSink, cli_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    tid = request_transfer(daemon.app, "ent-direct", "r2")
    conf = mail(sink, ADDRESSES["customer"], "confirmation", tid)[0]
    eml = tmp_path / "reply.eml"
    eml.write_bytes(reply(conf, ADDRESSES["customer"], "Approved - no objections.").as_bytes(policy=SMTP))
    capsys.readouterr()
    assert run(cli_config, "read", str(eml), "--rcpt", reply_address(conf), "--mail-from",
               ADDRESSES["customer"], "--client-ip", "127.0.0.1", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["decision"] == "approve" and out["fresh_text"] == "Approved - no objections."
    assert out["auto_reply"] is False and out["bounce"] is False
    assert out["transfer"] == tid and out["party"] == "customer" and out["outcome"] == "approved"
    assert out["lookup"] == "done"
    assert "token=envelope" in out["checks"] and out["checks"][-1] == "record=approve"
    # Without the envelope the token comes from the threading headers; still nothing is recorded.
    assert run(cli_config, "read", str(eml), "--client-ip", "127.0.0.1") == 0
    text = capsys.readouterr().out
    assert "token=thread" in text and "approved" in text
    # Without the address it came from, SPF cannot be checked, and nothing else vouches for this sender.
    assert run(cli_config, "read", str(eml)) == 0
    text = capsys.readouterr().out
    assert "not-a-party" in text and "no --client-ip: SPF not checked" in text
    assert transfer_detail(daemon.app, tid)["parties"][0]["decision"] == "pending"
    assert list_inbox(daemon.app) == []


def test_read_works_in_an_empty_folder_with_no_configuration_and_no_database(tmp_path: Path) -> None:
    """A person holding a .eml file: the reading, the decision and the checks, and a word that no transfer was
    looked up; nothing is created by looking (no database file)."""
    folder = tmp_path / "empty"
    folder.mkdir()
    eml = folder / "reply.eml"
    eml.write_bytes(b"From: Jane <jane@acme.example>\r\nTo: transfer@transfers.example.com\r\n"
                    b"Subject: Re: [TR-7K3Q9M] Please approve\r\nMessage-ID: <r1@acme.example>\r\n\r\n"
                    b"APPROVE\r\n\r\nJane\r\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSFERBOT_")}
    done = subprocess.run([sys.executable, "-m", "transferbot", "read", str(eml), "--json"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["decision"] == "approve" and out["fresh_text"].startswith("APPROVE")
    assert out["lookup"].startswith("not done (database") and "does not exist" in out["lookup"]
    assert out["transfer"] is None and out["outcome"] == "no-transfer" and "token=none" in out["checks"]
    assert sorted(p.name for p in folder.iterdir()) == ["reply.eml"]
    text = subprocess.run([sys.executable, "-m", "transferbot", "read", str(eml)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120).stdout
    assert text.splitlines()[0].startswith("lookup:") and "not done" in text.splitlines()[0]
def test_read_shows_which_words_made_an_approval_unclear(
    daemon: RunningDaemon, sink: MailSink, cli_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    tid = request_transfer(daemon.app, "ent-direct", "r2")
    conf = mail(sink, ADDRESSES["customer"], "confirmation", tid)[0]
    eml = tmp_path / "reply.eml"
    eml.write_bytes(reply(conf, ADDRESSES["customer"], "Approved, please go ahead with the move to Reseller One.")
                    .as_bytes(policy=SMTP))
    capsys.readouterr()
    assert run(cli_config, "read", str(eml), "--client-ip", "127.0.0.1") == 0
    text = capsys.readouterr().out
    assert "decision_problem:  mismatch" in text
    assert "unclear_words:     move to Reseller One" in text
    assert "but this transfer moves the order to Reseller Two" in text
    eml.write_bytes(reply(conf, ADDRESSES["customer"], "Approved – as discussed with Bob on the phone.")
                    .as_bytes(policy=SMTP))
    assert run(cli_config, "read", str(eml), "--client-ip", "127.0.0.1", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["decision"], out["decision_problem"], out["unclear_words"]) == ("unclear", "elsewhere",
                                                                                "as discussed")
    assert transfer_detail(daemon.app, tid)["parties"][0]["decision"] == "pending"


def test_read_shows_an_out_of_office_and_refuses_a_missing_file(
    cli_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    eml = tmp_path / "ooo.eml"
    eml.write_bytes(b"From: bob@acme.example.com\r\nSubject: Abwesenheitsnotiz: Re: [TR-X] transfer\r\n"
                    b"Auto-Submitted: auto-replied\r\n\r\nIch bin nicht im Buero. APPROVE\r\n")
    capsys.readouterr()
    assert run(cli_config, "read", str(eml), "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["auto_reply"] is True and out["outcome"] == "auto-reply"
    assert run(cli_config, "read", str(tmp_path / "missing.eml")) == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "Traceback" not in err


def test_a_message_whose_reading_raised_is_kept_failed_and_can_be_read_again(
    daemon: RunningDaemon, sink: MailSink, cli_config: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tid = request_transfer(daemon.app, "ent-direct", "r2")
    conf = mail(sink, ADDRESSES["customer"], "confirmation", tid)[0]

    def broken(*_args: object) -> None:
        raise RuntimeError("a bug in a check")

    monkeypatch.setattr(replies, "run_chain", broken)  # a programming error, while the daemon runs
    send(daemon.port, reply(conf, ADDRESSES["customer"], "APPROVE"), reply_address(conf))
    failed = wait_until(lambda: [r for r in list_inbox(daemon.app) if r["state"] == "failed"], what="failed")
    assert failed[0]["outcome"] == "failed" and "RuntimeError: a bug in a check" in failed[0]["reason"]
    monkeypatch.undo()  # the bug is fixed
    capsys.readouterr()
    assert run(cli_config, "inbox", "--json") == 0
    listed = json.loads(capsys.readouterr().out)["items"]
    assert [r["outcome"] for r in listed] == ["failed"] and listed[0]["message_id"] == failed[0]["message_id"]
    assert run(cli_config, "inbox", "retry", str(failed[0]["id"])) == 0
    assert f"inbound #{failed[0]['id']}: approved" in capsys.readouterr().out
    assert transfer_detail(daemon.app, tid)["parties"][0]["decision"] == "approved"
    assert run(cli_config, "inbox", "retry", str(failed[0]["id"])) == 1
    assert "was read already" in capsys.readouterr().err
    assert run(cli_config, "inbox", "--transfer", tid) == 0
    table = capsys.readouterr().out
    assert "approved" in table and tid in table
    assert run(cli_config, "inbox", "--transfer", "TR-NOPE00") == 1
