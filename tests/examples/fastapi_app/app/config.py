"""The app's settings: read once, from the environment, when this module is imported (pydantic-settings), with the
names the FastAPI full-stack template uses. envmgr sets them before the tests import the app (`POSTGRES_SERVER` through
`[tool.envmgr.export]`, the others are its own), and to the template database's while it migrates it."""

from pydantic_settings import BaseSettings
from sqlalchemy.engine import URL


class Settings(BaseSettings):
    POSTGRES_SERVER: str = "localhost"
    POSTGRES_PORT: int = 5432
    POSTGRES_USER: str = "tasks"
    POSTGRES_PASSWORD: str = ""
    POSTGRES_DB: str = "tasks"
    REDIS_URL: str = "redis://localhost:6379/0"

    @property
    def SQLALCHEMY_DATABASE_URI(self) -> str:
        """The database with the psycopg 3 driver (`postgresql+psycopg://`, which SQLAlchemy also runs async)."""
        url = URL.create(
            "postgresql+psycopg",
            username=self.POSTGRES_USER,
            password=self.POSTGRES_PASSWORD,
            host=self.POSTGRES_SERVER,
            port=self.POSTGRES_PORT,
            database=self.POSTGRES_DB,
        )
        return url.render_as_string(hide_password=False)


settings = Settings()
