"""CI sandboxes: which CI job this process runs in, and the `.env` file that hands an environment to the job.

`envmgr up --detach` labels the environment with a sandbox id; by default (when none is given) the id of the CI job
it runs in, so that `envmgr down --sandbox ID` at the end of the job removes exactly what the job started, even when
several jobs share one Docker engine. Everything here is pure: it reads the mapping it is given, never os.environ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["CiJob", "ci_job", "env_file_text", "quote_env_value"]


@dataclass(frozen=True)
class CiJob:
    """The CI job this process runs in: `sandbox` is its id, `source` says where it came from."""

    system: str
    sandbox: str
    variables: tuple[str, ...]

    @property
    def source(self) -> str:
        return f"{self.system}: {'-'.join(f'${name}' for name in self.variables)}"


def _join(*names: str) -> Callable[[Mapping[str, str]], tuple[str, tuple[str, ...]] | None]:
    """A detector that needs every one of `names` set (non-empty) and joins their values with dashes."""

    def detect(environ: Mapping[str, str]) -> tuple[str, tuple[str, ...]] | None:
        values = [environ.get(name, "").strip() for name in names]
        if not all(values):
            return None
        return "-".join(values), names

    return detect


# In order of precedence: the first system whose variables are all set wins. Each id is unique per job run (a
# re-run of a GitHub Actions job has another attempt number), so concurrent jobs on one engine never share one.
_SYSTEMS: tuple[tuple[str, Callable[[Mapping[str, str]], tuple[str, tuple[str, ...]] | None]], ...] = (
    ("GitHub Actions", _join("GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_JOB")),
    ("GitLab CI", _join("CI_JOB_ID")),
    ("Jenkins", _join("BUILD_TAG")),
    ("Buildkite", _join("BUILDKITE_JOB_ID")),
    ("CircleCI", _join("CIRCLE_WORKFLOW_JOB_ID")),
    ("Azure Pipelines", _join("SYSTEM_JOBID")),
)


def ci_job(environ: Mapping[str, str]) -> CiJob | None:
    """The CI job described by these environment variables, or None outside CI."""
    for system, detect in _SYSTEMS:
        found = detect(environ)
        if found is not None:
            sandbox, variables = found
            return CiJob(system=system, sandbox=sandbox, variables=variables)
    return None


def quote_env_value(value: str) -> str:
    """A value quoted so that python-dotenv reads it back unchanged.

    Single quotes, which python-dotenv, `docker compose` and a POSIX shell (`set -a; . ./.env`) all take literally,
    unless the value holds a quote, a backslash or a line break: then double quotes with escapes, which python-dotenv
    decodes (a shell does not decode `\\n`). envmgr's own values are URLs with percent-encoded credentials and plain
    names: always the single-quoted form. (python-dotenv expands `${NAME}` in any value; percent-encoding keeps
    `$`, `{` and `}` out of envmgr's URLs.)
    """
    if not any(char in value for char in "'\\\n\r"):
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def env_file_text(variables: Mapping[str, str]) -> str:
    """The `.env` file for these variables: one `NAME='value'` a line, sorted by name."""
    return "".join(f"{name}={quote_env_value(value)}\n" for name, value in sorted(variables.items()))
