"""Who may do what: dashboard operators, API keys and webhook endpoints."""

from __future__ import annotations

import argparse
import sys

from transferbot.cli.common import app_of, password_from_stdin, print_json, print_table, say_more
from transferbot.config import Config


def cmd_operator(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app import operators

    app = app_of(config)
    if args.action == "add":
        view = operators.add_operator(app, args.name, password_from_stdin())
        print(f"operator {view.name} added", file=sys.stderr)
    elif args.action == "password":
        operators.set_password(app, args.name, password_from_stdin())
        print(f"operator {args.name}: password changed; its sessions are ended", file=sys.stderr)
    elif args.action == "remove":
        operators.remove_operator(app, args.name)
        print(f"operator {args.name} removed; its sessions are ended", file=sys.stderr)
    else:
        views = operators.list_operators(app)
        if args.json:
            print_json([v.as_json() for v in views])
        elif not views:
            print("no operators (add one with: transferbot operator add NAME --password-stdin)", file=sys.stderr)
        else:
            print_table([(v.name, v.created_at.isoformat()[:19], "disabled" if v.disabled else "enabled") for v in views],
                   ("NAME", "CREATED", "STATE"))
    return 0


def cmd_apikey(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app import apikeys

    app = app_of(config)
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
            print_json(keys)
        else:
            print_table([(k["id"], k["prefix"] + "…", k["scope"], k["isv"] or "-", k["state"], k["created_at"][:19],
                     k["name"]) for k in keys], ("ID", "KEY", "SCOPE", "ISV", "STATE", "CREATED", "NAME"))
    return 0


def cmd_webhook(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app import controls as operator
    from transferbot.app import webhooks

    app = app_of(config)
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
            print_json(page.as_json())
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
        say_more(page)
    else:
        endpoints = webhooks.list_endpoints(app)
        if args.json:
            print_json(endpoints)
        else:
            print_table([(e["id"], e["state"], e["url"], ",".join(e["events"]) if isinstance(e["events"], list) else "all",
                     e["isv"] or "-", e["disabled_reason"] or "") for e in endpoints],
                   ("ID", "STATE", "URL", "EVENTS", "ISV", "WHY DISABLED"))
    return 0
