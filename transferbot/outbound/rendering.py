"""From an outbox row and its snapshot to the bytes sent: the same bytes on any daemon, at any time.

Pure: nothing here reads the database or the clock. The row's ``render`` holds what differs per
recipient, the snapshot the facts of the transfer when the mail was queued; the Date is the row's
creation time and the MIME boundaries derive from its key, so a retry, or another daemon, sends
exactly the same message. A party's certificate is rendered once per snapshot, not once per party.

Finished bytes pass one hook, ``Finish``, before they are sent: the place for what is done to a whole
message (signing it). The dispatcher gives the same hook to its render helper processes, so a message
is finished the same way wherever it was rendered.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any, Protocol, TypedDict

from transferbot.core.domain import MailKind
from transferbot.outbound import certdoc, compose


class RenderSpec(TypedDict, total=False):
    """What differs per recipient, as an outbox row keeps it (JSON, ``v`` 2); with the snapshot, all that its
    template reads. Rows of release 0.1 have no ``v`` and were rendered when queued."""

    v: int
    from_name: str
    from_address: str
    locale: str
    tz: str
    party: int | None  # the party's id, to mark it among the snapshot's parties
    me: dict[str, Any] | None  # the recipient as its mail names it: role, name, token, decision
    asks: bool  # the mail asks for an answer (it shows the reply marker)
    reply_to: str | None
    in_reply_to: str | None
    certificate: bool  # the certificate of the snapshot is attached
    extra: dict[str, Any]  # what this kind of mail adds (a decline's reason, an operator alert's facts)


@dataclass(frozen=True)
class Outgoing:
    """An outbox row as rendering needs it."""

    id: int
    kind: str
    key: str
    message_id: str
    recipients: tuple[str, ...]
    created_at: datetime
    transfer_id: str | None
    render: RenderSpec
    snapshot_id: int | None


def _when(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def context(row: Outgoing, shared: dict[str, Any] | None) -> dict[str, Any]:
    """What the template sees: plain data, the transfer's times as datetimes again."""
    spec = row.render
    extra = dict(spec.get("extra") or {})
    ctx: dict[str, Any] = {"t": None, "parties": [], "me": spec.get("me"), "now": row.created_at,
                           "reply_marker": bool(spec.get("asks")), "asks": bool(spec.get("asks")),
                           "tz": spec.get("tz") or "UTC", **extra}
    if row.kind == MailKind.OPERATOR_ALERT.value:
        ctx["alert_facts"] = [tuple(f) for f in extra.get("alert_facts", [])]
    if shared is not None:
        view = dict(shared["t"])
        view["created_at"], view["expires_at"] = _when(view["created_at"]), _when(view["expires_at"])
        me = spec.get("party")
        ctx["t"] = view
        ctx["parties"] = [{**p, "is_me": me is not None and p.get("id") == me} for p in shared["parties"]]
    return ctx


class Finish(Protocol):
    """What is done to a rendered message's bytes before it is sent (picklable: helper processes run it)."""

    def __call__(self, raw: bytes) -> bytes: ...


def unchanged(raw: bytes) -> bytes:
    """The finish of a daemon that does nothing more to its mail."""
    return raw


class Renderer:
    """Renders rows; keeps the certificate attachments of recent snapshots (they never change)."""

    def __init__(self, cache_size: int = 64, finish: Finish = unchanged) -> None:
        self._attachments: OrderedDict[int, tuple[list[EmailMessage], list[bytes]]] = OrderedDict()
        self.cache_size = cache_size
        self.finish = finish

    def _certificate(self, row: Outgoing, shared: dict[str, Any]) -> tuple[list[EmailMessage], list[bytes]]:
        """The attachment parts, as objects and as bytes: built and encoded once per snapshot."""
        key = row.snapshot_id or 0
        parts = self._attachments.get(key)
        if parts is None:
            objects = [compose.attachment(name, mime, data)
                       for name, mime, data in certdoc.attachments(shared["t"]["id"], shared["certificate"])]
            parts = objects, [_crlf(p.as_bytes(policy=SMTP)) for p in objects]
            self._attachments[key] = parts
            while len(self._attachments) > self.cache_size:
                self._attachments.popitem(last=False)
        else:
            self._attachments.move_to_end(key)
        return parts

    def render(self, row: Outgoing, shared: dict[str, Any] | None) -> tuple[str, bytes]:
        """The subject and the finished bytes of one mail."""
        subject, raw = self._render(row, shared)
        return subject, self.finish(raw)

    def _render(self, row: Outgoing, shared: dict[str, Any] | None) -> tuple[str, bytes]:
        spec = row.render
        kind = MailKind(row.kind)
        locale = spec.get("locale") or "en"
        rendered = compose.render(kind, locale, context(row, shared))
        envelope = compose.Envelope(
            from_name=spec.get("from_name", ""), from_address=spec["from_address"], to=row.recipients,
            message_id=row.message_id, date=row.created_at, reply_to=spec.get("reply_to"),
            in_reply_to=spec.get("in_reply_to"), transfer_id=row.transfer_id, locale=locale, kind=kind.value)
        attached = (self._certificate(row, shared)
                    if spec.get("certificate") and shared is not None and "certificate" in shared else None)
        raw = compose.build_bytes(rendered, envelope, row.key, attached[1] if attached else ())
        if raw is not None:
            return rendered.subject, raw
        msg = compose.build_message(rendered, envelope)  # an unusual value: the email package's path
        if attached:
            msg.make_mixed()
            for part in attached[0]:
                msg.attach(part)
        compose.fix_boundaries(msg, row.key)
        return rendered.subject, msg.as_bytes(policy=SMTP)


def _crlf(raw: bytes) -> bytes:
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


_process_renderer: Renderer | None = None


def helper_started(finish: Finish = unchanged) -> None:
    """A helper process finishes its mail as its daemon does; it leaves SIGINT to the daemon, which stops it
    (Ctrl-C reaches the whole group), and ends when its daemon is gone, however it went (SIGKILL included):
    no orphan renders for nobody."""
    global _process_renderer
    _process_renderer = Renderer(finish=finish)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def render_batch(jobs: list[tuple[Outgoing, dict[str, Any] | None]]) -> list[tuple[str, bytes] | str]:
    """Render several rows in a helper process (the dispatcher's pool): each its subject and bytes, or the
    error that stopped it, as text (the dispatcher records it as a retry, as it would have inline)."""
    global _process_renderer
    if _process_renderer is None:
        _process_renderer = Renderer()
    out: list[tuple[str, bytes] | str] = []
    for row, shared in jobs:
        try:
            out.append(_process_renderer.render(row, shared))
        except Exception as exc:  # noqa: BLE001 - one bad row never stops the others
            out.append(f"{type(exc).__name__}: {exc}")
    return out
