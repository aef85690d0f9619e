from django.db import models


class Genre(models.Model):
    name = models.CharField(max_length=100, unique=True)


class Author(models.Model):
    name = models.CharField(max_length=200)


class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="books")
    genre = models.ForeignKey(Genre, on_delete=models.PROTECT, related_name="books")
    stock = models.PositiveIntegerField(default=0)  # migration 0002

    def as_dict(self) -> dict[str, object]:
        return {"id": self.pk, "title": self.title, "author": self.author.name, "genre": self.genre.name,
                "stock": self.stock}  # fmt: skip
