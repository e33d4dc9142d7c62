"""The entry point: parse, run one command, and map what it raises to an exit code once."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from transferbot.cli.access import cmd_apikey, cmd_operator, cmd_webhook
from transferbot.cli.daemon import cmd_db, cmd_demo, cmd_dkim, cmd_serve
from transferbot.cli.exits import EXIT_REFUSED, EXIT_USAGE, CliError, database_error, stdout_closed
from transferbot.cli.logsetup import configure_logging
from transferbot.cli.mail import cmd_inbox, cmd_outbox, cmd_read
from transferbot.cli.parser import build_parser
from transferbot.cli.registry import cmd_account, cmd_entitlement
from transferbot.cli.transfers import (
    cmd_cancel,
    cmd_certificate,
    cmd_list,
    cmd_replace_contact,
    cmd_request,
    cmd_resend,
    cmd_show,
    cmd_verify,
)
from transferbot.config import Config, ConfigError, load_config
from transferbot.core.errors import Refusal
from transferbot.store import DatabaseTrouble, StoreError

log = logging.getLogger(__name__)


COMMANDS: dict[str, Callable[[argparse.Namespace, Config], int]] = {
    "cancel": cmd_cancel, "resend": cmd_resend, "replace-contact": cmd_replace_contact,
    "certificate": cmd_certificate, "verify": cmd_verify,
    "account": cmd_account, "entitlement": cmd_entitlement, "request": cmd_request, "list": cmd_list,
    "show": cmd_show, "serve": cmd_serve, "demo": cmd_demo, "read": cmd_read, "inbox": cmd_inbox,
    "outbox": cmd_outbox, "db": cmd_db,
    "apikey": cmd_apikey, "webhook": cmd_webhook,
    "operator": cmd_operator, "dkim": cmd_dkim,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config: Config | None = None
    try:
        config = load_config(args.config)
        level = args.log_level or (config.logging.level if args.command == "serve" else "WARNING")
        configure_logging(level)
        code = COMMANDS[args.command](args, config)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        return stdout_closed()
    except (ConfigError, StoreError) as exc:
        print(f"transferbot: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (Refusal, CliError, DatabaseTrouble) as exc:
        print(f"transferbot: error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (sa.exc.DBAPIError, sqlite3.Error) as exc:
        log.debug("database error", exc_info=True)
        print(f"transferbot: error: {database_error(exc, config)}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the operator; the traceback in the debug log
        log.debug("unexpected error", exc_info=True)
        print(f"transferbot: internal error: {type(exc).__name__}: {exc} (run with --log-level DEBUG for details)",
              file=sys.stderr)
        return 70
