"""Running it: ``serve``, ``demo`` and the database's schema (``db``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from transferbot.cli.common import app_of
from transferbot.cli.exits import CliError
from transferbot.config import Config


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from transferbot.runners.daemon import serve

    asyncio.run(serve(app_of(config)))
    return 0


def cmd_demo(args: argparse.Namespace, config: Config) -> int:
    from transferbot.devtools.demo import run_demo

    keep = Path(args.keep) if args.keep else None
    if keep is not None:
        if keep.exists() and not keep.is_dir():
            raise CliError(f"--keep {keep}: exists and is not a folder; give an empty or new folder")
        if (keep / "demo.db").exists():
            raise CliError(f"--keep {keep}: holds a demo database already; give an empty or new folder")
        try:
            keep.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(f"--keep {keep}: cannot create the folder: {exc.strerror}") from None
    return asyncio.run(run_demo(keep))


def cmd_db(args: argparse.Namespace, config: Config) -> int:
    from transferbot.store import open_store, schema

    store = open_store(config.database)
    try:
        if args.action == "upgrade":
            before, after = schema.upgrade(store)
            if before == after:
                print(f"database {store.where} is at revision {after}, the current one", file=sys.stderr)
            else:
                print(f"database {store.where} upgraded from {before or 'nothing'} to {after}", file=sys.stderr)
        else:
            revision = schema.current(store)
            head = schema.head()
            state = "current" if revision == head else ("missing" if revision is None else f"behind {head}")
            print(f"{revision or '-'} ({state})")
    finally:
        store.close()
    return 0
