"""CI sandboxes: the job id of each CI system, and the .env file that python-dotenv and a shell read back."""

import io
import subprocess

import pytest
from dotenv import dotenv_values

from envmgr.sandbox import ci_job, env_file_text, quote_env_value

GITHUB = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "9876543210", "GITHUB_RUN_ATTEMPT": "2", "GITHUB_JOB": "test"}


@pytest.mark.parametrize(
    ("environ", "system", "sandbox"),
    [
        (GITHUB, "GitHub Actions", "9876543210-2-test"),
        ({"GITLAB_CI": "true", "CI_JOB_ID": "4711"}, "GitLab CI", "4711"),
        ({"BUILD_TAG": "jenkins-folder-app-42"}, "Jenkins", "jenkins-folder-app-42"),
        ({"BUILDKITE_JOB_ID": "0190-abcd"}, "Buildkite", "0190-abcd"),
        ({"CIRCLE_WORKFLOW_JOB_ID": "c1c2-c3"}, "CircleCI", "c1c2-c3"),
        ({"SYSTEM_JOBID": "a5e0d0b6-1234"}, "Azure Pipelines", "a5e0d0b6-1234"),
    ],
)
def test_each_ci_system_names_its_job(environ: dict[str, str], system: str, sandbox: str) -> None:
    job = ci_job(environ)
    assert job is not None
    assert (job.system, job.sandbox) == (system, sandbox)


def test_the_source_names_the_variables() -> None:
    job = ci_job(GITHUB)
    assert job is not None
    assert job.source == "GitHub Actions: $GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT-$GITHUB_JOB"


def test_outside_ci_there_is_no_job() -> None:
    assert ci_job({"HOME": "/root", "CI": "true"}) is None


def test_a_partial_github_set_is_not_a_job() -> None:
    assert ci_job({"GITHUB_RUN_ID": "1", "GITHUB_JOB": "test"}) is None
    assert ci_job({"GITHUB_RUN_ID": "1", "GITHUB_RUN_ATTEMPT": "", "GITHUB_JOB": "test"}) is None


def test_github_wins_over_a_generic_variable_set_alongside() -> None:
    job = ci_job({**GITHUB, "BUILD_TAG": "something-else"})
    assert job is not None
    assert job.system == "GitHub Actions"


TRICKY = {
    "DATABASE_URL": "postgresql://envmgr:a%2Fb%3Ac-_x@127.0.0.1:5432/app",
    "REDIS_URL": "redis://:Zx-_09@127.0.0.1:6379/0",
    "WITH_HASH": "value # not a comment",
    "WITH_SPACES": "  padded  ",
    "WITH_DOLLAR": "a$b",
    "WITH_QUOTE": 'it\'s "quoted"',
    "WITH_BACKSLASH": "C:\\path\\n",
    "WITH_NEWLINE": "line 1\nline 2",
    "EMPTY": "",
}


def test_python_dotenv_reads_every_value_back_unchanged() -> None:
    assert dict(dotenv_values(stream=io.StringIO(env_file_text(TRICKY)))) == TRICKY


def test_plain_values_are_single_quoted_and_a_shell_reads_them_back() -> None:
    plain = {name: value for name, value in TRICKY.items() if quote_env_value(value).startswith("'")}
    assert set(plain) >= {"DATABASE_URL", "REDIS_URL", "WITH_HASH", "WITH_SPACES", "WITH_DOLLAR", "EMPTY"}
    script = env_file_text(plain) + "".join(f'printf "%s\\0" "${name}"\n' for name in sorted(plain))
    output = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert output.split("\0")[:-1] == [plain[name] for name in sorted(plain)]


def test_the_file_is_sorted_one_variable_a_line() -> None:
    assert env_file_text({"B": "2", "A": "1"}) == "A='1'\nB='2'\n"
