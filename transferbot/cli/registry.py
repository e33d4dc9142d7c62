"""Commands on the registry: accounts and entitlements."""

from __future__ import annotations

import argparse
import sys

from transferbot.cli.common import app_of, print_json, print_table
from transferbot.config import Config


def cmd_account(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app import registry

    app = app_of(config)
    if args.action == "add":
        view = registry.add_account(app, args.id, args.kind, args.name, args.email, args.locale, args.timezone)
        print(f"account {view.id} added ({view.kind}, {', '.join(view.emails)})", file=sys.stderr)
    elif args.action == "update":
        view = registry.update_account(app, args.id, args.name, args.email, args.locale, args.timezone)
        print(f"account {view.id} updated", file=sys.stderr)
    else:
        views = registry.list_accounts(app)
        if args.json:
            print_json([v.as_json() for v in views])
        else:
            print_table([(v.id, v.kind, v.name, ", ".join(v.emails), v.locale, v.timezone) for v in views],
                   ("ID", "KIND", "NAME", "EMAILS", "LOCALE", "TIMEZONE"))
    return 0


def cmd_entitlement(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app import registry

    app = app_of(config)
    if args.action == "add":
        ent = registry.add_entitlement(app, args.id, args.product, args.customer, args.isv, args.reseller)
        where = f"through {ent.reseller_id}" if ent.reseller_id else "direct"
        print(f"entitlement {ent.id} added ({ent.product}, {where})", file=sys.stderr)
    else:
        ents = registry.list_entitlements(app)
        if args.json:
            print_json([{"id": e.id, "product": e.product, "customer": e.customer_id, "isv": e.isv_id,
                          "reseller": e.reseller_id, "state": e.state} for e in ents])
        else:
            print_table([(e.id, e.product, e.customer_id, e.isv_id, e.reseller_id or "(direct)", e.state) for e in ents],
                   ("ID", "PRODUCT", "CUSTOMER", "ISV", "RESELLER", "STATE"))
    return 0
