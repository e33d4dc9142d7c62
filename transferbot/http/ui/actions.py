"""The dashboard's actions (POST only): sign in and out, cancel, resend, replace a contact, retry a message.

Each action runs the CLI's own use case, with the CLI's rules and its one-line refusals (shown on the page,
with what the operator typed kept), and records the operator's name in the transfer's audit trail
(``operator:NAME``). The use cases are synchronous, one transaction each, so they run on a worker thread;
the dispatcher is woken afterwards so the mail they queue leaves at once. Every action first checks the
session and its CSRF token: without both, nothing is changed.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from transferbot.app import controls as operator
from transferbot.app import outbox, replies
from transferbot.app.context import App
from transferbot.core.clock import now
from transferbot.core.errors import Refusal, TooSoon
from transferbot.http.ui.auth import BUSY_RETRY_SECONDS, Busy, Who, client_of
from transferbot.http.ui.forms import read_form
from transferbot.http.ui.pages import RowId, Site, safe_next, transfer_view
from transferbot.http.ui.render import page
from transferbot.http.ui.throttle import Attempt

log = logging.getLogger(__name__)


def _see(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def router(site: Site) -> APIRouter:
    r = APIRouter()
    auth = site.auth

    async def guarded(request: Request) -> tuple[Who, dict[str, str]]:
        who = await auth.require(request)
        form = await read_form(request, site.form_limit)
        auth.check_post(request, who, form)
        return who, form

    def poke() -> None:
        if site.poke is not None:
            site.poke()

    # -- signing in and out ----------------------------------------------------------------------------------
    @r.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        form = await read_form(request, site.form_limit)
        name, password = form.get("username", "").strip(), form.get("password", "")
        target = safe_next(form.get("next"))
        token = auth.sign_in_token(request)

        def again(status: int, error: str, headers: dict[str, str] | None = None) -> Response:
            response = page(request, "sign_in.html", code=status, csrf=token, username=name, next=target,
                            error=error, headers=headers)
            auth.set_sign_in_cookie(response, token)
            return response

        if not auth.sign_in_ok(request, form):
            return again(403, "The sign-in form had expired or did not come from this site; please sign in again.")
        client = client_of(request)
        # Counted now, before the slow check, so that guesses sent at once are limited as guesses in a row.
        attempt = auth.throttle.reserve(name, client)
        if not isinstance(attempt, Attempt):
            wait = int(attempt) + 1
            log.warning("dashboard: sign-in for %r from %s refused: too many attempts", name[:64], client)
            return again(429, f"Too many sign-in attempts; try again in {wait} seconds.", {"Retry-After": str(wait)})
        try:
            session_token = await auth.sign_in(name, password) if name and password else None
        except Busy:
            auth.throttle.release(attempt)
            log.warning("dashboard: sign-in for %r from %s refused: the password pool is full", name[:64], client)
            return again(503, f"Too many sign-ins are being checked right now; try again in {BUSY_RETRY_SECONDS} "
                              "seconds.", {"Retry-After": str(BUSY_RETRY_SECONDS)})
        except BaseException:
            auth.throttle.release(attempt)  # our trouble (the database), not a wrong guess
            raise
        if session_token is None:
            auth.throttle.failed(attempt)
            log.warning("dashboard: sign-in for %r from %s refused: wrong name or password", name[:64], client)
            return again(401, "Wrong username or password.")
        auth.throttle.succeeded(attempt)
        log.info("dashboard: %s signed in from %s", name, client)
        response = _see(target)
        auth.set_session(response, session_token)
        return response

    @r.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        who, _form = await guarded(request)
        await auth.sign_out(request)
        log.info("dashboard: %s signed out", who.name)
        response = _see("/ui/sign-in?done=signed-out")
        auth.clear_session(response)
        return response

    # -- a transfer --------------------------------------------------------------------------------------------
    async def act(request: Request, tid: str, work: str) -> Response:
        who, form = await guarded(request)
        app: App = site.app

        async def on_refusal(exc: Refusal, code: int, headers: dict[str, str] | None) -> Response:
            # Shown on the transfer page with what was typed; one resent too soon offers to resend all the
            # same (forced, and recorded as such under the operator's name).
            typed = {**form, "action": work, **({"too_soon": "1"} if isinstance(exc, TooSoon) else {})}
            return await transfer_view(site, request, tid, code=code, error=str(exc), form=typed, who=who,
                                       headers=headers)

        request.state.on_refusal = on_refusal
        if work == "cancel":
            done = await asyncio.to_thread(operator.cancel_transfer, app, tid, form.get("reason", ""), None, who.by)
            key = "cancelled"
        elif work == "resend":
            await asyncio.to_thread(operator.resend, app, tid, form.get("role") or None, None, who.by,
                                    form.get("force") == "1")
            done, key = tid, "resent"
        else:
            await asyncio.to_thread(operator.replace_contact, app, tid, form.get("role", ""), form.get("email", ""),
                                    None, who.by)
            done, key = tid, "replaced"
        poke()
        return _see(f"/ui/transfers/{quote(done.upper())}?done={key}")

    @r.post("/transfers/{tid}/cancel")
    async def cancel(request: Request, tid: str) -> Response:
        return await act(request, tid, "cancel")

    @r.post("/transfers/{tid}/resend")
    async def resend(request: Request, tid: str) -> Response:
        return await act(request, tid, "resend")

    @r.post("/transfers/{tid}/replace-contact")
    async def replace_contact(request: Request, tid: str) -> Response:
        return await act(request, tid, "replace-contact")

    # -- messages ----------------------------------------------------------------------------------------------
    @r.post("/outbox/{outbound_id}/retry")
    async def retry_outbound(request: Request, outbound_id: RowId) -> Response:
        who, form = await guarded(request)
        back = request.state.back = safe_next(form.get("next") or "/ui/outbox")
        await asyncio.to_thread(outbox.retry_outbox, site.app, outbound_id, False, now(), who.by)
        poke()
        return _see(_done(back, "mail-retried"))

    @r.post("/outbox/retry-failed")
    async def retry_all(request: Request) -> Response:
        who, _form = await guarded(request)
        ids = await asyncio.to_thread(outbox.retry_outbox, site.app, None, True, now(), who.by)
        poke()
        return _see("/ui/outbox?done=all-retried" if ids else "/ui/outbox")

    @r.post("/webhooks/deliveries/{delivery_id}/retry")
    async def retry_webhook(request: Request, delivery_id: RowId) -> Response:
        who, form = await guarded(request)
        back = request.state.back = safe_next(form.get("next") or "/ui/webhooks")
        await asyncio.to_thread(operator.retry_webhook, site.app, delivery_id, now(), who.by)
        poke()
        return _see(_done(back, "webhook-retried"))

    @r.post("/inbox/{inbound_id}/retry")
    async def retry_inbound(request: Request, inbound_id: RowId) -> Response:
        who, form = await guarded(request)
        back = request.state.back = safe_next(form.get("next") or f"/ui/inbox/{inbound_id}")
        try:
            await asyncio.to_thread(replies.retry_inbound, site.app, inbound_id, who.by)
        except Refusal:
            raise  # answered by the dashboard's one handler
        except Exception as exc:  # noqa: BLE001 - shown on one line; the message stays failed, the log has it
            log.exception("dashboard: inbound #%s failed again", inbound_id)
            return page(request, "refused.html", code=500, who=who, back=back,
                        error=f"inbound #{inbound_id} failed again: {type(exc).__name__}: {exc}")
        poke()
        return _see(_done(back, "read-again"))

    return r


def _done(url: str, key: str) -> str:
    base = url.split("?", 1)[0].split("#", 1)[0]
    return f"{base}?done={key}"
