"""The HTTP API against the running daemon: keys and what each may see and do, every refusal as a problem
document with the CLI's words, the registry kept by PUT, pages, cancel, resend and the certificate."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import bearer
from transferbot.app import apikeys, registry
from transferbot.app.context import App


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = dict(response.json())
    assert body["status"] == status and body["type"].startswith("https://") and body["title"] and body["detail"]
    return body


def file(api: httpx.Client, key: str, entitlement: str, to: str | None, note: str = "") -> httpx.Response:
    return api.post("/v1/transfers", json={"entitlement": entitlement, "to_reseller": to, "note": note},
                    headers=bearer(key))


def test_a_request_without_a_valid_key_is_401(api: httpx.Client, keys: dict[str, str], world: App) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, bearer("tbk_" + "x" * 43), bearer("not-a-key")):
        got = problem(api.get("/v1/transfers", headers=headers), 401)
        assert api.get("/v1/transfers", headers=headers).headers["www-authenticate"].startswith("Bearer")
        assert "key" in got["detail"]
    revoked_row, revoked = apikeys.create_key(world, "vendor")
    assert api.get("/v1/transfers", headers=bearer(revoked)).status_code == 200
    apikeys.revoke_key(world, revoked_row.id or 0)
    problem(api.get("/v1/transfers", headers=bearer(revoked)), 401)


def test_refusals_answer_their_status_with_the_clis_words(api: httpx.Client, keys: dict[str, str]) -> None:
    vendor = keys["vendor"]
    unseen = "unknown entitlement (none with this id that this key may see)"
    assert problem(file(api, vendor, "nope", None), 404)["detail"] == unseen
    # An unknown account and one that is not a reseller answer alike (tests/test_attacks_privacy.py).
    no_reseller = "unknown reseller (to_reseller is not the id of a reseller account)"
    assert problem(file(api, vendor, "ent-direct", "nobody"), 404)["detail"] == no_reseller
    assert problem(file(api, vendor, "ent-direct", None), 422)["detail"] == "entitlement ent-direct is already a direct order"
    assert problem(file(api, vendor, "ent-direct", "acme"), 404)["detail"] == no_reseller
    bad = problem(file(api, vendor, "ent-direct", "r1", "a\u202enote"), 422)
    assert "U+202E" in bad["detail"]
    # An entitlement of another ISV is not there, for this key.
    assert problem(file(api, vendor, "ent-other", "r1"), 404)["detail"] == unseen
    # A body that does not validate names its fields.
    invalid = problem(api.post("/v1/transfers", json={"entitlement": 7, "extra": 1}, headers=bearer(vendor)), 422)
    assert {e["field"] for e in invalid["errors"]} >= {"entitlement", "to_reseller", "extra"}
    assert problem(api.post("/v1/transfers", content=b"{not json", headers={**bearer(vendor),
                                                                            "content-type": "application/json"}), 422)


def test_an_isv_key_sees_and_acts_on_its_own_transfers_only(api: httpx.Client, keys: dict[str, str]) -> None:
    mine = file(api, keys["vendor"], "ent-direct", "r1").json()["id"]
    theirs = file(api, keys["other"], "ent-other", "r1").json()["id"]
    assert {t["id"] for t in api.get("/v1/transfers", headers=bearer(keys["admin"])).json()["items"]} == {mine, theirs}
    assert [t["id"] for t in api.get("/v1/transfers", headers=bearer(keys["vendor"])).json()["items"]] == [mine]
    for path in (f"/v1/transfers/{theirs}", f"/v1/transfers/{theirs}/certificate"):
        assert problem(api.get(path, headers=bearer(keys["vendor"])), 404)["detail"] == (
            "unknown transfer (none with this id that this key may see)")
    problem(api.post(f"/v1/transfers/{theirs}/cancel", json={"reason": "no"}, headers=bearer(keys["vendor"])), 404)
    problem(api.post(f"/v1/transfers/{theirs}/resend", headers=bearer(keys["vendor"])), 404)
    assert api.get(f"/v1/transfers/{theirs}", headers=bearer(keys["admin"])).status_code == 200
    # The registry is the admin's: 403 for an ISV key; its own entitlements it may read.
    problem(api.put("/v1/accounts/x1", json={"kind": "isv", "name": "X", "emails": ["a@x.example.com"]},
                    headers=bearer(keys["vendor"])), 403)
    problem(api.get("/v1/accounts", headers=bearer(keys["vendor"])), 403)
    assert {e["id"] for e in api.get("/v1/entitlements", headers=bearer(keys["vendor"])).json()["items"]} == {
        "ent-direct", "ent-r1", "ent-globex"}
    problem(api.get("/v1/entitlements/ent-other", headers=bearer(keys["vendor"])), 404)


def test_the_record_carries_no_reply_token(api: httpx.Client, keys: dict[str, str], world: App) -> None:
    from sqlmodel import select

    from transferbot.store.models import Party

    tid = file(api, keys["vendor"], "ent-r1", "r2").json()["id"]
    text = api.get(f"/v1/transfers/{tid}", headers=bearer(keys["admin"])).text
    with world.store.read() as session:
        tokens = list(session.exec(select(Party.token).where(Party.transfer_id == tid)))
    assert len(tokens) == 4 and not any(token in text for token in tokens)


def test_transfers_page_by_cursor_and_filter(api: httpx.Client, keys: dict[str, str], world: App) -> None:
    admin = bearer(keys["admin"])
    for n in range(5):
        registry.add_entitlement(world, f"ent-p{n}", "Paged", "acme", "vendor")
        assert file(api, keys["vendor"], f"ent-p{n}", "r1").status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/transfers", params=params, headers=admin).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    only = api.get("/v1/transfers", params={"entitlement": "ent-p3"}, headers=admin).json()["items"]
    assert [t["entitlement"] for t in only] == ["ent-p3"]
    assert api.get("/v1/transfers", params={"status": "completed"}, headers=admin).json()["items"] == []
    problem(api.get("/v1/transfers", params={"status": "sleeping"}, headers=admin), 422)
    assert "cursor" in problem(api.get("/v1/transfers", params={"cursor": "bm9wZQ"}, headers=admin), 422)["detail"]
    problem(api.get("/v1/transfers", params={"limit": 0}, headers=admin), 422)


def test_cancel_resend_and_certificate(api: httpx.Client, keys: dict[str, str]) -> None:
    vendor = bearer(keys["vendor"])
    tid = file(api, keys["vendor"], "ent-r1", "r2").json()["id"]
    resent = api.post(f"/v1/transfers/{tid}/resend", json={"role": "isv"}, headers=vendor)
    assert resent.status_code == 200 and resent.json() == {"id": tid, "resent_to": ["isv"]}
    assert api.post(f"/v1/transfers/{tid}/resend", headers=vendor).json()["resent_to"] == [
        "customer", "current-reseller", "new-reseller"], "the ISV was resent its confirmation within the hour"
    too_soon = api.post(f"/v1/transfers/{tid}/resend", headers=vendor)
    assert "at most once an hour" in problem(too_soon, 429)["detail"] and int(too_soon.headers["Retry-After"]) > 0
    problem(api.post(f"/v1/transfers/{tid}/resend", json={"role": "boss"}, headers=vendor), 422)
    assert "must not be empty" in problem(api.post(f"/v1/transfers/{tid}/cancel", json={"reason": " "},
                                                   headers=vendor), 422)["detail"]
    cancelled = api.post(f"/v1/transfers/{tid}/cancel", json={"reason": "The customer changed its mind"},
                         headers=vendor)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["events"][-1]["kind"] in ("cancelled", "mail-queued")
    trail = api.get(f"/v1/transfers/{tid}", headers=bearer(keys["admin"])).json()["events"]
    assert any(e["kind"] == "cancelled" and e["by"].startswith("api key #") for e in trail)
    again = problem(api.post(f"/v1/transfers/{tid}/cancel", json={"reason": "again"}, headers=vendor), 409)
    assert again["detail"] == f"transfer {tid} is cancelled; only a pending transfer can be cancelled"
    problem(api.post(f"/v1/transfers/{tid}/resend", headers=vendor), 409)

    as_json = api.get(f"/v1/transfers/{tid}/certificate", headers=vendor)
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_json.json()["audience"] == "party" and as_json.json()["transfer"]["id"] == tid
    assert api.get(f"/v1/transfers/{tid}/certificate", headers=bearer(keys["admin"])).json()["audience"] == "operator"
    as_html = api.get(f"/v1/transfers/{tid}/certificate", headers={**vendor, "Accept": "text/html"})
    assert as_html.headers["content-type"].startswith("text/html") and tid in as_html.text
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert api.get(f"/v1/transfers/{tid}/certificate", headers={**vendor, "Accept": browser}).headers[
        "content-type"].startswith("text/html")
    problem(api.get(f"/v1/transfers/{tid}/certificate", headers={**vendor, "Accept": "application/pdf"}), 406)


def test_the_registry_is_kept_in_step_by_put(api: httpx.Client, keys: dict[str, str], world: App) -> None:
    admin = bearer(keys["admin"])
    account = {"kind": "reseller", "name": "Reseller Three", "emails": ["ops@r3.example.com"], "locale": "de",
               "timezone": "Europe/Berlin"}
    created = api.put("/v1/accounts/r3", json=account, headers=admin)
    assert created.status_code == 201 and created.json() == {"id": "r3", **account}
    updated = api.put("/v1/accounts/r3", json={**account, "name": "R3 GmbH", "emails": ["a@r3.example.com",
                                                                                       "b@r3.example.com"]},
                      headers=admin)
    assert updated.status_code == 200 and updated.json()["emails"] == ["a@r3.example.com", "b@r3.example.com"]
    assert api.get("/v1/accounts/r3", headers=admin).json()["name"] == "R3 GmbH"
    bad = problem(api.put("/v1/accounts/r3", json={**account, "emails": ["not an address"]}, headers=admin), 422)
    assert "not an address" in bad["detail"]
    problem(api.put("/v1/accounts/r3", json={**account, "timezone": "Mars/Olympus"}, headers=admin), 422)
    problem(api.put("/v1/accounts/bad id", json=account, headers=admin), 422)
    assert "kind cannot change" in problem(api.put("/v1/accounts/r3", json={**account, "kind": "isv"},
                                                   headers=admin), 409)["detail"]
    problem(api.get("/v1/accounts/nobody", headers=admin), 404)

    ent = {"product": "Storage", "customer": "globex", "isv": "vendor", "reseller": None, "state": "active"}
    assert api.put("/v1/entitlements/ent-new", json=ent, headers=admin).status_code == 201
    assert api.put("/v1/entitlements/ent-new", json=ent, headers=admin).status_code == 200
    assert api.put("/v1/entitlements/ent-new", json={**ent, "reseller": "r3"}, headers=admin).json()["reseller"] == "r3"
    assert problem(api.put("/v1/entitlements/ent-x", json={**ent, "customer": "ghost"}, headers=admin),
                   404)["detail"] == "unknown account 'ghost' (customer)"
    assert "not a customer" in problem(api.put("/v1/entitlements/ent-x", json={**ent, "customer": "vendor"},
                                               headers=admin), 422)["detail"]
    # While a transfer is open, the entitlement cannot be moved under it.
    tid = file(api, keys["vendor"], "ent-new", "r1").json()["id"]
    moved = problem(api.put("/v1/entitlements/ent-new", json={**ent, "reseller": None}, headers=admin), 409)
    assert tid in moved["detail"]
    assert api.put("/v1/entitlements/ent-new", json={**ent, "reseller": "r3", "product": "Storage XL"},
                   headers=admin).status_code == 200

    pages: list[str] = []
    cursor = None
    while True:
        got = api.get("/v1/accounts", params={"limit": 3, **({"cursor": cursor} if cursor else {})}, headers=admin)
        pages += [a["id"] for a in got.json()["items"]]
        cursor = got.json()["next_cursor"]
        if not cursor:
            break
    assert pages == sorted(a.id for a in registry.list_accounts(world))
    assert api.get("/v1/entitlements/ent-new", headers=admin).json()["product"] == "Storage XL"


def test_errors_outside_v1_are_problem_documents_too(api: httpx.Client, keys: dict[str, str]) -> None:
    problem(api.delete("/v1/transfers", headers=bearer(keys["admin"])), 405)
    problem(api.get("/v1/nothing-here", headers=bearer(keys["admin"])), 404)
