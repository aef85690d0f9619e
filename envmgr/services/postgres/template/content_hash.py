"""The template's content hash: what it is built from, equal on every machine for the same files; and the
template's name from it. Light to import (no Alembic, no SQLAlchemy until a strategy runs): attaching to an
environment names its template from here."""

from __future__ import annotations

import json
from hashlib import sha256

from envmgr.config import Settings
from envmgr.services.postgres.seed_files import POSTGRES_SEEDS
from envmgr.services.postgres.template.files import digest_add, folder_files, read_bytes
from envmgr.services.postgres.template.migrate import migrate_strategy

__all__ = ["HASH_VERSION", "content_hash", "template_digest", "template_name"]

HASH_VERSION = b"envmgr-template-v1"


def content_hash(settings: Settings) -> str:
    """sha256 (hex) of what a template is built from; equal on every machine for the same files.

    Covers what the migration strategy reads (`migrate.py`: for Alembic, alembic.ini and every
    `*.py` under the migration script folders; for Django, the apps' migration files, the settings module and the
    fixtures; for a command or a function, the command and the files of `migrate_files`) and every file under
    `<seeds>/postgres/` (seed files and their helpers), each by its path relative to its folder and its bytes
    (CRLF read as LF). Absolute paths, timestamps and the machine do not count.
    """
    digest = sha256(HASH_VERSION + b"\0")
    strategy = migrate_strategy(settings)
    if strategy is not None:
        strategy.hash_into(digest)
    seeds = settings.seeds_path()
    if seeds is not None:
        folder = seeds / POSTGRES_SEEDS
        if folder.is_dir():
            for path in folder_files(folder, "*"):
                digest_add(digest, "seeds/postgres", path.relative_to(folder).as_posix(), read_bytes(path))
    return digest.hexdigest()


def template_digest(settings: Settings) -> str:
    """What names the template: the migrations' and seeds' hash (`content_hash`), and the template options
    (extensions, locale, encoding, application role) when any is set."""
    digest = content_hash(settings)
    options = settings.postgres.template_options()
    if not options:
        return digest
    return sha256(f"{digest}\0{json.dumps(options, sort_keys=True)}".encode()).hexdigest()


def template_name(settings: Settings, digest: str) -> str:
    """`<database>_tpl_<hash[:12]>`."""
    return f"{settings.postgres.database}_tpl_{digest[:12]}"
