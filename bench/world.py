"""The benchmark's data: a marketplace database, real approval replies, and the scale databases.

Everything here runs in the orchestrating process before a scenario is
timed; nothing in it is measured.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.dbs import engine_for
from transferbot.app import registry
from transferbot.app.context import open_app
from transferbot.app.effects.audit import GENESIS, event_hash
from transferbot.app.transfers import fingerprint, request_transfer
from transferbot.config import Config, InboundConfig, parse_config
from transferbot.core.tokens import new_token
from transferbot.store.models import (
    Account,
    AccountAddress,
    Entitlement,
    Event,
    OutboundMessage,
    Party,
    PartyAddress,
    Transfer,
    table_of,
)

DOMAIN = "transfers.bench.example"
SECRET = "bench-secret-not-for-production"
OPERATOR = "ops@marketplace.bench.example"

# (fresh text on the first line) per locale: what a party of that locale typically writes
APPROVALS = {"en": "APPROVE", "fr": "Approuvé.", "de": "Genehmigt"}

Message = tuple[str, list[str], bytes]  # (MAIL FROM, RCPT TOs, raw bytes)


def config_for(url: str, *, sink_port: int | None = None, maildir: Path | None = None, **sections: dict[str, Any]
               ) -> Config:
    """The daemon's configuration as an operator would write it: defaults, loopback, port 0.

    Without a relay (``sink_port``) outbound mail goes to a Maildir (nothing is sent then)."""
    data: dict[str, Any] = {
        "database": {"url": url},
        "inbound": {"host": "127.0.0.1", "port": 0, "domain": DOMAIN},
        "outbound": ({"transport": "smtp", "host": "127.0.0.1", "port": sink_port} if sink_port
                     else {"transport": "maildir",
                           "maildir": str(maildir or Path(tempfile.gettempdir()) / "transferbot-bench-maildir")}),
        "workflow": {"secret": SECRET, "operator_address": OPERATOR},
        "http": {"port": 0},  # the daemon's HTTP server (API, dashboard, metrics) stays on, on a free port
    }
    # Per-client and per-sender limits are a policy against abuse, not a cost: one client on loopback
    # sending every party's replies would trip them, so the benchmark turns them off where they exist.
    for key in ("messages_per_minute_per_sender", "max_connections_per_client"):
        if key in InboundConfig.model_fields:
            data["inbound"][key] = 0
    if os.environ.get("BENCH_SYNCHRONOUS"):  # set by `run.py --synchronous`, inherited by every process
        data["database"]["synchronous"] = os.environ["BENCH_SYNCHRONOUS"]
    if os.environ.get("BENCH_SENDER_AUTH_OFF"):  # `run.py --sender-auth off`: what authentication costs
        data["inbound"].update(sender_auth="off", allow_unauthenticated=True)
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return parse_config(data, "bench", env={})


# -- the end-to-end world: transfers filed the normal way -------------------------------------

ACCOUNT_PLAN = {"customer": 24, "isv": 6, "reseller": 12}
LOCALE_CYCLE = ("en", "en", "fr", "de")


@dataclass
class World:
    url: str  # confirmations still queued (for the outbound scenario)
    transfers: int
    confirmations: int  # outbox rows queued
    recipients: int  # envelope recipients over all confirmations
    seconds: float


def build_world(url: str, transfers: int, seed: int = 5) -> World:
    """Accounts, entitlements and ``transfers`` open transfers filed through request_transfer."""
    started = time.perf_counter()
    rng = random.Random(seed)
    app = open_app(config_for(url, database={"synchronous": "normal"}), upgrade=True)  # set-up only: no fsync per transfer
    try:
        ids: dict[str, list[str]] = {}
        for kind, count in ACCOUNT_PLAN.items():
            for i in range(count):
                account_id = f"{kind[:3]}-{i:03d}"
                locale = LOCALE_CYCLE[i % len(LOCALE_CYCLE)]
                emails = [f"{n}@{account_id}.bench.example" for n in (["alice", "bob"] if kind == "customer" and i % 3 == 0
                                                                     else ["deals"])]
                registry.add_account(app, account_id, kind, f"{kind.title()} {i:03d} Ltd", emails, locale,
                                     {"en": "Europe/London", "fr": "Europe/Paris", "de": "Europe/Berlin"}[locale])
                ids.setdefault(kind, []).append(account_id)
        stamp = datetime.now(UTC)
        plans: list[tuple[str, str | None]] = []
        with app.store.write() as session:
            rows = []
            for i in range(transfers):
                customer, isv = rng.choice(ids["customer"]), rng.choice(ids["isv"])
                shape = i % 3  # direct-to-reseller, reseller-to-direct, reseller-change
                current = None if shape == 0 else rng.choice(ids["reseller"])
                target = None if shape == 1 else rng.choice([r for r in ids["reseller"] if r != current])
                ent_id = f"ent-{i:06d}"
                rows.append({"id": ent_id, "product": f"Product {i % 17}", "customer_id": customer, "isv_id": isv,
                             "reseller_id": current, "state": "active", "created_at": stamp, "updated_at": stamp})
                plans.append((ent_id, target))
            session.execute(sa.insert(Entitlement), rows)
        for ent_id, target in plans:
            request_transfer(app, ent_id, target, "Filed by the benchmark")
        om = table_of(OutboundMessage)
        with app.store.read() as session:
            queued = session.execute(sa.select(om.c.recipients).where(om.c.status == "queued")).scalars().all()
    finally:
        app.store.close()
    return World(url, transfers, len(queued), sum(len(r) for r in queued), time.perf_counter() - started)


def _render_rows(app: Any, where: Any) -> list[tuple[Any, bytes]]:
    """Outbox rows (and their bytes, rendered from their snapshot exactly as the dispatcher renders them)."""
    from transferbot.app.outbox import raw_of

    om = table_of(OutboundMessage)
    with app.store.read() as session:
        rows = session.execute(sa.select(om.c.id, om.c.envelope_from, om.c.recipients, om.c.party_id)
                               .where(where).order_by(om.c.next_attempt_at, om.c.id)).all()
    return [(row, raw_of(app, row.id)) for row in rows]


def queued_messages(url: str) -> list[Message]:
    """The queued outbox rows as (envelope from, recipients, raw): what the plain loop sends."""
    om = table_of(OutboundMessage)
    app = open_app(config_for(url))
    try:
        rendered = _render_rows(app, om.c.status == "queued")
    finally:
        app.store.close()
    return [(row.envelope_from, list(row.recipients), raw) for row, raw in rendered]


def mark_confirmations_sent(url: str) -> None:
    """As if the dispatcher had delivered every confirmation (long before the replies come)."""
    om = table_of(OutboundMessage)
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.update(om).where(om.c.status == "queued")
                         .values(status="sent", attempts=1, sent_at=om.c.created_at))
    finally:
        engine.dispose()


def _quoted_reply(original: EmailMessage, sender: str, fresh: str, when: datetime) -> EmailMessage:
    """A plain-text reply as a typical client writes it: fresh text, attribution, quoted original."""
    reply_to = str(original["Reply-To"]).rpartition("<")[2].rstrip(">")
    part = original.get_body(("plain",))
    text = part.get_content() if part is not None else ""
    text = text.replace("\r\n", "\n")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = reply_to
    msg["Subject"] = "Re: " + str(original["Subject"])
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    msg["In-Reply-To"] = str(original["Message-ID"])
    msg["References"] = str(original["Message-ID"])
    quoted = "\n".join("> " + line if line else ">" for line in text.splitlines())
    msg.set_content(f"{fresh}\n\nOn {original['Date']}, {original['From']} wrote:\n{quoted}\n")
    return msg


def approval_replies(url: str, seed: int = 5) -> list[Message]:
    """For every party of every open transfer: a fresh approval quoting its confirmation, from its address,
    DKIM-signed for its domain as the party's own mail server would sign it (see bench_resolver)."""
    om = table_of(OutboundMessage)
    app = open_app(config_for(url))
    try:
        rendered = _render_rows(app, om.c.kind == "confirmation")
        with app.store.read() as session:
            parties = {pid: (locale, address) for pid, locale, address in session.execute(sa.text(
                "SELECT p.id, p.locale, (SELECT address FROM partyaddress a WHERE a.party_id = p.id"
                " ORDER BY position LIMIT 1) FROM party p"))}
    finally:
        app.store.close()
    when = datetime.now(UTC)
    parser = BytesParser(policy=policy.default)
    unsigned: list[EmailMessage] = []
    for row, raw in sorted(rendered, key=lambda rr: rr[0].party_id):
        locale, sender = parties[row.party_id]
        original = parser.parsebytes(raw)
        assert isinstance(original, EmailMessage)
        unsigned.append(_quoted_reply(original, sender, APPROVALS.get(locale, "APPROVE"), when))
    if len(unsigned) > 200:  # RSA signing, about 10 ms each: on every core
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=mp.get_context("spawn")) as pool:
            signed = list(pool.map(dkim_signed, unsigned, chunksize=50))
    else:
        signed = [dkim_signed(reply) for reply in unsigned]
    out: list[Message] = [(str(reply["From"]), [str(reply["To"])], raw)
                          for reply, raw in zip(unsigned, signed, strict=True)]
    random.Random(seed).shuffle(out)
    return out


# -- sender authentication: every bench domain as a well-run one publishes it --------------------

DKIM_SELECTOR = "bench"


def dkim_signed(msg: EmailMessage) -> bytes:
    """The message as the sender's mail server sends it: DKIM-signed for the From domain (the demo's key)."""
    from transferbot.devtools.demo import signed

    return signed(msg, DKIM_SELECTOR)


class BenchResolver:
    """DNS from memory for every ``*.bench.example`` domain: SPF allowing loopback, DMARC p=reject, the
    DKIM key the replies are signed with. Names are computed, not listed (the scale databases have
    thousands of domains); nothing else exists. The daemon gets it behind its usual CachingResolver."""

    SUFFIX = ".bench.example"

    async def query(self, name: str, rdtype: str) -> list[str]:
        return (await self.query_with_ttl(name, rdtype))[0]

    async def query_with_ttl(self, name: str, rdtype: str) -> tuple[list[str], float | None]:
        from transferbot.devtools.demo import DEMO_DKIM_PUBLIC

        key = name.lower().rstrip(".")
        values: list[str] = []
        if rdtype.upper() == "TXT" and key.endswith(self.SUFFIX):
            if key.startswith("_dmarc."):
                values = ["v=DMARC1; p=reject"]
            elif key.startswith(f"{DKIM_SELECTOR}._domainkey."):
                values = [f"v=DKIM1; k=rsa; p={DEMO_DKIM_PUBLIC}"]
            elif "._domainkey." not in key:
                values = ["v=spf1 ip4:127.0.0.1 -all"]
        return values, (300.0 if values else None)


def bench_resolver() -> Any:
    from transferbot.inbound.senderauth.dns import CachingResolver

    return CachingResolver(BenchResolver())


def save_messages(messages: list[Message], path: Path) -> Path:
    path.write_bytes(pickle.dumps(messages, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def load_messages(path: Path) -> list[Message]:
    return pickle.loads(path.read_bytes())  # noqa: S301 - our own file


def message_ids(messages: list[Message]) -> set[str]:
    return {message_id_of(raw) for _f, _r, raw in messages}


def message_id_of(raw: bytes) -> str:
    """The Message-ID as the edge stores it."""
    return str(BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)["Message-ID"]).strip()


# -- counting what the daemon did (read-only SQLAlchemy Core, either backend) ----------------------

class Probe:
    """One autocommit connection for polling counts while a scenario runs (each query sees the latest commit)."""

    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)
        self.con = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def scalar(self, sql: str, **args: Any) -> Any:
        return self.con.execute(sa.text(sql), args).scalar_one()

    def decided(self) -> int:
        return self.scalar("SELECT count(*) FROM inboundmessage WHERE state = 'done' AND outcome = 'approved'")

    def read(self) -> int:
        return self.scalar("SELECT count(*) FROM inboundmessage WHERE state != 'new'")

    def sent(self) -> int:
        return self.scalar("SELECT count(*) FROM outboundmessage WHERE status = 'sent'")

    def queued(self) -> int:
        return self.scalar("SELECT count(*) FROM outboundmessage WHERE status = 'queued'")

    def outcomes(self) -> dict[str, int]:
        rows = self.con.execute(sa.text("SELECT state || '/' || outcome, count(*) FROM inboundmessage GROUP BY 1"))
        return {str(k): int(v) for k, v in rows}

    def message_ids(self) -> set[str]:
        return {str(r[0]) for r in self.con.execute(sa.text("SELECT message_id FROM inboundmessage"))}

    def close(self) -> None:
        self.con.close()
        self.engine.dispose()


# -- the scale databases: many open transfers, inserted in bulk ----------------------------------------

@dataclass
class ScaleDb:
    url: str
    open: int
    due: int
    now: datetime
    seconds: float
    bytes: int


def _chunks(rows: list[dict[str, Any]], size: int = 20_000) -> Any:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def build_scale_db(url: str, open_transfers: int, due: int, now: datetime, seed: int = 7) -> ScaleDb:
    """``open_transfers`` pending transfers with parties, tokens and addresses; ``due`` of them due at ``now``.

    Half of the due ones are past their expiry, half are due a reminder; the
    others are due days later. Rows go in with SQLAlchemy core inserts.
    """
    started = time.perf_counter()
    rng = random.Random(seed)
    app = open_app(config_for(url, database={"synchronous": "normal"}), upgrade=True)  # creates the schema
    secret = app.secret
    engine = app.store.engine
    customers = [f"cus-{i:05d}" for i in range(max(10, open_transfers // 50))]
    isvs = [f"isv-{i:04d}" for i in range(max(3, open_transfers // 2000))]
    resellers = [f"res-{i:04d}" for i in range(max(6, open_transfers // 500))]
    names: dict[str, str] = {}
    accounts, account_addresses = [], []
    for kind, ids in (("customer", customers), ("isv", isvs), ("reseller", resellers)):
        for n, account_id in enumerate(ids):
            locale = LOCALE_CYCLE[n % len(LOCALE_CYCLE)]
            names[account_id] = f"{kind.title()} {account_id}"
            accounts.append({"id": account_id, "kind": kind, "name": names[account_id], "locale": locale,
                             "timezone": "UTC", "created_at": now - timedelta(days=400)})
            account_addresses.append({"account_id": account_id, "address": f"deals@{account_id}.bench.example",
                                      "position": 0})
    due_idx = set(rng.sample(range(open_transfers), due))
    entitlements: list[dict[str, Any]] = []
    transfers: list[dict[str, Any]] = []
    parties: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    roles_of = {0: ("customer", "isv", "new-reseller"), 1: ("customer", "isv", "current-reseller"),
                2: ("customer", "isv", "current-reseller", "new-reseller")}
    kinds = {0: "direct-to-reseller", 1: "reseller-to-direct", 2: "reseller-change"}
    for i in range(open_transfers):
        shape = i % 3
        customer, isv = rng.choice(customers), rng.choice(isvs)
        current = None if shape == 0 else rng.choice(resellers)
        target = None if shape == 1 else rng.choice([r for r in resellers[:8] if r != current])
        ent_id, tid = f"ent-{i:07d}", f"TR-{i:07d}"
        if i in due_idx:
            expired = len([j for j in due_idx if j <= i]) % 2 == 0
            created = now - timedelta(days=15 if expired else 3, hours=1)
            expires = now - timedelta(hours=1) if expired else now + timedelta(days=11)
            next_due = now - timedelta(hours=1)
        else:
            created = now - timedelta(hours=rng.uniform(0, 47))
            expires = created + timedelta(days=14)
            next_due = created + timedelta(days=3)
        entitlements.append({"id": ent_id, "product": f"Product {i % 97}", "customer_id": customer, "isv_id": isv,
                             "reseller_id": current, "state": "active", "created_at": created, "updated_at": created})
        accounts_of: dict[str, str | None] = {"customer": customer, "isv": isv, "current-reseller": current,
                                              "new-reseller": target}
        details = {"transfer": tid, "transfer_kind": kinds[shape], "entitlement": ent_id, "product": f"Product {i % 97}",
                   "from_reseller": current, "to_reseller": target, "requested_at": created.isoformat(),
                   "expires_at": expires.isoformat()}
        transfers.append({"id": tid, "entitlement_id": ent_id, "kind": kinds[shape], "from_reseller_id": current,
                          "to_reseller_id": target, "product": f"Product {i % 97}", "note": "", "status": "pending",
                          "fingerprint": fingerprint(details), "created_at": created, "expires_at": expires,
                          "next_due_at": next_due, "closed_at": None})
        for role in roles_of[shape]:
            party_account = accounts_of[role]
            assert party_account is not None
            parties.append({"transfer_id": tid, "role": role, "account_id": party_account, "token": new_token(secret),
                            "locale": LOCALE_CYCLE[len(parties) % len(LOCALE_CYCLE)], "timezone": "UTC",
                            "decision": "pending", "decided_at": None, "decided_by": None, "reason": "",
                            "confirmation_message_id": f"<c{len(parties)}.{tid.lower()}@{DOMAIN}>",
                            "reminders_sent": 0, "last_call_sent": False, "last_help_at": None,
                            "last_notice_at": None})
        data = {**details, "fingerprint": transfers[-1]["fingerprint"]}
        events.append({"transfer_id": tid, "seq": 1, "at": created, "kind": "requested", "data": data,
                       "prev_hash": GENESIS, "hash": event_hash(GENESIS, tid, 1, created, "requested", data)})
    with engine.begin() as conn:
        conn.execute(sa.insert(Account), accounts)
        conn.execute(sa.insert(AccountAddress), account_addresses)
        for chunk in _chunks(entitlements):
            conn.execute(sa.insert(Entitlement), chunk)
        for chunk in _chunks(transfers):
            conn.execute(sa.insert(Transfer), chunk)
        for chunk in _chunks(parties):
            conn.execute(sa.insert(Party), chunk)
        for chunk in _chunks(events):
            conn.execute(sa.insert(Event), chunk)
        party_ids = conn.execute(sa.select(Party.id, Party.account_id).order_by(Party.id)).all()  # type: ignore[call-overload]
        addresses = [{"party_id": pid, "address": f"deals@{aid}.bench.example", "position": 0,
                      "undeliverable_at": None, "undeliverable_reason": ""} for pid, aid in party_ids]
        for chunk in _chunks(addresses):
            conn.execute(sa.insert(PartyAddress), chunk)
        # the due count as the indexed column says it (a check of our own construction)
        counted = conn.execute(sa.select(sa.func.count()).select_from(Transfer)
                               .where(Transfer.status == "pending", Transfer.next_due_at <= now)).scalar_one()  # type: ignore[arg-type,operator]
    app.store.close()
    assert counted == due, (counted, due)
    return ScaleDb(url, open_transfers, due, now, time.perf_counter() - started, 0)
