"""The JSON views through Django's test client; a book's page is cached in this worker's own Redis database."""

from django.core.cache import cache
from django.test import Client


def test_the_list_shows_the_seeded_books(client: Client, db: None) -> None:
    books = client.get("/books/").json()["books"]
    assert [book["stock"] for book in books] == [3, 1, 0]


def test_a_book_is_cached_after_the_first_request(client: Client, db: None) -> None:
    assert client.get("/books/1/").json()["cached"] is False
    assert client.get("/books/1/").json()["cached"] is True


def test_every_test_starts_with_an_empty_cache(client: Client, db: None) -> None:
    assert cache.get("book:1") is None


def test_the_cache_is_this_workers_redis_database(redis_client) -> None:  # type: ignore[no-untyped-def]
    cache.set("greeting", "hello")
    assert redis_client.exists(cache.make_key("greeting")) == 1


def test_the_page_is_served_from_the_database_when_redis_is_down(client: Client, db: None, envmgr_faults) -> None:  # type: ignore[no-untyped-def]
    envmgr_faults.stop("redis")
    response = client.get("/books/2/")
    assert response.status_code == 200
    assert response.json() == {
        "id": 2,
        "title": "The Dispossessed",
        "author": "Ursula K. Le Guin",
        "genre": "Science fiction",
        "stock": 1,
        "cached": False,
    }
