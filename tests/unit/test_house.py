"""The house rules of `envmgr/` (pure, no Docker): no import circle (an import inside a function or under
TYPE_CHECKING counts), no module over 450 lines, at most 25 modules at the top level besides its packages,
docs/architecture.md names every module and package, and importing a leaf loads only what it needs."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "envmgr"
MAX_LINES = 450
MAX_TOP_LEVEL_MODULES = 25


def _python_files() -> Iterator[Path]:
    """envmgr's modules: not what runs inside a service's container (its `image/` folder)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if "image" not in path.relative_to(PACKAGE).parts[:-1]:
            yield path


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the envmgr modules it imports, wherever the import statement stands."""
    modules = {_module_name(path): path for path in _python_files()}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            for target in targets:
                found = target
                while found and found not in modules:
                    found = found.rpartition(".")[0]
                if found and found != name:
                    graph[name].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_finds_a_circle_through_a_function_level_import() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert cycles(import_graph()) == []


def test_no_module_is_over_the_line_limit() -> None:
    long = {str(p.relative_to(REPO)): n for p in _python_files() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_top_level_has_few_modules() -> None:
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def architecture_tree(page: str) -> set[str]:
    """The files of the tree in docs/architecture.md (the first code block after "## The tree"), as paths below
    envmgr/: an entry is a line whose first word ends in `.py` or `/`, indented two spaces per folder."""
    block = page.split("## The tree", 1)[1].split("```", 2)[1]
    folders: list[str] = []
    files: set[str] = set()
    for line in block.splitlines()[1:]:
        words = line.split()
        if not words or not words[0].endswith((".py", "/")):
            continue  # a description's continuation
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = words[0]
        del folders[max(depth - 1, 0) :]
        if depth == 0:
            continue  # envmgr/ itself
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        else:
            files.add("/".join([*folders, name]))
    return files


def test_the_tree_reads_entries_by_indentation() -> None:
    page = "## The tree\n\n```\nenvmgr/\n  a.py   x\n  b/\n    c.py  y\n          more of y\n  d.py\n```\n"
    assert architecture_tree(page) == {"a.py", "b/c.py", "d.py"}


def test_the_architecture_page_names_every_module_and_no_other() -> None:
    """docs/architecture.md says where each thing is: every module of envmgr/ is in its tree, and every module in its
    tree exists (the services' image folders hold no module of envmgr's)."""
    listed = architecture_tree((REPO / "docs" / "architecture.md").read_text(encoding="utf-8"))
    actual = {path.relative_to(PACKAGE).as_posix() for path in _python_files()}
    assert sorted(actual - listed) == [], "modules missing from docs/architecture.md"
    assert sorted(listed - actual) == [], "docs/architecture.md names modules that do not exist"


@pytest.mark.parametrize(
    ("module", "limit"),
    [("envmgr.services.postgres.urls", 10), ("envmgr.endpoints", 10), ("envmgr.errors", 3)],
)
def test_a_leaf_loads_only_what_it_needs(module: str, limit: int) -> None:
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'envmgr'))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    names = ast.literal_eval(loaded)
    assert len(names) < limit, names


def test_the_plugin_and_its_fixtures_load_no_engine_sdk_and_no_migration_tool() -> None:
    """Every pytest process imports the plugin and the fixture modules: the Docker SDK (about 0.1 s), Alembic and the
    template build (about 0.5 s), YAML (10 ms) and urllib's HTTP client (5 ms) load only when a process starts,
    builds or resets something, or reads a seed file."""
    code = (
        "import sys, importlib, envmgr.pytest.plugin as plugin\n"
        "from envmgr.services.registry import SERVICES\n"
        "for name in ['envmgr.pytest.fixtures', *SERVICES.fixture_modules(), 'envmgr.integrations.flask_fixtures']:\n"
        "    importlib.import_module(name)\n"
        "heavy = ('docker', 'testcontainers', 'alembic', 'envmgr.services.postgres.template', 'envmgr.environment',\n"
        "         'yaml', 'urllib.request')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert ast.literal_eval(loaded) == []


def test_naming_a_template_loads_no_migration_tool_and_no_orm() -> None:
    """Attaching to an environment (`--envmgr-env`, a sourced env file, the daemon's recovery) names its template
    from the project's files: that loads neither Alembic nor SQLAlchemy (about 0.4 s) nor Django; they load when a
    migration runs or a seed file is loaded."""
    code = (
        "import sys\n"
        "from envmgr.services.postgres.template.content_hash import template_digest, template_name\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'sqlalchemy', 'django', 'docker')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert ast.literal_eval(loaded) == []


def test_the_old_import_paths_still_work() -> None:
    """What users may have imported before the restructuring: the public names of `envmgr`, and `envmgr.database`
    (deprecated re-exports of the janitor and the template builder)."""
    import envmgr
    from envmgr.database import MAINTENANCE_DB, Janitor, ensure_template, template_name
    from envmgr.services.postgres.janitor import Janitor as JanitorNow
    from envmgr.services.postgres.template.build import ensure_template as ensure_template_now

    assert Janitor is JanitorNow
    assert ensure_template is ensure_template_now
    assert MAINTENANCE_DB
    assert callable(template_name)
    for name in envmgr.__all__:
        assert getattr(envmgr, name) is not None, name
    from envmgr import Environment, Faults, load_settings

    assert Environment.__module__ == "envmgr.environment.handle"
    assert Faults.__module__ == "envmgr.faults"
    assert callable(load_settings)
