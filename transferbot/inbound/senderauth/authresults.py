"""Authentication-Results header fields (RFC 8601), parsed without trusting them.

``authserv-id [version]; method=result ptype.property=value ...; ...``.
Comments are dropped (they are free text anyone can write), quoted strings
kept whole. Only version 1 exists; a header with another version, or with
garbage between the authserv-id and the first ';', is malformed. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_LENGTH = 8000
MAX_RESULTS = 50
_PROPERTY = re.compile(r'([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s";]+)')
_METHOD = re.compile(r'^([A-Za-z0-9_.-]+)(?:/\d+)?\s*=\s*([A-Za-z0-9_-]+)')


@dataclass(frozen=True)
class MethodResult:
    """One ``method=result`` statement with its properties (keys and values lower case)."""

    method: str
    result: str
    props: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AuthResults:
    """One header field: whose it is, and what it says."""

    authserv_id: str  # lower case, final dot dropped
    results: tuple[MethodResult, ...] = ()
    version: int | None = None
    malformed: str = ""  # why it cannot be read, when it cannot


def statements(value: str) -> list[str]:
    """Split at ';' outside quoted strings, with (nested) comments removed and whitespace collapsed."""
    out: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for char in value[:MAX_LENGTH]:
        if escaped:
            escaped = False
            if depth == 0:
                current.append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
            if depth == 0:
                current.append(char)
            continue
        if depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
            continue
        if char == '"':
            quoted = not quoted
        elif char == "(" and not quoted:
            depth = 1
            current.append(" ")
            continue
        elif char == ";" and not quoted:
            out.append("".join(current))
            current = []
            continue
        current.append(char)
    out.append("".join(current))
    return [" ".join(s.split()) for s in out]


def authserv_id_of(value: str) -> str:
    """Just the authserv-id (lower case, unquoted, final dot dropped): enough to know whose header it claims to be."""
    first = statements(value)[0].split()
    return first[0].strip('"').lower().rstrip(".") if first else ""


def parse(value: str) -> AuthResults:
    """Read one header field's value; ``malformed`` says why when it cannot be read."""
    parts = statements(value)
    words = parts[0].split()
    if not words:
        return AuthResults("", malformed="no authserv-id")
    authserv = words[0].strip('"').lower().rstrip(".")
    version: int | None = None
    if len(words) == 2 and words[1].isdigit():
        version = int(words[1])
        if version != 1:
            return AuthResults(authserv, version=version, malformed=f"unknown version {version}")
    elif len(words) > 1:
        return AuthResults(authserv, malformed=f"unexpected {' '.join(words[1:])[:40]!r} after the authserv-id")
    results: list[MethodResult] = []
    for statement in parts[1:MAX_RESULTS + 1]:
        match = _METHOD.match(statement)
        if not match:
            continue  # "none", or something we do not read
        props = {key.lower(): val.strip('"').lower() for key, val in _PROPERTY.findall(statement[match.end():])}
        results.append(MethodResult(match.group(1).lower(), match.group(2).lower(), props))
    return AuthResults(authserv, tuple(results), version)
