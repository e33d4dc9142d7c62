"""A transfer's certificate as a document: text, HTML or JSON, from its content (plain data).

Pure: the content is built by service.certificate (the operator's full record, or a party's copy
that names no other party's addresses, senders, Message-IDs or tokens).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from transferbot.core.errors import Refusal
from transferbot.outbound.compose import templates_dir

FORMATS = ("text", "json", "html")


@lru_cache(maxsize=2)
def _env(autoescape: bool) -> Environment:
    return Environment(loader=FileSystemLoader(str(templates_dir())), autoescape=autoescape,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                       auto_reload=False)


def render(cert: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(cert, indent=2, ensure_ascii=False, default=str) + "\n"
    if fmt == "html":
        return _env(True).get_template("certificate/certificate.html.j2").render(c=cert)
    if fmt == "text":
        return _env(False).get_template("certificate/certificate.txt.j2").render(c=cert)
    raise Refusal(f"format {fmt!r} is not one of {', '.join(FORMATS)}")


def attachments(transfer_id: str, cert: dict[str, Any]) -> list[tuple[str, str, bytes]]:
    """What the completion notice carries: the certificate as HTML (to read) and JSON (to keep)."""
    return [(f"certificate-{transfer_id}.html", "text/html", render(cert, "html").encode("utf-8")),
            (f"certificate-{transfer_id}.json", "application/json", render(cert, "json").encode("utf-8"))]
