"""What a template's content hash reads: files by relative path and bytes (`digest_add`), the project's files matched
by globs (`project_files`), and reading them (`read_bytes`: an unreadable file is a `MigrationError`)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from envmgr.errors import MigrationError

SKIPPED_FOLDERS = frozenset({"__pycache__", "node_modules", "site-packages", "dist-packages"})


def digest_add(digest: Any, label: str, name: str, data: bytes) -> None:
    """One named file (or value) into the content hash: its label, name, length and bytes (CRLF read as LF)."""
    data = data.replace(b"\r\n", b"\n")  # a checkout with CRLF line ends hashes like one with LF
    for part in (label.encode(), name.encode(), str(len(data)).encode()):
        digest.update(part + b"\0")
    digest.update(data)


def folder_files(folder: Path, pattern: str) -> list[Path]:
    return sorted(
        (
            path
            for path in folder.rglob(pattern)
            if path.is_file()
            and "__pycache__" not in path.relative_to(folder).parts
            and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        ),
        key=lambda path: path.relative_to(folder).as_posix(),
    )


def read_bytes(path: Path) -> bytes:
    """A file's bytes for the content hash; an unreadable file is a `MigrationError`."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MigrationError(f"cannot read {path}: {exc.strerror}", "check the file's permissions") from None


def glob_pattern(pattern: str) -> re.Pattern[str]:
    """A glob over paths relative to the project root, as a regular expression: `*` and `?` stay within one folder,
    `**` spans any number of folders (`**/migrations/*.py`, `migrations/**`)."""
    parts = pattern.strip("/").split("/")
    out: list[str] = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        text = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in part)
        out.append(text if last else text + "/")
    return re.compile("".join(out) + r"\Z")


def project_files(root: Path, globs: Sequence[str]) -> list[Path]:
    """The files under `root` matching any of `globs`, sorted by relative path; hidden folders, caches, installed
    packages and virtual environments skipped."""
    patterns = [glob_pattern(pattern) for pattern in globs]
    found: list[Path] = []
    for folder, subfolders, names in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(
            name
            for name in subfolders
            if not name.startswith(".") and name not in SKIPPED_FOLDERS and not (here / name / "pyvenv.cfg").exists()
        )
        for name in names:
            if name.startswith(".") or name.endswith((".pyc", ".pyo")):
                continue
            relative = (here / name).relative_to(root).as_posix()
            if any(pattern.match(relative) for pattern in patterns):
                found.append(here / name)
    return sorted(found, key=lambda path: path.relative_to(root).as_posix())


def hash_files(digest: Any, root: Path, globs: Sequence[str]) -> None:
    digest_add(digest, "migrate-files", "globs", "\0".join(globs).encode())
    for path in project_files(root, globs):
        digest_add(digest, "migrate-file", path.relative_to(root).as_posix(), read_bytes(path))
