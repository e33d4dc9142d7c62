"""Who is signed in to the dashboard, and whether a POST may change anything.

A signed-in browser holds a session cookie (a random token; the database keeps its SHA-256), HttpOnly,
SameSite=Strict, limited to /ui, and Secure when ``[http] public_url`` is https. Every form carries a CSRF
token bound to the session (an HMAC of it under the dashboard's key); a POST without the right one, or one
a browser marks cross-site, changes nothing. The sign-in form has its own CSRF token (a double-submit
cookie), so that nobody can sign a browser in as someone else. Behind an authenticating proxy,
``[http] trusted_user_header`` names the operator instead, and the CSRF token is bound to that name.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import Response

from transferbot.app import operators
from transferbot.app.context import App
from transferbot.http.ui.throttle import SignInThrottle

log = logging.getLogger(__name__)

T = TypeVar("T")

SESSION_COOKIE = "transferbot_session"
SIGN_IN_COOKIE = "transferbot_signin"
COOKIE_PATH = "/ui"

HASH_WORKERS = 2  # passwords checked at once: each argon2 verification takes 64 MiB and up to 4 threads (lanes)
HASH_QUEUE = 8  # sign-ins waiting for a worker; past them, a sign-in is refused at once
BUSY_RETRY_SECONDS = 2  # about the time the queue takes to drain
HASH_NICE = 10  # the workers' CPU priority, below the event loop's


def _below_the_loop() -> None:
    """A worker's start: it runs at a lower CPU priority than the event loop, and so do argon2's lane threads,
    which inherit it. Linux keeps a nice value per thread; elsewhere it is the process's, so it is left alone."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + HASH_NICE)
        except OSError as exc:
            log.debug("sign-in workers keep the loop's CPU priority: %s", exc)


class Busy(Exception):
    """Every worker and every queue place of the password pool is taken: the password was not checked."""


class PasswordPool:
    """Password checks on a small pool of threads of their own, behind a bounded queue.

    An argon2 verification is a fraction of a second of CPU and 64 MiB. On the event loop's default executor,
    a flood of sign-ins would queue ahead of every database read of the API, the dashboard and /readyz; here
    at most ``workers`` run at once and ``queue`` wait, and a sign-in past them is refused (:class:`Busy`)
    before it does any work. The workers run below the loop's CPU priority, so that on a busy machine the
    checks wait, not the API, SMTP and /readyz. One pool per process: the CPU it guards is the process's.
    """

    def __init__(self, workers: int = HASH_WORKERS, queue: int = HASH_QUEUE) -> None:
        self.workers = workers
        self._places = threading.BoundedSemaphore(workers + queue)  # released from the workers' threads
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="sign-in",
                                                    initializer=_below_the_loop)
            return self._executor

    @contextmanager
    def place(self) -> Iterator[_Place]:
        """A place in the pool for one sign-in (its database read and its check), or :class:`Busy` at once."""
        if not self._places.acquire(blocking=False):
            raise Busy()
        place = _Place(self)
        try:
            yield place
        finally:
            if place.held:
                self.give_back()

    def give_back(self) -> None:
        self._places.release()


class _Place:
    def __init__(self, pool: PasswordPool) -> None:
        self.pool, self.held = pool, True

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the pool; the place is given back when it ends, even should the caller stop waiting."""
        future = self.pool.executor().submit(fn, *args)
        self.held = False
        future.add_done_callback(lambda _done: self.pool.give_back())
        return await asyncio.wrap_future(future)


PASSWORDS = PasswordPool()


@dataclass(frozen=True)
class Who:
    """The operator a request is from; ``csrf`` is what its forms must send back."""

    name: str
    csrf: str
    via: str  # "session" | "header"

    @property
    def by(self) -> str:
        """How the audit trail names this operator's actions."""
        return f"operator:{self.name}"


class NotSignedIn(Exception):
    """A page or an action asked for by nobody we know: pages redirect to the sign-in form; actions do nothing."""


class Forbidden(Exception):
    """A POST without the right CSRF token, or from another site: nothing is changed."""


class Auth:
    def __init__(self, app: App, throttle: SignInThrottle | None = None, passwords: PasswordPool | None = None) -> None:
        self.app = app
        self.passwords = passwords or PASSWORDS
        http = app.config.http
        self.secure = http.https
        self.header = http.trusted_user_header
        self.hours = http.session_hours
        self.throttle = throttle or SignInThrottle()
        self._key: bytes | None = None
        self._key_lock = asyncio.Lock()

    async def key(self) -> bytes:
        """The dashboard's key, from the database (shared by every daemon; migration 0005 made it)."""
        if self._key is None:
            async with self._key_lock:
                if self._key is None:
                    self._key = await self.app.store.read_async(operators.stored_ui_secret)
                    if self._key is None:  # the row was removed by hand: make it again
                        self._key = await self.app.store.transact(operators.ui_secret)
        return self._key

    def _mac(self, key: bytes, purpose: str, value: str) -> str:
        return hmac.new(key, f"{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()

    async def who(self, request: Request) -> Who | None:
        key = await self.key()
        if self.header:
            named = request.headers.get(self.header, "").strip()
            if named:
                if not await self.app.store.read_async(operators.registered, named):
                    log.warning("dashboard: %s names %r, who is not a registered operator", self.header, named[:64])
                    return None
                return Who(named, self._mac(key, "csrf-user", named), "header")
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            return None
        name = await self.app.store.read_async(operators.session_operator, token)
        if name is None:
            return None
        return Who(name, self._mac(key, "csrf-session", operators.token_hash(token)), "session")

    async def require(self, request: Request) -> Who:
        """The operator signed in (kept on the request, for the pages its errors show), or NotSignedIn."""
        who = await self.who(request)
        if who is None:
            raise NotSignedIn()
        request.state.who = who
        return who

    def check_post(self, request: Request, who: Who, form: dict[str, str]) -> None:
        """The CSRF token of ``who``'s session, from a page of ours, or nothing happens."""
        if request.headers.get("sec-fetch-site", "") == "cross-site":
            raise Forbidden("a form from another site")
        if not hmac.compare_digest(form.get("csrf", "").encode(), who.csrf.encode()):
            raise Forbidden("the form's CSRF token is missing or wrong")

    # -- the sign-in form's own token (double submit) ------------------------------------------------------------
    def sign_in_token(self, request: Request) -> str:
        return request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(24)

    def sign_in_ok(self, request: Request, form: dict[str, str]) -> bool:
        cookie = request.cookies.get(SIGN_IN_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), form.get("csrf", "").encode()) \
            and request.headers.get("sec-fetch-site", "") != "cross-site"

    # -- cookies -------------------------------------------------------------------------------------------------
    def _cookie(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, secure=self.secure, httponly=True,
                            samesite="strict")

    def set_sign_in_cookie(self, response: Response, token: str) -> None:
        self._cookie(response, SIGN_IN_COOKIE, token, 3600)

    def set_session(self, response: Response, token: str) -> None:
        self._cookie(response, SESSION_COOKIE, token, int(self.hours * 3600))
        response.delete_cookie(SIGN_IN_COOKIE, path=COOKIE_PATH, secure=self.secure, httponly=True, samesite="strict")

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, secure=self.secure, httponly=True, samesite="strict")

    # -- signing in and out --------------------------------------------------------------------------------------
    async def sign_in(self, name: str, password: str) -> str | None:
        """A new session token when the name and password match an enabled operator; None otherwise.
        :class:`Busy`, having done nothing, when the password pool is full. An unknown name is checked
        against a dummy hash, on the same pool, so that it costs what a known one does."""
        with self.passwords.place() as place:
            row = await self.app.store.read_async(operators.operator_for_sign_in, name)
            stored = row.password_hash if row is not None else None
            ok = await place.run(operators.password_matches, stored, password)
        if not ok or row is None:
            return None
        return await self.app.store.transact(operators.open_session, row.id or 0, self.hours)

    async def sign_out(self, request: Request) -> None:
        token = request.cookies.get(SESSION_COOKIE, "")
        if token:
            await self.app.store.transact(operators.close_session, token)


def client_of(request: Request) -> str:
    return request.client.host if request.client else "-"


Poke = Callable[[], None]
