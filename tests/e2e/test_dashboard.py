"""The dashboard over HTTP, without a browser: sign-in, sessions, CSRF, the pages and the actions.

One marketplace for the module (tests/dashboard_world.py); a test that changes a transfer makes its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import select

from tests.dashboard_world import FORGED_IMG, OPERATOR, PASSWORD, Market, build, csrf_of, signed_in
from tests.dnsserver import DnsServer
from tests.helpers import wait_until
from transferbot.app import operators
from transferbot.cli import main
from transferbot.devtools.sink import MailSink
from transferbot.http.ui.auth import SESSION_COOKIE
from transferbot.store.models import InboundMessage, OperatorSession, OutboundMessage, table_of


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    sink = MailSink().start_in_thread()
    dns = DnsServer().start()
    m = build(tmp_path_factory.mktemp("dashboard"), sink, dns)
    yield m
    m.daemon.stop()
    m.app.store.close()
    dns.stop()
    sink.stop_thread()


@pytest.fixture
def client(market: Market) -> Iterator[httpx.Client]:
    with signed_in(market) as c:
        yield c


def form_token(client: httpx.Client, path: str) -> str:
    return csrf_of(client.get(path).text)


# -- signing in -------------------------------------------------------------------------------------------------

def test_a_page_asks_for_sign_in_and_comes_back_after_it(market: Market) -> None:
    with httpx.Client(base_url=market.base) as c:
        got = c.get(f"/ui/transfers/{market.tid}")
        assert got.status_code == 303 and got.headers["location"] == f"/ui/sign-in?next=/ui/transfers/{market.tid}"
        form = c.get(got.headers["location"])
        assert 'for="username">Username<' in form.text and 'for="password">Password<' in form.text
        assert ">Sign in</button>" in form.text
        signed = c.post("/ui/sign-in", data={"csrf": csrf_of(form.text), "username": OPERATOR,
                                             "password": PASSWORD, "next": f"/ui/transfers/{market.tid}"})
        assert signed.status_code == 303 and signed.headers["location"] == f"/ui/transfers/{market.tid}"
        cookie = next(h for h in signed.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert {"httponly", "samesite=strict", "path=/ui"} <= flags and "secure" not in flags  # plain http here
        assert c.get(f"/ui/transfers/{market.tid}").status_code == 200


def test_a_wrong_password_is_refused_and_no_session_is_made(market: Market) -> None:
    with httpx.Client(base_url=market.base) as c:
        token = csrf_of(c.get("/ui/sign-in").text)
        got = c.post("/ui/sign-in", data={"csrf": token, "username": OPERATOR, "password": "not the password"})
        assert got.status_code == 401 and "Wrong username or password." in got.text
        assert SESSION_COOKIE not in c.cookies
        unknown = c.post("/ui/sign-in", data={"csrf": token, "username": "nobody", "password": "not the password"})
        assert unknown.status_code == 401 and "Wrong username or password." in unknown.text
        assert c.get("/ui/board").status_code == 303


def test_the_sign_in_form_has_its_own_csrf_token(market: Market) -> None:
    with httpx.Client(base_url=market.base) as c:
        got = c.post("/ui/sign-in", data={"username": OPERATOR, "password": PASSWORD})
        assert got.status_code == 403 and SESSION_COOKIE not in c.cookies
        token = csrf_of(c.get("/ui/sign-in").text)
        forged = c.post("/ui/sign-in", data={"csrf": token + "x", "username": OPERATOR, "password": PASSWORD})
        assert forged.status_code == 403 and SESSION_COOKIE not in c.cookies


def test_sign_in_attempts_are_rate_limited_per_name(market: Market) -> None:
    operators.add_operator(market.app, "carol", "carol's long password")
    with httpx.Client(base_url=market.base) as c:
        token = csrf_of(c.get("/ui/sign-in").text)
        for _ in range(5):
            got = c.post("/ui/sign-in", data={"csrf": token, "username": "carol", "password": "guess guess guess"})
            assert got.status_code == 401
        blocked = c.post("/ui/sign-in", data={"csrf": token, "username": "carol", "password": "carol's long password"})
        assert blocked.status_code == 429 and "Too many sign-in attempts" in blocked.text
        assert int(blocked.headers["retry-after"]) > 0 and SESSION_COOKIE not in c.cookies


def test_signing_out_and_removing_an_operator_end_sessions_everywhere(market: Market) -> None:
    operators.add_operator(market.app, "dave", "dave's long password")
    with signed_in(market, name="dave", password="dave's long password") as c:
        assert c.get("/ui/board").status_code == 200
        operators.remove_operator(market.app, "dave")
        assert c.get("/ui/board").status_code == 303  # the session row went with the operator
    with signed_in(market) as c:
        out = c.post("/ui/sign-out", data={"csrf": form_token(c, "/ui/board")})
        assert out.status_code == 303 and c.get("/ui/board").status_code == 303
    with market.app.store.read() as session:  # only hashes of tokens are stored
        for row in session.exec(select(OperatorSession)):
            assert len(row.token_hash) == 64


# -- nothing changes without a session and its CSRF token; nothing changes by a GET ----------------------------------

def test_a_post_without_a_session_or_a_csrf_token_changes_nothing(market: Market, client: httpx.Client) -> None:
    tid = market.fresh_transfer()
    with httpx.Client(base_url=market.base) as stranger:
        got = stranger.post(f"/ui/transfers/{tid}/cancel", data={"reason": "no session"})
        assert got.status_code == 401 and "nothing was changed" in got.text
    token = form_token(client, f"/ui/transfers/{tid}")
    assert client.post(f"/ui/transfers/{tid}/cancel", data={"reason": "no token"}).status_code == 403
    assert client.post(f"/ui/transfers/{tid}/cancel", data={"reason": "bad", "csrf": token[:-1]}).status_code == 403
    cross = client.post(f"/ui/transfers/{tid}/cancel", data={"reason": "x-site", "csrf": token},
                        headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert client.post(f"/ui/transfers/{tid}/cancel", content=b'{"reason": "json"}',
                       headers={"Content-Type": "application/json"}).status_code == 415
    assert client.get(f"/ui/transfers/{tid}/cancel").status_code == 405
    assert market.status(tid) == "pending"
    assert not [e for e in market.events(tid) if e["kind"] == "cancelled"]


def test_another_sessions_csrf_token_does_not_work(market: Market, client: httpx.Client) -> None:
    tid = market.fresh_transfer()
    with signed_in(market) as other:
        theirs = form_token(other, f"/ui/transfers/{tid}")
    assert client.post(f"/ui/transfers/{tid}/cancel", data={"reason": "r", "csrf": theirs}).status_code == 403
    assert market.status(tid) == "pending"


# -- the pages --------------------------------------------------------------------------------------------------

def test_the_board_shows_who_has_and_has_not_answered_and_searches(market: Market, client: httpx.Client) -> None:
    page = client.get("/ui/board").text
    for tid in (market.tid, *market.others.values()):
        assert tid in page
    row = page[page.index(f">{market.tid}</a>"):]
    row = row[:row.index("</tr>")]
    assert "direct-to-reseller" in row and "ent-1" in row and "Analytics Pro" in row
    answered, waiting = row.split('data-label="Waiting for"')
    assert "Vendor Inc" in answered and "approved" in answered
    assert "Acme GmbH" in waiting and "Contoso Resellers" in waiting and "Vendor Inc" not in waiting
    pending = client.get("/ui/board", params={"status": "pending"}).text
    assert market.tid in pending and market.others["completed"] not in pending
    for q in ("acme gmbh", "ENT-1", market.tid.lower(), "alice@acme"):
        found = client.get("/ui/board", params={"q": q}).text
        assert market.tid in found and market.others["completed"] not in found, q
    assert "is not one of" in client.get("/ui/board", params={"status": "nope"}).text


def test_the_transfer_page_tells_the_whole_story(market: Market, client: httpx.Client) -> None:
    page = client.get(f"/ui/transfers/{market.tid}").text
    for text in ("Acme GmbH", "Vendor Inc", "Contoso Resellers", "alice@acme.example", "deals@vendor.example",
                 "sales@contoso.example", "Asked by Acme on the phone", "matches the details as filed",
                 "audit chain intact"):
        assert text in page, text
    assert "Not counted: from mallory@evil.example, which is not an address of Acme GmbH." in page
    assert "DKIM signature by evil.example does not align with acme.example" in page
    assert "Counted: the approval of Vendor Inc (the ISV) was recorded." in page
    assert page.index("confirmation") < page.index("Not counted: from mallory")  # mail in and out, in order
    assert FORGED_IMG not in page


def test_the_raw_message_is_text_never_html(market: Market, client: httpx.Client) -> None:
    forged = market.forged[0]
    shown = client.get(f"/ui/inbox/{forged}", params={"raw": "1"})
    assert shown.status_code == 200 and "Message-ID:" in shown.text
    assert "&lt;img src=" in shown.text and "<img" not in shown.text  # its markup shown as text, escaped
    assert "default-src 'none'" in shown.headers["content-security-policy"]
    raw = client.get(f"/ui/inbox/{forged}/raw")
    assert raw.headers["content-type"].startswith("text/plain") and raw.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in raw.headers["content-security-policy"] and "<img src=" in raw.text
    first = client.get("/ui/outbox").text.split('href="/ui/outbox/')[1].split("/raw")[0]
    rendered = client.get(f"/ui/outbox/{first}/raw")
    assert rendered.headers["content-type"].startswith("text/plain") and "Message-ID:" in rendered.text


def test_inbox_and_outbox_pages(market: Market, client: httpx.Client) -> None:
    inbox = client.get("/ui/inbox").text
    assert "not-a-party" in inbox and "which is not an address of Acme GmbH" in inbox
    only = client.get("/ui/inbox", params={"outcome": "approved"}).text
    assert "not-a-party</span>" not in only and "approved</span>" in only
    outbox = client.get("/ui/outbox").text
    assert "confirmation" in outbox and "sent</span>" in outbox and "Retry every failed message" in outbox
    assert client.get("/ui/inbox/999999").status_code == 404
    assert client.get("/ui/transfers/TR-NOSUCH").status_code == 404


def test_every_page_answers_with_headers_that_keep_it_to_itself(market: Market, client: httpx.Client) -> None:
    for path in ("/ui/board", f"/ui/transfers/{market.tid}", "/ui/inbox", "/ui/outbox", "/ui/sign-in", "/ui/nothing"):
        got = client.get(path)
        assert got.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in \
            got.headers["content-security-policy"] and got.headers["cache-control"] == "no-store", path
        assert "<script>" not in got.text and "style=" not in got.text, path  # no inline script or style


# -- actions, with the operator's name in the audit trail -------------------------------------------------------

def test_cancel_with_a_reason_is_recorded_under_the_operators_name(market: Market, client: httpx.Client) -> None:
    tid = market.fresh_transfer()
    token = form_token(client, f"/ui/transfers/{tid}")
    empty = client.post(f"/ui/transfers/{tid}/cancel", data={"csrf": token, "reason": "  "})
    assert empty.status_code == 422 and "--reason must not be empty: every party is told why" in empty.text
    assert market.status(tid) == "pending"
    done = client.post(f"/ui/transfers/{tid}/cancel", data={"csrf": token, "reason": "The customer changed its mind"})
    assert done.status_code == 303 and done.headers["location"] == f"/ui/transfers/{tid}?done=cancelled"
    assert market.status(tid) == "cancelled"
    [event] = [e for e in market.events(tid) if e["kind"] == "cancelled"]
    assert event["by"] == f"operator:{OPERATOR}" and event["reason"] == "The customer changed its mind"
    page = client.get(done.headers["location"]).text
    assert "The transfer is cancelled" in page and f"operator:{OPERATOR}" in page and "Cancel transfer" not in page
    again = client.post(f"/ui/transfers/{tid}/cancel", data={"csrf": token, "reason": "twice"})
    assert again.status_code == 409 and f"transfer {tid} is cancelled; only a pending transfer can be cancelled" \
        in again.text


def test_resend_and_replace_contact_are_recorded_under_the_operators_name(market: Market,
                                                                          client: httpx.Client) -> None:
    tid = market.fresh_transfer()
    token = form_token(client, f"/ui/transfers/{tid}")
    assert client.post(f"/ui/transfers/{tid}/resend", data={"csrf": token, "role": "isv"}).status_code == 303
    taken = client.post(f"/ui/transfers/{tid}/replace-contact",
                        data={"csrf": token, "role": "customer", "email": "deals@vendor.example"})
    assert taken.status_code == 422 and "is an address of the isv" in taken.text
    assert 'value="deals@vendor.example"' in taken.text  # what the operator typed is kept
    moved = client.post(f"/ui/transfers/{tid}/replace-contact",
                        data={"csrf": token, "role": "customer", "email": "it@globex.example"})
    assert moved.status_code == 303
    events = market.events(tid)
    assert [e["by"] for e in events if e["kind"] == "resent"] == [f"operator:{OPERATOR}"]
    [replaced] = [e for e in events if e["kind"] == "contact-replaced"]
    assert replaced["by"] == f"operator:{OPERATOR}" and replaced["new"] == ["it@globex.example"]
    wait_until(lambda: market.sink.to("it@globex.example"), what="the new contact's confirmation")


def test_a_resend_within_the_hour_is_refused_on_the_page_and_may_be_forced_under_the_operators_name(
        market: Market, client: httpx.Client) -> None:
    tid = market.fresh_transfer()
    token = form_token(client, f"/ui/transfers/{tid}")
    assert client.post(f"/ui/transfers/{tid}/resend", data={"csrf": token, "role": "isv"}).status_code == 303
    again = client.post(f"/ui/transfers/{tid}/resend", data={"csrf": token, "role": "isv"})
    assert again.status_code == 429 and 0 < int(again.headers["Retry-After"]) <= 3600
    assert f"the isv of {tid} was resent its confirmation at" in again.text and "at most once an hour" in again.text
    assert 'name="force"' in again.text and '<option value="isv" selected>' in again.text
    assert len([e for e in market.events(tid) if e["kind"] == "resent"]) == 1
    forced = client.post(f"/ui/transfers/{tid}/resend", data={"csrf": token, "role": "isv", "force": "1"})
    assert forced.status_code == 303
    resent = [e for e in market.events(tid) if e["kind"] == "resent"]
    assert [(e["by"], e.get("forced", False)) for e in resent] == [(f"operator:{OPERATOR}", False),
                                                                   (f"operator:{OPERATOR}", True)]


def test_retrying_a_failed_message_is_recorded_under_the_operators_name(market: Market,
                                                                        client: httpx.Client) -> None:
    tid = market.fresh_transfer()
    wait_until(lambda: market.sink.to("bob@globex.example"), what="the confirmation")
    table = table_of(OutboundMessage)
    with market.app.store.read() as session:
        row = session.exec(select(OutboundMessage).where(OutboundMessage.transfer_id == tid)).first()
        assert row is not None
        failed_id = row.id
    market.app.store.run(lambda s: s.connection().execute(
        sa.update(table).where(table.c.id == failed_id).values(status="failed", last_error="550 5.1.1 no such user")))
    page = client.get("/ui/outbox", params={"status": "failed"}).text
    assert "550 5.1.1 no such user" in page and f'action="/ui/outbox/{failed_id}/retry"' in page
    got = client.post(f"/ui/outbox/{failed_id}/retry", data={"csrf": csrf_of(page), "next": "/ui/outbox"})
    assert got.status_code == 303 and got.headers["location"] == "/ui/outbox?done=mail-retried"
    wait_until(lambda: market.app.store.run(lambda s: s.get(OutboundMessage, failed_id).status) == "sent",
               what="sent again")
    [event] = [e for e in market.events(tid) if e["kind"] == "mail-retried"]
    assert event["by"] == f"operator:{OPERATOR}" and event["outbound"] == failed_id
    refused = client.post(f"/ui/outbox/{failed_id}/retry", data={"csrf": csrf_of(page)})
    assert refused.status_code == 409 and f"outbox message #{failed_id} is sent, not failed" in refused.text


def test_reading_a_failed_reply_again_is_recorded_under_the_operators_name(market: Market,
                                                                           client: httpx.Client) -> None:
    forged = market.forged[1]
    market.app.store.run(lambda s: s.connection().execute(
        sa.update(table_of(InboundMessage)).where(table_of(InboundMessage).c.id == forged)
        .values(state="failed", outcome="failed", reason="OperationalError: database is locked")))
    page = client.get(f"/ui/inbox/{forged}").text
    assert "Could not be read: OperationalError: database is locked." in page and "Read it again" in page
    got = client.post(f"/ui/inbox/{forged}/retry", data={"csrf": csrf_of(page), "next": f"/ui/inbox/{forged}"})
    assert got.status_code == 303
    again = client.get(got.headers["location"]).text
    assert "The message was read again." in again and "does not align with acme.example" in again
    [event] = [e for e in market.events(market.tid) if e["kind"] == "reply-read-again"]
    assert event["by"] == f"operator:{OPERATOR}" and event["inbound"] == forged and event["outcome"] == "not-a-party"
    assert client.post(f"/ui/inbox/{forged}/retry", data={"csrf": csrf_of(page)}).status_code == 409


def test_a_cancelled_transfer_is_cancelled_for_the_cli_too(market: Market, client: httpx.Client, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    tid = market.fresh_transfer()
    token = form_token(client, f"/ui/transfers/{tid}")
    client.post(f"/ui/transfers/{tid}/cancel", data={"csrf": token, "reason": "Seen in the browser"})
    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{market.app.config.database.url}"\n[workflow]\nsecret = "test-secret"\n')
    capsys.readouterr()
    assert main(["--config", str(config), "list", "--status", "cancelled"]) == 0
    assert tid in capsys.readouterr().out
    assert main(["--config", str(config), "show", market.tid]) == 0  # `show` explains each reply as the page does
    shown = capsys.readouterr().out
    assert "Not counted: from mallory@evil.example, which is not an address of Acme GmbH." in shown
    assert "Counted: the approval of Vendor Inc (the ISV) was recorded." in shown


def test_webhooks_page_lists_endpoints_and_deliveries_and_retries_a_failed_one_under_the_operators_name(
        market: Market, client: httpx.Client) -> None:
    from transferbot.app import webhooks
    from transferbot.store.models import WebhookDelivery

    endpoint, secret = webhooks.add_endpoint(market.app, "https://billing.example/hooks/transferbot")
    tid = market.fresh_transfer()
    with market.app.store.read() as session:
        delivery = session.exec(select(WebhookDelivery).where(WebhookDelivery.transfer_id == tid)).first()
        assert delivery is not None
        delivery_id = delivery.id
    table = table_of(WebhookDelivery)
    market.app.store.run(lambda s: s.connection().execute(sa.update(table).where(table.c.id == delivery_id).values(
        status="failed", last_status_code=500, last_error="HTTP 500 Internal Server Error")))
    page = client.get("/ui/webhooks", params={"status": "failed"}).text
    assert "https://billing.example/hooks/transferbot" in page and secret not in page
    assert "HTTP 500" in page and f'action="/ui/webhooks/deliveries/{delivery_id}/retry"' in page
    got = client.post(f"/ui/webhooks/deliveries/{delivery_id}/retry", data={"csrf": csrf_of(page),
                                                                          "next": "/ui/webhooks"})
    assert got.status_code == 303 and got.headers["location"] == "/ui/webhooks?done=webhook-retried"
    assert "queued again" in client.get(got.headers["location"]).text
    [event] = [e for e in market.events(tid) if e["kind"] == "webhook-retried"]
    assert event["by"] == f"operator:{OPERATOR}" and event["delivery"] == delivery_id
    again = client.post(f"/ui/webhooks/deliveries/{delivery_id}/retry", data={"csrf": csrf_of(page)})
    assert again.status_code == 409 and "not failed" in again.text
    assert client.post(f"/ui/webhooks/deliveries/{delivery_id}/retry", data={"next": "/ui/webhooks"}).status_code == 403
    webhooks.remove_endpoint(market.app, endpoint.id or 0)


def test_listings_page_newest_first_and_count_what_the_filter_matches(tmp_path: Path) -> None:
    """The inbox and outbox pages: ``limit`` rows older than ``before``, a cursor while older ones remain,
    and the total of what the filter matches."""
    from tests.conftest import make_config
    from transferbot.app.arrivals import store_inbound
    from transferbot.app.context import open_app
    from transferbot.app.queries import dashboard

    app = open_app(make_config(tmp_path, 2525), upgrade=True)
    ids = [store_inbound(app, f"Message-ID: <m{n}@x.example>\r\n\r\nhi\r\n".encode(), "a@x.example",
                         ["transfer@transfers.example.com"], "192.0.2.1") for n in range(5)]
    with app.store.read() as session:
        first = dashboard.inbox(session, limit=2)
        assert [i["id"] for i in first.items] == ids[:-3:-1] and first.next_before == ids[3] and first.total == 5
        last = dashboard.inbox(session, before=ids[1], limit=2)
        assert [i["id"] for i in last.items] == [ids[0]] and last.next_before is None
        assert dashboard.inbox(session, outcome="approved").total == 0
        assert dashboard.outbox(session, status="queued").total == 0


def test_a_refusal_is_answered_by_its_kind_with_the_apis_status(market: Market, client: httpx.Client) -> None:
    """One mapping for the dashboard and the API: unknown 404, invalid 422, conflict 409 (too soon 429: the
    resend tests), never 409 for everything."""
    tid = market.fresh_transfer()
    token = form_token(client, f"/ui/transfers/{tid}")
    unknown = client.post("/ui/transfers/TR-NOSUCH/cancel", data={"csrf": token, "reason": "gone"})
    assert unknown.status_code == 404 and "unknown transfer" in unknown.text
    assert client.get("/ui/transfers/TR-NOSUCH").status_code == 404
    assert client.get("/ui/board", params={"status": "lost"}).status_code == 422
    assert client.post(f"/ui/transfers/{tid}/resend", data={"csrf": token, "role": "nobody"}).status_code == 422
