"""The decision: is the From domain authenticated? Pure, so every case is a unit test.

A reply counts only when DMARC passes for its From domain, or, when the
domain publishes no DMARC record, when a DKIM signature or SPF aligned with
it passes. DNS trouble that could change the answer makes it ``temperror``
(the caller tries again later), never ``pass``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from transferbot.inbound.senderauth.dmarc import PolicyLookup
from transferbot.inbound.senderauth.domains import aligned

Result = Literal["pass", "fail", "temperror", "none"]
Mode = Literal["verify", "trusted-relay", "off"]


@dataclass(frozen=True)
class SpfVerdict:
    """SPF for the envelope sender's domain (or HELO) against the connecting address."""

    result: str  # pass|fail|softfail|neutral|none|temperror|permerror
    domain: str
    detail: str = ""
    aligned: bool = False
    client_ip: str = ""


@dataclass(frozen=True)
class DkimVerdict:
    """One DKIM signature: who signed (d=), with which key (s=), and whether it verifies."""

    domain: str
    selector: str
    result: str  # pass|fail|neutral|none|temperror|permerror
    aligned: bool = False
    detail: str = ""


@dataclass(frozen=True)
class DmarcVerdict:
    """The DMARC evaluation: the record found (and where) and whether an aligned mechanism passed."""

    result: str  # pass|fail|none|temperror|permerror
    policy: str = ""  # none|quarantine|reject, the one that applies to the From domain
    record_domain: str = ""
    detail: str = ""


@dataclass(frozen=True)
class AuthOutcome:
    """What sender authentication concluded about one reply, with each mechanism's verdict.

    ``why`` is one sentence for the operator; ``advice`` one for the party's
    mail administrator (in English; ``advice_key`` names it for translation,
    with ``from_domain`` and the verdicts as its parameters).
    """

    result: Result
    mode: Mode = "verify"
    from_domain: str | None = None
    spf: SpfVerdict | None = None
    dkim: tuple[DkimVerdict, ...] = ()
    dmarc: DmarcVerdict | None = None
    why: str = ""
    advice: str = ""
    advice_key: str = ""
    authserv_id: str = ""  # trusted-relay: whose header decided
    advice_params: tuple[tuple[str, str], ...] = ()  # what fills the advice (translated in the party's notice)

    @property
    def counts(self) -> bool:
        """Whether a decision in this reply may be recorded (sender authentication off counts too)."""
        return self.result in ("pass", "none")

    @property
    def authenticated(self) -> bool:
        """Whether the sender was authenticated (DMARC, aligned DKIM or SPF, or a trusted relay's verdict):
        not so when authentication is off."""
        return self.result == "pass"

    @property
    def temporary(self) -> bool:
        return self.result == "temperror"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["dkim"] = [asdict(d) for d in self.dkim]
        data["advice_params"] = dict(self.advice_params)
        return data

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuthOutcome:
        spf = data.get("spf")
        dmarc = data.get("dmarc")
        return cls(
            result=data["result"],
            mode=data.get("mode", "verify"),
            from_domain=data.get("from_domain"),
            spf=SpfVerdict(**spf) if spf else None,
            dkim=tuple(DkimVerdict(**d) for d in data.get("dkim") or ()),
            dmarc=DmarcVerdict(**dmarc) if dmarc else None,
            why=data.get("why", ""),
            advice=data.get("advice", ""),
            advice_key=data.get("advice_key", ""),
            authserv_id=data.get("authserv_id", ""),
            advice_params=tuple(sorted((data.get("advice_params") or {}).items())),
        )

    @classmethod
    def from_json(cls, text: str) -> AuthOutcome:
        return cls.from_dict(json.loads(text))

    def summary(self) -> str:
        """``spf=pass dkim=pass(acme.example) dmarc=none``: one line for tables and logs."""
        parts = [f"auth={self.result}"]
        if self.spf:
            parts.append(f"spf={self.spf.result}")
        for sig in self.dkim:
            parts.append(f"dkim={sig.result}({sig.domain}{'' if sig.aligned else ',unaligned'})")
        if not self.dkim and self.mode == "verify" and self.spf:
            parts.append("dkim=none")
        if self.dmarc:
            parts.append(f"dmarc={self.dmarc.result}" + (f"(p={self.dmarc.policy})" if self.dmarc.policy else ""))
        return " ".join(parts)


ADVICE: dict[str, str] = {
    "from-address": "Send replies with a From line that holds exactly one address, at your registered domain.",
    "null-sender": "Reply from a mailbox: delivery notifications and auto-replies (empty envelope sender) "
                   "never count as an answer.",
    "fix-dkim": "The DKIM signature for {domain} does not verify ({detail}): check that the key published at "
                "{selector}._domainkey.{signer} is the one your server signs with, and that nothing alters "
                "messages after signing.",
    "publish-dkim-key": "Publish the public DKIM key your server signs with as a TXT record at "
                        "{selector}._domainkey.{signer}, or list your outgoing mail servers in the SPF record of "
                        "{domain}.",
    "align-dkim": "Your mail is DKIM-signed for {signer}, not for {domain}: sign it with a DKIM key published "
                  "under {domain}, or list your outgoing mail servers in the SPF record of {domain}.",
    "fix-spf-record": "The SPF record of {spf_domain} is not valid ({detail}): correct it, or sign your mail with "
                      "DKIM for {domain}.",
    "align-envelope": "Your server sends with an envelope sender (Return-Path) at {spf_domain}, not at {domain}: "
                      "use one at {domain}, or sign your mail with DKIM for {domain}.",
    "fix-spf": "The server that sent this reply ({client_ip}) is not in the SPF record of {spf_domain}: add it, "
               "or sign your mail with DKIM for {domain}.",
    "publish-spf-or-dkim": "Publish an SPF record for {domain} that lists your outgoing mail servers, or sign your "
                           "mail with DKIM for {domain} (and publish a DMARC record for {domain}).",
    "dmarc-policy": "Your DMARC policy for {domain} asks for a DKIM signature by {domain} or SPF for {domain} "
                    "that passes; send through a server that provides one.",
    "relay-unauthenticated": "Make sure your mail for {domain} passes DMARC (sign it with DKIM for {domain}, or "
                             "list your outgoing servers in its SPF record).",
}


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _dkim_phrase(sig: DkimVerdict, from_domain: str) -> str:
    by = f"DKIM signature by {sig.domain}"
    detail = f" ({sig.detail})" if sig.detail else ""
    if sig.result == "pass":
        return f"{by} passes" if sig.aligned else f"{by} does not align with {from_domain}"
    if sig.result == "temperror":
        return f"the DKIM key of {sig.domain} could not be fetched{detail}"
    if sig.result == "permerror":
        return f"{by} cannot be checked{detail}"
    return f"{by} fails{detail}"


def _spf_phrase(spf: SpfVerdict, from_domain: str) -> str:
    where = f" for {spf.client_ip}" if spf.client_ip else ""
    if spf.result == "pass":
        if spf.aligned:
            return f"SPF passes for {spf.domain}{where}"
        return f"SPF passes for {spf.domain}, which does not align with {from_domain}"
    if spf.result == "none":
        return f"{spf.domain} publishes no SPF record" if spf.domain else "no envelope sender domain for SPF"
    if spf.result == "temperror":
        return f"the SPF record of {spf.domain} could not be fetched"
    if spf.result == "permerror":
        return f"the SPF record of {spf.domain} is not valid"
    return f"SPF {spf.result}{where} at {spf.domain}" if spf.client_ip else f"SPF {spf.result} at {spf.domain}"


def _advice(key: str, from_domain: str | None, spf: SpfVerdict | None,
            sig: DkimVerdict | None = None) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    if not key:
        return "", "", ()
    params = {
        "domain": from_domain or "your domain",
        "signer": sig.domain if sig else "",
        "selector": sig.selector if sig else "",
        "detail": (sig.detail if sig else (spf.detail if spf else "")) or "see the details",
        "spf_domain": spf.domain if spf else "",
        "client_ip": spf.client_ip if spf else "",
    }
    return key, ADVICE[key].format(**params), tuple(sorted(params.items()))


def advice_for(key: str, domain: str) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """An advice that only names the From domain (the trusted-relay one, say)."""
    return _advice(key, domain, None)


def refused(why: str, key: str, *, mode: Mode = "verify", from_domain: str | None = None) -> AuthOutcome:
    """A fail decided before any mechanism ran (no usable From, null sender)."""
    advice_key, advice, params = _advice(key, from_domain, None)
    return AuthOutcome("fail", mode=mode, from_domain=from_domain, why=why, advice=advice, advice_key=advice_key,
                       advice_params=params)


def unauthenticated() -> AuthOutcome:
    """The outcome when sender authentication is off: nothing checked, the reply counts."""
    return AuthOutcome("none", mode="off", why='sender authentication is off (inbound.sender_auth = "off")')


def decide(from_domain: str, spf: SpfVerdict, dkim: list[DkimVerdict] | tuple[DkimVerdict, ...],
           policy: PolicyLookup) -> AuthOutcome:
    """Apply the rule to the mechanisms' verdicts and the DMARC record lookup."""
    record = policy.record if policy.status == "found" else None
    known = policy.status != "temperror"
    adkim = record.adkim if record else "r"
    aspf = record.aspf if record else "r"

    def sure(identifier: str, mode: str) -> bool:
        # With the record unknown, only strict alignment is alignment under any policy.
        return aligned(identifier, from_domain, mode if known else "s")  # type: ignore[arg-type]

    def maybe(identifier: str, mode: str) -> bool:
        return aligned(identifier, from_domain, mode if known else "r")  # type: ignore[arg-type]

    sigs = [replace(sig, aligned=maybe(sig.domain, adkim)) for sig in dkim]
    spf = replace(spf, aligned=maybe(spf.domain, aspf))
    passing_sig = next((s for s in sigs if s.result == "pass" and sure(s.domain, adkim)), None)
    spf_pass = spf.result == "pass" and sure(spf.domain, aspf)
    maybe_pass = any(s.result == "pass" and s.aligned for s in sigs) or (spf.result == "pass" and spf.aligned)
    # A signature whose check did not finish (no domain known) might be the aligned one.
    could_pass = (any(s.result == "temperror" and (s.aligned or not s.domain) for s in sigs)
                  or (spf.result == "temperror" and spf.aligned))

    policy_name = record.policy_for(from_domain, policy.record_domain) if record else ""
    mechanism = (f"DKIM signature by {passing_sig.domain}" if passing_sig
                 else f"SPF for {spf.domain}" + (f" from {spf.client_ip}" if spf.client_ip else ""))
    facts = [_dkim_phrase(s, from_domain) for s in sigs] or ["no DKIM signature"]
    facts.append(_spf_phrase(spf, from_domain))

    if passing_sig or spf_pass:
        if policy.status == "found":
            dmarc = DmarcVerdict("pass", policy_name, policy.record_domain, f"{mechanism} aligns")
            why = f"DMARC passes for {from_domain}: {mechanism} aligns"
        elif policy.status == "none":
            dmarc = DmarcVerdict("none", "", "", policy.detail)
            why = f"{from_domain} publishes no DMARC record; {mechanism} aligns and passes"
        else:
            dmarc = DmarcVerdict("temperror", "", "", policy.detail)
            why = (f"{mechanism} aligns strictly with {from_domain} and passes, which passes under any DMARC "
                   f"policy (its DMARC record could not be fetched)")
        return AuthOutcome("pass", from_domain=from_domain, spf=spf, dkim=tuple(sigs), dmarc=dmarc, why=why)

    if (not known and maybe_pass) or could_pass:
        troubles = [f"the DKIM key of {s.domain or 'a signer'}" for s in sigs
                    if s.result == "temperror" and (s.aligned or not s.domain)]
        if spf.result == "temperror" and spf.aligned:
            troubles.append(f"the SPF record of {spf.domain}")
        if not known:
            troubles.append(f"the DMARC record of {from_domain}")
        dmarc = DmarcVerdict("temperror", "", policy.record_domain, policy.detail) if not known else (
            DmarcVerdict("fail" if record else "none", policy_name, policy.record_domain, policy.detail))
        why = f"DNS did not answer for {_join(troubles)}; the reply waits and is authenticated again"
        return AuthOutcome("temperror", from_domain=from_domain, spf=spf, dkim=tuple(sigs), dmarc=dmarc, why=why)

    if record:
        dmarc = DmarcVerdict("fail", policy_name, policy.record_domain, "no aligned DKIM or SPF pass")
        why = (f"DMARC fails for {from_domain} (p={policy_name}, record at {policy.record_domain}): "
               f"{_join(facts)}")
    else:
        dmarc = DmarcVerdict("temperror" if not known else "none", "", "", policy.detail)
        if not sigs and spf.result == "none":
            why = f"{from_domain} publishes no DMARC record and no SPF record, and the reply has no DKIM signature"
        else:
            lead = ("its DMARC record could not be fetched" if not known
                    else f"{from_domain} publishes no DMARC record")
            why = f"{lead}, and nothing aligned passes: {_join(facts)}"
    key, sig = _advice_key(from_domain, spf, sigs, record is not None)
    advice_key, advice, params = _advice(key, from_domain, spf, sig)
    return AuthOutcome("fail", from_domain=from_domain, spf=spf, dkim=tuple(sigs), dmarc=dmarc, why=why,
                       advice=advice, advice_key=advice_key, advice_params=params)


def _advice_key(from_domain: str, spf: SpfVerdict, sigs: list[DkimVerdict],
                has_record: bool) -> tuple[str, DkimVerdict | None]:
    """What the party's mail administrator should fix first, most specific first."""
    broken = next((s for s in sigs if s.aligned and s.result in ("fail", "permerror", "neutral")), None)
    if broken:
        return ("publish-dkim-key" if broken.detail.startswith("no key published") else "fix-dkim"), broken
    unaligned = next((s for s in sigs if s.result == "pass" and not s.aligned), None)
    if unaligned:
        return "align-dkim", unaligned
    if spf.result == "permerror":
        return "fix-spf-record", None
    if spf.result == "pass":
        return "align-envelope", None
    if spf.result in ("fail", "softfail", "neutral"):
        return ("fix-spf" if spf.aligned else "align-envelope"), None
    return ("dmarc-policy" if has_record else "publish-spf-or-dkim"), None
