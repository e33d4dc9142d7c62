"""DKIM (RFC 6376) with dkimpy, its key lookups answered by our resolver.

Every signature is verified (up to a limit), not only the first, since
DMARC needs the one whose d= aligns with the From domain. A key lookup that
hits DNS trouble raises out of dkimpy (it would otherwise call it a plain
failure), so it becomes ``temperror``. A signature that does not cover From,
or whose l= leaves part of the body unsigned, does not pass: the unsigned
part could carry a decision. Runs on a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dkim
from dkim.canonicalization import CanonicalizationPolicy
from dkim.util import parse_tag_value

from transferbot.inbound.senderauth.dns import DnsTemporaryError
from transferbot.inbound.senderauth.verdict import DkimVerdict

log = logging.getLogger(__name__)

Lookup = Callable[[str, str], list[str]]
MAX_SIGNATURES = 5


class _Notes:
    """Stands in for dkimpy's logger: keeps what it says (the reason a check failed) instead of logging it."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def _note(self, msg: Any, *args: Any, **_kw: Any) -> None:
        self.lines.append(str(msg) % args if args else str(msg))

    debug = info = warning = error = _note

    def isEnabledFor(self, _level: int) -> bool:  # noqa: N802 - the logging.Logger method dkimpy calls
        return False

    def last(self) -> str:
        errors = [line for line in self.lines if not line.startswith(("sig:", "bh:", "signed for", "body hashed"))]
        return errors[-1] if errors else ""


def _text(value: Any) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _key_lookup(lookup: Lookup) -> Callable[..., bytes | None]:
    def txt(name: bytes | str, timeout: float = 5.0) -> bytes | None:
        texts = lookup(_text(name).rstrip("."), "TXT")
        if not texts:
            return None
        chosen = next((t for t in texts if "p=" in t), texts[0])  # one key record; ignore stray TXT
        return chosen.encode("utf-8", "surrogateescape")
    return txt


def verify_dkim(raw: bytes, lookup: Lookup, *, max_signatures: int = MAX_SIGNATURES,
                minkey: int = 1024) -> list[DkimVerdict]:
    """One verdict per DKIM-Signature (topmost first, at most ``max_signatures``); [] when unsigned."""
    notes = _Notes()
    try:
        checker = dkim.DKIM(raw, logger=notes, minkey=minkey)
    except Exception as exc:  # noqa: BLE001 - an unparsable message has no verifiable signature
        return [DkimVerdict("", "", "permerror", detail=_short(f"message cannot be parsed: {exc}"))]
    headers = [value for name, value in checker.headers if name.lower() == b"dkim-signature"]
    verdicts: list[DkimVerdict] = []
    dnsfunc = _key_lookup(lookup)
    for idx, value in enumerate(headers[:max_signatures]):
        notes.lines.clear()
        try:
            tags = parse_tag_value(value)
        except Exception:  # noqa: BLE001
            tags = {}
        domain = _text(tags.get(b"d", b"")).strip().lower().rstrip(".")
        selector = _text(tags.get(b"s", b"")).strip().lower()
        signed = [h.strip().lower() for h in _text(tags.get(b"h", b"")).split(":")]
        try:
            ok = checker.verify(idx, dnsfunc=dnsfunc)
        except DnsTemporaryError as exc:
            verdicts.append(DkimVerdict(domain, selector, "temperror", detail=_short(str(exc))))
            continue
        except dkim.ValidationError as exc:
            result, detail = _explain(str(exc))
            verdicts.append(DkimVerdict(domain, selector, result, detail=detail))
            continue
        except dkim.DKIMException as exc:
            verdicts.append(DkimVerdict(domain, selector, "permerror", detail=_short(str(exc))))
            continue
        except Exception as exc:  # noqa: BLE001 - dkimpy on hostile input must not break the reader
            log.warning("DKIM signature %d by %s: dkimpy failed: %r", idx, domain, exc)
            verdicts.append(DkimVerdict(domain, selector, "permerror", detail=_short(f"cannot be checked: {exc}")))
            continue
        if not ok:
            reason = notes.last()
            if "missing public key" in reason:
                result, detail = "permerror", f"no key published at {selector}._domainkey.{domain}"
            elif "key" in reason.lower():
                result, detail = "permerror", _short(f"the key at {selector}._domainkey.{domain} is not usable: "
                                                     f"{reason}")
            else:
                result, detail = "fail", "signature does not verify: signed header fields changed, or another key"
            verdicts.append(DkimVerdict(domain, selector, result, detail=detail))
            continue
        if "from" not in signed:
            verdicts.append(DkimVerdict(domain, selector, "permerror", detail="signature does not cover From"))
            continue
        unsigned = _unsigned_tail(checker, tags)
        if unsigned:
            verdicts.append(DkimVerdict(domain, selector, "fail",
                                        detail=f"l= leaves {unsigned} bytes of the body unsigned"))
            continue
        verdicts.append(DkimVerdict(domain, selector, "pass", detail=f"verified with {selector}._domainkey.{domain}"))
    return verdicts


def _explain(message: str) -> tuple[str, str]:
    """dkimpy's ValidationError as a verdict and a short reason."""
    if message.startswith("body hash mismatch"):
        return "fail", "body hash mismatch: the body changed after signing"
    if "x= value is past" in message:
        return "fail", "signature expired (x=)"
    return "permerror", _short(message)


def _unsigned_tail(checker: Any, tags: dict[bytes, bytes]) -> int:
    """How many canonical body bytes lie beyond the signature's l= (0 without l=)."""
    if b"l" not in tags:
        return 0
    try:
        policy = CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
        body = policy.canonicalize_body(checker.body)
        return max(0, len(body) - int(tags[b"l"]))
    except Exception:  # noqa: BLE001 - cannot tell: treat as entirely unsigned
        return len(checker.body) or 1
