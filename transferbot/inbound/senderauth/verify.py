"""``sender_auth = "verify"``: authenticate one reply ourselves, in process, without blocking the loop.

SPF and DKIM run on worker threads (pyspf and dkimpy are synchronous),
their DNS answered by the loop's resolver through the bridge; the DMARC
record is looked up on the loop itself; all three at once. The rule in
:mod:`transferbot.inbound.senderauth.verdict` then decides.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from transferbot.inbound.senderauth import dkimcheck, dmarc, spfcheck
from transferbot.inbound.senderauth.bridge import DnsBridge
from transferbot.inbound.senderauth.dns import Resolver
from transferbot.inbound.senderauth.domains import address_domain, normalize_domain
from transferbot.inbound.senderauth.verdict import AuthOutcome, DkimVerdict, SpfVerdict, decide, refused

log = logging.getLogger(__name__)

T = TypeVar("T")

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
WORKERS = 8


def _default_executor() -> concurrent.futures.ThreadPoolExecutor:
    """Our own small pool, so slow DNS on SPF or DKIM never starves the loop's default one (database work)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="senderauth")
        return _executor


def _is_null(mail_from: str) -> bool:
    return mail_from.strip() in ("", "<>")


async def authenticate(raw: bytes, *, mail_from: str, client_ip: str, helo: str, from_domain: str | None,
                       resolver: Resolver, timeout: float = 5.0, budget: float = 20.0,
                       executor: Executor | None = None,
                       max_signatures: int = dkimcheck.MAX_SIGNATURES) -> AuthOutcome:
    """Authenticate the From domain of ``raw`` as received from ``client_ip`` with this envelope and HELO.

    ``from_domain`` is the domain of the single From address (None when the
    From does not hold exactly one: that fails). ``timeout`` bounds each DNS
    question, ``budget`` the whole authentication. Never raises for the
    message's sake; returns ``temperror`` when DNS may change the answer.
    """
    domain = normalize_domain(from_domain)
    if domain is None:
        return refused("the From line does not hold exactly one address with a domain, so no domain can be "
                       "authenticated", "from-address")
    if _is_null(mail_from):
        return refused("the envelope sender is null (<>): a delivery notification or auto-reply, never a reply "
                       "that counts", "null-sender", from_domain=domain)
    loop = asyncio.get_running_loop()
    pool = executor or _default_executor()
    bridge = DnsBridge(resolver, loop, budget=budget, per_query=timeout + 1.0)

    async def off_loop(func: Callable[[], T]) -> T:
        return await loop.run_in_executor(pool, func)

    spf_task = off_loop(lambda: spfcheck.check_spf(client_ip, mail_from, helo, bridge.lookup, timeout=budget))
    dkim_task = off_loop(lambda: dkimcheck.verify_dkim(raw, bridge.lookup, max_signatures=max_signatures))
    policy_task = asyncio.wait_for(dmarc.discover(domain, resolver), timeout=budget)
    spf_result, dkim_result, policy_result = await asyncio.gather(spf_task, dkim_task, policy_task,
                                                                  return_exceptions=True)
    spf_verdict = _spf_or_error(spf_result, mail_from, helo, client_ip)
    dkim_verdicts = _dkim_or_error(dkim_result)
    policy = _policy_or_error(policy_result)
    outcome = decide(domain, spf_verdict, dkim_verdicts, policy)
    log.debug("sender auth for %s from %s: %s", domain, client_ip, outcome.summary())
    return outcome


def _spf_or_error(result: SpfVerdict | BaseException, mail_from: str, helo: str, client_ip: str) -> SpfVerdict:
    if isinstance(result, SpfVerdict):
        return result
    if isinstance(result, asyncio.CancelledError):
        raise result
    log.warning("SPF check raised: %r", result)
    domain = address_domain(mail_from) or normalize_domain(helo) or ""
    return SpfVerdict("temperror", domain, f"SPF check did not finish: {result!r}", client_ip=client_ip)


def _dkim_or_error(result: list[DkimVerdict] | BaseException) -> list[DkimVerdict]:
    if isinstance(result, list):
        return result
    if isinstance(result, asyncio.CancelledError):
        raise result
    log.warning("DKIM check raised: %r", result)
    return [DkimVerdict("", "", "temperror", detail=f"DKIM check did not finish: {result!r}")]


def _policy_or_error(result: dmarc.PolicyLookup | BaseException) -> dmarc.PolicyLookup:
    if isinstance(result, dmarc.PolicyLookup):
        return result
    if isinstance(result, asyncio.CancelledError):
        raise result
    if isinstance(result, TimeoutError):
        return dmarc.PolicyLookup("temperror", detail="DMARC lookup took longer than the time budget")
    log.warning("DMARC lookup raised: %r", result)
    return dmarc.PolicyLookup("temperror", detail=f"DMARC lookup did not finish: {result!r}")
