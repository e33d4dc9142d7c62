"""Commands on mail: how a message reads (``read``), the inbox and the outbox."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from transferbot.cli.common import app_of, print_json, print_table, say_more
from transferbot.cli.exits import CliError
from transferbot.config import Config
from transferbot.core.errors import Refusal
from transferbot.store import DatabaseTrouble, StoreError


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
        app, not_looked_up = app_of(config), None
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
        print_json(out)
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

    app = app_of(config)
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
        print_json(page.as_json())
        return 0
    rows = page.items
    print_table([(r["id"], (r["received_at"] or "")[:19], r["mail_from"] or "<>", ",".join(r["rcpt_tos"]),
             r["message_id"], r["transfer"] or "-", r["party"] or "-", r["outcome"], r["decided_by"] or "-")
            for r in rows], ("ID", "RECEIVED", "MAIL FROM", "RCPT TO", "MESSAGE-ID", "TRANSFER", "PARTY", "OUTCOME",
                             "DECIDED BY"))
    say_more(page)
    return 0


def cmd_outbox(args: argparse.Namespace, config: Config) -> int:
    from transferbot.app import outbox
    from transferbot.core.clock import now

    app = app_of(config)
    if args.action == "retry":
        ids = outbox.retry_outbox(app, args.id, args.all_failed, now())
        print(f"{len(ids)} message(s) queued again: {', '.join('#' + str(i) for i in ids) or '-'}")
        return 0
    page = outbox.outbox_page(app, args.status, args.limit, args.cursor)
    if args.json:
        print_json(page.as_json())
        return 0
    print_table([(d["id"], d["status"], d["kind"], d["transfer"] or "-", ",".join(d["to"]), d["attempts"],
             (d["last_error"] or "")[:60]) for d in page.items],
           ("ID", "STATUS", "KIND", "TRANSFER", "TO", "ATTEMPTS", "LAST ERROR"))
    say_more(page)
    return 0
