"""Tests whose commits are real (transaction=True): pytest-django empties the tables after each of them, and envmgr
gives the next test a fresh clone of the template, seeds included."""

import pytest
from catalog.models import Author, Book
from django.core.cache import cache
from django.test import Client


@pytest.mark.django_db(transaction=True)
def test_selling_commits_and_drops_the_cached_page(client: Client) -> None:
    client.get("/books/1/")  # cached
    assert client.post("/books/1/sell/").json() == {"stock": 2}
    assert cache.get("book:1") is None  # on_commit ran: the commit was real
    assert Book.objects.get(pk=1).stock == 2


@pytest.mark.django_db(transaction=True)
def test_a_transactional_test_starts_from_the_seeds(client: Client) -> None:
    assert Book.objects.count() == 3
    assert client.post("/books/3/sell/").status_code == 409


def test_reset_sequences_continue_after_the_seeded_ids(django_db_reset_sequences: None) -> None:
    first = Book.objects.create(title="Small Gods", author=Author.objects.get(pk=2), genre_id=1)
    second = Author.objects.create(name="N. K. Jemisin")
    assert (first.pk, second.pk) == (4, 3)
