from contextlib import suppress

from django.core.cache import cache
from django.dispatch import Signal, receiver
from redis.exceptions import RedisError

sold = Signal()


@receiver(sold)
def forget_cached_page(sender: object, pk: int, **kwargs: object) -> None:
    with suppress(RedisError):  # the cached page expires on its own
        cache.delete(f"book:{pk}")
