"""The catalog on a clone of the template: Django's migrations, the genres fixture and envmgr's seeds."""

import pytest
from catalog.models import Author, Book, Genre
from django.db import connection

pytestmark = pytest.mark.django_db


def test_the_seeded_books_are_there() -> None:
    assert list(Book.objects.order_by("id").values_list("title", flat=True)) == [
        "A Wizard of Earthsea",
        "The Dispossessed",
        "Guards! Guards!",
    ]


def test_the_fixture_was_loaded_before_the_seeds() -> None:
    assert Genre.objects.get(pk=1).books.count() == 2


def test_both_migrations_are_applied() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM django_migrations WHERE app = 'catalog' ORDER BY name")
        assert [row[0] for row in cursor.fetchall()] == ["0001_initial", "0002_book_stock"]


def test_a_new_book_follows_the_seeded_ids() -> None:
    book = Book.objects.create(title="Mort", author=Author.objects.get(name="Terry Pratchett"), genre_id=1)
    assert book.pk > 3


def test_changes_are_rolled_back_after_each_test() -> None:
    Book.objects.all().delete()
    assert Book.objects.count() == 0
