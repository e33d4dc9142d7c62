"""Our outgoing mail is DKIM-signed: every mail of a transfer, verified by dkimpy against a DNS server on
loopback, whether the dispatcher or a render helper process rendered it; keys checked at start."""

from __future__ import annotations

import logging
from pathlib import Path

import dkim
import pytest

from tests.conftest import make_config
from tests.dnsserver import DnsServer
from tests.helpers import RunningDaemon, reply, reply_address, send, wait_until
from tests.mailauth import dkim_lookup, make_key
from transferbot.app import registry
from transferbot.app.context import open_app
from transferbot.app.queries.views import transfer_detail
from transferbot.app.transfers import request_transfer
from transferbot.cli import main
from transferbot.devtools.sink import MailSink, Received

FROM_DOMAIN = "transfers.example.com"  # the From address's domain in make_config
PEOPLE = {"customer": "alice@acme.example.com", "isv": "deals@vendor.example.com", "new-reseller": "ops@r2.example.com"}
GONE = "nobody@gone.example.com"


def _key_file(tmp_path: Path, name: str = "dkim.key") -> Path:
    path = tmp_path / name
    path.write_bytes(make_key().private_pem)
    path.chmod(0o600)
    return path


def _signing(tmp_path: Path, **outbound: object) -> dict[str, object]:
    return {"dkim_keys": [{"selector": "s2026", "key_file": str(_key_file(tmp_path))}], **outbound}


def _of(sink: MailSink, address: str, kind: str, tid: str) -> list[Received]:
    return [m for m in sink.to(address)
            if m.message["X-Transferbot-Kind"] == kind and m.message["X-Transferbot-Transfer"] == tid]


def test_every_mail_of_a_transfer_is_signed_here_and_in_the_helper_processes(
        tmp_path: Path, sink: MailSink, dns_server: DnsServer, caplog: pytest.LogCaptureFixture) -> None:
    dns_server.txt(f"s2026._domainkey.{FROM_DOMAIN}", make_key().record)
    sink.rcpt_codes[GONE] = f"550 5.1.1 <{GONE}>: no such user"  # its refusal alerts the operator
    app = open_app(make_config(tmp_path, sink.port, outbound=_signing(tmp_path, render_processes=1)), upgrade=True)
    registry.add_account(app, "acme", "customer", "Acme", [PEOPLE["customer"]])
    registry.add_account(app, "vendor", "isv", "Vendor", [PEOPLE["isv"]])
    registry.add_account(app, "r2", "reseller", "R2", [PEOPLE["new-reseller"]])
    registry.add_account(app, "gone", "customer", "Gone Ltd", [GONE])
    tids = []
    for n in range(12):  # 36 confirmations claimed at once: a backlog the helper process renders
        registry.add_entitlement(app, f"ent-{n}", f"Analytics {n}", "acme", "vendor")
        tids.append(request_transfer(app, f"ent-{n}", "r2"))
    tid = tids[0]
    registry.add_entitlement(app, "ent-gone", "Analytics Gone", "gone", "vendor")
    request_transfer(app, "ent-gone", "r2")
    caplog.set_level("INFO", logger="transferbot.runners.mail_dispatcher")
    daemon = RunningDaemon(app).start()
    try:
        sink.wait_for(lambda ms: len(ms) >= 36, timeout=60)
        assert any("helper process(es) render a backlog" in r.getMessage() for r in caplog.records)
        wait_until(lambda: [m for m in sink.messages if m.message["X-Transferbot-Kind"] == "operator-alert"],
                   what="the operator's alert")
        first = wait_until(lambda: _of(sink, PEOPLE["customer"], "confirmation", tid), what="confirmation")[0]
        send(daemon.port, reply(first, PEOPLE["customer"], "I am not sure what this is, can you explain it?"),
             reply_address(first))
        wait_until(lambda: _of(sink, PEOPLE["customer"], "help", tid), what="the help mail")
        for address in PEOPLE.values():
            confirmation = wait_until(lambda a=address: _of(sink, a, "confirmation", tid), what="confirmation")[0]
            send(daemon.port, reply(confirmation, address, "APPROVE"), reply_address(confirmation))
        wait_until(lambda: transfer_detail(app, tid)["status"] == "completed", what="completion")
        for address in PEOPLE.values():
            wait_until(lambda a=address: _of(sink, a, "completed", tid), what="completion notice")
        got = list(sink.messages)
    finally:
        daemon.stop()
        app.store.close()
    kinds = {m.message["X-Transferbot-Kind"] for m in got}
    assert {"confirmation", "receipt", "help", "completed", "operator-alert"} <= kinds, kinds
    notice = _of(sink, PEOPLE["customer"], "completed", tid)[0]
    assert any(part.get_content_disposition() == "attachment" for part in notice.message.walk()), "certificate"
    lookup = dkim_lookup(dns_server)
    unsigned = [(m.message["X-Transferbot-Kind"], m.rcpt_tos) for m in got if not dkim.verify(m.raw, dnsfunc=lookup)]
    assert unsigned == [], f"{len(unsigned)} of {len(got)} mails fail DKIM"
    signature = got[0].message["DKIM-Signature"]
    assert f"d={FROM_DOMAIN}" in signature and "s=s2026" in signature and "a=rsa-sha256" in signature



def test_a_tampered_body_fails_verification(tmp_path: Path, dns_server: DnsServer) -> None:
    from transferbot.outbound.signing import load_signer

    dns_server.txt(f"s2026._domainkey.{FROM_DOMAIN}", make_key().record)
    signer = load_signer(make_config(tmp_path, outbound=_signing(tmp_path)))
    assert signer is not None
    raw = signer(b"From: Transfers <transfer@transfers.example.com>\r\nTo: alice@acme.example.com\r\n"
                 b"Subject: Transfer TR-1\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nApprove?\r\n")
    lookup = dkim_lookup(dns_server)
    assert dkim.verify(raw, dnsfunc=lookup)
    assert not dkim.verify(raw.replace(b"Approve?", b"Approved."), dnsfunc=lookup)
    assert not dkim.verify(b"Subject: Free money\r\n" + raw, dnsfunc=lookup), "an added Subject is oversigned"


def _serve(tmp_path: Path, capsys: pytest.CaptureFixture[str], outbound: str) -> tuple[int, str]:
    config = tmp_path / "tb.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "tb.db"}"\n'
                      '[inbound]\nport = 0\ndomain = "transfers.example.com"\n'
                      '[workflow]\nsecret = "s"\n[http]\nport = 0\n'
                      f'[outbound]\ntransport = "maildir"\nmaildir = "{tmp_path / "out"}"\n{outbound}\n')
    main(["--config", str(config), "db", "upgrade"])  # refused too when the configuration is
    capsys.readouterr()
    code = main(["--config", str(config), "serve"])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(("content", "said"), [
    (None, "No such file"), (b"not a key at all\n", "not a DKIM private key"),
    (b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", "cannot sign with it"),
])
def test_the_daemon_refuses_to_start_with_a_key_it_cannot_use(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, said: str) -> None:
    key = tmp_path / "broken.key"
    if content is not None:
        key.write_bytes(content)
    code, err = _serve(tmp_path, capsys, f'dkim_keys = [{{selector = "s1", key_file = "{key}"}}]')
    assert code == 2
    assert err.count("\n") == 1 and str(key) in err and said in err and "Traceback" not in err, err


@pytest.mark.parametrize("domain", ["other.example", "mail.transfers.example.com", "example.com.evil"])
def test_the_daemon_refuses_to_sign_for_a_domain_that_is_not_the_from_domain_or_its_parent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], domain: str) -> None:
    code, err = _serve(tmp_path, capsys, f'dkim_domain = "{domain}"\n'
                                         f'dkim_keys = [{{selector = "s1", key_file = "{_key_file(tmp_path)}"}}]')
    assert code == 2
    assert err.count("\n") == 1 and "outbound.dkim_domain" in err and domain in err, err


def test_a_parent_domain_signs(tmp_path: Path) -> None:
    config = make_config(tmp_path, outbound=_signing(tmp_path, dkim_domain="example.com"))
    assert config.dkim_domain == "example.com"


def test_without_a_key_the_daemon_starts_and_warns_once_that_the_relay_must_sign(
        tmp_path: Path, sink: MailSink, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="transferbot.runners.daemon")
    app = open_app(make_config(tmp_path, sink.port), upgrade=True)
    daemon = RunningDaemon(app).start()
    try:
        assert daemon.daemon is not None and daemon.daemon.signer is None
    finally:
        daemon.stop()
        app.store.close()
    warnings = [r.getMessage() for r in caplog.records if "relay must sign" in r.getMessage()]
    assert len(warnings) == 1 and FROM_DOMAIN in warnings[0]


def test_keygen_writes_a_private_key_and_prints_a_record_that_verifies(
        tmp_path: Path, dns_server: DnsServer, capsys: pytest.CaptureFixture[str]) -> None:
    from transferbot.outbound.signing import load_signer

    out = tmp_path / "s2027.key"
    config = tmp_path / "tb.toml"
    config.write_text('[inbound]\ndomain = "transfers.example.com"\n[workflow]\nsecret = "s"\n')
    assert main(["--config", str(config), "dkim", "keygen", "--selector", "s2027", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.stat().st_mode & 0o777 == 0o600
    name, _, value = printed.strip().partition(" TXT ")
    assert name == f"s2027._domainkey.{FROM_DOMAIN}."
    assert value.startswith('"v=DKIM1; k=rsa; p=')
    dns_server.txt(name.rstrip("."), value.strip('"'))
    signer = load_signer(make_config(tmp_path, outbound={"dkim_keys": [{"selector": "s2027", "key_file": str(out)}]}))
    assert signer is not None
    raw = signer(b"From: transfer@transfers.example.com\r\nTo: a@b.example\r\nSubject: x\r\n\r\nbody\r\n")
    assert dkim.verify(raw, dnsfunc=dkim_lookup(dns_server))
    assert main(["--config", str(config), "dkim", "keygen", "--selector", "s2027", "--out", str(out)]) == 1
    assert "exists already" in capsys.readouterr().err, "a key is never overwritten"


def test_an_ed25519_key_adds_a_second_signature_and_both_verify(
        tmp_path: Path, dns_server: DnsServer, capsys: pytest.CaptureFixture[str]) -> None:
    from transferbot.outbound.signing import load_signer

    config = tmp_path / "tb.toml"
    config.write_text('[inbound]\ndomain = "transfers.example.com"\n[workflow]\nsecret = "s"\n')
    out = tmp_path / "e2026.key"
    assert main(["--config", str(config), "dkim", "keygen", "--selector", "e2026", "--algorithm", "ed25519",
                 "--out", str(out)]) == 0
    name, _, value = capsys.readouterr().out.strip().partition(" TXT ")
    assert value.startswith('"v=DKIM1; k=ed25519; p=')
    dns_server.txt(name.rstrip("."), value.strip('"'))
    dns_server.txt(f"s2026._domainkey.{FROM_DOMAIN}", make_key().record)
    keys = [{"selector": "s2026", "key_file": str(_key_file(tmp_path))}, {"selector": "e2026", "key_file": str(out)}]
    signer = load_signer(make_config(tmp_path, outbound={"dkim_keys": keys}))
    assert signer is not None
    raw = signer(b"From: transfer@transfers.example.com\r\nTo: a@b.example\r\nSubject: x\r\n\r\nbody\r\n")
    checker = dkim.DKIM(raw)
    lookup = dkim_lookup(dns_server)
    assert [checker.verify(idx=i, dnsfunc=lookup) for i in range(2)] == [True, True]
    assert b"a=rsa-sha256" in raw and b"a=ed25519-sha256" in raw
