"""Second engines for the tests and benchmarks, created and removed by the test itself.

* `namespaced_dockerd()`: a `dockerd` that is genuinely remote to the test process: inside a network namespace of
  its own (`ip netns add`), reached through a veth pair on a private /30 chosen here (`10.213.X.Y`), listening on
  `tcp://<namespace address>:2375` (and a unix socket in its temporary folder), with its own data root, exec root,
  pid file, no default bridge and no iptables rules. Its containers, ports and files are on the far side of that
  link: nothing the test process reaches goes through loopback. Everything is removed at the end (containers,
  dockerd and its containerd, mounts, the namespace, the veth pair, the folder). Its parts (`make_namespace`,
  `dockerd_command`, `remove_leftovers`) also run tests/integration/private_engine.py's engine, which is stopped
  and started again: no dockerd of the tests runs in the host's network namespace (one started there with
  `--bridge=none` deletes the host engine's docker0 bridge).
* `podman_service()`: Podman's Docker-compatible API (`podman system service`) on a unix socket of its own.

Traffic goes only to the addresses chosen here (inside the namespace) and to loopback. Both need root; the callers
skip with the reason `cannot_run_*` gives where the machine cannot.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "NamespaceLink",
    "SecondEngine",
    "cannot_run_namespaced_dockerd",
    "cannot_run_podman",
    "dockerd_command",
    "load_images",
    "make_namespace",
    "namespaced_dockerd",
    "podman_service",
    "remove_leftovers",
    "remove_namespace",
]

NETWORK_POOL = ipaddress.ip_network("10.213.0.0/16")
"""where the /30 of the veth pair is chosen (one that no interface of this machine uses)"""
CONTAINER_POOL = "10.214.0.0/16"
"""the second engine's own networks (inside its namespace; never routed from here)"""
API_PORT = 2375
READY_SECONDS = 60.0
STOP_SECONDS = 30.0


@dataclass(frozen=True)
class SecondEngine:
    """An engine started for a test: DOCKER_HOST for it, and where its published ports are reached."""

    docker_host: str
    address: str
    """where its published ports are reached from the test process"""
    kind: str
    namespace: str = ""
    """the network namespace it runs in (a namespaced dockerd)"""
    link: str = ""
    """this side of its veth pair"""
    link_address: str = ""
    """the address of this side of the veth pair (not the engine's)"""
    root: Path | None = None
    """its folder (data root, exec root, sockets, log)"""

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.docker_host}


def cannot_run_namespaced_dockerd() -> str | None:
    """Why a namespaced dockerd cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "creating a network namespace and a second dockerd needs root"
    for tool in ("ip", "nsenter", "dockerd", "docker"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    probe = f"envmgr-p{secrets.token_hex(3)}"
    created = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if created.returncode != 0:
        return f"this machine cannot create network namespaces: {created.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True, check=True)
    return None


def cannot_run_podman() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (Debian: apt-get install podman)"
    if os.geteuid() != 0:
        return "the Podman test runs rootful Podman (its service socket under /run)"
    return None


def load_images(images: Sequence[str], target: dict[str, str], load: Sequence[str] = ("docker", "load")) -> float:
    """Copy images from the local engine to another (`docker save | <load>` with `target` as its environment);
    return the seconds it took."""
    started = time.perf_counter()
    save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE, env=_without_docker_host())
    try:
        loaded = subprocess.run(
            list(load), stdin=save.stdout, capture_output=True, text=True, env={**os.environ, **target}, check=False
        )
    finally:
        assert save.stdout is not None
        save.stdout.close()
        save_status = save.wait()
    assert save_status == 0, f"docker save {' '.join(images)} failed"
    assert loaded.returncode == 0, f"{' '.join(load)} failed: {loaded.stderr}"
    return time.perf_counter() - started


# a dockerd in a network namespace -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NamespaceLink:
    """A network namespace of a test's own and the veth pair that reaches it on a private /30."""

    namespace: str
    outside: str
    """this side of the veth pair"""
    host_address: str
    """the address of this side"""
    engine_address: str
    """the address inside the namespace (where a dockerd there listens and publishes)"""

    def docker_host(self) -> str:
        return f"tcp://{self.engine_address}:{API_PORT}"


def make_namespace(tag: str) -> NamespaceLink:
    """`ip netns add`, a veth pair on a free /30, both ends up, and the namespace's loopback up; what was made is
    removed again when a step fails."""
    host_address, engine_address = _free_pair()
    link = NamespaceLink(f"envmgr-t{tag}", f"envmgr-h{tag}", host_address, engine_address)
    inside = f"envmgr-n{tag}"
    try:
        _run("ip", "netns", "add", link.namespace)
        _run("ip", "link", "add", link.outside, "type", "veth", "peer", "name", inside)
        _run("ip", "link", "set", inside, "netns", link.namespace)
        _run("ip", "addr", "add", f"{host_address}/30", "dev", link.outside)
        _run("ip", "link", "set", link.outside, "up")
        _run("ip", "-n", link.namespace, "addr", "add", f"{engine_address}/30", "dev", inside)
        _run("ip", "-n", link.namespace, "link", "set", inside, "up")
        _run("ip", "-n", link.namespace, "link", "set", "lo", "up")
    except BaseException:
        remove_namespace(link)
        raise
    return link


def remove_namespace(link: NamespaceLink) -> list[str]:
    """Delete the veth pair and the namespace; what went wrong (nothing: an empty list)."""
    problems = []
    for command in (["ip", "link", "delete", link.outside], ["ip", "netns", "delete", link.namespace]):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 and not any(
            gone in done.stderr for gone in ("Cannot find device", "No such file or directory")
        ):
            problems.append(f"{' '.join(command)}: {done.stderr.strip()}")
    return problems


def dockerd_command(root: Path, link: NamespaceLink, container_pool: str = CONTAINER_POOL) -> list[str]:
    """A dockerd in `link`'s namespace, with everything of its own under `root`, listening on its unix socket
    there and on tcp://<namespace address>:2375; no default bridge (there is none to delete in its namespace)."""
    # nsenter --net only: `ip netns exec` would also remount /sys, hiding the cgroup hierarchies dockerd needs
    return [
        "nsenter", f"--net=/run/netns/{link.namespace}", "dockerd",
        "--config-file", str(root / "daemon.json"),
        "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
        "--pidfile", str(root / "dockerd.pid"),
        "--host", f"unix://{root}/docker.sock", "--host", link.docker_host(),
        "--tls=false",  # said explicitly: dockerd otherwise delays its start by 15 s to warn about plain TCP
        "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
        "--default-address-pool", f"base={container_pool},size=24",
        f"--cgroup-parent=/{link.namespace}", "--storage-driver=overlay2", "--shutdown-timeout=2",
    ]  # fmt: skip


def remove_leftovers(root: Path, link: NamespaceLink) -> list[str]:
    """After its dockerd ended: unmount what it left under `root`, remove its containers' cgroup parent, the
    namespace and `root`; what went wrong."""
    problems: list[str] = []
    for mount in reversed(_mounts_under(root)):  # what dockerd left mounted (it unmounts on a clean stop)
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    for group in [*Path("/sys/fs/cgroup").glob(f"*/{link.namespace}"), Path("/sys/fs/cgroup") / link.namespace]:
        try:
            group.rmdir()  # the cgroup parent of its containers: empty once they are gone
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append(f"removing {group}: {exc}")
    problems += remove_namespace(link)
    try:
        shutil.rmtree(root)
    except FileNotFoundError:
        pass
    except OSError as exc:
        problems.append(f"removing {root}: {exc}")
    return problems


@contextlib.contextmanager
def namespaced_dockerd() -> Iterator[SecondEngine]:
    """A second dockerd in a network namespace of its own, reached on tcp://<its address>:2375; all removed after."""
    root = Path(tempfile.mkdtemp(prefix="envmgr-re-", dir="/tmp"))  # short: containerd's socket paths have a limit
    dockerd: subprocess.Popen[bytes] | None = None
    link: NamespaceLink | None = None
    try:
        link = make_namespace(secrets.token_hex(3))
        (root / "daemon.json").write_text("{}\n")  # not the machine's /etc/docker/daemon.json
        log = (root / "dockerd.log").open("wb")
        dockerd = subprocess.Popen(
            dockerd_command(root, link),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        log.close()
        engine = SecondEngine(
            link.docker_host(), link.engine_address, "namespaced dockerd", link.namespace, link.outside,
            link.host_address, root,
        )  # fmt: skip
        _wait_for_engine(engine, dockerd, root / "dockerd.log")
        yield engine
    finally:
        _remove_namespaced_dockerd(dockerd, root, link)


def _free_pair() -> tuple[str, str]:
    """Two addresses of a /30 in NETWORK_POOL that overlaps no network of this machine: (this side, engine side)."""
    used = [
        ipaddress.ip_interface(line.split()[3]).network
        for line in subprocess.run(
            ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        if len(line.split()) > 3
    ]
    subnets = list(NETWORK_POOL.subnets(new_prefix=30))
    for _ in range(100):
        subnet = random.choice(subnets)
        if not any(subnet.overlaps(network) for network in used):
            first, second = list(subnet.hosts())
            return str(first), str(second)
    raise AssertionError(f"no free /30 in {NETWORK_POOL}")


def _wait_for_engine(engine: SecondEngine, dockerd: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if dockerd.poll() is not None:
            raise AssertionError(f"the second dockerd exited ({dockerd.returncode}):\n{_tail(log)}")
        answered = subprocess.run(
            ["docker", "-H", engine.docker_host, "version", "--format", "{{.Server.Version}}"],
            capture_output=True, env=_without_docker_host(), check=False,
        )  # fmt: skip
        if answered.returncode == 0:
            return
        time.sleep(0.2)  # polled until READY_SECONDS
    raise AssertionError(f"the second dockerd did not answer within {READY_SECONDS:.0f} s:\n{_tail(log)}")


def _remove_namespaced_dockerd(dockerd: subprocess.Popen[bytes] | None, root: Path, link: NamespaceLink | None) -> None:
    """Remove everything, each step whatever the others did; raise at the end if any step failed."""
    problems: list[str] = []
    if dockerd is not None and dockerd.poll() is None:
        socket_url = f"unix://{root}/docker.sock"
        listed = subprocess.run(["docker", "-H", socket_url, "ps", "-aq"], capture_output=True, text=True, check=False)
        if listed.stdout.split():  # removed first: dockerd would otherwise stop each one on its way out
            subprocess.run(
                ["docker", "-H", socket_url, "rm", "-f", *listed.stdout.split()], capture_output=True, check=False
            )
        os.killpg(dockerd.pid, signal.SIGTERM)
        try:
            dockerd.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            problems.append(f"dockerd did not stop within {STOP_SECONDS:.0f} s: killed")
            os.killpg(dockerd.pid, signal.SIGKILL)
            dockerd.wait(timeout=STOP_SECONDS)
    if link is None:
        shutil.rmtree(root, ignore_errors=True)
    else:
        problems += remove_leftovers(root, link)
    assert not problems, "; ".join(problems)


def _mounts_under(root: Path) -> list[str]:
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    return [mount for mount in mounts if mount.startswith(f"{root}/")]


# Podman's Docker-compatible API -------------------------------------------------------------------------------


@contextlib.contextmanager
def podman_service() -> Iterator[SecondEngine]:
    """`podman system service` on a socket of its own (rootful Podman; its images are Podman's own storage)."""
    folder = Path("/run/envmgr-podman-test") / secrets.token_hex(4)
    folder.mkdir(parents=True)
    sock = folder / "podman.sock"
    # Rootful Podman gives every container RLIMIT_NOFILE/NPROC of 1048576; where this process may not raise its
    # limits (no CAP_SYS_RESOURCE, as in many CI containers) runc is refused. Podman caps its own NPROC at pid_max.
    conf = folder / "containers.conf"
    nofile = _hard_limit("RLIMIT_NOFILE")
    nproc = min(_hard_limit("RLIMIT_NPROC"), int(Path("/proc/sys/kernel/pid_max").read_text()))
    conf.write_text(f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n')
    log = (folder / "service.log").open("wb")
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        env={**_without_docker_host(), "CONTAINERS_CONF": str(conf)},
    )  # fmt: skip
    log.close()
    try:
        deadline = time.monotonic() + READY_SECONDS
        while not _answers(sock):
            if service.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"podman system service did not answer:\n{_tail(folder / 'service.log')}")
            time.sleep(0.1)  # polled until READY_SECONDS
        yield SecondEngine(f"unix://{sock}", "127.0.0.1", "podman")
    finally:
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGTERM)
            try:
                service.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(service.pid, signal.SIGKILL)
                service.wait(timeout=STOP_SECONDS)
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # another run's folder may still be there: then it stays
            folder.parent.rmdir()


def _answers(sock: Path) -> bool:
    if not sock.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(2)
        try:
            client.connect(str(sock))
            client.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b"OK" in client.recv(4096)
        except OSError:
            return False


def _hard_limit(name: str) -> int:
    import resource

    return int(resource.getrlimit(getattr(resource, name))[1])


# helpers --------------------------------------------------------------------------------------------------------


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr.strip()}"


def _without_docker_host() -> dict[str, str]:
    """This process's environment for the local engine's `docker` (whatever DOCKER_HOST a test has set)."""
    return {k: v for k, v in os.environ.items() if k not in {"DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"}}


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"
