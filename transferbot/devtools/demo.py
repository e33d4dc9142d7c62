"""`transferbot demo`: the whole story on this machine, with no set-up.

A throwaway database, the daemon on a free loopback port, an SMTP sink on
another standing in for everyone's mailbox, sample accounts in three
languages, a transfer filed, every party replying over real SMTP (one of
them after an out-of-office), and the timeline printed as it happens.
Sender authentication is on, as by default: each party's domain publishes
SPF, DKIM and DMARC records (answered from memory, standing in for the
internet's DNS) and every genuine reply is DKIM-signed; a forged approval
in the ISV's name is refused, and the ISV is told.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

import aiosmtplib

from transferbot.app import registry
from transferbot.app.context import App, open_app
from transferbot.app.queries.views import transfer_detail
from transferbot.app.transfers import request_transfer
from transferbot.config import parse_config
from transferbot.core.clock import now
from transferbot.devtools.sink import MailSink, Received
from transferbot.inbound.senderauth.dns import StaticResolver
from transferbot.runners.daemon import Daemon

DOMAIN = "transfers.demo.example"
SELECTOR = "demo"
# A key for the demo's make-believe mail servers only: published in the demo's in-memory DNS, never anywhere else.
DEMO_DKIM_KEY = """-----BEGIN RSA PRIVATE KEY-----
MIIEpQIBAAKCAQEA19YYRmnSImVxuqGz2VXW47ohouLPnHyzI7PCrYzP6aEdHTbI
jORgEcVSK3DmHIId44w4dqGKrSHLBl6QVV30bxRNOgH/taACyqmxcrNLtSsPxc4f
hcWwVorTb5ssP7umq5o67lZfvp5r248IGsgFO4+fSFBFYmXIvH56Ys/BnKd4NoGV
PrFeYlTiy7ZGt8yGv6iEgKPTrTZzACPbwM1GAiN7oNjG32l52VO4uRPO9HqRPIub
IGTJnZAt23ULFzaSdqH1WUt+Gjt3fkIeFveyxsgdqlkCIMiH3QfvZOT6DOAzzUDB
qke04W0RCaDgNKByRL+gsdG0XFvlclc3r7eCfwIDAQABAoIBAF1NzSKrXk7GQdrn
SmM6q3G4pg/PMua4NYzKie8Sf1LE9lwJsbrOgwVLotDqtl8+lIMou8P044kioay4
Nnbg7ekTAqt/77XpXSuVHgOypJjF68Sb7Z6brjZLP0nw77kBevSV8MHVjwBNZdz9
QQiqzTBJTxcotEXsMFHj7y5GF7GLHL3PkIsT3CNIPaKdJIUzQSBfXN+hlydF5z6C
Gfl0UpMWBULa050nYLEjcEhE1WLhh0ynwQzOiVAyjTvJnr4jcYRnWOasnZkQCvnn
a4yW+O3vakeMRgd5Cn/PWGitkRTwep4lIVxZTUFt57T+NB8OwZvmGmFffeDgOlWJ
ZfC6xJkCgYEA66D7kJWEfmWNrThGO8eWWKRRsfnJBFwkP/lO7IFjhAqkvRNvDtJ1
Xe5glwzugmlJuIb58uzMVJX0WFZLFTAvLaJuHXY1OAk0kbpJ6U+MDIoZRnVsR+gc
Yvj5BFH90ClcugY44JGPSd1ms89xbxopGupWOXMRP3QplcXAK9MGDoUCgYEA6n8O
oYCpwEUG4xG1kuaG7FY7S98thMVGJuDnhr/79eSomuym6nHb68TjhcIce6ISIaMw
bpLbcLHgQpUDsnpL6tERd6vPE4fmNrzoqPt7P/oe0oRyJfp6DG6ANcrpwAbnFX1o
TFvqWIDY5MJ+qOO3ygz8CaChnUkm+mc5B/UVhjMCgYEArCY0RUEHyPTXGqwXnAtI
y8BZs4cEFzxee6Lgx6gMlebUzxMIu7KFbzf+t70J8JuN8dQjfxkEe/QGzhdVycgn
X9bhToMThLos/x80atHkRzEKIFEf6DUrsB+oh0CECHZ/uaVcHq4aGuQ36bzwajSZ
vYFht51bB5oN28/bg+kr7qUCgYEAyYY8CqvKNsSbsJVNmFupZH6PIxs/wTTQnyT1
lKZ1YNML22i54g3L1Ik2h4NUeyPDtUjLnJt1HxqfAlmR/daAW+MkwdXTdpN6U1xy
DpdhSpAn4P+WIfFq5jgo0xH5ZOAJxDwsYEM12K2SuLY1p+tbzbbu+08i1UtCxjvj
lWUZBGUCgYEAmXDhQujN/e4oL/5/qBlfJ0kMkBtVPMQlMPGfsNuohUDu2jIqCcWh
grWcZdd1kHs255q9L7ECHOBeubFJ6/oLB1CQijgsop6ay4wWXxGqvvnVCeg2kR6E
OPISCukxDRwhUXUXp/aRmDd362tDUSHvq3G8JYazn0Pou/CY/xmZtao=
-----END RSA PRIVATE KEY-----
"""
DEMO_DKIM_PUBLIC = (
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA19YYRmnSImVxuqGz2VXW47ohouLPnHyzI7PCrYzP6aEdHTbIjORgEcVS"
    "K3DmHIId44w4dqGKrSHLBl6QVV30bxRNOgH/taACyqmxcrNLtSsPxc4fhcWwVorTb5ssP7umq5o67lZfvp5r248IGsgFO4+fSFBF"
    "YmXIvH56Ys/BnKd4NoGVPrFeYlTiy7ZGt8yGv6iEgKPTrTZzACPbwM1GAiN7oNjG32l52VO4uRPO9HqRPIubIGTJnZAt23ULFzaS"
    "dqH1WUt+Gjt3fkIeFveyxsgdqlkCIMiH3QfvZOT6DOAzzUDBqke04W0RCaDgNKByRL+gsdG0XFvlclc3r7eCfwIDAQAB"
)

ACCOUNTS = [
    ("contoso", "customer", "Contoso SARL", ["claire.martin@contoso.example"], "fr", "Europe/Paris"),
    ("fabrikam", "isv", "Fabrikam Software", ["deals@fabrikam.example"], "en", "America/New_York"),
    ("northwind", "reseller", "Northwind Partners GmbH", ["vertrieb@northwind.example"], "de", "Europe/Berlin"),
    ("tailspin", "reseller", "Tailspin Cloud Ltd", ["channel@tailspin.example"], "en", "Europe/London"),
]

ANSWERS = {"customer": "Approuvé.", "isv": "APPROVE", "current-reseller": "Genehmigt",
           "new-reseller": "Approve - happy to take this one on."}


def _say(start: float, text: str) -> None:
    print(f"  {time.monotonic() - start:6.2f}s  {text}", flush=True)


def reply_to(original: Received, sender: str, answer: str, when: datetime) -> EmailMessage:
    """A reply as a mail client writes it: fresh text on top, the original quoted below."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = str(original.message["Reply-To"])
    msg["Subject"] = "Re: " + original.subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    msg["In-Reply-To"] = original.message_id
    msg["References"] = original.message_id
    quoted = "\n".join("> " + line if line else ">" for line in original.text().splitlines())
    attribution = f"On {original.message['Date']}, {original.message['From']} wrote:"
    msg.set_content(f"{answer}\n\n{attribution}\n{quoted}\n")
    return msg


def out_of_office(original: Received, sender: str, when: datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = str(original.message["Reply-To"])
    msg["Subject"] = "Automatische Antwort: " + original.subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("Ich bin bis Montag nicht im Büro. APPROVE-Anfragen bearbeite ich danach.\n")
    return msg


def demo_dns() -> StaticResolver:
    """Each party's domain as a well-run one publishes it: DMARC p=reject, DKIM, SPF naming its own servers."""
    records: dict[str, dict[str, list[str]]] = {}
    for _id, _kind, _name, emails, _locale, _tz in ACCOUNTS:
        domain = emails[0].rpartition("@")[2]
        records[domain] = {"TXT": ["v=spf1 ip4:192.0.2.25 -all"]}
        records[f"_dmarc.{domain}"] = {"TXT": ["v=DMARC1; p=reject"]}
        records[f"{SELECTOR}._domainkey.{domain}"] = {"TXT": [f"v=DKIM1; k=rsa; p={DEMO_DKIM_PUBLIC}"]}
    records[f"{SELECTOR}._domainkey.{DOMAIN}"] = {"TXT": [f"v=DKIM1; k=rsa; p={DEMO_DKIM_PUBLIC}"]}  # our own mail
    records["evil.example"] = {"TXT": ["v=spf1 +all"]}
    return StaticResolver(records)


def verified(raw: bytes) -> bool:
    """Whether our mail's DKIM signature verifies against the demo's DNS, as a party's provider checks it."""
    import dkim

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        if name.decode().rstrip(".") != f"{SELECTOR}._domainkey.{DOMAIN}":
            return None
        return f"v=DKIM1; k=rsa; p={DEMO_DKIM_PUBLIC}".encode()
    return bool(dkim.verify(raw, dnsfunc=lookup))


def signed(msg: EmailMessage, selector: str = SELECTOR) -> bytes:
    """The message as the sender's mail server sends it: DKIM-signed (with the demo key, published at
    ``selector``) for the From domain. The benchmark signs its replies with it too."""
    import dkim

    raw = msg.as_bytes(policy=SMTP)
    domain = str(msg["From"]).rpartition("@")[2].rstrip(">").encode()
    signature = dkim.sign(raw, selector.encode(), domain, DEMO_DKIM_KEY.encode(),
                          include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return bytes(signature) + raw


async def _send(port: int, msg: EmailMessage | bytes, rcpt: str, sender: str) -> None:
    raw = msg.as_bytes(policy=SMTP) if isinstance(msg, EmailMessage) else msg
    await aiosmtplib.send(raw, sender=sender, hostname="127.0.0.1", port=port, recipients=[rcpt], timeout=10)


async def _wait(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise TimeoutError("the demo waited too long; see the log above")
        await asyncio.sleep(0.05)


def _setup(app: App) -> None:
    for account_id, kind, name, emails, locale, tz in ACCOUNTS:
        registry.add_account(app, account_id, kind, name, emails, locale, tz)
    registry.add_entitlement(app, "ent-1001", "Fabrikam Analytics Enterprise", "contoso", "fabrikam", "northwind")


async def run_demo(keep: Path | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="transferbot-demo-") as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / "demo.db"
        if db.exists():
            print(f"transferbot demo: {db} exists already; give --keep an empty folder", file=sys.stderr)
            return 1
        sink = await MailSink().start()
        key = folder / "dkim-demo.key"  # our own mail is signed with the demo key too, published above
        key.write_text(DEMO_DKIM_KEY)
        key.chmod(0o600)
        config = parse_config({
            "database": {"url": f"sqlite:///{db}"},
            "inbound": {"host": "127.0.0.1", "port": 0, "domain": DOMAIN},
            "outbound": {"transport": "smtp", "host": "127.0.0.1", "port": sink.port, "poll_seconds": 0.2,
                         "dkim_keys": [{"selector": SELECTOR, "key_file": str(key)}]},
            "workflow": {"secret": "demo-secret-not-for-production", "operator_address": "ops@marketplace.example"},
            "http": {"port": 0},
        }, "demo")
        app = await asyncio.to_thread(open_app, config, True)
        await asyncio.to_thread(_setup, app)
        daemon = Daemon(app, resolver=demo_dns())
        await daemon.start()
        start = time.monotonic()
        try:
            await _story(app, daemon, sink, start, folder)
        finally:
            await daemon.stop()
            await sink.stop()
            app.store.close()
    return 0


async def _story(app: App, daemon: Daemon, sink: MailSink, start: float, folder: Path) -> None:
    print("transferbot demo: a throwaway marketplace on this machine\n")
    print(f"  database      {folder / 'demo.db'}")
    print(f"  inbound SMTP  127.0.0.1:{daemon.port}  (replies to *@{DOMAIN})")
    print(f"  relay         127.0.0.1:{sink.port}  (an SMTP sink standing in for everyone's mailbox)\n")
    for account_id, kind, name, emails, locale, tz in ACCOUNTS:
        print(f"  {kind:<9} {account_id:<10} {name:<26} {emails[0]:<32} {locale}  {tz}")
    print("  entitlement ent-1001: Fabrikam Analytics Enterprise, bought by Contoso through Northwind\n")

    tid = await asyncio.to_thread(request_transfer, app, "ent-1001", "tailspin",
                                  "Contoso asked to consolidate its subscriptions with Tailspin.")
    _say(start, f"the ISV files {tid}: move ent-1001 from Northwind to Tailspin (reseller-change)")
    confirmations = await sink.await_for(lambda ms: len(ms) >= 4)
    by_address: dict[str, Received] = {}
    for m in confirmations[:4]:
        by_address[m.rcpt_tos[0]] = m
        _say(start, f"-> {m.rcpt_tos[0]:<30} {m.subject}")

    detail = await asyncio.to_thread(transfer_detail, app, tid)
    order = ["current-reseller", "customer", "new-reseller", "isv"]
    parties = {p["role"]: p for p in detail["parties"]}
    for role in order:
        party = parties[role]
        address = party["email"]
        original = by_address[address]
        rcpt = str(original.message["Reply-To"]).rpartition("<")[2].rstrip(">")
        if role == "current-reseller":
            await _send(daemon.port, out_of_office(original, address, now()), rcpt, address)
            await _wait(lambda: _inbox_count(app, tid) >= 1)  # nothing was received before it
            _say(start, f"<- {address:<30} out-of-office reply: recorded as auto-reply, not a decision")
        if role == "isv":
            want = await asyncio.to_thread(_inbox_count, app, tid) + 1
            forged = reply_to(original, address, "APPROVE", now())
            await _send(daemon.port, forged, rcpt, "mallory@evil.example")  # right token, forged From, no signature
            await _wait(lambda want=want: _inbox_count(app, tid) >= want)
            _say(start, f"<- {address:<30} \"APPROVE\" forged by mallory@evil.example: {_last_outcome(app, tid)}")
            _say(start, f"   why: {_last_reason(app, tid)}")
        answer = ANSWERS[role]
        want = await asyncio.to_thread(_inbox_count, app, tid) + 1  # counted before sending: no race
        await _send(daemon.port, signed(reply_to(original, address, answer, now())), rcpt, address)
        await _wait(lambda want=want: _inbox_count(app, tid) >= want)
        _say(start, f"<- {address:<30} \"{answer}\" (DKIM-signed, original quoted below it): "
                    f"{_last_outcome(app, tid)}")

    await sink.await_for(lambda ms: sum(m.message["X-Transferbot-Kind"] == "completed" for m in ms) >= 4, timeout=15)
    detail = await asyncio.to_thread(transfer_detail, app, tid)
    ent = detail["entitlement"]
    _say(start, f"{tid} is {detail['status']}: ent-1001 now goes through {ent['reseller']}")
    notices = [m for m in sink.unique() if m.message["In-Reply-To"] and m not in confirmations[:4]]
    for m in notices:
        if "[" + tid + "]" in m.subject:
            _say(start, f"-> {m.rcpt_tos[0]:<30} {m.subject}")
    print(f"\naudit trail of {tid} (what `transferbot show {tid}` prints):")
    for event in detail["events"]:
        brief = {k: v for k, v in event.items() if k in ("role", "mail", "outcome", "from", "to", "decided_by")}
        print(f"  {event['at'][11:23]}  {event['kind']:<22} {', '.join(f'{k}={v}' for k, v in brief.items())}")
    mails = sink.unique()
    good = sum(verified(m.raw) for m in mails)
    print(f"\nAll mail the parties received is in the sink: {len(mails)} messages, {good} of them "
          f"DKIM-signed for {DOMAIN} and verified.")
    print("Next: the README shows how to run `transferbot serve` against a real relay.")


def _inbox_count(app: App, tid: str) -> int:
    from transferbot.app.queries.views import list_inbox

    return len([r for r in list_inbox(app, tid) if r["state"] == "done"])


def _last_outcome(app: App, tid: str) -> str:
    from transferbot.app.queries.views import list_inbox

    rows = list_inbox(app, tid)
    return rows[-1]["outcome"] if rows else "-"


def _last_reason(app: App, tid: str) -> str:
    from transferbot.app.queries.views import list_inbox

    rows = list_inbox(app, tid)
    return rows[-1]["reason"] if rows else "-"
