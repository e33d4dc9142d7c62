"""/metrics: the Prometheus text format, parsed with prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_config
from tests.helpers import RunningDaemon, reply, reply_address, send, wait_until
from transferbot.app import registry
from transferbot.app.context import App, open_app
from transferbot.app.queries.views import list_inbox
from transferbot.app.transfers import request_transfer
from transferbot.core.clock import now
from transferbot.devtools.sink import MailSink
from transferbot.store.models import OutboundMessage, table_of

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(d: RunningDaemon) -> tuple[Samples, dict[str, str]]:
    assert d.daemon is not None and d.daemon.http is not None
    got = httpx.get(f"http://127.0.0.1:{d.daemon.http.port}/metrics")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(got.text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, types


def test_metrics_report_the_database_and_the_daemon(app: App, sink: MailSink,
                                                    daemon_factory: Callable[[App], RunningDaemon]) -> None:
    registry.add_account(app, "acme", "customer", "Acme Corp", ["alice@acme.example.com"])
    registry.add_account(app, "vendor", "isv", "Vendor Inc", ["deals@vendor.example.com"])
    registry.add_account(app, "r1", "reseller", "Reseller One", ["ops@r1.example.com"])
    registry.add_entitlement(app, "ent-1", "Analytics Pro", "acme", "vendor")
    tid = request_transfer(app, "ent-1", "r1")
    # Its confirmations were claimed by a daemon that died: their leases ran out, this one takes them over.
    table = table_of(OutboundMessage)
    app.store.run(lambda s: s.connection().execute(sa.update(table).values(
        lease_owner="dead-host:1:abc", lease_until=now() - timedelta(seconds=5))))
    d = daemon_factory(app)
    conf = wait_until(lambda: sink.to("deals@vendor.example.com"), what="the confirmation")[0]
    send(d.port, reply(conf, "deals@vendor.example.com", "APPROVE"), reply_address(conf))
    wait_until(lambda: [r for r in list_inbox(app, tid) if r["state"] == "done"], what="the reply read")
    wait_until(lambda: len(sink.to("deals@vendor.example.com")) >= 2, what="the receipt")

    def delivered() -> tuple[Samples, dict[str, str]] | None:
        got = scrape(d)
        done = got[0].get(("transferbot_delivery_latency_seconds_count", ())) == 4 and \
            got[0].get(("transferbot_outbox_messages", (("status", "sent"),))) == 4
        return got if done else None

    samples, types = wait_until(delivered, what="4 deliveries observed and recorded")
    assert types["transferbot_transfers"] == "gauge" and types["transferbot_delivery_latency_seconds"] == "histogram"
    assert samples[("transferbot_transfers", (("status", "pending"),))] == 1
    assert samples[("transferbot_transfers", (("status", "completed"),))] == 0
    assert samples[("transferbot_inbound_messages", (("outcome", "approved"),))] == 1
    assert samples[("transferbot_inbound_messages", (("outcome", "not-a-party"),))] == 0
    assert samples[("transferbot_outbox_messages", (("status", "sent"),))] == 4
    assert samples[("transferbot_outbox_messages", (("status", "queued"),))] == 0
    assert samples[("transferbot_outbox_messages", (("status", "failed"),))] == 0
    assert samples[("transferbot_webhook_deliveries", (("status", "failed"),))] == 0  # no endpoint, no delivery
    assert samples[("transferbot_webhook_attempts_total", (("result", "delivered"),))] == 0
    assert samples[("transferbot_delivery_latency_seconds_bucket", (("le", "+Inf"),))] == 4
    assert samples[("transferbot_sweep_duration_seconds_count", ())] >= 1
    assert samples[("transferbot_leases_taken_over_total", (("work", "outbox"),))] == 3  # the three confirmations
    assert samples[("transferbot_leases_taken_over_total", (("work", "inbound"),))] == 0
    assert samples[("transferbot_mail_delivered_total", ())] == 4
    assert samples[("transferbot_inbound_read_total", ())] == 1
    assert samples[("transferbot_database_up", ())] == 1


def test_each_daemon_has_a_registry_of_its_own(tmp_path: Path, world: App,
                                               daemon_factory: Callable[[App], RunningDaemon]) -> None:
    request_transfer(world, "ent-direct", "r2")
    (tmp_path / "other").mkdir()
    other = open_app(make_config(tmp_path / "other"), upgrade=True)
    try:
        first, second = daemon_factory(world), daemon_factory(other)
        assert scrape(first)[0][("transferbot_transfers", (("status", "pending"),))] == 1
        assert scrape(second)[0][("transferbot_transfers", (("status", "pending"),))] == 0
    finally:
        second.stop()
        other.store.close()
