"""The operator's command line.

Every command that changes something refuses bad input with one line on
stderr and a non-zero exit, writing nothing. Listing commands take --json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from transferbot import __version__
from transferbot.cli.logsetup import configure_logging
from transferbot.config import Config, ConfigError, load_config
from transferbot.core.domain import AccountKind, OutboxStatus, Role, TransferStatus
from transferbot.core.errors import Refusal, TooSoon
from transferbot.core.languages import MAIL
from transferbot.store import DatabaseTrouble, StoreError
from transferbot.store.sqlite import database_path

log = logging.getLogger(__name__)

EXIT_REFUSED = 1
EXIT_USAGE = 2
INBOX_LIMIT = 1000
OUTBOX_LIMIT = 500


class CliError(Exception):
    """A problem to report on one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive(value: str) -> int:
    """--limit: a whole number of rows, at least one."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of rows")
    return number


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="transferbot", description="Email-driven approval of marketplace entitlement transfers.")
    p.add_argument("--config", metavar="PATH", help="TOML configuration (else $TRANSFERBOT_CONFIG, ./transferbot.toml, defaults)")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override [logging] level")
    p.add_argument("--version", action="version", version=f"transferbot {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    account = sub.add_parser("account", help="register and change accounts",
                             description="Register and change accounts (customers, ISVs, resellers).")
    account_sub = account.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    account_sub.required = True
    a = account_sub.add_parser("add", help="register an account", description="Register an account.")
    a.add_argument("id", help="the account's id (letters, digits, '.', '_', '-')")
    a.add_argument("--kind", required=True, choices=[k.value for k in AccountKind], help="what the account is")
    a.add_argument("--name", required=True, help="its name as every party sees it (one line)")
    a.add_argument("--email", required=True, action="append", help="repeatable: any address may answer for the account")
    a.add_argument("--locale", choices=MAIL, help="the language of its mail (default: [workflow] default_locale)")
    a.add_argument("--timezone", help="IANA name for the dates in its mail, e.g. Europe/Paris")
    a = account_sub.add_parser("update", help="change an account",
                               description="Change an account; an open transfer keeps what it was filed with.")
    a.add_argument("id", help="the account's id")
    a.add_argument("--name", help="a new name (one line)")
    a.add_argument("--email", action="append", help="repeatable: replaces the account's addresses")
    a.add_argument("--locale", choices=MAIL, help="a new language for its mail")
    a.add_argument("--timezone", help="a new IANA time zone, e.g. Europe/Berlin")
    a = account_sub.add_parser("list", help="list accounts", description="List accounts.")
    a.add_argument("--json", action="store_true", help="print a JSON array")

    ent = sub.add_parser("entitlement", help="register entitlements (active orders)",
                         description="Register entitlements: the active orders a transfer moves.")
    ent_sub = ent.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    ent_sub.required = True
    e = ent_sub.add_parser("add", help="register an entitlement", description="Register an active order.")
    e.add_argument("id", help="the entitlement's id")
    e.add_argument("--product", required=True, help="the product's name (one line)")
    e.add_argument("--customer", required=True, metavar="ACCOUNT", help="the customer account that bought it")
    e.add_argument("--isv", required=True, metavar="ACCOUNT", help="the ISV account that sells it")
    e.add_argument("--reseller", metavar="ACCOUNT", help="the reseller it is bought through; omit for a direct order")
    e = ent_sub.add_parser("list", help="list entitlements", description="List entitlements.")
    e.add_argument("--json", action="store_true", help="print a JSON array")

    r = sub.add_parser("request", help="file a transfer (as the ISV)",
                       description="File a transfer as the ISV; prints its id alone.")
    r.add_argument("entitlement", help="the entitlement to move")
    target = r.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-reseller", metavar="ACCOUNT", help="move it to be bought through this reseller")
    target.add_argument("--to-direct", action="store_true", help="move it to be bought directly from the ISV")
    r.add_argument("--note", default="", help="shown to every party (may have several lines)")

    ls = sub.add_parser("list", help="list transfers", description="List transfers, oldest first.")
    ls.add_argument("--status", choices=[s.value for s in TransferStatus], help="only transfers in this state")
    ls.add_argument("--json", action="store_true", help="print a JSON array ([] when none)")

    sh = sub.add_parser("show", help="show one transfer with its parties, audit trail and mail",
                        description="One transfer: entitlement, parties and decisions, audit trail, mail in and out.")
    sh.add_argument("transfer", help="the transfer's id (TR-…)")
    sh.add_argument("--json", action="store_true", help="print the whole record as JSON")

    sub.add_parser("serve", help="run the daemon until SIGINT/SIGTERM",
                   description="Run the daemon (SMTP in, mail out, reminders) until SIGINT/SIGTERM.")
    dm = sub.add_parser("demo", help="run the whole story on this machine, no set-up",
                        description="Run the whole story on this machine with a throwaway database.")
    dm.add_argument("--keep", metavar="DIR", help="keep the demo's database and mail in DIR (a new or empty folder)")

    dk = sub.add_parser("dkim", help="the keys that sign our outgoing mail",
                        description="The DKIM keys that sign our outgoing mail ([outbound] dkim_keys).")
    dk_sub = dk.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    dk_sub.required = True
    d = dk_sub.add_parser("keygen", help="write a new private key and print the DNS record to publish",
                          description="Write a new DKIM private key (mode 0600) and print the TXT record to "
                                      "publish for it.")
    d.add_argument("--selector", required=True, help="the selector the key is published under, e.g. s2026")
    d.add_argument("--algorithm", choices=["rsa", "ed25519"], default="rsa", help="rsa (2048 bits, the default) "
                   "or ed25519 (a second signature beside an RSA one)")
    d.add_argument("--out", metavar="FILE", help="where to write the key (default: dkim-SELECTOR.key); never "
                   "overwritten")

    rd = sub.add_parser("read", help="show how the reader reads one raw message (changes nothing)",
                        description="Show how the reader reads one raw message, changing nothing. It needs no "
                                    "configuration and no database; with a current database it also looks up "
                                    "the transfer and party the message is for.")
    rd.add_argument("file", help="a raw message (.eml), or - for stdin")
    rd.add_argument("--rcpt", action="append", default=[], metavar="ADDR", help="envelope recipient (repeatable)")
    rd.add_argument("--mail-from", default=None, metavar="ADDR",
                    help="envelope sender ('' for a bounce; default: the From address)")
    rd.add_argument("--client-ip", default="", metavar="IP", help="the address the message came from (for SPF)")
    rd.add_argument("--helo", default="", metavar="NAME", help="the name the client gave in HELO/EHLO")
    rd.add_argument("--json", action="store_true", help="print the reading as JSON")

    ib = sub.add_parser("inbox", help="list inbound messages and their outcomes",
                        description="Inbound messages and their outcomes, oldest first, a page at a time.")
    ib.add_argument("--transfer", metavar="ID", help="only the messages filed under this transfer")
    ib.add_argument("--limit", type=_positive, default=INBOX_LIMIT, metavar="N",
                    help=f"at most N messages (default {INBOX_LIMIT}); how many more there are goes to stderr")
    ib.add_argument("--cursor", metavar="C", help="continue after the page whose next_cursor was C")
    ib.add_argument("--json", action="store_true", help='print a page: {"items": [...], "next_cursor", "more"}')
    ib_sub = ib.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    ibr = ib_sub.add_parser("retry", help="read a failed message again", description="Read a failed message again.")
    ibr.add_argument("id", type=int, help="the inbound message's number (inbox ID)")

    ob = sub.add_parser("outbox", help="list outgoing mail with attempts and last error",
                        description="Outgoing mail with its attempts and last error, newest first, a page at a time.")
    ob.add_argument("--status", choices=[s.value for s in OutboxStatus], help="only mail in this state")
    ob.add_argument("--limit", type=_positive, default=OUTBOX_LIMIT, metavar="N",
                    help=f"at most N messages (default {OUTBOX_LIMIT}); how many more there are goes to stderr")
    ob.add_argument("--cursor", metavar="C", help="continue after the page whose next_cursor was C")
    ob.add_argument("--json", action="store_true", help='print a page: {"items": [...], "next_cursor", "more"}')
    ob_sub = ob.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    obr = ob_sub.add_parser("retry", help="put failed outgoing mail back in the queue",
                            description="Put failed outgoing mail back in the queue, due now.")
    which = obr.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, nargs="?", help="the outgoing message's number (outbox ID)")
    which.add_argument("--all-failed", action="store_true", help="every failed message")

    c = sub.add_parser("cancel", help="withdraw a pending transfer (every party is told why)",
                       description="The ISV withdraws a pending transfer; every party is told why.")
    c.add_argument("transfer", help="the transfer's id (TR-…)")
    c.add_argument("--reason", required=True, help="why, shown to every party (may have several lines)")

    rs = sub.add_parser("resend", help="mail the confirmation again to pending parties (same token, threaded)",
                        description="Mail the confirmation again to the pending parties, same token, same thread. "
                                    "A party is resent at most once an hour; one resent within the hour is "
                                    "left out (refused when that leaves nobody) unless --force.")
    rs.add_argument("transfer", help="the transfer's id (TR-…)")
    rs.add_argument("--role", choices=[r.value for r in Role], help="only this party")
    rs.add_argument("--force", action="store_true",
                    help="resend even to a party resent within the hour (recorded as forced in the audit trail)")

    rc = sub.add_parser("replace-contact", help="a party's contact changed: new address, new token",
                        description="A party's contact changed: the old token stops counting, the new address "
                                    "gets a fresh confirmation.")
    rc.add_argument("transfer", help="the transfer's id (TR-…)")
    rc.add_argument("role", choices=[r.value for r in Role], help="the party whose contact changed")
    rc.add_argument("email", help="the new contact address")

    ce = sub.add_parser("certificate", help="the certificate of completion of a transfer",
                        description="The certificate of a transfer: details, decisions, mail and audit trail.")
    ce.add_argument("transfer", help="the transfer's id (TR-…)")
    ce.add_argument("--format", choices=["text", "json", "html"], default="text", help="text (default), json or html")

    ve = sub.add_parser("verify", help="recompute a transfer's audit chain",
                        description="Recompute a transfer's audit chain; exit 1 naming the first event that "
                                    "does not match.")
    ve.add_argument("transfer", help="the transfer's id (TR-…)")

    _api_parsers(sub)

    # -- the dashboard's operators (issue 12) --
    op_ = sub.add_parser("operator", help="who may sign in to the web dashboard (/ui/)",
                         description="The people who may sign in to the web dashboard; their actions are recorded "
                                     "in the audit trail under their name.")
    op_sub = op_.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    op_sub.required = True
    o = op_sub.add_parser("add", help="register an operator; the password is read from stdin",
                          description="Register an operator. The password (at least 10 characters) is read from "
                                      "the first line of standard input, never from the command line.")
    o.add_argument("name", help="the operator's name, as the sign-in form and the audit trail show it")
    o.add_argument("--password-stdin", action="store_true", required=True,
                   help="read the password from the first line of standard input (required)")
    o = op_sub.add_parser("password", help="change an operator's password (read from stdin); ends its sessions",
                          description="Change an operator's password, read from the first line of standard input; "
                                      "every session it has is ended.")
    o.add_argument("name", help="the operator's name")
    o.add_argument("--password-stdin", action="store_true", required=True,
                   help="read the password from the first line of standard input (required)")
    o = op_sub.add_parser("list", help="list operators", description="List the dashboard's operators.")
    o.add_argument("--json", action="store_true", help="print a JSON array")
    o = op_sub.add_parser("remove", help="remove an operator and end its sessions",
                          description="Remove an operator; its sessions end at once, on every daemon.")
    o.add_argument("name", help="the operator's name")

    db = sub.add_parser("db", help="create or upgrade the database's schema",
                        description="The database's schema: create it, bring it up to date, or say where it stands.")
    db_sub = db.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    db_sub.required = True
    db_sub.add_parser("upgrade", help="create the database or bring it to this release's schema (safe to repeat)",
                      description="Create the database, or bring it to this release's schema in place, keeping "
                                  "its data. Safe to repeat; daemons starting at once wait for one another.")
    db_sub.add_parser("current", help="print the schema revision the database is at",
                      description="Print the schema revision the database is at, and whether it is current.")
    return p


def _api_parsers(sub: Any) -> None:
    """`apikey` and `webhook` (issue 11): keys for the HTTP API, and the endpoints events are delivered to."""
    from transferbot.outbound.webhooks import EVENT_TYPES

    ak = sub.add_parser("apikey", help="keys for the HTTP API (ISVs, the marketplace's systems)",
                        description="Keys for the HTTP API. A key is shown once, when it is made; only its hash is "
                                    "kept.")
    ak_sub = ak.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    ak_sub.required = True
    k = ak_sub.add_parser("create", help="make a key; prints it alone on the last line",
                          description="Make a key and print it alone on the last line of stdout (shown this once).")
    scope = k.add_mutually_exclusive_group(required=True)
    scope.add_argument("--isv", metavar="ACCOUNT", help="a key for this ISV's systems: its own entitlements only")
    scope.add_argument("--admin", action="store_true", help="a key for the marketplace's own systems: everything")
    k.add_argument("--name", default="", help="what the key is for (one line), shown by `apikey list`")
    k = ak_sub.add_parser("list", help="list keys (never the keys themselves)", description="List the API keys.")
    k.add_argument("--json", action="store_true", help="print a JSON array")
    k = ak_sub.add_parser("revoke", help="revoke a key: refused from now on", description="Revoke an API key.")
    k.add_argument("id", type=int, help="the key's number (apikey list ID)")

    wh = sub.add_parser("webhook", help="endpoints that receive signed events, and their deliveries",
                        description="Endpoints that receive transfer events as signed webhooks (Standard "
                                    "Webhooks), and what became of each delivery.")
    wh_sub = wh.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    wh_sub.required = True
    w = wh_sub.add_parser("add", help="add an endpoint; prints its id and signing secret",
                          description="Add an endpoint. Prints its id, then its signing secret (whsec_…), each on "
                                      "a line of its own: the secret is shown this once.")
    w.add_argument("url", help="http(s) URL the events are POSTed to")
    w.add_argument("--event", action="append", default=[], metavar="TYPE", choices=list(EVENT_TYPES),
                   help=f"repeatable: only these event types (default: all): {', '.join(EVENT_TYPES)}")
    w.add_argument("--isv", metavar="ACCOUNT", help="only the transfers of this ISV")
    w = wh_sub.add_parser("list", help="list endpoints", description="List the webhook endpoints.")
    w.add_argument("--json", action="store_true", help="print a JSON array")
    w = wh_sub.add_parser("remove", help="remove an endpoint (its queued deliveries are dropped)",
                          description="Remove an endpoint; its deliveries still queued are dropped.")
    w.add_argument("id", type=int, help="the endpoint's number (webhook list ID)")
    w = wh_sub.add_parser("deliveries", help="deliveries with their attempts, newest first",
                          description="Webhook deliveries with every attempt (time, status, error), newest first.")
    w.add_argument("--endpoint", type=int, metavar="ID", help="only the deliveries to this endpoint")
    w.add_argument("--limit", type=_positive, default=OUTBOX_LIMIT, metavar="N",
                   help=f"at most N deliveries (default {OUTBOX_LIMIT})")
    w.add_argument("--cursor", metavar="C", help="continue after the page whose next_cursor was C")
    w.add_argument("--json", action="store_true", help='print a page: {"items": [...], "next_cursor", "more"}')
    w = wh_sub.add_parser("retry", help="queue a failed delivery again (same event id, same body)",
                          description="Queue a failed delivery again, due now, with three days of retries.")
    w.add_argument("delivery", type=int, help="the delivery's number (webhook deliveries ID)")


# -- output helpers -------------------------------------------------------------

def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip())
    for r in cells:
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())


# -- commands -------------------------------------------------------------------

def _app(config: Config):  # type: ignore[no-untyped-def]
    from transferbot.app.context import open_app

    return open_app(config)


def cmd_account(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app import registry

    app = _app(config)
    if args.action == "add":
        view = registry.add_account(app, args.id, args.kind, args.name, args.email, args.locale, args.timezone)
        print(f"account {view.id} added ({view.kind}, {', '.join(view.emails)})", file=sys.stderr)
    elif args.action == "update":
        view = registry.update_account(app, args.id, args.name, args.email, args.locale, args.timezone)
        print(f"account {view.id} updated", file=sys.stderr)
    else:
        views = registry.list_accounts(app)
        if args.json:
            _print_json([v.as_json() for v in views])
        else:
            _table([(v.id, v.kind, v.name, ", ".join(v.emails), v.locale, v.timezone) for v in views],
                   ("ID", "KIND", "NAME", "EMAILS", "LOCALE", "TIMEZONE"))
    return 0


def cmd_entitlement(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app import registry

    app = _app(config)
    if args.action == "add":
        ent = registry.add_entitlement(app, args.id, args.product, args.customer, args.isv, args.reseller)
        where = f"through {ent.reseller_id}" if ent.reseller_id else "direct"
        print(f"entitlement {ent.id} added ({ent.product}, {where})", file=sys.stderr)
    else:
        ents = registry.list_entitlements(app)
        if args.json:
            _print_json([{"id": e.id, "product": e.product, "customer": e.customer_id, "isv": e.isv_id,
                          "reseller": e.reseller_id, "state": e.state} for e in ents])
        else:
            _table([(e.id, e.product, e.customer_id, e.isv_id, e.reseller_id or "(direct)", e.state) for e in ents],
                   ("ID", "PRODUCT", "CUSTOMER", "ISV", "RESELLER", "STATE"))
    return 0


def cmd_request(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.transfers import request_transfer

    target = None if args.to_direct else args.to_reseller
    print(request_transfer(_app(config), args.entitlement, target, args.note))
    return 0


def cmd_list(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.queries.views import list_transfers

    rows = list_transfers(_app(config), args.status)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no transfers" + (f" with status {args.status}" if args.status else ""), file=sys.stderr)
        return 0
    _table([(r["id"], r["status"], r["kind"], r["entitlement"], r["product"],
             " ".join(f"{role}:{d}" for role, d in r["parties"].items()), r["created_at"][:16])
            for r in rows], ("ID", "STATUS", "KIND", "ENTITLEMENT", "PRODUCT", "DECISIONS", "CREATED"))
    return 0


def cmd_show(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.queries.views import transfer_detail
    from transferbot.inbound.explain import explain_inbound

    d = transfer_detail(_app(config), args.transfer)
    if args.json:
        _print_json(d)
        return 0
    ent = d["entitlement"]
    print(f"{d['id']}  {d['kind']}  {d['status']}")
    print(f"  entitlement {ent['id']} ({ent['product']}), now {'through ' + ent['reseller'] if ent['reseller'] else 'direct'}")
    print(f"  from {d['from_reseller'] or 'direct'} to {d['to_reseller'] or 'direct'}")
    print(f"  requested {d['created_at']}, expires {d['expires_at']}" + (f", closed {d['closed_at']}" if d["closed_at"] else ""))
    if d["note"]:
        print(f"  note: {d['note']}")
    print(f"  fingerprint {d['fingerprint']}")
    print("parties:")
    for p in d["parties"]:
        extra = f" at {p['decided_at']}" if p["decided_at"] else ""
        bad = f"  UNDELIVERABLE: {', '.join(u['address'] for u in p['undeliverable'])}" if p["undeliverable"] else ""
        print(f"  {p['role']:<17} {p['account']:<16} {', '.join(p['emails'])}  {p['decision']}{extra}{bad}")
    print("events:")
    for e in d["events"]:
        data = {k: v for k, v in e.items() if k not in ("seq", "at", "kind", "parties", "checks")}
        reason = data.pop("reason", None)
        brief = ", ".join(f"{k}={v}" for k, v in data.items())
        print(f"  {e['at'][:19]}  {e['kind']:<22} {brief[:140]}")
        if reason:
            _print_reason(str(reason))
    print("mail in:" if d["inbound"] else "mail in: none")
    names = {p["role"]: p["name"] for p in d["parties"]}
    for m in d["inbound"]:
        print(f"  #{m['id']:<5} {(m['received_at'] or '')[:19]}  {m['from'] or m['mail_from'] or '<>'}  "
              f"{m['party'] or '-'}  {m['outcome']}  {m['decided_by'] or '-'}  {m['message_id'] or '(no Message-ID)'}")
        _print_reason(explain_inbound(m, names.get(m["party"] or ""), d["status"]).headline)
        if m["reason"]:
            _print_reason(m["reason"])
    print("mail out:" if d["outbound"] else "mail out: none")
    for o in d["outbound"]:
        print(f"  #{o['id']:<5} {o['kind']:<15} {o['status']:<7} attempts {o['attempts']}  {', '.join(o['to'])}  "
              f"{o['message_id']}")
        if o["last_error"]:
            _print_reason(o["last_error"])
    print("webhooks:" if d.get("webhooks") else "webhooks: none")
    for w in d.get("webhooks", []):
        print(f"  #{w['id']:<5} {w['type']:<23} endpoint #{w['endpoint']:<3} {w['status']:<9} attempts "
              f"{w['attempts']}  {w['event_id']}")
        for a in w["history"]:
            code = a["status_code"] if a["status_code"] is not None else "-"
            print(f"      {a['at'][:19]}  {a['outcome']:<9} HTTP {code}" + (f"  {a['error']}" if a["error"] else ""))
    return 0


def _print_reason(text: str) -> None:
    """A reason or an error, whole, each of its lines indented under the row it explains."""
    for line in text.splitlines() or [""]:
        print(f"      {line}")


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from transferbot.runners.daemon import serve

    asyncio.run(serve(_app(config)))
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


def cmd_read(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.replies import explain

    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    mail_from = args.mail_from
    if mail_from is None:
        from transferbot.core.addresses import header_address
        from transferbot.inbound.reader.message import header, parse

        mail_from = header_address(header(parse(raw), "From")) or ""
    try:
        app, not_looked_up = _app(config), None
    except (DatabaseTrouble, StoreError) as exc:  # reading needs no database: only the transfer's lookup does
        app, not_looked_up = None, f"not done ({exc})"
    reading, verdict, auth = explain(config, raw, mail_from, args.rcpt, args.client_ip, args.helo, app=app)
    taken = verdict.decision or reading.decision  # as the chain took it (a mismatch is found there)
    out: dict[str, Any] = {
        "lookup": not_looked_up or "done",
        "message_id": reading.message_id, "from": reading.from_address, "subject": reading.subject,
        "token": (reading.envelope_tokens or reading.body_tokens or [None])[0],
        "transfer": verdict.party.transfer_id if verdict.party else None,
        "party": verdict.party.role if verdict.party else None,
        "auto_reply": reading.auto_reply is not None, "auto_reply_reason": reading.auto_reply,
        "bounce": reading.bounce is not None,
        "bounce_permanent": bool(reading.bounce and reading.bounce.permanent),
        "body": reading.body_kind, "signed": reading.signed or None, "fresh_text": reading.fresh_text, "decision": taken.kind,
        "decision_problem": taken.problem or None, "unclear_words": taken.words or None,
        "reason": reading.decision.reason or None,
        "outcome": verdict.outcome.value, "decided_by": verdict.decided_by, "why": verdict.reason or None,
        "checks": list(verdict.checks),
        "authentication": auth.as_dict() if auth is not None else None,
        "auth": (auth.summary() + ("" if args.client_ip else " (no --client-ip: SPF not checked)")
                 if auth is not None else None),
        "auth_why": auth.why if auth is not None else None,
    }
    if args.json:
        _print_json(out)
        return 0
    for key in ("lookup", "message_id", "from", "subject", "token", "transfer", "party", "auto_reply_reason", "bounce",
                "auth", "auth_why", "body", "signed", "decision", "decision_problem", "unclear_words", "outcome", "decided_by",
                "why"):
        print(f"{key + ':':<19}{'' if out[key] is None else out[key]}")
    print("checks:")
    for check in out["checks"]:
        print(f"  {check}")
    print("fresh text:")
    for line in (out["fresh_text"] or "(none)").splitlines() or ["(none)"]:
        print(f"  | {line}")
    return 0


def cmd_inbox(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app import replies
    from transferbot.app.queries import views

    app = _app(config)
    if args.action == "retry":
        try:
            row = replies.retry_inbound(app, args.id)
        except Refusal:
            raise
        except Exception as exc:  # noqa: BLE001 - reported on one line; the message stays failed
            raise CliError(f"inbound #{args.id} failed again: {type(exc).__name__}: {exc}") from None
        print(f"inbound #{row.id}: {row.outcome}" + (f" ({row.reason})" if row.reason else ""))
        return 0
    page = views.inbox_page(app, args.transfer, args.limit, args.cursor)
    if args.json:
        _print_json(page.as_json())
        return 0
    rows = page.items
    _table([(r["id"], (r["received_at"] or "")[:19], r["mail_from"] or "<>", ",".join(r["rcpt_tos"]),
             r["message_id"], r["transfer"] or "-", r["party"] or "-", r["outcome"], r["decided_by"] or "-")
            for r in rows], ("ID", "RECEIVED", "MAIL FROM", "RCPT TO", "MESSAGE-ID", "TRANSFER", "PARTY", "OUTCOME",
                             "DECIDED BY"))
    _say_more(page)
    return 0


def _say_more(page: Any) -> None:
    """A page that is not the last says so on stderr, with how to see the rest."""
    if page.more:
        print(f"… {page.more} more; use --limit N, or --cursor {page.next_cursor} for the next page "
              f"(--json pages too)", file=sys.stderr)


def cmd_outbox(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app import outbox
    from transferbot.core.clock import now

    app = _app(config)
    if args.action == "retry":
        ids = outbox.retry_outbox(app, args.id, args.all_failed, now())
        print(f"{len(ids)} message(s) queued again: {', '.join('#' + str(i) for i in ids) or '-'}")
        return 0
    page = outbox.outbox_page(app, args.status, args.limit, args.cursor)
    if args.json:
        _print_json(page.as_json())
        return 0
    _table([(d["id"], d["status"], d["kind"], d["transfer"] or "-", ",".join(d["to"]), d["attempts"],
             (d["last_error"] or "")[:60]) for d in page.items],
           ("ID", "STATUS", "KIND", "TRANSFER", "TO", "ATTEMPTS", "LAST ERROR"))
    _say_more(page)
    return 0


def cmd_cancel(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.controls import cancel_transfer

    tid = cancel_transfer(_app(config), args.transfer, args.reason)
    print(f"{tid} cancelled; every party is told", file=sys.stderr)
    return 0


def cmd_resend(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.controls import resend

    try:
        roles = resend(_app(config), args.transfer, args.role, force=args.force)
    except TooSoon as exc:
        raise CliError(f"{exc} (or --force)") from None  # the operator, unlike an ISV, may force it
    print(f"confirmation queued again for: {', '.join(roles) or 'nobody (no deliverable address)'}", file=sys.stderr)
    return 0


def cmd_replace_contact(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.controls import replace_contact

    role = replace_contact(_app(config), args.transfer, args.role, args.email)
    print(f"{role} of {args.transfer.upper()} now reached at {args.email}; the old token no longer counts",
          file=sys.stderr)
    return 0


def cmd_certificate(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.queries.certificate import certificate

    sys.stdout.write(certificate(_app(config), args.transfer, args.format))
    return 0


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


def _password_from_stdin() -> str:
    """The first line of standard input, without its line end (a password is never an argument)."""
    line = sys.stdin.readline()
    password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        raise CliError("no password on standard input (e.g. printf '%s\\n' \"$PASSWORD\" | transferbot operator "
                       "add NAME --password-stdin)")
    return password


def cmd_operator(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app import operators

    app = _app(config)
    if args.action == "add":
        view = operators.add_operator(app, args.name, _password_from_stdin())
        print(f"operator {view.name} added", file=sys.stderr)
    elif args.action == "password":
        operators.set_password(app, args.name, _password_from_stdin())
        print(f"operator {args.name}: password changed; its sessions are ended", file=sys.stderr)
    elif args.action == "remove":
        operators.remove_operator(app, args.name)
        print(f"operator {args.name} removed; its sessions are ended", file=sys.stderr)
    else:
        views = operators.list_operators(app)
        if args.json:
            _print_json([v.as_json() for v in views])
        elif not views:
            print("no operators (add one with: transferbot operator add NAME --password-stdin)", file=sys.stderr)
        else:
            _table([(v.name, v.created_at.isoformat()[:19], "disabled" if v.disabled else "enabled") for v in views],
                   ("NAME", "CREATED", "STATE"))
    return 0


def cmd_verify(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.queries.certificate import verify

    ok, message = verify(_app(config), args.transfer)
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else EXIT_REFUSED


# -- the HTTP API's keys and webhooks (issue 11) ----------------------------------

def cmd_apikey(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app import apikeys

    app = _app(config)
    if args.action == "create":
        row, key = apikeys.create_key(app, None if args.admin else args.isv, args.name)
        who = "admin" if args.admin else f"isv {args.isv}"
        print(f"api key #{row.id} ({row.prefix}…) for {who}; it is shown this once: keep it now", file=sys.stderr)
        print(key)
    elif args.action == "revoke":
        row = apikeys.revoke_key(app, args.id)
        print(f"api key #{row.id} ({row.prefix}…) revoked", file=sys.stderr)
    else:
        keys = apikeys.list_keys(app)
        if args.json:
            _print_json(keys)
        else:
            _table([(k["id"], k["prefix"] + "…", k["scope"], k["isv"] or "-", k["state"], k["created_at"][:19],
                     k["name"]) for k in keys], ("ID", "KEY", "SCOPE", "ISV", "STATE", "CREATED", "NAME"))
    return 0


def cmd_webhook(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app import controls as operator
    from transferbot.app import webhooks

    app = _app(config)
    if args.action == "add":
        row, secret = webhooks.add_endpoint(app, args.url, args.event, args.isv)
        print(f"webhook endpoint #{row.id} added; its signing secret is shown this once", file=sys.stderr)
        print(row.id)
        print(secret)
    elif args.action == "remove":
        dropped = webhooks.remove_endpoint(app, args.id)
        print(f"webhook endpoint #{args.id} removed; {dropped} queued deliveries dropped", file=sys.stderr)
    elif args.action == "retry":
        delivery = operator.retry_webhook(app, args.delivery)
        print(f"webhook delivery #{delivery.id} queued again", file=sys.stderr)
    elif args.action == "deliveries":
        page = webhooks.deliveries_page(app, args.endpoint, args.limit, args.cursor)
        if args.json:
            _print_json(page.as_json())
            return 0
        if not page.items:
            print("no webhook deliveries", file=sys.stderr)
        for d in page.items:
            print(f"#{d['id']:<5} {d['type']:<23} endpoint #{d['endpoint']:<3} {d['transfer'] or '-':<10} "
                  f"{d['status']:<9} attempts {d['attempts']}  {d['event_id']}")
            for a in d["history"]:
                code = a["status_code"] if a["status_code"] is not None else "-"
                print(f"      {a['at'][:23]}  {a['outcome']:<9} HTTP {code:<4} {a['elapsed_ms']} ms"
                      + (f"  {a['error']}" if a["error"] else ""))
        _say_more(page)
    else:
        endpoints = webhooks.list_endpoints(app)
        if args.json:
            _print_json(endpoints)
        else:
            _table([(e["id"], e["state"], e["url"], ",".join(e["events"]) if isinstance(e["events"], list) else "all",
                     e["isv"] or "-", e["disabled_reason"] or "") for e in endpoints],
                   ("ID", "STATE", "URL", "EVENTS", "ISV", "WHY DISABLED"))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Config], int]] = {
    "cancel": cmd_cancel, "resend": cmd_resend, "replace-contact": cmd_replace_contact,
    "certificate": cmd_certificate, "verify": cmd_verify,
    "account": cmd_account, "entitlement": cmd_entitlement, "request": cmd_request, "list": cmd_list,
    "show": cmd_show, "serve": cmd_serve, "demo": cmd_demo, "read": cmd_read, "inbox": cmd_inbox,
    "outbox": cmd_outbox, "db": cmd_db,
    "apikey": cmd_apikey, "webhook": cmd_webhook,
    "operator": cmd_operator, "dkim": cmd_dkim,
}


# What SQLite's own words mean for the operator.
_DATABASE_PROBLEMS = (
    ("readonly database", "is read-only: check the permissions of the file and of its folder"),
    ("file is not a database", "is not an SQLite database"),
    ("unable to open database file", "cannot be opened: check that its folder exists and is writable"),
    ("database is locked", "is locked by another process: try again"),
    ("disk is full", "cannot grow: the disk is full"),
    ("disk i/o error", "cannot be read or written (disk I/O error)"),
)


def _database_error(exc: Exception, config: Config | None) -> str:
    """One line naming the database and what is wrong with it, without SQL or a class name."""
    orig = getattr(exc, "orig", None) or exc
    said = " ".join(str(orig).split())
    where = "database"
    if config is not None:
        try:
            where = f"database {database_path(make_url(config.database.url)) or config.database.url}"
        except Exception:  # noqa: BLE001 - the URL was read once already; name it as written
            where = f"database {config.database.url}"
    for needle, meaning in _DATABASE_PROBLEMS:
        if needle in said.lower():
            return f"{where} {meaning} ({said})"
    return f"{where}: {said}"


def _stdout_closed() -> int:
    """The reader of our output went away (`transferbot list | head -1`): stop quietly, as the
    Python documentation recommends, so that the final flush at exit finds somewhere to write."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_REFUSED


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
        return _stdout_closed()
    except (ConfigError, StoreError) as exc:
        print(f"transferbot: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (Refusal, CliError, DatabaseTrouble) as exc:
        print(f"transferbot: error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (sa.exc.DBAPIError, sqlite3.Error) as exc:
        log.debug("database error", exc_info=True)
        print(f"transferbot: error: {_database_error(exc, config)}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the operator; the traceback in the debug log
        log.debug("unexpected error", exc_info=True)
        print(f"transferbot: internal error: {type(exc).__name__}: {exc} (run with --log-level DEBUG for details)",
              file=sys.stderr)
        return 70
