"""The workers' channel to the controller (envmgr.pytest.channel), on a real Unix socket: many workers at once."""

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from envmgr.endpoints import Endpoints
from envmgr.pytest.channel import ControllerClient, ControllerServer


def test_every_worker_of_a_large_run_reaches_the_controller_at_once() -> None:
    """-n 32: every worker reports its collection at the same moment; none is refused (a Unix socket refuses a
    connection at once when the listen backlog is full)."""
    reported: list[list[str]] = []

    def ensure(services: Sequence[str], worker: str, why: object, wait: bool) -> Endpoints:
        return Endpoints(id="e", network="n")

    server = ControllerServer(ensure, lambda reached: reported.append(list(reached)))
    try:
        client = ControllerClient(server.path)
        with ThreadPoolExecutor(max_workers=64) as pool:
            list(pool.map(lambda _: client.collected(["postgres"]), range(256)))
        assert len(reported) == 256
    finally:
        server.close()


def test_closing_ends_the_serving_thread_and_removes_the_socket_folder() -> None:
    server = ControllerServer(lambda *_: Endpoints(id="e", network="n"), lambda reached: None)
    client = ControllerClient(server.path)
    client.collected(["redis"])
    folder = server.path.parent
    server.close()
    assert not server._thread.is_alive()
    assert not folder.exists()
