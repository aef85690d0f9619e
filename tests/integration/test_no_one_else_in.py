"""Issue 19, items 13 and 14: another local user can neither reach this user's mocks and AWS data through the ports
on 127.0.0.1, nor plant files or links that change this user's folders or stop this user's runs.

Another user is a real one, made for the module (`useradd`) and acted as with `runuser` (tests/integration/
other_users.py); the services are real containers."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from envmgr import Environment, Settings
from envmgr.credentials import KEY_FILE, Credentials
from envmgr.daemon import trust
from envmgr.errors import ConfigError, DaemonError
from envmgr.services.wiremock.admin import WireMockAdmin
from tests.integration.other_users import OtherUser, as_root, created_user

pytestmark = [pytest.mark.docker, as_root, pytest.mark.usefixtures("no_new_environments")]


@pytest.fixture(scope="module")
def other() -> Iterator[OtherUser]:
    """Another user of the machine (no docker group, no rights on this user's files)."""
    with created_user() as user:
        yield user


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder like /tmp: world-writable with the sticky bit, where any user may create entries."""
    folder = Path(tempfile.mkdtemp(prefix="envmgr-shared-", dir="/tmp"))
    folder.chmod(0o1777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def image_set() -> str:
    return os.environ.get("ENVMGR_IMAGE_SET", "local")


# item 13: the mocks and AWS data of a run are this user's alone ---------------------------------------------------

ADMIN_PROBE = """
import json, sys, urllib.request, urllib.error

base = sys.argv[1]

def status(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code

print(json.dumps({
    "read stubs": status("GET", "/__admin/mappings"),
    "read journal": status("GET", "/__admin/requests"),
    "add stub": status("POST", "/__admin/mappings", {"request": {"method": "GET", "url": "/payments"},
                                                     "response": {"status": 200, "body": "planted"}}),
    "reset": status("POST", "/__admin/reset"),
}))
"""


def test_another_user_can_neither_read_nor_change_the_wiremock_stubs_and_journal(
    settings: Settings, other: OtherUser
) -> None:
    """With the default settings, another user's `POST /__admin/mappings` was answered 201 (a stub planted in this
    user's run) and `GET /__admin/requests` showed what the code under test sent (headers included)."""
    with Environment(["wiremock"], settings=settings.model_copy(update={"image_set": image_set()})) as env:
        endpoint = env.endpoints["wiremock"]
        own = WireMockAdmin.of(endpoint)
        own.stub({"request": {"method": "GET", "url": "/payments"}, "response": {"status": 200, "body": "the run's"}})
        requests.get(endpoint.url + "/payments", headers={"Authorization": "Bearer the-apps-token"}, timeout=10)

        answered = other.python(ADMIN_PROBE, endpoint.url)
        assert answered.returncode == 0, answered.stderr
        statuses = json.loads(answered.stdout)
        assert all(code in (401, 403) for code in statuses.values()), (
            f"another user reached this user's WireMock admin API: {statuses}"
        )
        assert requests.get(endpoint.url + "/payments", timeout=10).text == "the run's", "the stubs are the run's own"
        assert len(own.requests()) == 2, "the run's own admin client still reaches its journal"


AWS_PROBE = """
import json, sys, urllib.request, urllib.error

url, bucket, key = sys.argv[1:4]

def status(method, path, body=None):
    request = urllib.request.Request(url + path, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")[:200]
    except urllib.error.HTTPError as exc:
        return exc.code, ""

found = {"unsigned read": status("GET", f"/{bucket}/{key}"),
         "unsigned write": status("PUT", f"/{bucket}/planted-unsigned", b"planted")}

# a write signed as the documentation's credentials would sign it (the account id as the access key, the secret
# "test"): the emulators check no signature, only the Authorization header's credential scope (standard library
# only: another user has no boto3)
scope = "000000000000/20240101/us-east-1/s3/aws4_request"
signed = urllib.request.Request(url + f"/{bucket}/planted-signed", data=b"planted", method="PUT", headers={
    "Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0",
    "X-Amz-Date": "20240101T000000Z", "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"})
try:
    with urllib.request.urlopen(signed, timeout=10) as response:
        found["signed write"] = (response.status, "")
except urllib.error.HTTPError as exc:
    found["signed write"] = (exc.code, "")
print(json.dumps(found))
"""


@pytest.mark.parametrize("backend", ["moto", "localstack"])
def test_another_user_can_neither_read_nor_change_the_runs_aws_objects(
    tmp_path: Path, namespace: str, other: OtherUser, backend: str
) -> None:
    """moto (as LocalStack) accepted any request on its port on 127.0.0.1: another user read this run's seeded
    objects and wrote its own. Only requests signed with this environment's own access key may pass."""
    objects = tmp_path / "seeds" / "s3" / "invoices"
    objects.mkdir(parents=True)
    (objects / "2024-001.txt").write_text("the run's private data")
    settings = Settings(project_root=tmp_path, image_set=image_set(), seeds=Path("seeds"), aws={"backend": backend})
    with Environment([backend], settings=settings) as env:
        endpoint = env.endpoints[backend]
        answered = other.python(AWS_PROBE, endpoint.url, "invoices", "2024-001.txt")
        assert answered.returncode == 0, answered.stderr
        found = {what: tuple(result) for what, result in json.loads(answered.stdout).items()}
        assert all(status in (401, 403) for status, _ in found.values()), (
            f"another user reached this run's AWS data: {found}"
        )

        import boto3
        from botocore.config import Config

        variables = endpoint.variables  # what the app gets: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID ...
        s3 = boto3.client(
            "s3",
            endpoint_url=variables["AWS_ENDPOINT_URL"],
            aws_access_key_id=variables["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=variables["AWS_SECRET_ACCESS_KEY"],
            region_name=variables["AWS_DEFAULT_REGION"],
            config=Config(s3={"addressing_style": "path"}),
        )
        keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket="invoices").get("Contents", []))
        assert keys == ["2024-001.txt"], "the run's own credentials still work, and nothing was planted"


# item 14: no planted folder, link or socket changes this user's files or stops this user's runs ---------------------


def test_a_daemon_folder_planted_as_a_link_is_refused_and_its_target_left_alone(
    shared_tmp: Path, other: OtherUser
) -> None:
    """`private_folder` judged the folder by `stat` (which follows links) and chmodded what the link pointed to: a
    link planted by another user turned a folder of this user's (here: one readable by all, 0755) into 0700."""
    target = Path(tempfile.mkdtemp(prefix="envmgr-victims-folder-", dir="/tmp"))
    try:
        target.chmod(0o755)
        planted = shared_tmp / f"envmgr-{os.getuid()}"
        made = other.run("ln", "-s", str(target), str(planted))
        assert made.returncode == 0, made.stderr
        with pytest.raises(DaemonError) as caught:
            trust.private_folder(planted)
        assert str(planted) in caught.value.cause
        assert "link" in caught.value.cause
        assert stat.S_IMODE(target.stat().st_mode) == 0o755, "the link's target was chmodded"
    finally:
        shutil.rmtree(target, ignore_errors=True)


def clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without what would choose the daemon's socket for it (XDG_RUNTIME_DIR,
    ENVMGR_*, an xdist run's PYTEST_*), plus `extra`."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if name != "XDG_RUNTIME_DIR" and not name.startswith(("ENVMGR_", "PYTEST_"))
    }
    return {**kept, **(extra or {})}


def default_socket(env: dict[str, str] | None = None) -> Path:
    """The daemon socket envmgr uses for this user by default (no XDG_RUNTIME_DIR, no ENVMGR_DAEMON_SOCKET; `env`
    added)."""
    code = "from envmgr.daemon.client import default_socket_path; print(default_socket_path())"
    found = subprocess.run([sys.executable, "-c", code], env=clean_environment(env), capture_output=True, text=True,
                           check=False)  # fmt: skip
    assert found.returncode == 0, found.stderr
    return Path(found.stdout.strip())


def remove_if_owned_by(path: Path, user: OtherUser) -> None:
    """Remove what `user` made at `path` (a folder it planted), nothing else."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if info.st_uid == user.uid:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def test_the_default_daemon_folder_is_one_another_user_cannot_create(other: OtherUser) -> None:
    """Without XDG_RUNTIME_DIR the daemon's folder was /tmp/envmgr-<uid>: any user can create it first. (This user
    is the one whose runs the other disturbs: its interpreter may be one other users cannot run.)"""
    folder = default_socket().parent
    try:
        made = other.run("mkdir", "-p", str(folder))
        assert made.returncode != 0, (
            f"user {other.name} created {folder}, the default daemon folder of uid {os.getuid()}"
        )
    finally:
        remove_if_owned_by(folder, other)


PLANT = """
import os, sys
folder, name = sys.argv[1], sys.argv[2]
os.makedirs(folder, mode=0o755, exist_ok=True)
open(os.path.join(folder, name), "w").close()   # where the victim's daemon socket would be
"""


@pytest.mark.parametrize("runtime", ["none", "shared"])
def test_a_daemon_folder_another_user_planted_does_not_stop_the_users_runs(
    other: OtherUser, shared_tmp: Path, tmp_path: Path, runtime: str
) -> None:
    """With `daemon = "auto"` (the default), a folder and a socket path another user made first turned every
    pytest run of this user into an error (exit 9 in the CLI): an untrusted socket means "no daemon", with a
    warning, and the run goes on. Without XDG_RUNTIME_DIR the other user cannot make the folder at all; with an
    XDG_RUNTIME_DIR all users share (a sticky folder like /tmp) it can, and the run says why it uses no daemon."""
    # "none": a state folder of the test's own, so that a daemon this user runs (warm by default) is not the one found
    env = {"XDG_RUNTIME_DIR": str(shared_tmp)} if runtime == "shared" else {"XDG_STATE_HOME": str(tmp_path / "state")}
    socket_path = default_socket(env)
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'p'\n\n[tool.envmgr]\n")
    (project / "test_app.py").write_text("def test_needs_no_service():\n    assert True\n")
    planted = other.python(PLANT, str(socket_path.parent), socket_path.name)
    assert (planted.returncode == 0) == (runtime == "shared"), planted.stderr
    try:
        run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(project)],
                             cwd=project, env=clean_environment(env), capture_output=True, text=True,
                             timeout=300, check=False)  # fmt: skip
        output = run.stdout + run.stderr
        assert run.returncode == 0, f"the run failed:\n{textwrap.indent(output[-3000:], '  ')}"
        assert "1 passed" in run.stdout
        warnings = [line for line in output.splitlines() if line.startswith("envmgr: warning:")]
        if runtime == "shared":  # the run says why it uses no daemon, once
            assert len(warnings) == 1, output[-3000:]
            assert "using no daemon" in warnings[0]
            assert f"{socket_path.parent} belongs to uid {other.uid}" in warnings[0]
        else:
            assert warnings == [], output[-3000:]

        insisted = subprocess.run([sys.executable, "-m", "envmgr", "up", "redis"], cwd=project,
                                  env=clean_environment({**env, "ENVMGR_DAEMON": "on"}), capture_output=True,
                                  text=True, timeout=300, check=False)  # fmt: skip
        assert insisted.returncode == 9, "daemon = 'on' with an untrusted (or no) socket is the daemon's error"
        assert "Traceback" not in insisted.stderr
        if runtime == "shared":
            assert f"{socket_path.parent} belongs to uid {other.uid}" in insisted.stderr
    finally:
        remove_if_owned_by(socket_path.parent, other)


def test_a_state_folder_planted_as_a_link_in_a_folder_others_can_write_is_refused(
    shared_tmp: Path, other: OtherUser
) -> None:
    """The key's folder was judged by `stat` (links followed) and its parent not at all: in a folder others can
    write (XDG_STATE_HOME=/tmp), another user's link decided where this user's key went."""
    target = Path(tempfile.mkdtemp(prefix="envmgr-link-target-", dir="/tmp"))  # this user's, 0700
    try:
        folder = shared_tmp / "envmgr"
        made = other.run("ln", "-s", str(target), str(folder))
        assert made.returncode == 0, made.stderr
        with pytest.raises(ConfigError) as caught:
            Credentials.load(folder)
        assert str(folder) in caught.value.cause or str(shared_tmp) in caught.value.cause
        assert not (target / KEY_FILE).exists(), "a key was made where the other user's link pointed"
    finally:
        shutil.rmtree(target, ignore_errors=True)


def test_a_key_that_is_a_link_is_refused(tmp_path: Path) -> None:
    """The key file was checked with `stat` and read with `open`, both following links: `secret.key` must be
    opened with O_NOFOLLOW and the open file checked."""
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere.key"
    elsewhere.write_bytes(b"k" * 32)
    elsewhere.chmod(0o600)
    (folder / KEY_FILE).symlink_to(elsewhere)
    with pytest.raises(ConfigError) as caught:
        Credentials.load(folder)
    assert KEY_FILE in caught.value.cause
    assert "link" in caught.value.cause
