"""A Docker engine of a test's own, to stop and restart without touching the machine's (other work runs on it).

    with PrivateEngine.started(images=["envmgr-local/redis:7"]) as engine:
        engine.host            # unix:///tmp/envmgr-pe-.../docker.sock: DOCKER_HOST for envmgr and its watchdog
        engine.kill()          # SIGKILL of dockerd (its containerd dies with it; containers come back exited)
        engine.start()         # the same data root: images, containers and networks are still there

Its own data root, exec root and socket in a folder under /tmp, no default bridge, no iptables rules, no IP
forwarding change, and networks from an address pool of its own (10.N.0.0/16, held by a lock file so that two
private engines never share one). Needs root and `dockerd`; `PrivateEngine.started` skips the test otherwise, with
the reason (and dockerd's last log lines when it would not start).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
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

__all__ = ["PrivateEngine"]

POOL_OCTETS = range(200, 250)
START_TIMEOUT = 60.0


class PrivateEngine:
    """One dockerd of the test's own (see the module's docstring)."""

    def __init__(self, root: Path, octet: int) -> None:
        self.root = root
        self.octet = octet
        self.socket = root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.log = root / "dockerd.log"
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    @contextlib.contextmanager
    def started(cls, images: list[str]) -> Iterator[PrivateEngine]:
        """A running private engine holding `images` (copied from the machine's engine); removed at the end."""
        if os.geteuid() != 0:
            pytest.skip("a private dockerd needs root")
        if shutil.which("dockerd") is None or shutil.which("docker") is None:
            pytest.skip("a private dockerd needs the dockerd and docker programs")
        with _address_pool() as octet:
            engine = cls(Path(tempfile.mkdtemp(prefix="envmgr-pe-", dir="/tmp")), octet)
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

    def client(self, timeout: int = 10) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, timeout=timeout)

    def start(self) -> float:
        """Start dockerd and wait until it answers; the seconds it took. RuntimeError (with its log) otherwise."""
        started = time.monotonic()
        # left by a SIGKILL: dockerd refuses to start over its own, and waits for a "still running" containerd when
        # the pid in containerd's has been reused meanwhile
        (self.root / "dockerd.pid").unlink(missing_ok=True)
        (self.root / "exec" / "containerd" / "containerd.pid").unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    "dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                    "-H", self.host, "--pidfile", str(self.root / "dockerd.pid"), "--bridge=none",
                    "--iptables=false", "--ip-masq=false", "--ip-forward=false",
                    "--default-address-pool", f"base=10.{self.octet}.0.0/16,size=24",
                    "--cgroup-parent", f"envmgr-private-engine-{self.octet}",
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = started + START_TIMEOUT
        while not self.answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not answer on {self.host}; its log ends with:\n{self.log_tail()}")
            time.sleep(0.2)
        return time.monotonic() - started

    def answers(self) -> bool:
        try:
            with contextlib.closing(self.client(timeout=2)) as client:
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
            ["docker", "-H", self.host, "load", "-q"], stdin=save.stdout, capture_output=True, text=True, check=False
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
        """Remove everything it holds, stop it, and remove its folder (its mounts and leftover processes too)."""
        try:
            if self._process is not None and self._process.poll() is None and self.answers():
                with contextlib.closing(self.client(timeout=60)) as client:
                    for container in client.containers.list(all=True):
                        with contextlib.suppress(docker.errors.APIError):  # being removed by a watchdog
                            container.remove(force=True)
        finally:
            self._signal(signal.SIGTERM, wait=60.0)
        for pid in self._leftover_processes():  # shims of a killed dockerd that was not started again
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for mount in self._mounts():
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

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

    def _mounts(self) -> list[str]:
        points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        return sorted((p for p in points if p.startswith(str(self.root))), key=len, reverse=True)


@contextlib.contextmanager
def _address_pool() -> Iterator[int]:
    """An address pool (its second octet) no other private engine holds: a lock file per pool."""
    for octet in POOL_OCTETS:
        with Path(f"/tmp/envmgr-private-engine-pool-{octet}.lock").open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            yield octet
            return
    pytest.skip("every address pool of private engines is held")
