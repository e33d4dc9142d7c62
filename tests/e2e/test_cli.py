"""The command line as an operator runs it: exit codes, one-line errors, nothing written on refusal."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from transferbot.cli import main


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "tb.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "tb.db"}"\n'
        f'[outbound]\ntransport = "maildir"\nmaildir = "{tmp_path / "outbox"}"\n'
        '[workflow]\nsecret = "cli-test"\n'
    )
    assert main(["--config", str(path), "db", "upgrade"]) == 0
    return path


def run(cfg: Path, *args: str) -> int:
    return main(["--config", str(cfg), *args])


@pytest.fixture
def registry(cfg: Path) -> Path:
    assert run(cfg, "account", "add", "acme", "--kind", "customer", "--name", "Acme", "--email", "a@acme.example.com",
               "--email", "b@acme.example.com", "--locale", "fr", "--timezone", "Europe/Paris") == 0
    assert run(cfg, "account", "add", "vendor", "--kind", "isv", "--name", "Vendor", "--email", "v@vendor.example.com") == 0
    assert run(cfg, "account", "add", "r1", "--kind", "reseller", "--name", "R1", "--email", "r1@r1.example.com") == 0
    assert run(cfg, "account", "add", "r2", "--kind", "reseller", "--name", "R2", "--email", "r2@r2.example.com") == 0
    assert run(cfg, "entitlement", "add", "ent-d", "--product", "P", "--customer", "acme", "--isv", "vendor") == 0
    assert run(cfg, "entitlement", "add", "ent-r", "--product", "P", "--customer", "acme", "--isv", "vendor",
               "--reseller", "r1") == 0
    return cfg


def db_counts(cfg: Path) -> tuple[int, int, int, int]:
    db = cfg.parent / "tb.db"
    with sqlite3.connect(db) as conn:
        return tuple(conn.execute(f"select count(*) from {t}").fetchone()[0]  # type: ignore[return-value]
                     for t in ("transfer", "party", "event", "outboundmessage"))


def test_request_prints_the_id_alone_and_list_and_show_agree(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert run(registry, "request", "ent-r", "--to-reseller", "r2", "--note", "as agreed") == 0
    out = capsys.readouterr().out
    tid = out.strip()
    assert out == tid + "\n" and tid.startswith("TR-") and len(tid) == 9
    assert run(registry, "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [t["id"] for t in listed] == [tid] and listed[0]["kind"] == "reseller-change"
    assert run(registry, "show", tid.lower(), "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == tid and shown["status"] == "pending" and shown["kind"] == "reseller-change"
    assert shown["entitlement"] == {**shown["entitlement"], "id": "ent-r", "product": "P", "reseller": "r1"}
    assert [(p["role"], p["account"], p["email"], p["decision"]) for p in shown["parties"]] == [
        ("customer", "acme", "a@acme.example.com", "pending"), ("isv", "vendor", "v@vendor.example.com", "pending"),
        ("current-reseller", "r1", "r1@r1.example.com", "pending"), ("new-reseller", "r2", "r2@r2.example.com", "pending")]
    assert shown["events"][0]["kind"] == "requested" and all("at" in e for e in shown["events"])
    assert run(registry, "list", "--status", "completed", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert run(registry, "show", tid) == 0
    assert "current-reseller" in capsys.readouterr().out


def test_list_json_is_an_empty_array_when_there_are_none(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cfg, "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize(("args", "message"), [
    (["request", "nope", "--to-direct"], "unknown entitlement 'nope'"),
    (["request", "ent-d", "--to-reseller", "ghost"], "unknown account 'ghost'"),
    (["request", "ent-d", "--to-reseller", "acme"], "not a reseller"),
    (["request", "ent-d", "--to-direct"], "already a direct order"),
    (["request", "ent-r", "--to-reseller", "r1"], "already through reseller r1"),
])
def test_request_refusals_name_the_problem_and_write_nothing(
    registry: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str,
) -> None:
    before = db_counts(registry)
    capsys.readouterr()
    assert run(registry, *args) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err and "Traceback" not in captured.err
    assert db_counts(registry) == before


def test_a_second_open_transfer_is_refused(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(registry, "request", "ent-r", "--to-direct") == 0
    before = db_counts(registry)
    capsys.readouterr()
    assert run(registry, "request", "ent-r", "--to-reseller", "r2") == 1
    assert "already has an open transfer" in capsys.readouterr().err
    assert db_counts(registry) == before


def test_an_entitlement_that_is_not_active_is_refused(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with sqlite3.connect(registry.parent / "tb.db") as conn:
        conn.execute("update entitlement set state = 'suspended' where id = 'ent-d'")
    capsys.readouterr()
    assert run(registry, "request", "ent-d", "--to-reseller", "r2") == 1
    assert "ent-d is suspended, not active" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["account", "add", "x", "--kind", "customer", "--name", "X", "--email", "not-an-address"], "invalid email address"),
    (["account", "add", "x y", "--kind", "customer", "--name", "X", "--email", "x@x.example.com"], "account id"),
    (["account", "add", "acme", "--kind", "customer", "--name", "X", "--email", "x@x.example.com"], "already exists"),
    (["account", "add", "x", "--kind", "customer", "--name", "X\r\nBcc: evil@example.com", "--email", "x@x.example.com"],
     "one line without control characters"),
    (["account", "add", "x", "--kind", "customer", "--name", "X", "--email", "x@x.example.com", "--timezone", "Mars/Base"],
     "unknown time zone"),
    (["entitlement", "add", "e2", "--product", "P", "--customer", "vendor", "--isv", "vendor"], "not a customer"),
    (["entitlement", "add", "e2", "--product", "P", "--customer", "acme", "--isv", "nobody"], "unknown account 'nobody'"),
])
def test_registry_refusals(registry: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    capsys.readouterr()
    assert run(registry, *args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_usage_errors_exit_2(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run(cfg, "request", "ent-d")
    assert exc.value.code == 2
    assert "one of the arguments --to-reseller --to-direct is required" in capsys.readouterr().err


@pytest.mark.parametrize(("toml", "key"), [
    ("[inbound]\nprot = 25\n", "inbound.prot: unknown key"),
    ("[inbound]\nport = 'twenty'\n", "inbound.port"),
    ("[outbound]\ntransport = 'carrier-pigeon'\n", "outbound.transport"),
    ("[workflow]\noperator_address = 'nobody'\n", "workflow.operator_address"),
    ("[bogus]\n", "bogus: unknown key"),
    ("not toml at all [", "not valid TOML"),
])
def test_a_bad_config_stops_with_an_error_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, key: str,
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    assert main(["--config", str(path), "list"]) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err


def test_secrets_never_show_in_reprs(tmp_path: Path) -> None:
    from transferbot.config import parse_config

    config = parse_config({"workflow": {"secret": "hunter2"}, "outbound": {"password": "pa55"}}, env={})
    assert "hunter2" not in repr(config) and "pa55" not in repr(config)
    assert config.workflow.secret.get_secret_value() == "hunter2"


def test_secret_from_the_environment(tmp_path: Path) -> None:
    from transferbot.config import load_config

    config = load_config(None, env={"TRANSFERBOT_SECRET": "from-env"})
    assert config.workflow.secret.get_secret_value() == "from-env"


# Names and notes: no control characters, line or paragraph separators, or invisible format characters
# (bidirectional controls, zero-width characters).
UNSAFE = {"U+2028": "\u2028", "U+2029": "\u2029", "U+202E": "\u202e", "U+2066": "\u2066", "U+0085": "\x85",
          "U+001B": "\x1b", "U+0009": "\t", "U+202A": "\u202a", "U+200B": "\u200b", "U+FEFF": "\ufeff"}


def _unsafe_commands(char: str) -> list[tuple[list[str], str]]:
    evil = f"Acme{char}Bcc: evil@attacker.example.com"
    return [
        (["account", "add", "x", "--kind", "customer", "--name", evil, "--email", "x@x.example.com"], "name"),
        (["account", "update", "acme", "--name", evil], "name"),
        (["entitlement", "add", "e2", "--product", evil, "--customer", "acme", "--isv", "vendor"], "product"),
        (["request", "ent-r", "--to-reseller", "r2", "--note", f"see{char}below"], "--note"),
    ]


@pytest.mark.parametrize("code", UNSAFE)
def test_names_products_and_notes_refuse_separators_and_bidi_controls(
    registry: Path, capsys: pytest.CaptureFixture[str], code: str,
) -> None:
    char = UNSAFE[code]
    for args, field in _unsafe_commands(char):
        if field == "--note" and char == "\t":
            continue  # a note may be laid out with tabs and line breaks: it is only ever body text
        before = db_counts(registry)
        capsys.readouterr()
        assert run(registry, *args) == 1, args
        err = capsys.readouterr().err
        assert err.startswith(f"transferbot: error: {field} ") and code in err, err
        assert err.count("\n") == 1 and char not in err, "one line, which does not carry the character itself"
        assert db_counts(registry) == before
    with sqlite3.connect(registry.parent / "tb.db") as conn:
        names = [row[0] for row in conn.execute("select name from account union select product from entitlement")]
    assert not any(char in name for name in names)


def test_a_note_may_have_several_lines(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(registry, "request", "ent-r", "--to-reseller", "r2", "--note", "Line one\n\tLine two") == 0
    tid = capsys.readouterr().out.strip()
    assert run(registry, "show", tid, "--json") == 0
    assert json.loads(capsys.readouterr().out)["note"] == "Line one\n\tLine two"


def test_a_cancel_reason_refuses_a_paragraph_separator(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(registry, "request", "ent-r", "--to-reseller", "r2") == 0
    tid = capsys.readouterr().out.strip()
    assert run(registry, "cancel", tid, "--reason", "mistake\u2029Bcc: evil@attacker.example.com") == 1
    err = capsys.readouterr().err
    assert err.startswith("transferbot: error: --reason ") and "U+2029" in err and err.count("\n") == 1
    assert run(registry, "show", tid, "--json") == 0
    assert json.loads(capsys.readouterr().out)["status"] == "pending"


def test_a_separator_already_in_the_database_never_breaks_a_header(
    registry: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Data written before names were checked: the subject is one line, the request goes through."""
    with sqlite3.connect(registry.parent / "tb.db") as conn:
        conn.execute("update entitlement set product = 'P\u2028Bcc: evil@attacker.example.com' where id = 'ent-r'")
    capsys.readouterr()
    assert run(registry, "request", "ent-r", "--to-reseller", "r2") == 0, capsys.readouterr().err
    from transferbot.app.context import open_app
    from transferbot.app.outbox import raw_of
    from transferbot.config import load_config

    app = open_app(load_config(registry))
    with sqlite3.connect(registry.parent / "tb.db") as conn:
        ids = [r[0] for r in conn.execute("select id from outboundmessage")]
    raws = [raw_of(app, i) for i in ids]
    app.store.close()
    assert raws and all(raws)
    for raw in raws:
        head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
        assert "\nBcc:" not in head and "\u2028" not in head


# Every error is one line: database trouble, a closed pipe, demo --keep on a file.

def _config_for(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "db.toml"
    path.write_text(f'[database]\nurl = "{url}"\n[outbound]\nmaildir = "{tmp_path / "outbox"}"\n'
                    '[workflow]\nsecret = "cli-test"\n')
    return path


def _one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("transferbot: error: ") and err.count("\n") == 1, err
    assert "internal error" not in err and "Traceback" not in err and "sqlalche.me" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_a_read_only_database_is_one_line_naming_it(cfg: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cfg, "account", "list") == 0  # the schema exists
    db = tmp_path / "tb.db"
    ro = _config_for(tmp_path, f"sqlite:///file:{db}?mode=ro&uri=true")
    capsys.readouterr()
    assert main(["--config", str(ro), "account", "add", "x", "--kind", "isv", "--name", "X",
                 "--email", "x@x.example.com"]) == 1
    _one_line_error(capsys, str(db), "read-only")


def test_a_file_that_is_not_a_database_is_one_line_naming_it(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "notes.txt"
    db.write_text("These are my notes, not a database. " * 40)
    assert main(["--config", str(_config_for(tmp_path, f"sqlite:///{db}")), "list"] ) == 1
    _one_line_error(capsys, str(db), "not a database")


@pytest.mark.parametrize(("url", "needle"), [
    ("nonsense", "database.url"),
    ("sqlite:////nonexistent-folder-for-transferbot/tb.db", "does not exist"),
    ("mysql://db.example.com/transfers", "database.url"),
])
def test_a_bad_database_url_is_a_configuration_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     url: str, needle: str) -> None:
    assert main(["--config", str(_config_for(tmp_path, url)), "list"]) == 2
    _one_line_error(capsys, needle)


def test_an_unreachable_database_server_is_one_line_naming_it(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://transferbot@db.invalid/transfers"
    assert main(["--config", str(_config_for(tmp_path, url)), "list"]) == 1
    _one_line_error(capsys, "cannot open database postgresql+psycopg://transferbot@db.invalid/transfers")


def test_demo_keep_on_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    assert main(["demo", "--keep", str(existing)]) == 1
    _one_line_error(capsys, str(existing), "not a folder")
    assert existing.read_text() == "mine"


def test_a_closed_pipe_ends_quietly(registry: Path) -> None:
    """`transferbot list | head -1`: the reader went away; no traceback, no 'Exception ignored'."""
    import subprocess
    import sys

    for n in range(30):
        assert run(registry, "account", "add", f"a{n}", "--kind", "customer", "--name", "A" * 150,
                   "--email", f"a{n}@acme.example.com") == 0
    proc = subprocess.Popen([sys.executable, "-m", "transferbot", "--config", str(registry), "account", "list"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before it writes a byte: its first write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert "Traceback" not in err and "Exception ignored" not in err and "internal error" not in err, err
    assert err.count("\n") <= 1, err
