"""Authentication-Results (RFC 8601): did our own receiving server vouch for the sender?

Only a header whose authserv-id is the configured trusted one counts: any
other may have been written by the sender. Our receiving server adds its
header on top of those already there, so a trusted-looking header found
below another server's header was in the message before that server saw it:
it is ignored too. The From domain must pass DMARC, or pass DKIM with a
signing domain that aligns with it (relaxed: the same domain, or one a
parent of the other, never a bare top-level domain).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PROPERTY = re.compile(r'([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|\S+)')
MAX_HEADERS = 50
MAX_RESULTS = 50


@dataclass(frozen=True)
class AuthResult:
    method: str
    result: str
    props: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AuthVerdict:
    ok: bool
    why: str


def _statements(value: str) -> list[str]:
    """Split at ';' outside quoted strings, with (nested) comments removed."""
    out: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for char in value[:8000]:
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


def parse_header(value: str) -> tuple[str, list[AuthResult]]:
    """The authserv-id (lower case, version dropped) and the method results of one header."""
    statements = _statements(value)
    words = statements[0].split() if statements else []
    if not words:
        return "", []
    authserv = words[0].lower().rstrip(".")
    results: list[AuthResult] = []
    for statement in statements[1:MAX_RESULTS + 1]:
        tokens = statement.split()
        if not tokens or "=" not in tokens[0]:
            continue  # "none", or garbage
        method, _, result = tokens[0].partition("=")
        props = {key.lower(): val.strip('"').lower() for key, val in _PROPERTY.findall(" ".join(tokens[1:]))}
        results.append(AuthResult(method.lower().split("/")[0], result.lower(), props))
    return authserv, results


def _aligned(signing: str, from_domain: str) -> bool:
    """Relaxed alignment: the same domain or one a parent of the other, never a bare top-level domain."""
    signing, from_domain = signing.lower().strip(".").lstrip("@"), from_domain.lower().strip(".")
    if "." not in signing or "." not in from_domain:
        return False
    return signing == from_domain or from_domain.endswith("." + signing) or signing.endswith("." + from_domain)


def _passes(results: list[AuthResult], from_domain: str) -> str | None:
    for res in results:
        if res.method == "dmarc" and res.result == "pass" and _aligned(res.props.get("header.from", from_domain),
                                                                        from_domain):
            return "dmarc=pass"
        if res.method == "dkim" and res.result == "pass":
            signing = res.props.get("header.d") or res.props.get("header.i", "").rpartition("@")[2]
            if signing and _aligned(signing, from_domain):
                return f"dkim=pass header.d={signing}"
    return None


def judge(headers: list[str], trusted_authserv_id: str, from_domain: str) -> AuthVerdict:
    """Whether the trusted server's results (at the top of the message) show the From domain authenticated."""
    trusted = trusted_authserv_id.lower().strip().rstrip(".")
    seen = 0
    below_other = 0
    other = False
    for value in headers[:MAX_HEADERS]:
        authserv, results = parse_header(value)
        if authserv != trusted:
            other = other or bool(authserv)
            continue
        if other:
            below_other += 1  # written before another server saw the message: not by ours
            continue
        seen += 1
        why = _passes(results, from_domain)
        if why:
            return AuthVerdict(True, why)
    if not seen:
        extra = f" (ignored {below_other} found below another server's)" if below_other else ""
        return AuthVerdict(False, f"no Authentication-Results from {trusted_authserv_id}{extra}")
    return AuthVerdict(False, f"{trusted_authserv_id} shows neither dmarc=pass nor aligned dkim=pass for {from_domain}")
