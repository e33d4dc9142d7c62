"""Which of transferbot's modules one reply passes through, from the SMTP edge to the mail it causes.

Runs the daemon in this process on SQLite with the benchmark's world (one transfer, its confirmations
sent), sends one party's approval over SMTP, and records, with a profile hook on every thread, the module
of each transferbot function called from the moment the edge is handed the message until the receipt it
causes reaches the relay (a sink, not traced). It prints the modules in the order they were first entered,
how many there are, and those entered more than once (left for another module and entered again); then
the same without the modules every step calls (the store's engine and models, the clock), which say
more about the path.

The daemon and the sink are found under either layout of the package (before and after it was grouped
into packages by role), so the same command measures either checkout:

    python bench/reply_path.py
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import smtplib
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import world  # noqa: E402


def _first(*names: str) -> Any:
    """The first of ``module:attribute`` names that imports (the layout of this checkout)."""
    for name in names:
        module, _, attribute = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attribute)
        except ImportError:
            continue
    raise ImportError(f"none of {names} imports")


class Trace:
    """The transferbot modules called, in order, while ``on`` (set when the edge is handed DATA)."""

    def __init__(self, skip: tuple[str, ...]) -> None:
        self.on = False
        self.calls: list[str] = []
        self.skip = skip
        self.lock = threading.Lock()

    def __call__(self, frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call":
            return
        module = frame.f_globals.get("__name__", "")
        if not module.startswith("transferbot.") or module.startswith(self.skip):
            return
        if not self.on:
            if frame.f_code.co_name == "handle_DATA":
                self.on = True
            else:
                return
        with self.lock:
            self.calls.append(module)


def runs(calls: list[str]) -> list[str]:
    """The modules in order of entry, a module entered again after another one counted again."""
    out: list[str] = []
    for module in calls:
        if not out or out[-1] != module:
            out.append(module)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--show", action="store_true", help="print every module in order of entry")
    args = parser.parse_args()
    daemon_class = _first("transferbot.runners.daemon:Daemon", "transferbot.daemon:Daemon")
    open_app = _first("transferbot.app.context:open_app", "transferbot.service.app:open_app")
    sink_class = _first("transferbot.devtools.sink:MailSink", "transferbot.sink:MailSink")
    skip = ("transferbot.devtools.sink", "transferbot.sink")

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/path.db"
        world.build_world(url, 1)
        world.mark_confirmations_sent(url)
        sender, rcpts, raw = world.approval_replies(url)[0]
        sink = sink_class().start_in_thread()
        app = open_app(world.config_for(url, sink_port=sink.port))
        loop = asyncio.new_event_loop()
        daemon = daemon_class(app, resolver=world.bench_resolver())
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(daemon.start())
            ready.set()
            loop.run_forever()

        trace = Trace(skip)
        threading.setprofile(trace)  # every thread started from here on: the loop, the writer, the pools
        thread = threading.Thread(target=run, name="daemon", daemon=True)
        thread.start()
        ready.wait(30)
        time.sleep(1.0)  # the start-up sweep and first polls are over: what follows is the reply's
        with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
            client.sendmail(sender, rcpts, raw)
        deadline = time.monotonic() + 60
        while not sink.messages and time.monotonic() < deadline:
            time.sleep(0.01)
        threading.setprofile(None)  # type: ignore[arg-type]
        trace.on, calls = False, list(trace.calls)
        asyncio.run_coroutine_threadsafe(daemon.stop(grace=5), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)
        sink.stop_thread()
        app.store.close()
    if not sink.messages:
        print("no mail reached the relay: nothing to report", file=sys.stderr)
        return 1
    report("all modules", runs(calls), args.show)
    report("without the store's engine and models and the clock",
           runs([m for m in calls if m not in PLUMBING]), args.show)
    return 0


PLUMBING = {"transferbot.store.sqlite", "transferbot.store.base", "transferbot.store.models", "transferbot.models",
            "transferbot.store.postgres", "transferbot.core.clock", "transferbot.clock"}


def report(title: str, entered: list[str], show: bool) -> None:
    counts = Counter(entered)
    order = list(dict.fromkeys(entered))
    again = {m: n for m, n in counts.items() if n > 1}
    print(f"{title}:")
    if show:
        for module in order:
            print(f"  {module}  x{counts[module]}")
    print(f"  modules entered: {len(order)}")
    print(f"  entered more than once: {len(again)}"
          + (" (" + ", ".join(f"{m.removeprefix('transferbot.')} {n}" for m, n in
                                 sorted(again.items(), key=lambda kv: -kv[1])) + ")" if again else ""))


if __name__ == "__main__":
    raise SystemExit(main())
