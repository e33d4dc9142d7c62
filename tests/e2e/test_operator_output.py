"""What the operator reads: inbox and outbox in pages, `show` with the mail in and out, `--help` for everything."""

from __future__ import annotations

import argparse
import json
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from transferbot.app.arrivals import store_inbound
from transferbot.app.context import App
from transferbot.app.queries.views import transfer_detail
from transferbot.app.replies import read_inbound
from transferbot.app.transfers import request_transfer
from transferbot.cli import main
from transferbot.cli.parser import build_parser


def run(cfg: Path, *args: str) -> int:
    return main(["--config", str(cfg), *args])


def stranger(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"someone{n}@elsewhere.example.com"
    msg["To"] = "transfer@transfers.example.com"
    msg["Subject"] = f"Hello {n}"
    msg["Message-ID"] = make_msgid(domain="elsewhere.example.com")
    msg.set_content("Who are you?")
    return bytes(msg)


@pytest.fixture
def five_in(app: App) -> list[int]:
    return [store_inbound(app, stranger(n), f"someone{n}@elsewhere.example.com", ["transfer@transfers.example.com"],
                          "127.0.0.1") for n in range(5)]


def test_inbox_pages_with_limit_and_cursor_and_says_how_many_more(
    five_in: list[int], cli_config: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    assert run(cli_config, "inbox", "--limit", "2", "--json") == 0
    page = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in page["items"]] == five_in[:2] and page["more"] == 3 and page["next_cursor"]
    assert run(cli_config, "inbox", "--limit", "2", "--json", "--cursor", page["next_cursor"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in page["items"]] == five_in[2:4] and page["more"] == 1
    assert run(cli_config, "inbox", "--limit", "2", "--json", "--cursor", page["next_cursor"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in page["items"]] == five_in[4:] and page["more"] == 0 and page["next_cursor"] is None
    # Text: the table, and on stderr how many more and how to see them.
    assert run(cli_config, "inbox", "--limit", "3") == 0
    out = capsys.readouterr()
    assert len(out.out.strip().splitlines()) == 1 + 3
    assert "2 more" in out.err and "--limit" in out.err and "--cursor" in out.err and out.err.count("\n") == 1
    assert run(cli_config, "inbox") == 0
    assert capsys.readouterr().err == "", "nothing more to say when all is shown"


def test_inbox_refuses_a_bad_limit_or_cursor(cli_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run(cli_config, "inbox", "--limit", "0")
    assert exc.value.code == 2
    assert "not a positive number" in capsys.readouterr().err
    assert run(cli_config, "inbox", "--cursor", "not-a-cursor") == 1
    err = capsys.readouterr().err
    assert "--cursor" in err and err.count("\n") == 1


def test_outbox_pages_newest_first(world: App, cli_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request_transfer(world, "ent-r1", "r2")  # four confirmations
    capsys.readouterr()
    assert run(cli_config, "outbox", "--json") == 0
    everything = json.loads(capsys.readouterr().out)
    assert everything["more"] == 0 and everything["next_cursor"] is None
    ids = [r["id"] for r in everything["items"]]
    assert len(ids) == 4 and ids == sorted(ids, reverse=True)
    assert set(everything["items"][0]) >= {"id", "kind", "transfer", "to", "status", "attempts", "last_error"}
    assert run(cli_config, "outbox", "--limit", "3", "--json") == 0
    page = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in page["items"]] == ids[:3] and page["more"] == 1
    assert run(cli_config, "outbox", "--limit", "3", "--json", "--cursor", page["next_cursor"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)["items"]] == ids[3:]
    assert run(cli_config, "outbox", "--limit", "1") == 0
    assert "3 more" in capsys.readouterr().err


def test_show_lists_the_mail_in_and_out_and_never_cuts_why_a_reply_did_not_count(
    world: App, cli_config: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    tid = request_transfer(world, "ent-direct", "r2")
    party = next(p for p in transfer_detail(world, tid)["parties"] if p["role"] == "customer")
    msg = EmailMessage()
    msg["From"] = "mallory@lookalike.example.com"
    msg["To"] = "transfer@transfers.example.com"
    msg["Subject"] = f"Re: [{tid}] Please approve"
    msg["Message-ID"] = "<forged-1@lookalike.example.com>"
    outbound = transfer_detail(world, tid)["outbound"]
    msg["In-Reply-To"] = next(o["message_id"] for o in outbound if set(o["to"]) == set(party["emails"]))
    msg.set_content("APPROVE")
    row = read_inbound(world, store_inbound(world, bytes(msg), "mallory@lookalike.example.com",
                                            ["transfer@transfers.example.com"], "127.0.0.1"))
    assert row.outcome == "not-a-party" and len(row.reason) > 60
    capsys.readouterr()
    assert run(cli_config, "show", tid) == 0
    out = capsys.readouterr().out
    assert "mail in:" in out and "mail out:" in out
    assert "<forged-1@lookalike.example.com>" in out and "not-a-party" in out
    assert row.reason in out, "the whole reason, not its first 140 characters"
    for o in outbound:
        assert o["message_id"] in out and o["kind"] in out


def _actions(parser: argparse.ArgumentParser, path: str = "transferbot") -> list[tuple[str, argparse.Action]]:
    found: list[tuple[str, argparse.Action]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            choices = {a.dest: a for a in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((f"{path} {name}", choices[name]))
                found.extend(_actions(sub, f"{path} {name}"))
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            found.append((path, action))
    return found


def test_every_command_and_option_is_described_in_help() -> None:
    missing = [f"{path}: {action.option_strings or action.dest}" for path, action in _actions(build_parser())
               if not (action.help or "").strip()]
    assert not missing, missing


def test_help_for_every_command_prints(capsys: pytest.CaptureFixture[str]) -> None:
    for path, _action in _actions(build_parser()):
        words = path.split()[1:]
        with pytest.raises(SystemExit) as exc:
            main([*words, "--help"])
        assert exc.value.code == 0
        assert "usage: transferbot" in capsys.readouterr().out

