"""Operators of the dashboard: the CLI that manages them, argon2 hashes, sessions in the database, the
migration that makes their tables, the sign-in throttle, the Secure cookie and the trusted proxy header."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.responses import Response
from sqlmodel import SQLModel, select

from tests.conftest import make_config
from tests.dashboard_world import csrf_of
from tests.helpers import RunningDaemon
from transferbot.app import operators
from transferbot.app.context import App, open_app
from transferbot.cli import main
from transferbot.config import ConfigError, parse_config
from transferbot.http.ui.auth import SESSION_COOKIE, Auth
from transferbot.http.ui.throttle import Attempt, SignInThrottle
from transferbot.store.models import Operator, OperatorSession


def run(config: Path, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    old = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = StringIO(stdin), out, err
    try:
        code = main(["--config", str(config), *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.stdin, sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


def test_operator_commands(cli_config: Path, app: App) -> None:
    assert run(cli_config, "operator", "add", "alice", "--password-stdin", stdin="correct horse battery\n")[0] == 0
    with app.store.read() as session:
        row = session.exec(select(Operator).where(Operator.name == "alice")).one()
    assert row.password_hash.startswith("$argon2id$") and "correct horse" not in row.password_hash
    assert operators.password_matches(row.password_hash, "correct horse battery")
    assert not operators.password_matches(row.password_hash, "correct horse batter")
    code, _, err = run(cli_config, "operator", "add", "alice", "--password-stdin", stdin="another password\n")
    assert code == 1 and err.strip() == ("transferbot: error: operator alice exists already "
                                         "(`operator password alice` changes its password)")
    code, _, err = run(cli_config, "operator", "add", "bob", "--password-stdin", stdin="short\n")
    assert code == 1 and "at least 10 characters" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(cli_config, "operator", "add", "bob", "--password-stdin", stdin="")
    assert code == 1 and "no password on standard input" in err
    code, _, err = run(cli_config, "operator", "add", "bob", "hunter2")
    assert code == 2  # a password is never an argument
    code, _, err = run(cli_config, "operator", "add", "bad name", "--password-stdin", stdin="long enough pw\n")
    assert code == 1 and "operator name 'bad name'" in err
    code, out, _ = run(cli_config, "operator", "list", "--json")
    assert code == 0 and [o["name"] for o in json.loads(out)] == ["alice"]
    assert "alice" in run(cli_config, "operator", "list")[1]
    assert run(cli_config, "operator", "password", "alice", "--password-stdin", stdin="a new long password\n")[0] == 0
    assert operators.list_operators(app)[0].name == "alice"
    assert run(cli_config, "operator", "remove", "alice")[0] == 0
    code, _, err = run(cli_config, "operator", "remove", "alice")
    assert code == 1 and err.strip() == "transferbot: error: unknown operator 'alice'"
    for argv in (["operator", "--help"], ["operator", "add", "--help"], ["operator", "remove", "--help"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0


def test_sessions_are_rows_that_a_password_change_or_removal_ends(app: App) -> None:
    view = operators.add_operator(app, "erin", "erin's long password")
    token = app.store.run(operators.open_session, view.id, 1.0)
    with app.store.read() as session:
        assert operators.session_operator(session, token) == "erin"
        assert operators.session_operator(session, token + "x") is None
        stored = session.exec(select(OperatorSession)).one()
    assert stored.token_hash == operators.token_hash(token) and token not in stored.token_hash
    operators.set_password(app, "erin", "erin's new long password")
    with app.store.read() as session:
        assert operators.session_operator(session, token) is None


def test_the_migration_makes_the_tables_the_models_describe(app: App) -> None:
    mine = {"operator", "operatorsession"}

    def about_mine(op: tuple[object, ...]) -> bool:
        for part in op[1:]:
            table = getattr(part, "table", None)
            if part in mine or getattr(part, "name", None) in mine or getattr(table, "name", None) in mine:
                return True
        return False

    with app.store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    ops = [op for entry in diff for op in (entry if isinstance(entry, list) else [entry])]
    assert [op for op in ops if about_mine(op)] == []
    with app.store.engine.connect() as connection:
        bare = MigrationContext.configure(connection, opts={"include_name": lambda name, kind, _p: name not in mine})
        assert any(about_mine(op) for op in compare_metadata(bare, SQLModel.metadata))  # the check can see them


def test_the_throttle_counts_failures_per_name_and_per_client() -> None:
    now = [1000.0]
    t = SignInThrottle(per_name=3, per_client=5, window=60, clock=lambda: now[0])

    def fail(name: str, client: str) -> None:
        attempt = t.reserve(name, client)
        assert isinstance(attempt, Attempt), (name, client, attempt)
        t.failed(attempt)

    for _ in range(3):
        fail("Alice", "10.0.0.1")
    assert t.reserve("alice", "10.0.0.2") == 60  # the name, from anywhere
    for name in ("bob", "carol"):
        fail(name, "10.0.0.1")
    assert t.reserve("dave", "10.0.0.1") == 60  # five failures from one client, whatever the names
    assert isinstance(t.reserve("dave", "10.0.0.3"), Attempt)
    now[0] += 61
    for _ in range(2):
        fail("alice", "10.0.0.1")
    ok = t.reserve("alice", "10.0.0.1")
    assert isinstance(ok, Attempt)
    t.succeeded(ok)
    for _ in range(2):
        fail("alice", "10.0.0.1")
    assert isinstance(t.reserve("alice", "10.0.0.9"), Attempt)  # the failures before the success no longer count
    assert t.reserve("alice", "10.0.0.9") == 60  # ... but the attempts since, even those still being checked, do


def test_the_throttle_counts_an_attempt_before_its_password_is_checked() -> None:
    """Guesses sent at once are limited as guesses in a row: each is counted when it starts, as a failure until
    it is known otherwise; one never checked (the server was busy) is taken back."""
    t = SignInThrottle(per_name=5, per_client=20, window=300, clock=lambda: 0.0)
    burst = [t.reserve("alice", f"10.0.0.{i}") for i in range(30)]
    checked = [a for a in burst if isinstance(a, Attempt)]
    assert len(checked) == 5 and burst[5:] == [300.0] * 25
    t.release(checked[0])  # never checked: it gives its place back
    again = t.reserve("alice", "10.0.0.99")
    assert isinstance(again, Attempt) and t.reserve("alice", "10.0.0.99") == 300.0
    t.succeeded(again)  # a success takes back its own place, and settled failures; not those still being checked
    assert isinstance(t.reserve("alice", "10.0.0.99"), Attempt) and t.reserve("alice", "10.0.0.99") == 300.0
    for attempt in checked[1:]:
        t.failed(attempt)
    flood = [t.reserve(f"user{i}", "10.9.9.9") for i in range(80)]
    assert sum(isinstance(a, Attempt) for a in flood) == 20, "one client address, whatever the names"


def test_the_session_cookie_is_secure_behind_https(tmp_path: Path) -> None:
    config = make_config(tmp_path, http={"public_url": "https://transfers.example.com"})
    a = open_app(config, upgrade=True)
    try:
        response = Response()
        Auth(a).set_session(response, "token")
        cookie = response.headers.getlist("set-cookie")[0].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    finally:
        a.store.close()


def test_trusted_user_header_config_is_checked() -> None:
    assert parse_config({"http": {"trusted_user_header": "X-Forwarded-User"}}, env={}).http.trusted_user_header
    for bad in ("X Forwarded", "Cookie"):
        with pytest.raises(ConfigError, match="http.trusted_user_header"):
            parse_config({"http": {"trusted_user_header": bad}}, env={})


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[httpx.Client]:
    a = open_app(make_config(tmp_path, http={"trusted_user_header": "X-Forwarded-User"}), upgrade=True)
    operators.add_operator(a, "alice", "alice's long password")
    d = RunningDaemon(a).start()
    assert d.daemon is not None and d.daemon.http is not None
    with httpx.Client(base_url=f"http://127.0.0.1:{d.daemon.http.port}") as client:
        yield client
    d.stop()
    a.store.close()


def test_behind_a_trusted_proxy_its_header_names_a_registered_operator(proxied: httpx.Client) -> None:
    client = proxied
    board = client.get("/ui/board", headers={"X-Forwarded-User": "alice"})
    assert board.status_code == 200 and ">alice<" in board.text and SESSION_COOKIE not in board.cookies
    stranger = client.get("/ui/board", headers={"X-Forwarded-User": "mallory"})
    assert stranger.status_code == 303 and stranger.headers["location"].startswith("/ui/sign-in")
    token = csrf_of(board.text)
    nobody = client.post("/ui/outbox/retry-failed", headers={"X-Forwarded-User": "alice"}, data={"csrf": "x"},
                         follow_redirects=False)
    assert nobody.status_code == 403
    done = client.post("/ui/outbox/retry-failed", headers={"X-Forwarded-User": "alice"}, data={"csrf": token},
                       follow_redirects=False)
    assert done.status_code == 303
    other = client.post("/ui/outbox/retry-failed", headers={"X-Forwarded-User": "bob"}, data={"csrf": token},
                        follow_redirects=False)
    assert other.status_code == 401  # bob is not registered: nobody is signed in
