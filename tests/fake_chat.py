"""A stand-in for the OpenAI-compatible chat server a user runs (llama.cpp, Ollama, vLLM): a
local HTTP server in a thread that answers, fails, stalls or talks nonsense on demand."""

from __future__ import annotations

import http.server
import json
import threading
import time
from dataclasses import dataclass, field


def chat(text: str | None) -> bytes:
    """The body of an OpenAI-style chat completion whose assistant says `text`."""
    message = {"role": "assistant", "content": text}
    return json.dumps({"object": "chat.completion", "choices": [{"message": message}]}).encode()


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    length: bool = True  # send Content-Length (else the body ends when the connection does)


class FakeModel:
    """An OpenAI-compatible server in a thread: the next `replies`, then `answer(prompt)`."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.replies: list[Reply] = []
        self.answer = lambda prompt: "synonyms: a\nattributes: b"
        model = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw)
                model.requests.append({"path": self.path, "headers": dict(self.headers), **body})
                if model.replies:
                    reply = model.replies.pop(0)
                else:
                    reply = Reply(body=chat(model.answer(body["messages"][-1]["content"])))
                time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if reply.length:
                        self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:  # the client stopped reading (a huge answer) or timed out
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
