"""Authentication-Results (RFC 8601): did our own receiving server vouch for the sender?

Only a header whose authserv-id is the configured trusted one counts: any
other may have been written by the sender. The From domain must pass DMARC,
or pass DKIM with a signing domain that aligns with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_COMMENT = re.compile(r"\([^()]*\)")


@dataclass(frozen=True)
class AuthResult:
    method: str
    result: str
    props: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AuthVerdict:
    ok: bool
    why: str


def parse_header(value: str) -> tuple[str, list[AuthResult]]:
    """The authserv-id and the method results of one Authentication-Results header."""
    text = value
    for _ in range(5):  # nested comments
        text = _COMMENT.sub(" ", text)
    parts = [p.strip() for p in text.split(";")]
    if not parts or not parts[0]:
        return "", []
    authserv = parts[0].split()[0].lower() if parts[0].split() else ""
    results: list[AuthResult] = []
    for part in parts[1:]:
        tokens = part.split()
        if not tokens or "=" not in tokens[0]:
            continue
        method, _, result = tokens[0].partition("=")
        props: dict[str, str] = {}
        for token in tokens[1:]:
            key, eq, val = token.partition("=")
            if eq:
                props[key.lower()] = val.strip('"').lower()
        results.append(AuthResult(method.lower().split("/")[0], result.lower(), props))
    return authserv, results


def _aligned(signing: str, from_domain: str) -> bool:
    """Relaxed alignment: the same domain or one a parent of the other."""
    signing, from_domain = signing.lower().rstrip("."), from_domain.lower().rstrip(".")
    return signing == from_domain or from_domain.endswith("." + signing) or signing.endswith("." + from_domain)


def judge(headers: list[str], trusted_authserv_id: str, from_domain: str) -> AuthVerdict:
    """Whether the trusted server's results show the From domain authenticated."""
    trusted = trusted_authserv_id.lower()
    seen = False
    for value in headers:
        authserv, results = parse_header(value)
        if authserv != trusted:
            continue
        seen = True
        for res in results:
            if res.method == "dmarc" and res.result == "pass":
                hfrom = res.props.get("header.from", from_domain)
                if _aligned(hfrom, from_domain):
                    return AuthVerdict(True, "dmarc=pass")
            if res.method == "dkim" and res.result == "pass":
                signing = res.props.get("header.d") or res.props.get("header.i", "").rpartition("@")[2]
                if signing and _aligned(signing, from_domain):
                    return AuthVerdict(True, f"dkim=pass header.d={signing}")
    if not seen:
        return AuthVerdict(False, f"no Authentication-Results from {trusted_authserv_id}")
    return AuthVerdict(False, f"{trusted_authserv_id} shows neither dmarc=pass nor aligned dkim=pass")
