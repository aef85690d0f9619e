"""The configuration reference (docs/configuration.md), generated from the settings model (`envmgr.config`):

    python -m envmgr.docs_reference > docs/configuration.md

Every key of `[tool.envmgr]` and of its tables, with its type, default, environment variable and description, in
the order the model declares them. Pure: `reference()` reads the model and returns the page's text (a unit test
compares it with the committed file, so the page cannot drift from the code).
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from envmgr.config import ENV_PREFIX, Settings

__all__ = ["COMMAND", "reference"]

COMMAND = "python -m envmgr.docs_reference > docs/configuration.md"
HIDDEN = frozenset({"project_root"})
"""fields that are no setting (set by load_settings)"""

INTRODUCTION = f"""\
# Configuration reference

<!-- Generated from envmgr/config.py by `{COMMAND}`: edit the descriptions there, not here
     (tests/unit/test_docs_reference.py fails when this page and the code differ). -->

envmgr reads the `[tool.envmgr]` table of the project's `pyproject.toml` (the nearest one at or above the working
directory, or `--envmgr-config` / `-c`), and its sub-tables (`[tool.envmgr.postgres]`, ...). Precedence, highest
first:

1. command-line options (`--image-set`, `--envmgr-image-set`, `--envmgr-isolation`, ...);
2. `ENVMGR_*` environment variables: `ENVMGR_<KEY>`, and `ENVMGR_<TABLE>__<KEY>` for a key of a table
   (`ENVMGR_POSTGRES__IMAGE`). A list or a table is written as JSON (`ENVMGR_LOCALSTACK__QUEUES='["a", "b"]'`); one
   entry of a table of strings as `ENVMGR_<TABLE>__<KEY>__<NAME>` (`ENVMGR_REDIS__ENV__TZ=UTC`);
3. the `[tool.envmgr]` table;
4. the defaults below.

An unknown key, an `ENVMGR_*` variable that names no setting, or a bad value is an error (exit code 2) naming the
key and the file or variable it came from. Relative paths are relative to the folder of `pyproject.toml`.
"""


def reference() -> str:
    """The whole page."""
    sections = [INTRODUCTION, _table("[tool.envmgr]", Settings, ())]
    for name, info in _fields(Settings):
        model = _model(info.annotation)
        if model is not None:
            sections.append(_table(f"[tool.envmgr.{name}]", model, (name,)))
    return "\n".join(sections)


def _fields(model: type[BaseModel]) -> list[tuple[str, FieldInfo]]:
    return [(name, info) for name, info in model.model_fields.items() if name not in HIDDEN]


def _model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _table(title: str, model: type[BaseModel], path: tuple[str, ...]) -> str:
    lines = [f"## `{title}`", ""]
    doc = (model.__doc__ or "").strip() if model is not Settings else ""
    if doc and not doc.startswith(("Usage docs", "!!! abstract")):  # pydantic's own docstring is no description
        lines += [" ".join(doc.split()), ""]
    lines += ["| key | type | default | environment variable | description |", "|---|---|---|---|---|"]
    for name, info in _fields(model):
        if _model(info.annotation) is not None:
            continue  # a table of its own, below
        variable = ENV_PREFIX + "__".join((*path, name)).upper()
        cells = [f"`{name}`", _type(info), _default(info), f"`{variable}`", info.description or ""]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _type(info: FieldInfo) -> str:
    text = _annotation(info.annotation)
    constraints = []
    for item in info.metadata:
        pattern = getattr(item, "pattern", None)
        if pattern:
            constraints.append(f"matching `{pattern}`")
        if isinstance(item, Gt):
            constraints.append(f"> {item.gt}")
        elif isinstance(item, Ge):
            constraints.append(f"≥ {item.ge}")
        elif isinstance(item, Lt):
            constraints.append(f"< {item.lt}")
        elif isinstance(item, Le):
            constraints.append(f"≤ {item.le}")
    return text + (", " + ", ".join(constraints) if constraints else "")


def _annotation(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (Union, types.UnionType):
        present = [arg for arg in args if arg is not type(None)]
        text = " or ".join(_annotation(arg) for arg in present)
        return f"{text} (optional)" if len(present) < len(args) else text
    if origin is Literal:
        return " or ".join(f'`"{arg}"`' for arg in args)
    if origin is list:
        return f"list of {_plural(args[0])}"
    if origin is dict:
        return f"table of {_plural(args[1])}"
    names = {str: "string", bool: "boolean", int: "integer", float: "number", Path: "path"}
    if annotation in names:
        return names[annotation]
    return str(annotation)


def _plural(annotation: Any) -> str:
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    if get_origin(annotation) in (Union, types.UnionType) and args:
        return ", ".join(_plural(arg) for arg in args)
    if get_origin(annotation) is list:
        return f"lists of {_plural(get_args(annotation)[0])}"
    return {str: "strings", bool: "booleans", int: "integers", float: "numbers"}.get(annotation, str(annotation))


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "(required)"
    else:
        value = info.default
    if value is None:
        return "(none)"
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, Path):
        value = value.as_posix()
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def main() -> None:
    sys.stdout.write(reference())


if __name__ == "__main__":
    main()
