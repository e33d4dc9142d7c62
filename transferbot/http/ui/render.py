"""The dashboard's pages: Jinja templates (``templates/ui/``) rendered on the server, autoescaped.

Everything a page shows that came from outside (a party's name, a reply's subject, a reason, a raw message)
goes through Jinja's autoescape; nothing is marked safe. Every response carries headers that keep the page
to itself: a Content-Security-Policy that allows only our own scripts and styles (no inline script at all),
no framing, no sniffing, no caching of what an operator saw.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from transferbot import __version__
from transferbot.core.clock import now as clock_now
from transferbot.inbound.explain import ROLE_WORDS
from transferbot.outbound.compose import templates_dir

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _moment(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def when(value: Any) -> str:
    """``2026-11-21 12:03 UTC``: minutes are what an operator compares."""
    moment = _moment(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def relative(value: Any, now: datetime | None = None) -> str:
    """``in 13 days``, ``3 hours ago``: the deadline as a person reads it."""
    moment = _moment(value)
    if moment is None:
        return ""
    seconds = (moment - (now or clock_now())).total_seconds()
    ahead, span = seconds >= 0, abs(seconds)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if span >= size:
            n = int(span // size)
            text = f"{n} {unit}{'' if n == 1 else 's'}"
            break
    else:
        return "now"
    return f"in {text}" if ahead else f"{text} ago"


EVENT_SHOWN_APART = {"seq", "at", "kind", "by"}


def event_details(event: dict[str, Any], limit: int = 600) -> str:
    """An audit event's data on one line (``reason: …; role: isv``), shortened past ``limit``."""
    parts = []
    for key, value in event.items():
        if key in EVENT_SHOWN_APART or value in (None, "", [], {}):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list | tuple):
            value = ", ".join(str(v) for v in value)
        parts.append(f"{key}: {value}")
    text = "; ".join(parts)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def role_words(role: Any) -> str:
    return ROLE_WORDS.get(str(role or ""), str(role or "-"))


@cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(templates_dir() / "ui")), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=when, relative=relative, role=role_words, event_details=event_details)
    env.globals["version"] = __version__
    return env


def page(request: Request, template: str, code: int = 200, headers: dict[str, str] | None = None,
         **context: Any) -> HTMLResponse:
    """A whole page (or the fragment an htmx request asks for: the page itself picks it with hx-select)."""
    context.setdefault("who", None)
    context.setdefault("error", None)
    context.setdefault("notice", None)
    context.setdefault("nav", "")
    html = environment().get_template(template).render(request=request, path=request.url.path, **context)
    return HTMLResponse(html, status_code=code, headers={**SECURITY_HEADERS, **(headers or {})})
