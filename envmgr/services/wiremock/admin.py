"""`WireMockAdmin`: a small client of one WireMock server's admin API, with an explicit base URL.

python-wiremock's resource classes keep their URL in a process-wide singleton and its `reset_request_journal()` calls
an endpoint WireMock 3 no longer has, so envmgr uses python-wiremock only for its stub models (anything with
`get_json_data()` is accepted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

    from envmgr.endpoints import ServiceEndpoint

__all__ = ["WireMockAdmin", "admin_auth"]

HTTP_TIMEOUT = 5


def admin_auth(endpoint: ServiceEndpoint) -> tuple[str, str] | None:
    """The admin API's basic-auth login of a WireMock endpoint (`wiremock.admin_auth`), or None when it is open."""
    username, password = endpoint.extra.get("admin_username"), endpoint.extra.get("admin_password")
    return (username, password) if username and password else None


class WireMockAdmin:
    """The admin API of one WireMock server (https://wiremock.org/docs/standalone/admin-api-reference/)."""

    def __init__(
        self, base_url: str, session: requests.Session | None = None, auth: tuple[str, str] | None = None
    ) -> None:
        """`auth`: the admin API's basic-auth login (user, password), when it asks for one."""
        self.base_url = base_url.rstrip("/")
        import requests  # on use: the plugin imports this module, and requests costs ~0.2 s

        self._session = session or requests.Session()
        if auth is not None:
            self._session.auth = auth

    @classmethod
    def of(cls, endpoint: ServiceEndpoint) -> WireMockAdmin:
        """The admin client of an envmgr WireMock endpoint, logged in when its admin API asks for it."""
        return cls(endpoint.url, auth=admin_auth(endpoint))

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._session.request(method, f"{self.base_url}/__admin{path}", json=body, timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        return response.json() if response.content else None

    # stubs

    def stub(self, mapping: Any) -> dict[str, Any]:
        """Add one stub: a dict in WireMock's JSON form, or a python-wiremock `Mapping`."""
        result: dict[str, Any] = self._call("POST", "/mappings", _json(mapping))
        return result

    def import_stubs(self, mappings: list[Any]) -> None:
        """Add many stubs in one call (50 stubs: ~7 ms, against ~270 ms one by one)."""
        self._call("POST", "/mappings/import", {"mappings": [_json(m) for m in mappings]})

    def stubs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/mappings")["mappings"]
        return result

    def replace_stubs(self, mappings: list[dict[str, Any]]) -> None:
        """Exactly these stubs (ids kept), the request journal emptied, no delays: what a snapshot's restore does."""
        self.reset()
        self._call("DELETE", "/mappings")
        if mappings:
            self._call("POST", "/mappings/import", {"mappings": mappings})

    def remove_by_metadata(self, key: str, value: str) -> None:
        """Remove the stubs whose metadata has `key` equal to `value`, and the journal's requests they matched."""
        pattern = {"matchesJsonPath": {"expression": f"$.{key}", "equalTo": value}}
        self._call("POST", "/requests/remove-by-metadata", pattern)
        self._call("POST", "/mappings/remove-by-metadata", pattern)

    def reset(self) -> None:
        """Back to the seeded stubs (the mapping files), with an empty request journal, no delays."""
        self._call("POST", "/reset")
        self.set_global_delay(0)

    # request journal

    def requests(self) -> list[dict[str, Any]]:
        """Every request received since the last reset, newest first."""
        result: list[dict[str, Any]] = self._call("GET", "/requests")["requests"]
        return result

    def find(self, pattern: dict[str, Any]) -> list[dict[str, Any]]:
        """Received requests matching a request pattern, e.g. {"method": "GET", "urlPath": "/ws/2/release"}."""
        result: list[dict[str, Any]] = self._call("POST", "/requests/find", pattern)["requests"]
        return result

    def count(self, pattern: dict[str, Any]) -> int:
        return int(self._call("POST", "/requests/count", pattern)["count"])

    def clear_journal(self) -> None:
        self._call("DELETE", "/requests")

    # faults (undone by reset)

    def set_global_delay(self, milliseconds: int) -> None:
        """Delay every response by this much: the "external service is slow / times out" scenario."""
        self._call("POST", "/settings", {"fixedDelay": milliseconds})

    def fault(self, method: str, url_path: str, fault: str = "CONNECTION_RESET_BY_PEER", priority: int = 1) -> None:
        """Answer requests to `url_path` with a network fault: CONNECTION_RESET_BY_PEER, EMPTY_RESPONSE,
        MALFORMED_RESPONSE_CHUNK or RANDOM_DATA_THEN_CLOSE."""
        self.stub({"priority": priority, "request": {"method": method, "urlPath": url_path},
                   "response": {"fault": fault}})  # fmt: skip

    def delay(self, method: str, url_path: str, milliseconds: int, status: int = 200, body: str = "") -> None:
        """Answer requests to `url_path` after a fixed delay."""
        self.stub({"priority": 1, "request": {"method": method, "urlPath": url_path},
                   "response": {"status": status, "body": body, "fixedDelayMilliseconds": milliseconds}})  # fmt: skip


def _json(mapping: Any) -> Any:
    to_json = getattr(mapping, "get_json_data", None)
    return to_json() if callable(to_json) else mapping
