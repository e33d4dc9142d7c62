"""A small marketplace for the dashboard's tests: the real daemon, signed replies, two forged ones, an operator.

Every party's domain publishes what a well-run domain publishes (SPF naming its own servers, a DKIM key,
DMARC p=reject), on a DNS server of the test's own; genuine replies are DKIM-signed by the party's domain.
The main transfer (``market.tid``) has the ISV's approval and two forged replies for the customer: one from
an address that is not Acme's, one with Acme's From but signed by evil.example. Other transfers are in
other states, so the board has something in every section.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.policy import SMTP
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import make_config
from tests.dnsserver import DnsServer
from tests.helpers import RunningDaemon, reply, reply_address, send, wait_until
from tests.mailauth import publish_key, sign
from transferbot.app import operators, registry
from transferbot.app.context import App, open_app
from transferbot.app.controls import cancel_transfer
from transferbot.app.queries.views import list_inbox, transfer_detail
from transferbot.app.transfers import request_transfer
from transferbot.devtools.sink import MailSink, Received

ALICE, BOB = "alice@acme.example", "bob@globex.example"
DEALS, R1, R2 = "deals@vendor.example", "ops@northwind.example", "sales@contoso.example"
DOMAINS = ("acme.example", "globex.example", "vendor.example", "northwind.example", "contoso.example")
OPERATOR, PASSWORD = "alice", "correct horse battery staple"
FORGED_IMG = '<img src="x" onerror="document.title=\'pwned\'">'


def publish(dns: DnsServer) -> None:
    for domain in DOMAINS:
        dns.txt(domain, "v=spf1 ip4:192.0.2.25 -all")
        dns.txt(f"_dmarc.{domain}", "v=DMARC1; p=reject")
        publish_key(dns, domain)
    dns.txt("evil.example", "v=spf1 +all")
    publish_key(dns, "evil.example")


@dataclass
class Market:
    app: App
    daemon: RunningDaemon
    sink: MailSink
    tid: str = ""  # pending: the ISV approved; two forged replies for the customer
    forged: list[int] = field(default_factory=list)  # their inbound ids
    others: dict[str, str] = field(default_factory=dict)
    _n: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def base(self) -> str:
        assert self.daemon.daemon is not None and self.daemon.daemon.http is not None
        return f"http://127.0.0.1:{self.daemon.daemon.http.port}"

    def confirmation(self, address: str, tid: str) -> Received:
        return wait_until(lambda: [m for m in self.sink.to(address)
                                   if m.message["X-Transferbot-Kind"] == "confirmation"
                                   and m.message["X-Transferbot-Transfer"] == tid], what=f"confirmation to {address}")[-1]

    def approve(self, address: str, tid: str, domain: str) -> None:
        conf = self.confirmation(address, tid)
        raw = sign(reply(conf, address, "APPROVE").as_bytes(policy=SMTP), domain)
        send(self.daemon.port, raw, reply_address(conf), mail_from=address)

    def read(self, tid: str, n: int) -> list[dict[str, Any]]:
        return wait_until(lambda: (rows := [r for r in list_inbox(self.app, tid) if r["state"] == "done"])[n - 1:]
                          and rows, what=f"{n} replies to {tid} read")

    def fresh_transfer(self) -> str:
        """A new pending transfer of a new entitlement (for a test that changes it)."""
        ent = f"ent-t{next(self._n)}"
        registry.add_entitlement(self.app, ent, "Backup Suite", "globex", "vendor")
        return request_transfer(self.app, ent, "northwind")

    def status(self, tid: str) -> str:
        return str(transfer_detail(self.app, tid)["status"])

    def events(self, tid: str) -> list[dict[str, Any]]:
        return list(transfer_detail(self.app, tid)["events"])


def build(tmp_path: Path, sink: MailSink, dns: DnsServer, **http: Any) -> Market:
    publish(dns)
    config = make_config(tmp_path, sink.port, inbound={
        "dns_resolvers": [dns.address], "dns_timeout_seconds": 1.0, "messages_per_minute_per_sender": 0},
        http=http)
    app = open_app(config, upgrade=True)
    registry.add_account(app, "acme", "customer", "Acme GmbH", [ALICE])
    registry.add_account(app, "globex", "customer", "Globex Corporation", [BOB])
    registry.add_account(app, "vendor", "isv", "Vendor Inc", [DEALS])
    registry.add_account(app, "northwind", "reseller", "Northwind Partners", [R1])
    registry.add_account(app, "contoso", "reseller", "Contoso Resellers", [R2])
    registry.add_entitlement(app, "ent-1", "Analytics Pro", "acme", "vendor")
    registry.add_entitlement(app, "ent-2", "Storage Plus", "globex", "vendor", "northwind")
    registry.add_entitlement(app, "ent-3", "Mail Shield", "acme", "vendor", "northwind")
    registry.add_entitlement(app, "ent-4", "Backup Suite", "globex", "vendor")
    operators.add_operator(app, OPERATOR, PASSWORD)
    market = Market(app, RunningDaemon(app).start(), sink)
    try:
        _populate(market)
    except BaseException:
        market.daemon.stop()
        app.store.close()
        raise
    return market


def _populate(m: Market) -> None:
    m.tid = request_transfer(m.app, "ent-1", "contoso", "Asked by Acme on the phone")
    m.approve(DEALS, m.tid, "vendor.example")
    conf = m.confirmation(ALICE, m.tid)
    # Forged, 1: the right reply address, from somebody else's address.
    forged = reply(conf, "Mallory <mallory@evil.example>", f"APPROVE\n\n{FORGED_IMG}")
    send(m.daemon.port, forged.as_bytes(policy=SMTP), reply_address(conf), mail_from="mallory@evil.example")
    m.read(m.tid, 2)
    # Forged, 2: Acme's own From, signed by evil.example, sent from a server Acme's SPF does not name.
    spoof = sign(reply(conf, ALICE, "APPROVE").as_bytes(policy=SMTP), "evil.example")
    send(m.daemon.port, spoof, reply_address(conf), mail_from=ALICE)
    rows = m.read(m.tid, 3)
    m.forged = [r["id"] for r in rows if r["outcome"] == "not-a-party"]
    assert len(m.forged) == 2, [(r["outcome"], r["checks"]) for r in rows]
    # A reseller change waiting for everyone; a cancelled one; a completed one.
    m.others["pending"] = request_transfer(m.app, "ent-2", "contoso")
    m.others["cancelled"] = request_transfer(m.app, "ent-3", None)
    cancel_transfer(m.app, m.others["cancelled"], "Filed by mistake", by="operator:bob")
    done = m.others["completed"] = request_transfer(m.app, "ent-4", "northwind")
    for address, domain in ((BOB, "globex.example"), (DEALS, "vendor.example"), (R1, "northwind.example")):
        m.approve(address, done, domain)
    wait_until(lambda: m.status(done) == "completed", what="the completed transfer")


def sign_in(market: Market, client: httpx.Client | None = None, name: str = OPERATOR,
            password: str = PASSWORD) -> httpx.Client:
    """A client signed in through the form, as a browser does."""
    client = client or httpx.Client(base_url=market.base)
    form = client.get("/ui/sign-in")
    token = csrf_of(form.text)
    got = client.post("/ui/sign-in", data={"csrf": token, "username": name, "password": password, "next": "/ui/board"})
    assert got.status_code == 303, got.text
    return client


@contextmanager
def signed_in(market: Market, name: str = OPERATOR, password: str = PASSWORD) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=market.base) as client:
        yield sign_in(market, client, name, password)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)
