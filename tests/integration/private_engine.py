"""A Docker engine of a test's own, to stop and restart without touching the machine's (other work runs on it).

    with PrivateEngine.started(images=["envmgr-local/redis:7"]) as engine:
        engine.host            # tcp://10.213.X.Y:2375: DOCKER_HOST for envmgr and its watchdog (a remote engine)
        engine.kill()          # SIGKILL of dockerd (its containerd dies with it; containers come back exited)
        engine.start()         # the same data root: images, containers and networks are still there

Its dockerd runs in a network namespace of its own (tests/engines.py: `ip netns add`, a veth pair on a private
/30), never in the host's: a dockerd started there with `--bridge=none` deletes the host engine's docker0 bridge.
It listens on tcp://<namespace address>:2375 and on a unix socket in its folder under /tmp (own data root, exec
root, no default bridge, no iptables rules, no IP forwarding change). envmgr reaches it as a remote engine: ports
are published on the namespace address and reached there. The namespace outlives kill()/start(); remove() removes
it with everything else. Needs root, `ip`, `nsenter` and `dockerd`; `PrivateEngine.started` skips the test
otherwise, with the reason (and dockerd's last log lines when it would not start).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
import requests.exceptions

from tests.engines import (
    NamespaceLink,
    cannot_run_namespaced_dockerd,
    dockerd_command,
    make_namespace,
    remove_leftovers,
)

__all__ = ["PrivateEngine"]

START_TIMEOUT = 60.0


class PrivateEngine:
    """One dockerd of the test's own (see the module's docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.local = f"unix://{self.socket}"
        """its unix socket: for the harness (copies, listing, removal)"""
        self.log = root / "dockerd.log"
        self.link: NamespaceLink | None = None
        """its network namespace, made by the first start() and kept until remove()"""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """DOCKER_HOST for envmgr: tcp://<its namespace address>:2375 (a remote engine to envmgr)."""
        if self.link is None:
            raise RuntimeError("the private engine was never started: it has no address yet")
        return self.link.docker_host()

    @classmethod
    @contextlib.contextmanager
    def started(cls, images: list[str]) -> Iterator[PrivateEngine]:
        """A running private engine holding `images` (copied from the machine's engine); removed at the end."""
        reason = cannot_run_namespaced_dockerd()
        if reason is not None:
            pytest.skip(f"a private dockerd cannot run here: {reason}")
        engine = cls(Path(tempfile.mkdtemp(prefix="envmgr-pe-", dir="/tmp")))  # short: containerd's socket paths
        try:
            try:
                engine.start()
            except RuntimeError as exc:
                pytest.skip(f"a private dockerd cannot be started here: {exc}")
            for image in images:
                engine.load(image)
            yield engine
        finally:
            engine.remove()

    def client(self, timeout: int = 10, url: str = "") -> docker.DockerClient:
        """A client of its unix socket (or of `url`)."""
        return docker.DockerClient(base_url=url or self.local, timeout=timeout)

    def start(self) -> float:
        """Start dockerd in its network namespace (made at the first start) and wait until it answers on its socket
        and its TCP address; the seconds it took. RuntimeError (with its log) otherwise."""
        started = time.monotonic()
        if self.link is None:
            self.link = make_namespace(secrets.token_hex(3))
        (self.root / "daemon.json").write_text("{}\n")  # not the machine's /etc/docker/daemon.json
        # left by a SIGKILL: dockerd refuses to start over its own, and waits for a "still running" containerd when
        # the pid in containerd's has been reused meanwhile
        (self.root / "dockerd.pid").unlink(missing_ok=True)
        (self.root / "exec" / "containerd" / "containerd.pid").unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                dockerd_command(self.root, self.link),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = started + START_TIMEOUT
        while not (self.answers() and self.answers(self.host)):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not answer on {self.host}; its log ends with:\n{self.log_tail()}")
            time.sleep(0.2)
        return time.monotonic() - started

    def answers(self, url: str = "") -> bool:
        """Whether it answers on its unix socket (or at `url`)."""
        try:
            with contextlib.closing(self.client(timeout=2, url=url)) as client:
                return bool(client.ping())
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
            return False

    def kill(self) -> None:
        """SIGKILL of dockerd and of its containerd (the engine is lost); the containers' shims live on, and the
        engine started again finds its containers exited."""
        self._signal(signal.SIGKILL)
        for pid in self._leftover_processes(program="containerd"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while self._leftover_processes(program="containerd"):
            assert time.monotonic() < deadline, "the private engine's containerd did not end"
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM of dockerd: it stops its containers and exits."""
        self._signal(signal.SIGTERM)

    def load(self, image: str) -> None:
        """Copy an image from the machine's engine (`docker save | docker -H ... load`)."""
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        loaded = subprocess.run(
            ["docker", "-H", self.local, "load", "-q"], stdin=save.stdout, capture_output=True, text=True, check=False
        )
        assert save.stdout is not None
        save.stdout.close()
        assert save.wait(timeout=120) == 0, f"docker save {image} failed"
        assert loaded.returncode == 0, f"loading {image} into the private engine failed: {loaded.stderr}"

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def remove(self) -> None:
        """Remove everything it holds, stop it, and remove its folder (its mounts and leftover processes too), its
        containers' cgroup parent and its network namespace."""
        try:
            if self._process is not None and self._process.poll() is None and self.answers():
                with contextlib.closing(self.client(timeout=60)) as client:
                    for container in client.containers.list(all=True, ignore_removed=True):
                        with contextlib.suppress(docker.errors.APIError):  # being removed by a watchdog
                            container.remove(force=True)
        finally:
            self._signal(signal.SIGTERM, wait=60.0)
        for pid in self._leftover_processes():  # shims of a killed dockerd that was not started again
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.link is None:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        problems = remove_leftovers(self.root, self.link)
        assert not problems, "; ".join(problems)

    def _signal(self, signum: int, wait: float = 30.0) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)

    def _leftover_processes(self, program: str | None = None) -> list[int]:
        """Processes whose command line names this engine's folder (started by it, so ours to end); only those
        running `program` when given."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(self.root).encode() in command and (program is None or command.split(b"\0")[0] == program.encode()):
                found.append(int(entry.name))
        return found
