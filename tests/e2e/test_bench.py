"""Smoke test of the benchmark (issue 13): ``bench/run.py --smoke --database sqlite --json PATH`` runs to the
end and writes every figure. The smallest sizes, so the numbers mean nothing; no timing is asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT

# Issue 13's figures, spelled out here (not imported from the bench) so that a figure renamed or dropped fails.
FIGURES = ("accept_vs_sink", "decided_vs_sink", "notified_vs_sink", "outbound_vs_plain", "sweep_ms_per_due",
           "sweep_ms_per_due_1k", "sweep_ms_per_due_100k", "sweep_100k_vs_1k", "p99_decided_ms", "peak_rss_mib_100k")
RATES = ("sink_accepted_per_s", "edge_accepted_per_s", "e2e_decided_per_s", "e2e_notified_per_s",
         "outbound_sent_per_s", "plain_sent_per_s", "sweep_seconds_1k", "sweep_seconds_100k")

pytestmark = [pytest.mark.slow, pytest.mark.bench]


@pytest.mark.timeout(300)
def test_bench_smoke_on_sqlite_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the daemons it spawns import this checkout too
    done = subprocess.run([sys.executable, "bench/run.py", "--smoke", "--database", "sqlite", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text(encoding="utf-8"))

    assert set(result["backends"]) == {"sqlite"}
    sqlite = result["backends"]["sqlite"]
    for figure in FIGURES:
        assert isinstance(sqlite["ratios"].get(figure), float), (figure, sqlite["ratios"])
        assert result["ratios"]["sqlite"][figure] == sqlite["ratios"][figure]
        assert figure in result["targets"] and figure in sqlite["meets_target"]
    for rate in RATES:
        assert isinstance(sqlite["rates"].get(rate), float), (rate, sqlite["rates"])
    assert set(result["machine"]) >= {"load_average_before", "load_average_after", "cpus"}
    # every reply was decided, and the table names every figure
    assert sqlite["details"]["e2e"]["outcomes"] == {"done/approved": sqlite["sizes"]["replies"]}
    for figure in FIGURES:
        assert figure in done.stdout


@pytest.mark.timeout(120)
def test_bench_floor_prints_each_librarys_cost_per_reply_and_the_ceiling_they_leave() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "bench/floor.py", "--replies", "30"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr[-4000:]
    for line in ("aiosmtpd, receiving one reply", "email package, parsing it", "dkimpy, verifying its signature",
                 "aiosmtplib, sending", "floor per reply", "highest decided_vs_sink at the floor",
                 "CPU the whole run needs at 0.3 of the sink", "plain aiosmtplib loop rate",
                 "transferbot, rendering it from its row", "CPU outbound needs at 0.9 of the plain loop"):
        assert line in done.stdout, done.stdout
    floor = next(ln for ln in done.stdout.splitlines() if "floor per reply" in ln)
    assert float(floor.split()[3]) > 0
