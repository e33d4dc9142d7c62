"""What the libraries alone cost per reply: the floor under `decided_vs_sink`, with none of transferbot's code.

    python bench/floor.py [--replies N]

A reply the daemon decides must at least be received over SMTP (aiosmtpd), parsed (the stdlib's
email package), DKIM-verified (dkimpy) and answered by about 1.7 notices sent over SMTP (aiosmtplib).
This measures the CPU each of those takes per reply, in the process that does it, with the
libraries called directly: the bare sink and a plain client (the processes the benchmark uses,
their CPU read from /proc), then parsing and verifying in this process. The sum is a floor under
what one daemon process spends per reply before any database work, template or check of its own;
against the bare sink's rate it gives the highest `decided_vs_sink` one process could reach.
The same for outbound mail: the plain aiosmtplib loop's rate, what sending and receiving a confirmation
cost, and rendering it (transferbot's one part there), against `outbound_vs_plain`.
Nothing is asserted; the numbers are printed (bench/README.md quotes a run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OUTBOUND_CONNECTIONS = 4  # [outbound] connections, the daemon's default and the benchmark's
NOTICES_PER_REPLY = 1.7  # what the end-to-end scenario measures (bench/README.md, "notices per reply")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def smtp_costs(work: Path, replies: Path, n: int, connections: int) -> dict[str, float]:
    """CPU per message of a bare aiosmtpd server receiving and of a plain aiosmtplib client sending."""
    from bench import procs
    from bench.scenarios import Children, start_sink

    with Children() as children:
        sink, port = start_sink(children, work, "floor-sink")
        client = children.start(procs.client_proc, [port], str(replies), connections, False, None, n, name="client")
        assert client.recv(120).get("ready")
        sink_before, client_before = cpu_seconds(sink.pid), cpu_seconds(client.pid)
        client.send(cmd="go")
        result = client.recv(900)
        sink_cpu, client_cpu = cpu_seconds(sink.pid) - sink_before, cpu_seconds(client.pid) - client_before
        client.close()
        sink.stop()
    accepted = result["accepted"]
    return {"sink_per_s": accepted / (result["t1"] - result["t0"]), "receive_ms": 1000 * sink_cpu / accepted,
            "send_ms": 1000 * client_cpu / accepted}


def parse_and_dkim(raws: list[bytes]) -> dict[str, float]:
    """CPU per reply of the stdlib parse (headers, the text part) and of dkimpy's verification."""
    import dkim

    from transferbot.devtools.demo import DEMO_DKIM_PUBLIC

    record = f"v=DKIM1; k=rsa; p={DEMO_DKIM_PUBLIC}".encode()

    def dns(_name: bytes, timeout: int = 5) -> bytes:
        return record

    parser = BytesParser(policy=policy.default)
    started = time.process_time()
    for raw in raws:
        msg = parser.parsebytes(raw)
        body = msg.get_body(("plain",))
        assert body is not None
        body.get_content()
    parse = time.process_time() - started
    started = time.process_time()
    for raw in raws:
        assert dkim.verify(raw, dnsfunc=dns)
    verify = time.process_time() - started
    return {"parse_ms": 1000 * parse / len(raws), "dkim_ms": 1000 * verify / len(raws)}


def render_ms(url: str) -> float:
    """CPU per confirmation of rendering it from its outbox row and snapshot (transferbot's Renderer, warm)."""
    from bench import world
    from transferbot.app import outbox
    from transferbot.app.context import open_app
    from transferbot.core.clock import now
    from transferbot.outbound.rendering import Renderer

    app = open_app(world.config_for(url))
    try:
        snapshots: dict[int, Any] = {}
        items = app.store.run(outbox.claim_due, "floor", now(), 60, 100_000, snapshots)
    finally:
        app.store.close()
    renderer = Renderer()
    for item in items[:20]:  # templates compiled, caches warm, as in a daemon that has been running
        renderer.render(item.row, snapshots.get(item.row.snapshot_id or 0))
    best = float("inf")
    for _round in range(3):  # the best of three passes: the least disturbed by the rest of the machine
        started = time.process_time()
        for item in items:
            renderer.render(item.row, snapshots.get(item.row.snapshot_id or 0))
        best = min(best, time.process_time() - started)
    return 1000 * best / len(items)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=600, help="replies to measure with (default 600)")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    from bench import world

    with tempfile.TemporaryDirectory(prefix="transferbot-floor-") as folder:
        work = Path(folder)
        url = f"sqlite:///{work / 'world.db'}"
        world.build_world(url, max(1, args.replies // 3))
        messages = world.approval_replies(url)[:args.replies]
        path = world.save_messages(messages, work / "replies.pkl")
        smtp = smtp_costs(work, path, len(messages), args.connections)
        local = parse_and_dkim([raw for _f, _r, raw in messages])
        confirmations = world.queued_messages(url)
        plain = smtp_costs(work, world.save_messages(confirmations, work / "confirmations.pkl"), len(confirmations),
                           OUTBOUND_CONNECTIONS)
        render = render_ms(url)
    floor = smtp["receive_ms"] + local["parse_ms"] + local["dkim_ms"] + NOTICES_PER_REPLY * smtp["send_ms"]
    budget = 1000 / (0.3 * smtp["sink_per_s"])
    print(f"transferbot benchmark floor: {len(messages)} DKIM-signed replies, CPU per reply of the libraries alone\n")
    print(f"  bare aiosmtpd sink rate                    {smtp['sink_per_s']:8.0f}/s")
    print(f"  aiosmtpd, receiving one reply              {smtp['receive_ms']:8.3f} ms   (the sink's own CPU)")
    print(f"  email package, parsing it                  {local['parse_ms']:8.3f} ms")
    print(f"  dkimpy, verifying its signature            {local['dkim_ms']:8.3f} ms")
    print(f"  aiosmtplib, sending {NOTICES_PER_REPLY} notices            {NOTICES_PER_REPLY * smtp['send_ms']:8.3f} ms"
          f"   ({smtp['send_ms']:.3f} ms each, the plain client's own CPU)")
    print(f"  floor per reply                            {floor:8.3f} ms   before any database, template or check")
    print(f"  decided_vs_sink >= 0.3 allows              {budget:8.3f} ms   per reply for everything, in one process")
    print(f"  highest decided_vs_sink at the floor       {1000 / floor / smtp['sink_per_s']:8.3f}"
          f"   (one process, nothing but the libraries)")
    # However the work were spread over processes, the machine runs it all: at 0.3 of the sink, the
    # daemon's floor, the benchmark's client sending each reply and the relay sink taking each notice.
    rate = 0.3 * smtp["sink_per_s"]
    cores = rate * (floor + smtp["send_ms"] + NOTICES_PER_REPLY * smtp["receive_ms"]) / 1000
    print(f"  CPU the whole run needs at 0.3 of the sink {cores:8.2f} cores of {os.cpu_count()}"
          f"   (daemon floor + client + relay sink, at {rate:.0f} replies/s)")
    print(f"\n  outbound: {len(confirmations)} confirmations over {OUTBOUND_CONNECTIONS} connections")
    print(f"  plain aiosmtplib loop rate                 {plain['sink_per_s']:8.0f}/s")
    print(f"  aiosmtplib, sending one (client CPU)       {plain['send_ms']:8.3f} ms")
    print(f"  aiosmtpd, receiving it (sink CPU)          {plain['receive_ms']:8.3f} ms")
    print(f"  transferbot, rendering it from its row     {render:8.3f} ms   (the daemon's Renderer, warm)")
    out_rate = 0.9 * plain["sink_per_s"]
    out_cores = out_rate * (plain["send_ms"] + plain["receive_ms"] + render) / 1000
    print(f"  CPU outbound needs at 0.9 of the plain loop {out_cores:7.2f} cores of {os.cpu_count()}"
          f"   (sending + relay sink + rendering, at {out_rate:.0f}/s; no claim or record counted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
