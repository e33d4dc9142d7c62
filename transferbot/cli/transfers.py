"""Commands on transfers: request, list, show, cancel, resend, replace a contact, the certificate."""

from __future__ import annotations

import argparse
import sys

from transferbot.cli.common import app_of, print_json, print_reason, print_table
from transferbot.cli.exits import EXIT_REFUSED, CliError
from transferbot.config import Config
from transferbot.core.errors import TooSoon


def cmd_request(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.transfers import request_transfer

    target = None if args.to_direct else args.to_reseller
    print(request_transfer(app_of(config), args.entitlement, target, args.note))
    return 0


def cmd_list(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.queries.views import list_transfers

    rows = list_transfers(app_of(config), args.status)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no transfers" + (f" with status {args.status}" if args.status else ""), file=sys.stderr)
        return 0
    print_table([(r["id"], r["status"], r["kind"], r["entitlement"], r["product"],
             " ".join(f"{role}:{d}" for role, d in r["parties"].items()), r["created_at"][:16])
            for r in rows], ("ID", "STATUS", "KIND", "ENTITLEMENT", "PRODUCT", "DECISIONS", "CREATED"))
    return 0


def cmd_show(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.queries.views import transfer_detail
    from transferbot.inbound.explain import explain_inbound

    d = transfer_detail(app_of(config), args.transfer)
    if args.json:
        print_json(d)
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
            print_reason(str(reason))
    print("mail in:" if d["inbound"] else "mail in: none")
    names = {p["role"]: p["name"] for p in d["parties"]}
    for m in d["inbound"]:
        print(f"  #{m['id']:<5} {(m['received_at'] or '')[:19]}  {m['from'] or m['mail_from'] or '<>'}  "
              f"{m['party'] or '-'}  {m['outcome']}  {m['decided_by'] or '-'}  {m['message_id'] or '(no Message-ID)'}")
        print_reason(explain_inbound(m, names.get(m["party"] or ""), d["status"]).headline)
        if m["reason"]:
            print_reason(m["reason"])
    print("mail out:" if d["outbound"] else "mail out: none")
    for o in d["outbound"]:
        print(f"  #{o['id']:<5} {o['kind']:<15} {o['status']:<7} attempts {o['attempts']}  {', '.join(o['to'])}  "
              f"{o['message_id']}")
        if o["last_error"]:
            print_reason(o["last_error"])
    print("webhooks:" if d.get("webhooks") else "webhooks: none")
    for w in d.get("webhooks", []):
        print(f"  #{w['id']:<5} {w['type']:<23} endpoint #{w['endpoint']:<3} {w['status']:<9} attempts "
              f"{w['attempts']}  {w['event_id']}")
        for a in w["history"]:
            code = a["status_code"] if a["status_code"] is not None else "-"
            print(f"      {a['at'][:19]}  {a['outcome']:<9} HTTP {code}" + (f"  {a['error']}" if a["error"] else ""))
    return 0


def cmd_cancel(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.controls import cancel_transfer

    tid = cancel_transfer(app_of(config), args.transfer, args.reason)
    print(f"{tid} cancelled; every party is told", file=sys.stderr)
    return 0


def cmd_resend(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.controls import resend

    try:
        roles = resend(app_of(config), args.transfer, args.role, force=args.force)
    except TooSoon as exc:
        raise CliError(f"{exc} (or --force)") from None  # the operator, unlike an ISV, may force it
    print(f"confirmation queued again for: {', '.join(roles) or 'nobody (no deliverable address)'}", file=sys.stderr)
    return 0


def cmd_replace_contact(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.controls import replace_contact

    role = replace_contact(app_of(config), args.transfer, args.role, args.email)
    print(f"{role} of {args.transfer.upper()} now reached at {args.email}; the old token no longer counts",
          file=sys.stderr)
    return 0


def cmd_certificate(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.queries.certificate import certificate

    sys.stdout.write(certificate(app_of(config), args.transfer, args.format))
    return 0


def cmd_verify(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app.queries.certificate import verify

    ok, message = verify(app_of(config), args.transfer)
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else EXIT_REFUSED
