"""The ``transferbot`` command line: every command, its arguments and their help."""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from transferbot import __version__
from transferbot.cli.exits import EXIT_USAGE
from transferbot.core.domain import AccountKind, OutboxStatus, Role, TransferStatus
from transferbot.core.languages import MAIL

INBOX_LIMIT = 1000


OUTBOX_LIMIT = 500


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
