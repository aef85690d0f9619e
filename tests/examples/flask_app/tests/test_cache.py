"""Totals cached in this worker's Redis database, emptied after each test."""

ACME = {"X-Tenant": "acme"}


def test_the_cache_starts_empty(redis_client):
    assert redis_client.dbsize() == 0


def test_a_total_is_cached(client, redis_client):
    assert client.get("/total", headers=ACME).get_json() == {"total_cents": 15000, "cached": False}
    assert client.get("/total", headers=ACME).get_json() == {"total_cents": 15000, "cached": True}
    assert redis_client.get("billing:total:acme") == b"15000"


def test_a_new_invoice_clears_the_cached_total(client):
    client.get("/total", headers=ACME)
    client.post("/invoices", headers=ACME, json={"number": "A-003", "amount_cents": 500})
    assert client.get("/total", headers=ACME).get_json() == {"total_cents": 15500, "cached": False}
