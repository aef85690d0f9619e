"""JSON views; a book's page is cached in Redis, and served from the database when Redis is down."""

from contextlib import suppress

from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_POST
from redis.exceptions import RedisError

from catalog.models import Book
from catalog.signals import sold


def book_list(request: HttpRequest) -> JsonResponse:
    books = Book.objects.select_related("author", "genre").order_by("id")
    return JsonResponse({"books": [book.as_dict() for book in books]})


def book_detail(request: HttpRequest, pk: int) -> JsonResponse:
    key = f"book:{pk}"
    try:
        data = cache.get(key)
    except RedisError:
        data = None  # the cache is down: the database answers
    if data is not None:
        return JsonResponse({**data, "cached": True})
    data = get_object_or_404(Book.objects.select_related("author", "genre"), pk=pk).as_dict()
    with suppress(RedisError):  # the next request tries again
        cache.set(key, data)
    return JsonResponse({**data, "cached": False})


@require_POST
def sell(request: HttpRequest, pk: int) -> JsonResponse:
    """One copy sold: the stock goes down in a transaction; the cached page is dropped once it is committed."""
    with transaction.atomic():
        updated = Book.objects.filter(pk=pk, stock__gt=0).update(stock=F("stock") - 1)
        if updated:
            transaction.on_commit(lambda: sold.send(Book, pk=pk))
    if not updated:
        return JsonResponse({"error": "out of stock"}, status=409)
    return JsonResponse({"stock": Book.objects.get(pk=pk).stock})
