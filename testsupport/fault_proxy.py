"""A fault-injecting HTTP proxy for OpenAI-compatible servers: the only test double here.

Requests pass through to a real upstream (the vLLM server, or ``openai_server.py``) unless a
fault is scripted. ``proxy.faults`` is consumed one per request, first in first out:
- ``"500"``, ``"429"`` (both with ``retry-after-ms: 1``), ``"400"`` (a request that cannot
  succeed), ``"echo_key"`` (a 401 repeating the Authorization header, as some proxies do);
- ``"timeout"``: holds the request ``hang_s`` seconds, then drops it (the client times out);
- ``"disconnect"``: closes the connection without a reply;
- ``"malformed"``: forwards, then cuts the model's reply text mid-JSON (usage kept);
- ``"html_200"``, ``"bad_utf8_200"``: a 200 whose body is an HTML page (as a captive portal or
  a misrouted gateway sends) or is not UTF-8;
- ``"drip"``: forwards, then sends the reply one byte every ``drip_s`` seconds;
- ``"negative_usage"``: forwards with ``usage`` counts made negative (a broken proxy).
Every request body and Authorization header is recorded; ``max_in_flight`` tracks
concurrency as the upstream sees it.
"""

from __future__ import annotations

import http.client
import json
import time
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from testsupport.loopback import LoopbackServer


class FaultProxy(LoopbackServer):
    """``with FaultProxy("http://127.0.0.1:8000/v1") as proxy: ... proxy.base_url``."""

    def __init__(
        self, upstream: str, hang_s: float = 5.0, drip_s: float = 1.0, hold_s: float = 0.0
    ):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.hang_s = hang_s
        self.drip_s = drip_s
        self.hold_s = hold_s  # every request waits this long before it is forwarded
        self.faults: deque[str] = deque()
        self.auth_headers: list[str] = []
        super().__init__()

    def forward(self, path: str, body: bytes, auth: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=600)
        try:
            headers = {"Content-Type": "application/json", "Authorization": auth}
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                auth = self.headers.get("Authorization", "")
                with proxy._lock:
                    proxy.requests.append(json.loads(body))
                    proxy.auth_headers.append(auth)
                    fault = proxy.faults.popleft() if proxy.faults else None
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                try:
                    self._serve(fault, body, auth)
                finally:
                    with proxy._lock:
                        proxy.in_flight -= 1

            def _serve(self, fault: str | None, body: bytes, auth: str) -> None:
                if fault in ("500", "429", "400"):
                    self._send(int(fault), {"error": {"message": f"injected {fault}"}})
                elif fault == "echo_key":
                    self._send(401, {"error": {"message": f"bad credentials: {auth}"}})
                elif fault == "timeout":
                    time.sleep(proxy.hang_s)
                    self.close_connection = True
                elif fault == "disconnect":
                    self.close_connection = True
                elif fault == "html_200":
                    page = b"<!DOCTYPE html><html><body><h1>Gateway</h1></body></html>"
                    self._send_bytes(200, page, "text/html")
                elif fault == "bad_utf8_200":
                    self._send_bytes(200, b'{"id": "\xff\xfe", "choices": []}')
                else:
                    time.sleep(proxy.hold_s)
                    status, data = proxy.forward(self.path, body, auth)
                    if fault == "malformed" and status == 200:
                        reply = json.loads(data)
                        text = reply["choices"][0]["message"]["content"] or ""
                        reply["choices"][0]["message"]["content"] = text[: len(text) // 2]
                        data = json.dumps(reply).encode()
                    if fault == "negative_usage" and status == 200:
                        reply = json.loads(data)
                        reply["usage"] = {"prompt_tokens": -1_000_000,
                                          "completion_tokens": -1_000_000,
                                          "total_tokens": -2_000_000}  # fmt: skip
                        data = json.dumps(reply).encode()
                    self._send_bytes(status, data, drip=fault == "drip")

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                self._send_bytes(status, json.dumps(payload).encode())

            def _send_bytes(
                self, status: int, data: bytes, kind: str = "application/json", drip: bool = False
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                if status in (429, 500):
                    self.send_header("retry-after-ms", "1")
                self.end_headers()
                try:
                    if not drip:
                        self.wfile.write(data)
                    for i in range(len(data) if drip else 0):
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        time.sleep(proxy.drip_s)
                except (BrokenPipeError, ConnectionResetError):  # the client went away
                    self.close_connection = True

            def log_message(self, *args: Any) -> None:
                """Quiet: pytest shows failures, not access logs."""

        return Handler
