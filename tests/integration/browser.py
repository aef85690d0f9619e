"""Debian's chromium, headless, driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: no port,
no extra package), for the tests that look at a generated report as a browser renders it.

    with Browser.started(tmp_path / "profile") as browser:
        browser.open(page.as_uri(), width=1000, height=900)
        bars = browser.evaluate("[...document.querySelectorAll('rect.bar')].map(r => r.getBBox().width)")
        browser.screenshot(tmp_path / "report.png")
        browser.requests          # every URL the page asked for (a self-contained page: its own file only)

It never reaches the network: every host name resolves to nothing and every proxied request goes to a closed local
port (a page that asks for anything but its own file shows in `requests`, and fails to load it).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in a container: chromium's sandbox needs user namespaces it may not have
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)
TIMEOUT = 60.0
DEBIAN_BINARY = "/usr/lib/chromium/chromium"


def chromium() -> str:
    """Debian's chromium: its path; the test skips only when this machine cannot install it (no apt candidate),
    and fails when it could and has not (.ci/setup installs it)."""
    found = shutil.which("chromium")
    if found is not None:
        real = Path(DEBIAN_BINARY)
        return str(real) if real.is_file() else found  # past Debian's launcher script (it sources /etc/chromium.d)
    policy = ""
    if shutil.which("apt-cache") is not None:
        policy = subprocess.run(["apt-cache", "policy", "chromium"], check=False, capture_output=True, text=True).stdout
    if "Candidate:" in policy and "Candidate: (none)" not in policy:
        pytest.fail("chromium is installable here but not installed: run .ci/setup (apt-get install -y chromium)")
    pytest.skip("Debian's chromium cannot be installed on this machine (apt has no candidate for it)")


class Browser:
    """See the module's documentation."""

    def __init__(self, process: subprocess.Popen[bytes], commands: int, answers: int) -> None:
        self.process = process
        self._commands = commands
        self._answers = os.fdopen(answers, "rb", buffering=0)
        self._buffer = b""
        self._next = 0
        self._session: str | None = None
        self.events: list[dict[str, Any]] = []
        self.requests: list[str] = []

    @classmethod
    @contextmanager
    def started(cls, profile: Path) -> Iterator[Browser]:
        binary = chromium()
        commands_read, commands_write = (_high(fd) for fd in os.pipe())
        answers_read, answers_write = (_high(fd) for fd in os.pipe())
        # chromium reads commands on its fd 3 and answers on fd 4 (bash: the pipes' ends are above 100, no clash)
        script = f'exec "$0" "$@" 3<&{commands_read} 4>&{answers_write} {commands_read}<&- {answers_write}>&-'
        process = subprocess.Popen(
            ["/bin/bash", "-c", script, binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(commands_read, answers_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(commands_read)
        os.close(answers_write)
        browser = cls(process, commands_write, answers_read)
        try:
            yield browser
        finally:
            browser.close()

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> dict[str, Any]:
        """One command; its result (AssertionError with the protocol's error)."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session and self._session is not None:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._receive()
            if answer.get("id") == self._next:
                assert "error" not in answer, f"{method}: {answer['error']}"
                result: dict[str, Any] = answer.get("result", {})
                return result
            self._event(answer)

    def open(self, url: str, width: int, height: int, scripts: bool = True) -> None:
        """A new tab of this size showing `url`, once loaded (`scripts=False`: with JavaScript disabled)."""
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        attached = self.call("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)
        self._session = attached["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})  # fmt: skip
        if not scripts:
            self.call("Emulation.setScriptExecutionDisabled", {"value": True})
        self.call("Network.enable")
        self.call("Page.enable")
        self.events.clear()
        self.call("Page.navigate", {"url": url})
        self._wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """The whole page as a PNG."""
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with suppress(OSError, AssertionError):
            self.call("Browser.close", session=False)
        with suppress(OSError):
            os.close(self._commands)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._answers.close()
        if self.process.stderr is not None:
            self.process.stderr.close()

    def _wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self._event(self._receive())
        raise AssertionError(f"chromium: no {method} within {TIMEOUT:g} s")

    def _event(self, message: dict[str, Any]) -> None:
        self.events.append(message)
        if message.get("method") == "Network.requestWillBeSent":
            self.requests.append(message["params"]["request"]["url"])

    def _receive(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = self._answers.read(65536)
            if not chunk:
                stderr = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise AssertionError(f"chromium ended (exit code {self.process.poll()}): {stderr[-2000:]}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed


def _high(fd: int) -> int:
    """The same pipe end as a descriptor of 100 or more (the lower one closed)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)
    os.close(fd)
    return high
