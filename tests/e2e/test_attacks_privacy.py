"""The attacker's tests of the HTTP API and the webhooks, with an ISV's key or an ISV's endpoint in hand.

What an ISV may see is what its party's copy of the certificate shows: no other party's address, no
sender, IP address, HELO name, authentication result, Message-ID, reply token or bounce key, whoever it
asks and however it asks; the admin key and the operator's endpoints keep the full record. Which account
ids exist, and which transfers other ISVs have, cannot be told from the answers. Concurrent retries with
one Idempotency-Key all get the first request's answer (or "in use, retry"), never another. The daemon
runs on loopback, the parties reply over SMTP, every call is real HTTP; on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from tests.conftest import make_config
from tests.e2e.test_lifecycle import ADDRESSES, mail, outcome_of
from tests.helpers import RunningDaemon, bearer, http_base, reply, reply_address, send, wait_until
from tests.receiver import Receiver, verified
from transferbot.app import webhooks
from transferbot.app.context import App
from transferbot.app.effects.facts import addresses_of, parties_of
from transferbot.app.queries.record import auth_summary
from transferbot.config import Config
from transferbot.devtools.sink import MailSink
from transferbot.http.api.schemas import Transfer as TransferDocument
from transferbot.store.models import InboundMessage, OutboundMessage

BOTH_BACKENDS = True  # tests/conftest.py runs these on SQLite and on PostgreSQL

# Each party's mail server greets with a name of its own, so that a HELO name in an answer is found.
HELO = {"customer": "mx1.helo-acme.example", "isv": "mx.helo-vendor.example",
        "current-reseller": "smtp.helo-r1.example"}
HIDDEN = ("address", "message-id", "bounce key", "ip", "helo", "authentication", "token")


@pytest.fixture
def config(tmp_path: Path, sink: MailSink, database_url: str) -> Config:
    return make_config(tmp_path, sink.port, webhooks={"allow_private_networks": True, "retry_first_seconds": 0.3},
                       api={"rate_limit_per_minute": 0}, database={"url": database_url})


@pytest.fixture
def api(daemon: RunningDaemon) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=http_base(daemon), timeout=10) as client:
        yield client






def file(api: httpx.Client, key: str, entitlement: str, to: str | None) -> httpx.Response:
    return api.post("/v1/transfers", json={"entitlement": entitlement, "to_reseller": to, "note": "Asked by phone"},
                    headers=bearer(key))


def approve(daemon: RunningDaemon, sink: MailSink, tid: str, role: str) -> None:
    """The party replies APPROVE to its confirmation from its own address, through its own mail server."""
    confirmation = mail(sink, ADDRESSES[role], "confirmation", tid)[0]
    send(daemon.port, reply(confirmation, ADDRESSES[role], "APPROVE"), reply_address(confirmation), helo=HELO[role])


def secrets_of(app: App, tid: str) -> tuple[dict[str, set[str]], set[str]]:
    """Every value of a transfer's record, read from the database, that identifies a party's mail, by kind;
    and the ISV party's own addresses (which its key may see, and which are left out of the first)."""
    found: dict[str, set[str]] = {kind: set() for kind in HIDDEN}
    with app.store.read() as session:
        parties = parties_of(session, tid)
        own = {a.address for p in parties if p.role == "isv" for a in addresses_of(session, p.id or 0)}
        for p in parties:
            found["token"].add(p.token)
            found["address"] |= {a.address for a in addresses_of(session, p.id or 0)}
        for row in session.exec(select(InboundMessage).where(InboundMessage.transfer_id == tid)):
            found["message-id"].add(row.message_id)
            found["address"] |= {row.mail_from, row.from_address}
            found["ip"].add(row.peer)
            found["helo"].add(row.helo)
            found["authentication"].add(auth_summary(row.auth) or "")
        for out in session.exec(select(OutboundMessage).where(OutboundMessage.transfer_id == tid)
                                .order_by(col(OutboundMessage.id))):
            found["message-id"].add(out.message_id)
            found["bounce key"].add(out.key)
            found["address"] |= set(out.recipients)
    found["address"] -= own
    return {kind: {v for v in values if v} for kind, values in found.items()}, own


def leaks(text: str, secrets: dict[str, set[str]], kinds: tuple[str, ...] = HIDDEN) -> list[tuple[str, str]]:
    """The secrets found anywhere in ``text`` (a serialized body), as (kind, value)."""
    folded = text.lower()
    return sorted((kind, value) for kind in kinds for value in secrets[kind] if value.lower() in folded)


def missing(text: str, secrets: dict[str, set[str]], kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    folded = text.lower()
    return sorted((kind, value) for kind in kinds for value in secrets[kind] if value.lower() not in folded)


def test_an_isv_key_sees_what_its_certificate_copy_shows_and_no_more(
        daemon: RunningDaemon, sink: MailSink, api: httpx.Client, keys: dict[str, str], world: App) -> None:
    vendor, admin = bearer(keys["vendor"]), bearer(keys["admin"])
    filed = file(api, keys["vendor"], "ent-r1", "r2")
    assert filed.status_code == 201, filed.text
    tid = filed.json()["id"]
    for n, role in enumerate(("customer", "current-reseller", "isv"), start=1):
        approve(daemon, sink, tid, role)
        assert outcome_of(world, tid, n)[-1] == "approved"
    secrets, own = secrets_of(world, tid)
    assert secrets["helo"] == set(HELO.values()) and secrets["ip"] and len(secrets["message-id"]) > 6, secrets
    assert own == {"deals@vendor.example.com"} and "alice@acme.example.com" in secrets["address"]

    seen = api.get(f"/v1/transfers/{tid}", headers=vendor)
    answers = {
        "filed": filed.text, "read": seen.text, "listed": api.get("/v1/transfers", headers=vendor).text,
        "certificate": api.get(f"/v1/transfers/{tid}/certificate", headers=vendor).text,
        "certificate as HTML": api.get(f"/v1/transfers/{tid}/certificate",
                                       headers={**vendor, "Accept": "text/html"}).text,
    }
    for what, text in answers.items():
        assert leaks(text, secrets) == [], what

    view = seen.json()
    assert view["audience"] == "isv" and view["id"] == tid and view["status"] == "pending"
    assert "inbound" not in view and "outbound" not in view
    parties = {p["role"]: p for p in view["parties"]}
    customer = parties["customer"]
    assert customer == {"role": "customer", "account": "acme", "name": "Acme Corp", "decision": "approved",
                        "decided_at": customer["decided_at"], "reason": None} and customer["decided_at"]
    assert parties["new-reseller"]["decision"] == "pending" and parties["new-reseller"]["account"] == "r2"
    assert parties["isv"]["emails"] == ["deals@vendor.example.com"], "its own addresses it sees"
    assert all(set(e) == {"seq", "at", "kind", "hash"} for e in view["events"]), "the trail as the copy shows it"
    TransferDocument.model_validate(view)  # as docs/openapi.json describes it

    # The admin key keeps the full record (reply tokens aside, which nobody's answer carries).
    full = api.get(f"/v1/transfers/{tid}", headers=admin)
    assert full.json()["audience"] == "operator"
    assert missing(full.text, secrets, ("address", "message-id", "bounce key", "ip", "helo", "authentication")) == []
    assert leaks(full.text, secrets, ("token",)) == []

    # What the ISV's cancel answers is its view too.
    cancelled = api.post(f"/v1/transfers/{tid}/cancel", json={"reason": "The customer changed its mind"},
                         headers=vendor)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert leaks(cancelled.text, secrets_of(world, tid)[0]) == []


def test_webhook_payloads_follow_the_endpoints_audience(
        daemon: RunningDaemon, sink: MailSink, api: httpx.Client, keys: dict[str, str], world: App,
        receiver: Receiver) -> None:
    _, isv_secret = webhooks.add_endpoint(world, receiver.url("/vendor"), isv="vendor")
    _, ops_secret = webhooks.add_endpoint(world, receiver.url("/billing"))
    filed = file(api, keys["vendor"], "ent-r1", "r2")
    assert filed.status_code == 201, filed.text
    tid = filed.json()["id"]
    approve(daemon, sink, tid, "customer")
    wanted = {"transfer.requested", "transfer.party_decided"}
    for path in ("/vendor", "/billing"):
        wait_until(lambda path=path: {h.event["type"] for h in receiver.hooks.to(path)} >= wanted, timeout=20,
                   what=f"both events delivered to {path}")
    secrets, own = secrets_of(world, tid)

    for hit in receiver.hooks.to("/vendor"):
        event = verified(isv_secret, hit)
        assert event["data"]["audience"] == "isv" and event["data"]["id"] == tid
        assert leaks(hit.body.decode(), secrets) == [], event["type"]
        assert own <= {a for p in event["data"]["parties"] for a in p.get("emails", [])}

    decided = next(verified(ops_secret, h) for h in receiver.hooks.to("/billing")
                   if h.event["type"] == "transfer.party_decided")
    assert decided["data"]["audience"] == "operator"
    text = json.dumps(decided, ensure_ascii=False)
    customer_reply = next(r for r in decided["data"]["inbound"] if r["party"] == "customer")
    assert "alice@acme.example.com" in text and HELO["customer"] in text and customer_reply["peer"] in text
    assert customer_reply["message_id"] in secrets["message-id"]
    assert leaks(text, secrets, ("token",)) == []


def test_filing_does_not_tell_which_account_ids_exist(api: httpx.Client, keys: dict[str, str]) -> None:
    vendor = keys["vendor"]
    # A customer's id, an ISV's, another ISV's and no account at all: one answer, byte for byte.
    answers = {to: file(api, vendor, "ent-direct", to) for to in ("nobody", "acme", "globex", "vendor", "other-isv")}
    assert len({(r.status_code, r.headers["content-type"], r.content) for r in answers.values()}) == 1, {
        to: (r.status_code, r.text) for to, r in answers.items()}
    one = next(iter(answers.values()))
    assert one.headers["content-type"].startswith("application/problem+json") and one.status_code in (404, 422)
    assert "customer" not in one.text and "isv" not in one.text.lower()
    assert all(to not in one.text for to in answers)
    # A real reseller still files.
    assert file(api, vendor, "ent-direct", "r2").status_code == 201
    # An entitlement of another ISV answers as one that does not exist.
    mine_not = [file(api, vendor, e, "r2") for e in ("ent-nope", "ent-other")]
    assert mine_not[0].status_code == 404 and mine_not[0].content == mine_not[1].content


def test_another_isvs_transfer_answers_as_one_that_does_not_exist(api: httpx.Client, keys: dict[str, str]) -> None:
    theirs = file(api, keys["other"], "ent-other", "r1").json()["id"]
    unknown = "TR-ZZZZZZ"
    assert api.get(f"/v1/transfers/{unknown}", headers=bearer(keys["admin"])).status_code == 404
    vendor = bearer(keys["vendor"])
    for method, suffix, body in (("GET", "", None), ("GET", "/certificate", None),
                                 ("POST", "/cancel", {"reason": "mine now"}), ("POST", "/resend", {})):
        a = api.request(method, f"/v1/transfers/{theirs}{suffix}", json=body, headers=vendor)
        b = api.request(method, f"/v1/transfers/{unknown}{suffix}", json=body, headers=vendor)
        assert a.status_code == b.status_code == 404, (suffix, a.text)
        assert a.content == b.content and a.headers["content-type"] == b.headers["content-type"], (a.text, b.text)
        assert theirs not in a.text
    # Read with a lower-case id or without the prefix, it is still nobody's for this key.
    for spelling in (theirs.lower(), theirs.removeprefix("TR-")):
        got = api.get(f"/v1/transfers/{spelling}", headers=vendor)
        assert got.status_code == 404 and got.content == api.get(f"/v1/transfers/{unknown}", headers=vendor).content


def storm(url: str, headers: dict[str, str], body: dict[str, Any], n: int) -> list[httpx.Response]:
    """``n`` identical POSTs at once, each on a connection of its own."""
    async def go() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            return list(await asyncio.gather(*(client.post("/v1/transfers", json=body, headers=headers)
                                               for _ in range(n))))
    return asyncio.run(go())


def test_concurrent_retries_with_one_idempotency_key_all_get_the_first_answer(
        daemon: RunningDaemon, api: httpx.Client, keys: dict[str, str]) -> None:
    body = {"entitlement": "ent-r1", "to_reseller": "r2", "note": "Asked by Acme on the phone"}
    headers = {**bearer(keys["vendor"]), "Idempotency-Key": "acme-move-storm"}
    responses = storm(http_base(daemon), headers, body, 20)
    created = [r for r in responses if r.status_code == 201]
    busy = [r for r in responses if r.status_code == 409]
    assert len(created) + len(busy) == 20, [(r.status_code, r.text) for r in responses]
    assert created, "the first request files"
    assert len({r.text for r in created if "idempotent-replayed" not in r.headers}) == 1, "one filed"
    first = created[0].json()
    assert all(r.json() == first for r in created)
    for r in busy:
        problem = r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
        assert problem["type"].endswith("/idempotency-key-in-use") and problem["status"] == 409, problem
        assert int(r.headers["retry-after"]) >= 1
    # Once it is settled, every retry is the first answer.
    again = api.post("/v1/transfers", json=body, headers=headers)
    assert again.status_code == 201 and again.json() == first and again.headers["idempotent-replayed"] == "true"
    listed = api.get("/v1/transfers", params={"entitlement": "ent-r1"}, headers=bearer(keys["admin"])).json()
    assert [t["id"] for t in listed["items"]] == [first["id"]]


def test_a_refused_request_may_be_retried_with_its_key(api: httpx.Client, keys: dict[str, str]) -> None:
    body = {"entitlement": "ent-later", "to_reseller": "r1", "note": ""}
    headers = {**bearer(keys["vendor"]), "Idempotency-Key": "file-when-registered"}
    refused = api.post("/v1/transfers", json=body, headers=headers)
    assert refused.status_code == 404, refused.text
    put = api.put("/v1/entitlements/ent-later", headers=bearer(keys["admin"]),
                  json={"product": "Later", "customer": "acme", "isv": "vendor", "reseller": None, "state": "active"})
    assert put.status_code == 201
    filed = api.post("/v1/transfers", json=body, headers=headers)
    assert filed.status_code == 201 and "idempotent-replayed" not in filed.headers, filed.text
    again = api.post("/v1/transfers", json=body, headers=headers)
    assert again.status_code == 201 and again.json() == filed.json() and again.headers["idempotent-replayed"] == "true"
