"""/metrics in the Prometheus text format, from a registry of this daemon's own.

Counts that live in the database (transfers by status, inbound messages by outcome, the outbox by status)
are read at scrape time with one GROUP BY each, off the event loop; with several daemons on one database
each reports the same totals, so aggregate them with ``max``, not ``sum``. What only this process knows
(delivery latency, sweep durations, leases it took over from another daemon, mail it delivered) comes from
the daemon's own counters and histograms: ``sum`` those across daemons. A registry per daemon, not the
global one, so that several daemons in one process (the tests) keep apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlmodel import Session

from transferbot import __version__
from transferbot.app.context import App
from transferbot.core.domain import DeliveryStatus, OutboxStatus, Outcome, TransferStatus
from transferbot.store.models import InboundMessage, OutboundMessage, Transfer, WebhookDelivery

log = logging.getLogger(__name__)

# Queued to accepted by the relay: seconds when all is well, minutes to hours through retries.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
SWEEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class Counts:
    transfers: dict[str, int]
    inbound: dict[str, int]
    outbox: dict[str, int]
    webhooks: dict[str, int]


def counts_of(session: Session) -> Counts:
    """The database's counts, one GROUP BY per table (indexes on status make the first cheap)."""
    def grouped(column: Any) -> dict[str, int]:
        return {str(key): int(n) for key, n in session.exec(
            sa.select(column, sa.func.count()).group_by(column))}  # type: ignore[call-overload]

    return Counts(grouped(Transfer.status), grouped(InboundMessage.outcome), grouped(OutboundMessage.status),
                  grouped(WebhookDelivery.status))


class _Collector(Collector):
    """What is read at scrape time: the database's counts (fetched just before) and the daemon's counters."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("transferbot_info", "This daemon's release", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        counts = self.metrics.last_counts
        up = GaugeMetricFamily("transferbot_database_up", "Whether the last scrape could read the database")
        up.add_metric([], 1 if counts is not None else 0)
        yield up
        if counts is not None:
            yield _gauge("transferbot_transfers", "Transfers in the database, by status", "status",
                         counts.transfers, [s.value for s in TransferStatus])
            yield _gauge("transferbot_inbound_messages", "Inbound messages in the database, by outcome", "outcome",
                         counts.inbound, [o.value for o in Outcome])
            yield _gauge("transferbot_outbox_messages", "Outgoing mail in the database, by status (queued: waiting "
                         "to be delivered; failed: given up on)", "status", counts.outbox,
                         [s.value for s in OutboxStatus])
            yield _gauge("transferbot_webhook_deliveries", "Webhook deliveries in the database, by status (queued: "
                         "waiting or retrying; failed: given up on)", "status", counts.webhooks,
                         [s.value for s in DeliveryStatus])
        own = self.metrics.counters()
        if own is not None:
            taken = CounterMetricFamily("transferbot_leases_taken_over",
                                        "Work this daemon took over after another daemon's lease ran out",
                                        labels=["work"])
            for work in ("outbox", "inbound", "webhooks"):
                taken.add_metric([work], own.taken_over.get(work, 0))
            yield taken
            delivered = CounterMetricFamily("transferbot_mail_delivered", "Mail this daemon delivered")
            delivered.add_metric([], own.delivered)
            yield delivered
            read = CounterMetricFamily("transferbot_inbound_read", "Inbound messages this daemon read and acted on")
            read.add_metric([], own.read)
            yield read
            hooks = CounterMetricFamily("transferbot_webhook_attempts", "Webhook delivery attempts this daemon made, "
                                        "by result", labels=["result"])
            for result in ("delivered", "retry", "disable", "failed"):
                hooks.add_metric([result], own.webhook_results.get(result, 0))
            yield hooks


def _gauge(name: str, doc: str, label: str, values: dict[str, int], known: list[str]) -> GaugeMetricFamily:
    """Every known label value is reported, 0 when absent, so a series does not vanish when its count is 0."""
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key in [*known, *sorted(k for k in values if k not in known)]:
        family.add_metric([key], values.get(key, 0))
    return family


@dataclass(frozen=True)
class DaemonCounters:
    """What a daemon counted itself, since it started."""

    taken_over: dict[str, int]  # work this daemon took over after another's lease ran out: outbox, inbound, …
    delivered: int  # mail it delivered
    read: int  # inbound messages it read and acted on
    webhook_results: dict[str, int]  # webhook attempts by result: delivered, retry, disable, failed


class Metrics:
    """This daemon's registry, and the hooks the dispatcher and the sweep report to (``counters`` reads what the
    daemon counted itself; the daemon wires ``delivery_latency.observe`` and ``sweep`` to its workers)."""

    def __init__(self, app: App, counters: Callable[[], DaemonCounters | None] = lambda: None) -> None:
        self.app, self.counters = app, counters
        self.registry = CollectorRegistry()
        self.delivery_latency = Histogram(
            "transferbot_delivery_latency_seconds", "From a mail being queued to the relay accepting it",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.sweep_duration = Histogram("transferbot_sweep_duration_seconds", "How long each sweep took",
                                        buckets=SWEEP_BUCKETS, registry=self.registry)
        self.sweep_acted = Counter("transferbot_sweep_transfers_acted", "Transfers the sweeps acted on (reminders, "
                                   "last calls, expiries)", registry=self.registry)
        self.last_counts: Counts | None = None
        self.registry.register(_Collector(self))

    def sweep(self, seconds: float, acted: int) -> None:
        self.sweep_duration.observe(seconds)
        self.sweep_acted.inc(acted)

    async def scrape(self) -> bytes:
        try:
            counts: Counts | None = await self.app.store.read_async(counts_of)
        except Exception:  # noqa: BLE001 - reported as transferbot_database_up 0; the scrape still answers
            log.warning("metrics: cannot read the database's counts", exc_info=True)
            counts = None
        # No await from here on: the counts just read are the ones this scrape reports.
        self.last_counts = counts
        return generate_latest(self.registry)


def router(metrics: Metrics) -> APIRouter:
    r = APIRouter(tags=["metrics"])

    @r.get("/metrics", summary="Prometheus metrics", response_class=Response,
           responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "the text exposition format"}})
    async def scrape() -> Response:
        return Response(await metrics.scrape(), media_type=CONTENT_TYPE_LATEST)

    return r
