"""What the AWS backends (LocalStack, moto) read under the seeds folder: `seeds/s3/<bucket>/<key...>` objects (the
folder names are the buckets; empty folders make empty buckets; every file of a bucket folder is an object, notes
included) and `seeds/sqs.yaml` (or `.yml`, `.json`: `{"queues": ["name", ...]}`, plus the backend's `queues`).

A bucket folder's name must be a valid S3 bucket name once envmgr adds the worker's suffix (`artwork-gw1`): LocalStack
refuses an invalid one and moto accepts it, so it is checked here for both."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from envmgr.errors import first_line
from envmgr.seed_layout import Misplaced, SeedEntry, ignorable, read_seed_text, seed_file_error, shown_path

__all__ = ["MAX_BUCKET_NAME", "S3_SEEDS", "SEED_ENTRIES", "SQS_FILES", "s3_seed_buckets", "sqs_seed_queues"]

S3_SEEDS = "s3"
SQS_FILES: tuple[str, ...] = ("sqs.yaml", "sqs.yml", "sqs.json")
WORKER_SUFFIX = len("-gw99")
MAX_BUCKET_NAME = 63 - WORKER_SUFFIX
"""S3 allows 63 characters; a worker's bucket is `<name>-gwN`"""
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")


def s3_seed_buckets(seeds_dir: Path | None) -> dict[str, list[tuple[str, Path]]]:
    """Bucket name -> [(object key, file)] from seeds/s3/, in sorted order."""
    root = seeds_dir / S3_SEEDS if seeds_dir is not None else None
    if root is None or not root.is_dir():
        return {}
    buckets: dict[str, list[tuple[str, Path]]] = {}
    for bucket in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in bucket.rglob("*") if p.is_file() and not p.name.startswith("."))
        buckets[bucket.name] = [(f.relative_to(bucket).as_posix(), f) for f in files]
    return buckets


def sqs_seed_queues(seeds_dir: Path | None, configured: Sequence[str] = ()) -> list[str]:
    """Queue names from the settings and seeds/sqs.yaml (or .yml/.json), without duplicates, in order."""
    import yaml  # (when the seeds are read: not in every pytest process that loads the plugin)

    names = list(configured)
    for candidate in SQS_FILES:
        path = seeds_dir / candidate if seeds_dir is not None else None
        if seeds_dir is None or path is None or not path.is_file():
            continue
        shown = shown_path(path, seeds_dir)
        try:
            data = yaml.safe_load(read_seed_text(path, shown))
        except yaml.YAMLError as exc:
            raise seed_file_error(shown, "parsing", f"{type(exc).__name__}: {first_line(exc)}") from None
        queues = data.get("queues") if isinstance(data, dict) else None
        if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
            raise seed_file_error(shown, "the top level", 'expected {"queues": ["name", ...]}')
        names += queues
    return list(dict.fromkeys(names))


def bucket_name_problem(name: str) -> str | None:
    """Why `name` (a seed bucket folder) cannot be a bucket, or None."""
    if not 3 <= len(name) <= MAX_BUCKET_NAME:
        return f"a bucket name has 3 to {MAX_BUCKET_NAME} characters here (envmgr adds -gwN for xdist workers)"
    if not BUCKET_NAME.fullmatch(name) or ".." in name or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name):
        return (
            "a bucket name is lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"
        )
    return None


def _check_s3(folder: Path, seeds: Path) -> None:
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            if ignorable(entry):
                continue
            raise Misplaced(entry, f"S3 objects go in a bucket folder ({seeds.name}/{S3_SEEDS}/<bucket>/{entry.name})")
        problem = bucket_name_problem(entry.name)
        if problem is not None:
            raise Misplaced(entry, f"{entry.name!r} is no S3 bucket name: {problem}")


SEED_ENTRIES: tuple[SeedEntry, ...] = (
    SeedEntry(names=(S3_SEEDS,), folder=True, shows=f"{S3_SEEDS}/<bucket>/", check=_check_s3),
    SeedEntry(names=SQS_FILES, folder=False, shows=SQS_FILES[0]),
)
