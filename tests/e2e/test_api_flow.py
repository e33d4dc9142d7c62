"""The whole story over real HTTP: an ISV files a transfer through the API (idempotently), the parties approve by
email over SMTP, and a webhook receiver (a real HTTP server that answers 503 first and 200 after) gets every
event, each verified with the Standard Webhooks reference library; the completion tells billing where the
order now goes. Another ISV's key cannot see the transfer; an admin key keeps the registry in step."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from tests.conftest import make_config
from tests.e2e.test_lifecycle import approve_all
from tests.helpers import RunningDaemon, bearer, http_base, wait_until
from tests.receiver import Receiver, verified
from transferbot.app import apikeys, registry, webhooks
from transferbot.app.context import App
from transferbot.app.queries.views import transfer_detail
from transferbot.config import Config
from transferbot.devtools.sink import MailSink
from transferbot.store.models import Party

BOTH_BACKENDS = True  # tests/conftest.py runs this on SQLite and on PostgreSQL


@pytest.fixture
def config(tmp_path: Path, sink: MailSink, database_url: str) -> Config:
    return make_config(tmp_path, sink.port, webhooks={"allow_private_networks": True, "retry_first_seconds": 0.3},
                       database={"url": database_url})





def test_an_isv_files_by_api_the_parties_approve_by_mail_and_billing_hears_by_signed_webhook(
        world: App, sink: MailSink, receiver: Receiver) -> None:
    registry.add_account(world, "other-isv", "isv", "Other Vendor", ["deals@other.example.com"])
    _, vendor_key = apikeys.create_key(world, "vendor", "vendor's systems")
    _, other_key = apikeys.create_key(world, "other-isv")
    _, admin_key = apikeys.create_key(world, None, "billing")
    billing, secret = webhooks.add_endpoint(world, receiver.url("/billing"))
    _, other_secret = webhooks.add_endpoint(world, receiver.url("/other"), isv="other-isv")
    receiver.hooks.answer("/billing", 503)  # the first attempt fails; the retry gets 200
    d = RunningDaemon(world).start()
    try:
        with httpx.Client(base_url=http_base(d), timeout=10) as http:
            body = {"entitlement": "ent-r1", "to_reseller": "r2", "note": "Asked by Acme on the phone"}
            idem = {"Idempotency-Key": "acme-move-2026-11", **bearer(vendor_key)}
            filed = http.post("/v1/transfers", json=body, headers=idem)
            assert filed.status_code == 201, filed.text
            transfer = filed.json()
            tid = transfer["id"]
            assert transfer["kind"] == "reseller-change" and transfer["status"] == "pending"
            assert [p["role"] for p in transfer["parties"]] == ["customer", "isv", "current-reseller", "new-reseller"]

            # The same key and body: the same response, nothing more filed.
            again = http.post("/v1/transfers", json=body, headers=idem)
            assert again.status_code == 201 and again.json() == transfer
            assert again.headers["idempotent-replayed"] == "true"
            # The same key with another body: 422.
            other = http.post("/v1/transfers", json={**body, "note": "changed"}, headers=idem)
            assert other.status_code == 422 and "another request" in other.json()["detail"]
            assert other.headers["content-type"].startswith("application/problem+json")
            # A new request for the same entitlement: 409, in the CLI's words.
            conflict = http.post("/v1/transfers", json=body, headers=bearer(vendor_key))
            assert conflict.status_code == 409
            assert conflict.json()["detail"] == "entitlement ent-r1 already has an open transfer"
            assert len(http.get("/v1/transfers", headers=bearer(admin_key)).json()["items"]) == 1

            # Another ISV's key sees nothing of it: 404, as for a transfer that does not exist.
            assert http.get(f"/v1/transfers/{tid}", headers=bearer(other_key)).status_code == 404
            assert http.get("/v1/transfers", headers=bearer(other_key)).json()["items"] == []
            assert http.get(f"/v1/transfers/{tid}", headers=bearer(vendor_key)).json()["id"] == tid

            # Every party approves by replying to its email, over SMTP.
            approve_all(d, sink, tid, ["customer", "isv", "current-reseller", "new-reseller"])
            wait_until(lambda: http.get(f"/v1/transfers/{tid}", headers=bearer(vendor_key)).json()["status"]
                       == "completed", what="completion")

            # The admin key keeps the registry in step: the move is there, and a new account can be put.
            assert http.get("/v1/entitlements/ent-r1", headers=bearer(admin_key)).json()["reseller"] == "r2"
            put = http.put("/v1/accounts/r3", headers=bearer(admin_key),
                           json={"kind": "reseller", "name": "Reseller Three", "emails": ["ops@r3.example.com"]})
            assert put.status_code == 201

        # Billing got every event: requested, four decisions, completed; each verified with the reference library.
        wanted = ["transfer.requested"] + ["transfer.party_decided"] * 4 + ["transfer.completed"]
        delivered = wait_until(lambda: (ok := [h for h in receiver.hooks.to("/billing") if h.status == 200])
                               and len(ok) >= len(wanted) and ok, timeout=20, what="every webhook delivered")
        events = [verified(secret, h) for h in delivered]
        assert sorted(e["type"] for e in events) == sorted(wanted)
        assert len({h.webhook_id for h in delivered}) == len(wanted), "one delivery per event"
        # The 503 was retried under the same webhook-id, with the same bytes, signed afresh.
        first, *rest = receiver.hooks.to("/billing")
        assert first.status == 503
        retried = next(h for h in rest if h.webhook_id == first.webhook_id)
        assert retried.status == 200 and retried.body == first.body
        verified(secret, first)

        completed = next(e for e in events if e["type"] == "transfer.completed")
        assert completed["data"]["id"] == tid and completed["data"]["status"] == "completed"
        assert completed["data"]["entitlement"]["reseller"] == "r2", "where billing now sends the order"
        requested = next(e for e in events if e["type"] == "transfer.requested")
        assert requested["data"]["status"] == "pending" and requested["data"]["entitlement"]["reseller"] == "r1"

        # No payload carries a reply token.
        with world.store.read() as session:
            tokens = list(session.exec(select(Party.token).where(Party.transfer_id == tid)))
        for hit in receiver.hooks.to("/billing"):
            assert not any(token in hit.body.decode() for token in tokens)
        # The endpoint scoped to another ISV heard nothing.
        assert receiver.hooks.to("/other") == []
        assert other_secret.startswith("whsec_")

        # `show` lists the deliveries with their attempts.
        shown = wait_until(lambda: (w := transfer_detail(world, tid)["webhooks"])
                           and all(x["status"] == "delivered" for x in w) and w, what="deliveries recorded")
        assert {w["endpoint"] for w in shown} == {billing.id}
        retried_row = next(w for w in shown if w["event_id"] == first.webhook_id)
        assert [a["status_code"] for a in retried_row["history"]] == [503, 200]
        assert [a["outcome"] for a in retried_row["history"]] == ["retry", "delivered"]
    finally:
        d.stop()
