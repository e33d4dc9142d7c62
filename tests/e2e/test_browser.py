"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright (no browser download).

The story an operator lives: sign in (a wrong password refused), find the pending transfer on the board,
open it, see every party and the forged replies explained, cancel it with a reason, and find it cancelled
through the CLI. A POST without a session or a CSRF token (including a form on another site) changes
nothing. Every page is also read without JavaScript and on a phone's width. Each page's screenshot is saved
under tests/screenshots/ (or $TRANSFERBOT_SCREENSHOTS), not committed.

Without /usr/bin/chromium or playwright these tests skip, saying why; with TRANSFERBOT_REQUIRE_BROWSER=1
(as .ci/run sets) they fail instead, so CI never passes without having run them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard_world import OPERATOR, PASSWORD, Market, build
from tests.dnsserver import DnsServer
from tests.paths import TESTS
from transferbot.cli import main
from transferbot.devtools.sink import MailSink

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REQUIRED = os.environ.get("TRANSFERBOT_REQUIRE_BROWSER") == "1"
SHOTS = Path(os.environ.get("TRANSFERBOT_SCREENSHOTS") or TESTS / "screenshots")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def missing() -> str | None:
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; never `playwright install`)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    why = missing()
    if why:
        if REQUIRED:
            pytest.fail(f"TRANSFERBOT_REQUIRE_BROWSER=1, but {why}", pytrace=False)
        pytest.skip(f"browser tests need Chromium and Playwright: {why}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Market]:
    sink = MailSink().start_in_thread()
    dns = DnsServer().start()
    m = build(tmp_path_factory.mktemp("browser"), sink, dns)
    yield m
    m.daemon.stop()
    m.app.store.close()
    dns.stop()
    sink.stop_thread()


def shot(page: Any, name: str, full: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


def shot_to(page: Any, name: str, selector: str) -> None:
    """The page from its top to the end of ``selector`` (the README's pictures: the part that tells)."""
    box = page.locator(selector).bounding_box()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True,
                    clip={"x": 0, "y": 0, "width": DESKTOP["width"], "height": box["y"] + box["height"] + 16})


def sign_in(page: Any, market: Market, password: str = PASSWORD) -> None:
    page.goto(f"{market.base}/ui/")
    page.get_by_label("Username").fill(OPERATOR)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def fits(page: Any) -> bool:
    """Nothing wider than the window: no sideways scrolling of the page, nor of a table inside it."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1 && "
                              "[...document.querySelectorAll('.scroll')].every(e => e.scrollWidth <= e.clientWidth + 1)"))


def test_an_operator_signs_in_finds_the_transfer_sees_why_forgeries_failed_and_cancels_it(
        browser: Any, market: Market, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(f"{market.base}/ui/")
    assert page.url.startswith(f"{market.base}/ui/sign-in")
    shot(page, "sign-in")
    sign_in(page, market, password="not the password")
    assert page.get_by_role("alert").inner_text() == "Wrong username or password."
    shot(page, "sign-in-refused")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url(f"{market.base}/ui/board")
    row = page.locator("tr", has=page.get_by_role("link", name=market.tid))
    assert row.count() == 1
    cells = row.inner_text()
    assert "direct-to-reseller" in cells and "ent-1" in cells and "Analytics Pro" in cells
    assert "Vendor Inc" in row.locator('td[data-label="Answered"]').inner_text()
    waiting = row.locator('td[data-label="Waiting for"]').inner_text()
    assert "Acme GmbH" in waiting and "Contoso Resellers" in waiting
    shot(page, "board")
    page.get_by_label("Search").fill("acme gmbh")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"/ui/board\?.*q=acme(\+|%20)gmbh"))  # htmx pushes the filter into the URL
    expect(page.get_by_role("link", name=market.others["completed"])).to_have_count(0)
    expect(page.get_by_role("link", name=market.tid)).to_have_count(1)

    page.get_by_role("link", name=market.tid).click()
    page.wait_for_url(f"{market.base}/ui/transfers/{market.tid}")
    parties = page.locator("table.parties").inner_text()
    for name, address in (("Acme GmbH", "alice@acme.example"), ("Vendor Inc", "deals@vendor.example"),
                          ("Contoso Resellers", "sales@contoso.example")):
        assert name in parties and address in parties
    messages = page.locator("#messages").inner_text()
    assert "Not counted: from mallory@evil.example, which is not an address of Acme GmbH." in messages
    assert "DKIM signature by evil.example does not align with acme.example" in messages
    assert "audit chain intact" in page.locator("#audit").inner_text()
    shot(page, "transfer")
    shot_to(page, "transfer-top", "#messages")

    page.locator(f"#in-{market.forged[0]}").get_by_role("link", name="Raw message").click()
    raw = page.locator("pre.raw")
    assert "<img src=" in raw.inner_text()  # the forger's markup, as text
    assert raw.locator("img").count() == 0 and page.title() != "pwned"
    shot(page, "inbound-raw")

    page.goto(f"{market.base}/ui/transfers/{market.tid}")
    page.get_by_label("Reason").fill("The customer asked us to stop: see ticket 4711")
    page.get_by_role("button", name="Cancel transfer").click()
    page.wait_for_url(f"{market.base}/ui/transfers/{market.tid}?done=cancelled")
    assert "The transfer is cancelled" in page.get_by_role("status").inner_text()
    audit = page.locator("#audit").inner_text()
    assert f"operator:{OPERATOR}" in audit and "The customer asked us to stop" in audit
    assert page.get_by_role("button", name="Cancel transfer").count() == 0
    shot(page, "transfer-cancelled")
    for name in ("inbox", "outbox"):
        page.get_by_role("link", name=name.capitalize(), exact=True).click()
        page.wait_for_url(f"{market.base}/ui/{name}")
        shot(page, name)
    context.close()

    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{market.app.config.database.url}"\n[workflow]\nsecret = "test-secret"\n')
    capsys.readouterr()
    assert main(["--config", str(config), "show", market.tid, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "cancelled"
    [cancelled] = [e for e in shown["events"] if e["kind"] == "cancelled"]
    assert cancelled["by"] == f"operator:{OPERATOR}" and cancelled["reason"].startswith("The customer asked us")


def test_a_post_without_a_session_or_a_csrf_token_changes_nothing(browser: Any, market: Market) -> None:
    tid = market.fresh_transfer()
    target = f"{market.base}/ui/transfers/{tid}/cancel"
    stranger = browser.new_context()
    assert stranger.request.post(target, form={"reason": "no session"}).status == 401
    stranger.close()

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    sign_in(page, market)
    page.wait_for_url(f"{market.base}/ui/board")
    assert context.request.post(target, form={"reason": "no token"}).status == 403
    assert context.request.post(target, form={"reason": "wrong token", "csrf": "0" * 64}).status == 403
    # A form on another site, submitted in the signed-in browser: the SameSite=Strict cookie stays home.
    page.goto("about:blank")
    page.set_content(f'<form method="post" action="{target}"><input name="reason" value="cross-site">'
                     '<button>go</button></form>')
    page.get_by_role("button", name="go").click()
    page.wait_for_url(target)
    assert "Sign in first: nothing was changed." in page.get_by_role("alert").inner_text()
    assert market.status(tid) == "pending"
    page.goto(f"{market.base}/ui/transfers/{tid}")
    assert page.locator("h1").inner_text().endswith("pending")
    context.close()


def test_pages_work_without_javascript_and_on_a_phone(browser: Any, market: Market) -> None:
    for name, options in (("nojs", {"viewport": DESKTOP, "java_script_enabled": False}),
                          ("phone", {"viewport": PHONE, "is_mobile": True, "has_touch": True,
                                     "device_scale_factor": 2})):
        context = browser.new_context(**options)
        page = context.new_page()
        sign_in(page, market)
        page.wait_for_url(f"{market.base}/ui/board")
        assert page.get_by_role("link", name=market.others["pending"]).count() == 1
        assert fits(page), f"{name}: the board is wider than the window"
        shot(page, f"board-{name}")
        page.get_by_role("link", name=market.others["pending"]).click()
        page.wait_for_url(f"**/ui/transfers/{market.others['pending']}")
        assert "Northwind Partners" in page.locator("table.parties").inner_text()
        assert fits(page), f"{name}: the transfer page is wider than the window"
        shot(page, f"transfer-{name}")
        context.close()
