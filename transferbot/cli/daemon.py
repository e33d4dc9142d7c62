"""Running it: ``serve``, ``demo``, the database's schema (``db``) and the keys that sign our mail (``dkim``)."""

from __future__ import annotations

import argparse
import asyncio
import os
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


def cmd_dkim(args: argparse.Namespace, config: Config) -> int:
    from transferbot.config import DkimKeyConfig
    from transferbot.outbound.signing import generate_key

    try:
        selector = DkimKeyConfig(selector=args.selector, key_file=Path(".")).selector
    except ValueError:
        raise CliError(f"--selector {args.selector!r}: must be a DNS label or dotted labels, e.g. s2026") from None
    out = Path(args.out or f"dkim-{selector}.key")
    pem, record = generate_key(args.algorithm)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CliError(f"--out {out}: exists already; a key is never overwritten") from None
    except OSError as exc:
        raise CliError(f"--out {out}: cannot create the file: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
    print(f"{args.algorithm} key written to {out}; publish this TXT record, then list the key under "
          "[outbound] dkim_keys:", file=sys.stderr)
    print(f"{selector}._domainkey.{config.dkim_domain}. TXT \"{record}\"")
    return 0
