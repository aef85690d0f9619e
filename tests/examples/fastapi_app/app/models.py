"""The schema of the tasks API (kept in step with migrations/versions/)."""

from sqlalchemy import String, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200), unique=True)
    done: Mapped[bool] = mapped_column(default=False, server_default=false())
