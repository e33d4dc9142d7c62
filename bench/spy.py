"""Sampling the daemon with py-spy (all threads, the process undisturbed) and summarising the stacks.

py-spy is optional (``pip install py-spy``); it writes "raw" collapsed
stacks (root;...;leaf count), which we fold into the top costs: by own time
(where the samples land), by inclusive time (what a call costs with all it
calls), and by library.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RATE = 250  # samples per second
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")

# Functions whose inclusive share answers "where does a message's time go"
STAGES = (
    ("edge: store_arrivals (the 250 waits for its commit)", "store_arrivals", "transferbot/app/arrivals.py"),
    ("reader: claim_unread", "claim_unread", "transferbot/app/arrivals.py"),
    ("reader: read_stored", "read_stored", "transferbot/runners/reader.py"),
    ("  read_message (pure parse)", "read_message", "transferbot/inbound/reader/reading.py"),
    ("reader: sender authentication", "authenticate", "transferbot/inbound/senderauth/verify.py"),
    ("  verify_dkim (RSA, hashing)", "verify_dkim", "transferbot/inbound/senderauth/dkimcheck.py"),
    ("reader: apply_batch (the decision's transaction)", "apply_batch", "transferbot/app/replies.py"),
    ("  run_chain (checks and their lookups)", "run_chain", "transferbot/inbound/reader/chain.py"),
    ("  _apply (transition, notices queued)", "_apply", "transferbot/app/replies.py"),
    ("  append_event (audit chain)", "append_event", "transferbot/app/effects/audit.py"),
    ("dispatcher: outbox.claim_due", "claim_due", "transferbot/app/outbox.py"),
    ("dispatcher: Renderer.render (from the snapshot)", "render", "transferbot/outbound/rendering.py"),
    ("  compose.render (jinja, mail)", "render", "transferbot/outbound/compose.py"),
    ("  compose.build_message (MIME)", "build_message", "transferbot/outbound/compose.py"),
    ("  certdoc.attachments", "attachments", "transferbot/outbound/certdoc.py"),
    ("dispatcher: outbox.record", "record", "transferbot/app/outbox.py"),
    ("dispatcher: SmtpConnection.send", "send", "transferbot/outbound/transports.py"),
    ("sweep: sweep_batch", "sweep_batch", "transferbot/app/sweep.py"),
    ("BEGIN (IMMEDIATE for writes: waits for the lock)", "_on_begin", "transferbot/store/sqlite.py"),
    ("DB-API execute (C, incl. busy waits)", "do_execute", "sqlalchemy/engine/default.py"),
    ("DB-API COMMIT (C, incl. fsync)", "do_commit", "sqlalchemy/engine/default.py"),
    ("SQLAlchemy ORM flush", "flush", "sqlalchemy/orm/session.py"),
    ("email parsing/generating (stdlib)", "", "email/"),
    ("logging", "", "logging/__init__.py"),
)


class Spy:
    """Attaches py-spy to a pid for the length of a scenario."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.files: dict[str, Path] = {}

    def available(self) -> bool:
        return self._exe() is not None

    def _exe(self) -> str | None:
        beside = Path(sys.executable).parent / "py-spy"
        return str(beside) if beside.exists() else shutil.which("py-spy")

    def attach(self, pid: int, label: str) -> None:
        """Two samplers: every non-idle thread (wall time, waits in C included) and the GIL holder (CPU)."""
        exe = self._exe()
        assert exe is not None
        for suffix, extra in (("", []), ("-gil", ["--gil"])):
            out = self.folder / f"{label}{suffix}.txt"
            self.files[label + suffix] = out
            self.procs.append(subprocess.Popen(
                [exe, "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw", "--function", "--threads",
                 "--nonblocking", *extra, "--output", str(out)],
                stdout=subprocess.DEVNULL, stderr=open(self.folder / f"{label}{suffix}.log", "wb")))  # noqa: SIM115

    def detach(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.procs = []

    def summaries(self) -> dict[str, Any]:
        return {label: summarise(path) for label, path in self.files.items() if path.exists()}


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    return f"{match['func']} ({match['file']})"


def _file_of(frame: str) -> str:
    match = _FRAME.match(frame)
    return match["file"] if match else ""


def _library(frame: str) -> str:
    path = _file_of(frame)
    if not path:
        return "(other)"
    if path.startswith("transferbot/"):
        return "/".join(path.split("/")[:2]) if path.count("/") > 1 else path
    head = path.split("/")[0]
    return head.removesuffix(".py")


def summarise(path: Path, top: int = 15) -> dict[str, Any]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0] if frames and frames[0].startswith(("thread", "process")) else ""
        if thread:
            frames = frames[1:]
        if not frames:
            continue
        total += count
        names = [_short(f) for f in frames]
        # the event loop thread vs the worker threads of asyncio.to_thread (named asyncio_N)
        name = thread.partition(": ")[2]
        threads["to_thread workers" if name.startswith("asyncio_") else (name or "(unnamed)")] += count
        own[names[-1]] += count
        libraries[_library(frames[-1])] += count
        for name in set(names):
            inclusive[name] += count
        for label, func, file in STAGES:
            if any((n.startswith(func + " (") if func else True) and
                   (n.endswith(file + ")") if func else f"({file}" in n) for n in names):
                stages[label] += count

    def share(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(name, 100.0 * c / total) for name, c in counter.most_common(n)] if total else []

    return {
        "samples": total, "rate": RATE,
        "threads": share(threads, 5),
        "stages": [(label, 100.0 * stages[label] / total if total else 0.0) for label, _f, _p in STAGES],
        "own": share(own, top),
        "inclusive_transferbot": [(n, s) for n, s in share(inclusive, 400) if "(transferbot/" in n][:top],
        "libraries": share(libraries, 12),
    }


def render(summaries: dict[str, Any]) -> str:
    lines: list[str] = []
    for label, s in summaries.items():
        gil = label.endswith("-gil")
        scenario = {"edge": "(2) the edge", "e2e": "(3) end to end", "outbound": "(4) outbound"}[label.split("-")[0]]
        what = ("samples of the thread holding the GIL: CPU spent in Python" if gil else
                "samples of every non-idle thread: includes time in SQLite's C code (lock waits, fsync)")
        lines.append(f"profile of the daemon during {scenario} [{label}]: {s['samples']} samples at {s['rate']}/s;")
        lines.append(f"  % of {what}")
        lines.append("  threads:   " + "; ".join(f"{n} {p:.0f}%" for n, p in s["threads"]))
        lines.append("  stages (inclusive):")
        lines += [f"    {p:5.1f}%  {n}" for n, p in s["stages"] if p >= 0.5]
        lines.append("  by library (own time):")
        lines += [f"    {p:5.1f}%  {n}" for n, p in s["libraries"][:8]]
        lines.append("  top own time:")
        lines += [f"    {p:5.1f}%  {n}" for n, p in s["own"][:10]]
        lines.append("  top transferbot functions (inclusive):")
        lines += [f"    {p:5.1f}%  {n}" for n, p in s["inclusive_transferbot"][:10]]
        lines.append("")
    return "\n".join(lines)
