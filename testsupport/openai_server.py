"""A small OpenAI-compatible chat-completions server for tests, run in-process on 127.0.0.1.

No light real server exists for this: vLLM (CPU) takes ~3.5 GB and a minute to start, and
llama-cpp-python is a C++ source build that also needs GGUF weights. This one speaks the
same HTTP protocol the ``openai`` client uses, so the teacher is tested end to end through
the real client: headers, JSON bodies, status codes, retries and timeouts.

Rule: a request asking for up to N facts (the schema's ``maxItems``) gets N facts, fact i
answering with the i-th sentence of the fenced document and asked two ways (the schema's
``minItems`` of questions): "What does sentence i of the guide say?" and "What is stated in
sentence i of the guide?". A
judge request (a ``ratings`` schema) gets 9 on every criterion, except accuracy 2 for an
answer containing ``WRONG``; a repair request (a ``questions`` schema) gets the ambiguous
question narrowed by each answer's first three words.
Usage counts whitespace-separated words. A document containing ``ALWAYS_MALFORMED`` always
gets a reply that is not JSON; other faults come from ``fault_proxy.py`` in front of it.
Every request body is recorded; ``max_in_flight`` tracks concurrency.
"""

from __future__ import annotations

import json
import re
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from testsupport.loopback import LoopbackServer

ALWAYS_MALFORMED = "ALWAYS_MALFORMED"
_FENCE = re.compile(r"^(`{3,})document\n(.*?)\n\1$", re.S | re.M)


def _reply_ratings(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Judge requests: 9 on every criterion, but accuracy 2 for an answer saying ``WRONG``."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    start = re.search(r'\[\s*\{\s*"index"', user).start()
    pairs, _ = json.JSONDecoder().raw_decode(user, start)
    return [
        {"accuracy": 2 if "WRONG" in p["answer"] else 9, "relevance": 9, "clarity": 9,
         "usefulness": 9, "reason": "states a wrong fact" if "WRONG" in p["answer"] else "fine"}
        for p in pairs
    ]  # fmt: skip


def _reply_questions(body: dict[str, Any]) -> list[str]:
    """Repair requests: the question, narrowed by each answer's first three words."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    question = json.loads(user.split("(a JSON string): ", 1)[1].split("\n", 1)[0])
    start = re.search(r'\[\s*\{\s*"index"', user).start()
    answers, _ = json.JSONDecoder().raw_decode(user, start)
    return [f"{question.rstrip('?')} about {' '.join(a['answer'].split()[:3])}?" for a in answers]


def _reply(body: dict[str, Any]) -> dict[str, Any]:
    schema = body["response_format"]["json_schema"]["schema"]
    if "ratings" in schema["properties"]:
        return {"ratings": _reply_ratings(body)}
    if "questions" in schema["properties"]:
        return {"questions": _reply_questions(body)}
    return {"facts": _reply_facts(body, schema)}


def _reply_facts(body: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    n = schema["properties"]["facts"]["maxItems"]
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    document = _FENCE.search(user).group(2)
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", document.strip()) if s]
    forms = (
        "What does sentence {} of the guide say?",
        "What is stated in sentence {} of the guide?",
    )
    return [
        {"answer": sentences[i], "questions": [f.format(i + 1) for f in forms]}
        for i in range(min(n, len(sentences)))
    ]


class OpenAICompatServer(LoopbackServer):
    """``with OpenAICompatServer() as server: ... server.base_url`` → ``http://127.0.0.1:P/v1``."""

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        super().__init__()

    def respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Status and JSON body for one request."""
        with self._lock:
            self.requests.append(body)
        if ALWAYS_MALFORMED in json.dumps(body["messages"]):
            content = '{"facts": [{"answer": "unterminated'
        else:
            content = json.dumps(_reply(body))
        prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(content.split()),
                "total_tokens": prompt_tokens + len(content.split()),
            },
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay_s)
                    status, payload = server.respond(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                self._send(status, payload)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                """Quiet: pytest shows failures, not access logs."""

        return Handler
