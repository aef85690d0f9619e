from django.core.cache import cache
from django.dispatch import Signal, receiver
from redis.exceptions import RedisError

sold = Signal()


@receiver(sold)
def forget_cached_page(sender: object, pk: int, **kwargs: object) -> None:
    try:
        cache.delete(f"book:{pk}")
    except RedisError:
        pass
